"""A Function App's settings keep their meaning: local.settings.json and the extension's names."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic_settings import SettingsError

from app.functions_settings import parse_timespan, rest_client_summary, start_notes
from app.main import create_app
from app.services.retry import RetryPolicy
from app.settings import Settings
from tests.support.servers import serve_asgi

CS = "Endpoint=https://from-file.service.signalr.net;AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;"
ENV_CS = "Endpoint=https://from-env.service.signalr.net;AccessKey=ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH;Version=1.0;"


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory, as a Functions project folder would be."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_local_settings(folder: Path, document: dict[str, Any]) -> None:
    (folder / "local.settings.json").write_text(json.dumps(document), encoding="utf-8")


def test_a_functions_http_client_timeout_sets_the_rest_timeout_as_a_dotnet_timespan(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``AzureSignalRHttpClientTimeout`` is a .NET TimeSpan; a zero one is ignored.

    Reproduces Azure/azure-sdk-for-net
    sdk/signalr/Microsoft.Azure.WebJobs.Extensions.SignalRService/src/Config/OptionsSetup.cs
    (``GetSection(AzureSignalRHttpClientTimeout).Get<TimeSpan>()``, applied when not default).
    """
    assert parse_timespan("00:01:40", "x") == 100
    assert parse_timespan("1.02:00:00", "x") == 93600
    assert parse_timespan("00:00:00.8", "x") == pytest.approx(0.8)
    assert parse_timespan("2", "x") == 2 * 86400  # TimeSpan.Parse reads a bare number as days
    monkeypatch.setenv("AzureSignalRHttpClientTimeout", "00:00:30")
    assert Settings().http_timeout == 30
    monkeypatch.setenv("AzureSignalRHttpClientTimeout", "00:00:00")
    assert Settings().http_timeout == 10


