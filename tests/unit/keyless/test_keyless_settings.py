"""Backend settings in keyless mode: identity endpoints from both forms, mixed with keyed
ones, and the checks that stop a keyless start-up that can't be safe.

The sections and the precedence (a named ``__serviceUri`` endpoint replaces a connection
string of the same name) follow Azure/azure-sdk-for-net
sdk/signalr/Microsoft.Azure.WebJobs.Extensions.SignalRService/src/Config/IConfigurationExtensions.cs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from app.settings import Settings

KEYED = "Endpoint=https://keyed.service.signalr.net;AccessKey=abc;Version=1.0;"
MSI = "Endpoint=https://msi.service.signalr.net;AuthType=azure.msi;Version=1.0;"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No endpoint settings from the machine."""
    import os

    for key in list(os.environ):
        if key.lower().startswith(("azure__signalr__", "azuresignalrconnectionstring")):
            monkeypatch.delenv(key)
    yield monkeypatch


def test_default_section_replaces_the_emulator(clean_env: pytest.MonkeyPatch) -> None:
    """``AzureSignalRConnectionString__serviceUri`` alone is the keyless main endpoint."""
    clean_env.setenv("AzureSignalRConnectionString__serviceUri", "https://a.service.signalr.net")
    settings = Settings(upstream_code="c")
    assert not settings.uses_emulator and settings.keyless
    assert [e.endpoint for e in settings.service_endpoints()] == ["https://a.service.signalr.net"]
    assert settings.access_keys == []


def test_connection_string_wins_over_the_default_section(clean_env: pytest.MonkeyPatch) -> None:
    """With the connection string set, the default section is ignored (the extension's rule)."""
    clean_env.setenv("AzureSignalRConnectionString__serviceUri", "https://a.service.signalr.net")
    settings = Settings(connection_string=KEYED)
    assert [e.endpoint for e in settings.service_endpoints()] == [
        "https://keyed.service.signalr.net"
    ]
    assert not settings.keyless


def test_mixed_named_endpoints_and_identity_wins(clean_env: pytest.MonkeyPatch) -> None:
    """Keyed and keyless named endpoints mix; a name given both ways is identity based."""
    clean_env.setenv("Azure__SignalR__Endpoints__east", KEYED)
    clean_env.setenv("Azure__SignalR__Endpoints__west", KEYED.replace("keyed", "west"))
    clean_env.setenv("Azure__SignalR__Endpoints__west__serviceUri", "https://w.service.signalr.net")
    clean_env.setenv("Azure__SignalR__Endpoints__west__type", "secondary")
    settings = Settings()
    labels = {e.name: (e.endpoint, e.keyless, e.primary) for e in settings.service_endpoints()}
    assert labels == {
        "east": ("https://keyed.service.signalr.net", False, True),
        "west": ("https://w.service.signalr.net", True, False),
    }
    assert settings.access_keys == ["abc"] and settings.keyless and not settings.uses_emulator


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"connection_string": MSI}, "SIGNALR_UPSTREAM_AUDIENCE"),
        ({"connection_string": MSI, "upstream_audience": "api://x"}, "SIGNALR_UPSTREAM_TENANT_ID"),
        ({"connection_string": KEYED, "upstream_tenant_id": "t"}, "SIGNALR_UPSTREAM_AUDIENCE"),
        (
            {
                "connection_string": MSI,
                "upstream_audience": "api://x",
                "upstream_tenant_id": "t",
                "upstream_authority": "login.example",
            },
            "SIGNALR_UPSTREAM_AUTHORITY",
        ),
    ],
)
def test_unsafe_keyless_settings_are_refused(values: dict[str, Any], named: str) -> None:
    """Keyless with no webhook protection, or half an Entra configuration, is refused with
    the setting named."""
    with pytest.raises(ValidationError, match=named):
        Settings(**values)


@pytest.mark.parametrize(
    "values",
    [
        {"connection_string": MSI, "upstream_code": "c"},
        {"connection_string": MSI, "upstream_audience": "api://x", "upstream_tenant_id": "t"},
    ],
)
def test_keyless_with_a_protection_starts(values: dict[str, Any]) -> None:
    """Either protection is enough for a keyless start-up."""
    assert Settings(**values).keyless
