"""Keyless settings sections written in local.settings.json reach the backend's settings.

The Functions extension reads the ``AzureSignalRConnectionString`` section (``serviceUri``,
``credential``, ...) and ``Azure:SignalR:Endpoints`` from its configuration, which includes
``local.settings.json``'s ``Values`` under ``func start`` (Azure/azure-sdk-for-net
``sdk/signalr/Microsoft.Azure.WebJobs.Extensions.SignalRService/src/Config/OptionsSetupFromConfig.cs``,
``Configure``: ``GetSection(_connectionStringKey).TryGetNamedEndpointFromIdentity``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.functions_settings import functions_environ, read_local_settings
from app.settings import Settings
from signalr_protocol.connection_string import CredentialKind, EntraIdentity

URL = "https://from-file.service.signalr.net"
MSI = CredentialKind.MANAGED_IDENTITY


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, as a Functions project folder would be."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_values(folder: Path, values: dict[str, Any]) -> None:
    document = {"IsEncrypted": False, "Values": values}
    (folder / "local.settings.json").write_text(json.dumps(document), encoding="utf-8")


def test_a_keyless_section_in_local_settings_json_makes_a_keyless_endpoint(folder: Path) -> None:
    """``AzureSignalRConnectionString:serviceUri`` + ``:credential`` in the file's Values
    give a managed-identity endpoint, as the extension reads that section from configuration
    (Azure/azure-sdk-for-net sdk/signalr/Microsoft.Azure.WebJobs.Extensions.SignalRService/
    src/Config/OptionsSetupFromConfig.cs)."""
    write_values(
        folder,
        {
            "AzureSignalRConnectionString:serviceUri": URL,
            "AzureSignalRConnectionString:credential": "managedidentity",
            "SIGNALR_UPSTREAM_CODE": "webhook-code",
            "FUNCTIONS_WORKER_RUNTIME": "python",
        },
    )
    settings = Settings()
    assert settings.keyless
    assert not settings.uses_emulator
    [endpoint] = settings.service_endpoints()
    assert endpoint.endpoint == URL
    assert endpoint.identity == EntraIdentity(MSI)
    assert endpoint.access_key is None


def test_a_named_keyless_endpoint_in_local_settings_json_is_read(folder: Path) -> None:
    """``Azure:SignalR:Endpoints:<name>:serviceUri`` in the file is a named keyless endpoint,
    its name spelled as written."""
    write_values(
        folder,
        {
            "Azure:SignalR:Endpoints:EastUS:serviceUri": URL,
            "Azure:SignalR:Endpoints:EastUS:credential": "managedidentity",
            "Azure:SignalR:Endpoints:EastUS:clientId": "cid",
            "SIGNALR_UPSTREAM_CODE": "webhook-code",
        },
    )
    [endpoint] = Settings().service_endpoints()
    assert (endpoint.name, endpoint.endpoint) == ("EastUS", URL)
    assert endpoint.identity == EntraIdentity(MSI, client_id="cid")


def test_the_environment_wins_over_the_files_keyless_section(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An environment variable hides the file's entry of the same name (any case, ``:`` or
    ``__``), and a connection string in the environment turns the file's default section off."""
    write_values(
        folder,
        {
            "AzureSignalRConnectionString:serviceUri": URL,
            "AzureSignalRConnectionString:credential": "managedidentity",
            "AzureSignalRConnectionString:clientId": "from-file",
            "SIGNALR_UPSTREAM_CODE": "webhook-code",
        },
    )
    monkeypatch.setenv("AZURESIGNALRCONNECTIONSTRING__CLIENTID", "from-env")
    [endpoint] = Settings().service_endpoints()
    assert endpoint.identity == EntraIdentity(MSI, client_id="from-env")

    monkeypatch.setenv(
        "AzureSignalRConnectionString",
        "Endpoint=https://from-env.service.signalr.net;AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;",
    )
    settings = Settings()
    assert not settings.keyless
    assert [e.endpoint for e in settings.service_endpoints()] == [
        "https://from-env.service.signalr.net"
    ]


def test_endpoints_named_in_the_environment_hide_the_files_endpoints(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Endpoints named in the environment win as a whole over the file's endpoint entries."""
    write_values(folder, {"Azure:SignalR:Endpoints:file:serviceUri": URL})
    monkeypatch.setenv("Azure__SignalR__Endpoints__env__serviceUri", "https://env.example.net")
    local = read_local_settings()
    merged = functions_environ(local, {"Azure__SignalR__Endpoints__env__serviceUri": "x"})
    assert merged == {"Azure__SignalR__Endpoints__env__serviceUri": "x"}
    monkeypatch.setenv("SIGNALR_UPSTREAM_CODE", "webhook-code")
    assert [e.name for e in Settings().service_endpoints()] == ["env"]