def test_our_http_timeout_setting_wins_over_the_functions_one(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``SIGNALR_HTTP_TIMEOUT`` overrides ``AzureSignalRHttpClientTimeout``, even from the file."""
    monkeypatch.setenv("AzureSignalRHttpClientTimeout", "00:00:30")
    write_local_settings(folder, {"Values": {"SIGNALR_HTTP_TIMEOUT": "7"}})
    assert Settings().http_timeout == 7


def test_the_azure_signalr_retry_section_maps_onto_the_retry_policy(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``AzureSignalRRetry__*`` sets mode, attempts, delays; omitted keys take the SDK's defaults.

    Reproduces Azure/azure-signalr
    src/Microsoft.Azure.SignalR.Management/Configuration/ServiceManagerRetryOptions.cs
    (MaxRetries 3, Delay 0.8 s, MaxDelay 1 min, Mode Fixed) as bound by Azure/azure-sdk-for-net
    sdk/signalr/Microsoft.Azure.WebJobs.Extensions.SignalRService/src/Config/OptionsSetup.cs.
    """
    monkeypatch.setenv("AzureSignalRRetry__Mode", "exponential")  # the binder ignores case
    settings = Settings()
    assert (settings.retry_mode, settings.retry_max_attempts) == ("exponential", 4)
    assert (settings.retry_delay, settings.retry_max_delay) == (0.8, 60)
    assert settings.retry_max_total == 100  # HttpClientTimeout's default bounds the attempts

    monkeypatch.setenv("AzureSignalRRetry__Mode", "Fixed")
    monkeypatch.setenv("AzureSignalRRetry__MaxRetries", "5")
    monkeypatch.setenv("AzureSignalRRetry__Delay", "00:00:01.5")
    monkeypatch.setenv("AzureSignalRRetry__MaxDelay", "00:00:20")
    monkeypatch.setenv("AzureSignalRHttpClientTimeout", "00:00:45")
    settings = Settings()
    assert settings.retry_mode == "fixed"
    assert settings.retry_max_attempts == 6
    assert (settings.retry_delay, settings.retry_max_delay) == (1.5, 20)
    assert settings.retry_max_total == 45
    assert RetryPolicy.from_settings(settings).mode == "fixed"


def test_fixed_retry_mode_waits_the_same_delay_every_time() -> None:
    """Fixed mode waits ``delay`` before each retry; exponential doubles it up to ``max_delay``.

    Reproduces Azure/azure-signalr
    src/Microsoft.Azure.SignalR.Management/Resilient/FixedBackoffPolicy.cs and
    src/Microsoft.Azure.SignalR.Management/Resilient/ExponentialBackoffPolicy.cs (without jitter).
    """
    fixed = RetryPolicy(mode="fixed", delay=2, max_delay=60, jitter=False)
    assert [fixed.backoff(n) for n in (1, 2, 3, 4)] == [2, 2, 2, 2]
    doubling = RetryPolicy(mode="exponential", delay=2, max_delay=10, jitter=False)
    assert [doubling.backoff(n) for n in (1, 2, 3, 4)] == [2, 4, 8, 10]


def test_our_retry_settings_win_over_the_functions_section(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``SIGNALR_RETRY_*`` setting overrides the matching ``AzureSignalRRetry__*`` one only."""
    monkeypatch.setenv("AzureSignalRRetry__MaxRetries", "5")
    monkeypatch.setenv("AzureSignalRRetry__Delay", "00:00:02")
    monkeypatch.setenv("SIGNALR_RETRY_MAX_ATTEMPTS", "2")
    settings = Settings()
    assert (settings.retry_max_attempts, settings.retry_delay) == (2, 2)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("AzureSignalRRetry__Mode", "Linear", "use Fixed or Exponential"),
        ("AzureSignalRRetry__MaxRetries", "many", "whole number from 0 to 19"),
        ("AzureSignalRRetry__Delay", "soon", "not a .NET TimeSpan"),
        ("AzureSignalRHttpClientTimeout", "00:75:00", "minutes and seconds 0-59"),
    ],
)
def test_an_invalid_functions_retry_or_timeout_value_is_a_clear_settings_error(
    folder: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    """A value the extension could not bind either stops the start with the setting's name."""
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=message) as caught:
        Settings()
    assert name in str(caught.value)


def test_transport_type_and_hub_protocol_are_accepted_with_one_start_line_each(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both settings start the app and give one log line each; an unknown transport never fails.

    Azure/azure-sdk-for-net
    sdk/signalr/Microsoft.Azure.WebJobs.Extensions.SignalRService/src/Config/OptionsSetup.cs
    throws "Invalid service transport type" for an unknown value; we only say it is ignored.
    """
    assert start_notes(Settings()) == []
    monkeypatch.setenv("AzureSignalRServiceTransportType", "Persistent")
    monkeypatch.setenv("Azure__SignalR__HubProtocol", "NewtonsoftJson")
    transport, protocol = start_notes(Settings())
    assert transport.startswith("AzureSignalRServiceTransportType='Persistent' is accepted")
    assert "REST API" in transport
    assert protocol.startswith("Azure__SignalR__HubProtocol='NewtonsoftJson' is accepted")
    assert "JSON" in protocol
    monkeypatch.setenv("AzureSignalRServiceTransportType", "Carrier pigeon")
    (transport, _) = start_notes(Settings())
    assert "not a Functions transport type, and ignored" in transport


@pytest.mark.anyio
async def test_the_start_lines_are_logged_when_the_app_starts(
    folder: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The app's lifespan logs the transport-type line and the REST client's timeout and retries."""
    monkeypatch.setenv("AzureSignalRServiceTransportType", "Transient")
    monkeypatch.setenv("AzureSignalRRetry__MaxRetries", "1")
    settings = Settings(connection_string=CS)
    caplog.set_level(logging.INFO, logger="app")
    async with serve_asgi(create_app(settings)):
        pass
    logged = [record.getMessage() for record in caplog.records if record.name == "app"]
    assert any(line.startswith("AzureSignalRServiceTransportType='Transient'") for line in logged)
    assert rest_client_summary(settings) in logged
    assert "fixed back-off, up to 2 attempts, delay 0.8 s, max delay 60 s" in rest_client_summary(
        settings
    )


def test_local_settings_json_values_and_host_are_read_from_the_working_directory(
    folder: Path,
) -> None:
    """``Values`` read like environment variables (``:`` as ``__``), and ``Host``'s CORS, port."""
    write_local_settings(
        folder,
        {
            "IsEncrypted": False,
            "Values": {
                "FUNCTIONS_WORKER_RUNTIME": "dotnet-isolated",
                "AzureWebJobsStorage": "UseDevelopmentStorage=true",
                "AzureSignalRConnectionString": CS,
                "GATEWAY_API_KEYS": "k1,k2",
                "SIGNALR_DEFAULT_HUB": "lobby",
                "Azure:SignalR:HubProtocol": "SystemTextJson",
                "AzureSignalRRetry:MaxRetries": 2,
            },
            "Host": {
                "LocalHttpPort": 7072,
                "CORS": "http://localhost:3000,https://app.example.com",
                "CORSCredentials": True,
            },
        },
    )
    settings = Settings()
    assert settings.endpoint.host == "from-file.service.signalr.net"
    assert settings.gateway_api_keys == ["k1", "k2"]
    assert settings.default_hub == "lobby"
    assert settings.hub_protocol == "SystemTextJson"
    assert settings.retry_max_attempts == 3
    assert settings.port == 7072
    assert settings.cors_origins == ["http://localhost:3000", "https://app.example.com"]
    assert settings.cors_credentials is True


def test_environment_variables_win_over_local_settings_json(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same setting in the environment and in the file: the environment's value is used."""
    write_local_settings(
        folder,
        {
            "Values": {"AzureSignalRConnectionString": CS, "SIGNALR_DEFAULT_HUB": "lobby"},
            "Host": {"CORS": "https://file.example.com", "LocalHttpPort": 7072},
        },
    )
    monkeypatch.setenv("AzureSignalRConnectionString", ENV_CS)
    monkeypatch.setenv("SIGNALR_CORS_ORIGINS", "https://env.example.com")
    monkeypatch.setenv("SIGNALR_PORT", "9000")
    settings = Settings()
    assert settings.endpoint.host == "from-env.service.signalr.net"
    assert settings.cors_origins == ["https://env.example.com"]
    assert settings.port == 9000
    assert settings.default_hub == "lobby"  # set in the file only


def test_host_cors_without_cors_credentials_allows_no_credentials_as_func_start_does(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Host.CORS`` alone (even ``*``) starts, credentials off; ``CORSCredentials`` turns them on.

    Reproduces Azure/azure-functions-core-tools
    src/Azure.Functions.Cli/Actions/HostActions/StartHostAction.cs (``--cors-credentials``
    defaults to ``Host.CORSCredentials``, false when absent) and ``Startup.cs`` (credentials
    allowed only when it is true).
    """
    write_local_settings(folder, {"Values": {}, "Host": {"CORS": "*"}})
    settings = Settings()
    assert (settings.cors_origins, settings.cors_credentials) == (["*"], False)
    write_local_settings(folder, {"Host": {"CORS": "https://a.example", "CORSCredentials": True}})
    assert Settings().cors_credentials is True
    write_local_settings(folder, {"Host": {"CORS": "https://a.example"}})
    monkeypatch.setenv("SIGNALR_CORS_CREDENTIALS", "true")  # the environment still wins
    assert Settings().cors_credentials is True


def test_the_connection_strings_section_wins_over_values(folder: Path) -> None:
    """``ConnectionStrings.AzureSignalRConnectionString`` is used before the ``Values`` entry.

    Reproduces Azure/azure-sdk-for-net
    sdk/signalr/Microsoft.Azure.WebJobs.Extensions.SignalRService/src/Config/OptionsSetup.cs
    (``GetConnectionString(key) ?? configuration[key]``).
    """
    write_local_settings(
        folder,
        {
            "Values": {"AzureSignalRConnectionString": ENV_CS},
            "ConnectionStrings": {"AzureSignalRConnectionString": CS, "Other": "x"},
        },
    )
    assert Settings().endpoint.host == "from-file.service.signalr.net"


def test_endpoints_written_in_local_settings_json_are_read(folder: Path) -> None:
    """``Azure:SignalR:Endpoints:<name>[:primary|:secondary]`` in the file become endpoints."""
    write_local_settings(
        folder,
        {
            "Values": {
                "Azure:SignalR:Endpoints:east": CS,
                "Azure:SignalR:Endpoints:west:secondary": ENV_CS,
            }
        },
    )
    settings = Settings()
    assert settings.endpoint_strings == {"east:primary": CS, "west:secondary": ENV_CS}
    assert [(e.name, e.primary) for e in settings.service_endpoints()] == [
        ("east", True),
        ("west", False),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"IsEncrypted": true, "Values": {"AzureSignalRConnectionString": "CfDJ8..."}}',
            "encrypted",
        ),
        ('{"Values": ', "can't be read as JSON"),
        ('{"Values": ["a"]}', "'Values' must be a JSON object"),
    ],
)
def test_an_encrypted_or_broken_local_settings_json_stops_the_start_with_a_message(
    folder: Path, text: str, message: str
) -> None:
    """An unreadable file is reported with its path, never silently skipped."""
    (folder / "local.settings.json").write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError, match=message) as caught:
        Settings()
    assert str(folder / "local.settings.json") in str(caught.value)


@pytest.mark.anyio
async def test_negotiate_answers_url_and_access_token_as_the_extension_does_by_default(
    folder: Path,
) -> None:
    """Negotiate answers ``{url, accessToken}`` only, with any token lifetime.

    The newest extension's Azure/azure-sdk-for-net
    sdk/signalr/Microsoft.Azure.WebJobs.Extensions.SignalRService/src/Bindings/SignalRConnectionInfo.cs
    has an optional ``tokenLifetimeSeconds`` (left out when null), filled by
    src/Client/AzureSignalRClient.cs only on the authentication-refresh path
    (``NegotiateWithTokenLifetimeAsync``), which this backend does not implement; a plain
    ``[SignalRConnectionInfo]`` negotiate answers these two fields.
    """
    settings = Settings(connection_string=CS, token_lifetime_seconds=120)
    async with serve_asgi(create_app(settings)) as base:
        async with httpx.AsyncClient() as client:
            body = (await client.post(f"{base}/api/negotiate")).json()
    assert set(body) == {"url", "accessToken"}
