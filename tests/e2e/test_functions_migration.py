"""``python -m app`` started in a Functions project folder: its local.settings.json just works."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.emulator import running_emulator
from tests.support.runner import run_app
from tests.support.servers import free_port

pytestmark = pytest.mark.anyio

ORIGIN = "http://localhost:3000"


async def test_python_m_app_in_a_functions_folder_honours_every_setting(tmp_path: Path) -> None:
    """Each setting of a real-shaped local.settings.json takes effect in a real ``python -m app``.

    A name set both there and in the environment takes the environment's value, as
    ``func start`` skips a local setting "already defined in current environment variables"
    (Azure/azure-functions-core-tools
    src/Azure.Functions.Cli/Actions/HostActions/StartHostAction.cs).

    The file's shape is what ``func init`` writes and ``func start`` reads (``IsEncrypted``,
    ``Values``, ``Host.LocalHttpPort`` / ``CORS`` / ``CORSCredentials``); the SignalR names are
    those of Azure/azure-sdk-for-net
    sdk/signalr/Microsoft.Azure.WebJobs.Extensions.SignalRService/src/Config/OptionsSetup.cs.
    """
    port = free_port()
    async with running_emulator() as emu:
        document = {
            "IsEncrypted": False,
            "Values": {
                "AzureWebJobsStorage": "UseDevelopmentStorage=true",
                "FUNCTIONS_WORKER_RUNTIME": "dotnet-isolated",
                "AzureSignalRConnectionString": emu.connection_string,
                "AzureSignalRHttpClientTimeout": "00:00:30",
                "AzureSignalRRetry:Mode": "Exponential",
                "AzureSignalRRetry:MaxRetries": "5",
                "AzureSignalRRetry:Delay": "00:00:00.5",
                "AzureSignalRRetry:MaxDelay": "00:00:04",
                "AzureSignalRServiceTransportType": "Persistent",
                "Azure:SignalR:HubProtocol": "NewtonsoftJson",
                "GATEWAY_API_KEYS": "migrated-key",
            },
            "Host": {"LocalHttpPort": port, "CORS": ORIGIN, "CORSCredentials": True},
        }
        (tmp_path / "local.settings.json").write_text(json.dumps(document, indent=2))
        # No SIGNALR_PORT / SIGNALR_EMULATOR_PORT: the file alone configures the run, except
        # one name also set in the environment, which wins over the file's value.
        environment = {
            "SIGNALR_PORT": None,
            "SIGNALR_EMULATOR_PORT": None,
            "AzureSignalRServiceTransportType": "Transient",
        }
        async with run_app(environment, cwd=tmp_path) as running:
            base = running.base_url
            assert base.endswith(f":{port}")  # Host.LocalHttpPort
            assert "emulator           not started" in running.banner  # the connection string
            async with httpx.AsyncClient(timeout=10) as client:
                preflight = await client.options(
                    f"{base}/api/negotiate",
                    headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
                )
                assert preflight.headers["access-control-allow-origin"] == ORIGIN  # Host.CORS
                assert preflight.headers["access-control-allow-credentials"] == "true"

                negotiated = await client.post(f"{base}/api/negotiate")
                assert negotiated.json()["url"] == emu.client_url("chat")

                sent = await client.post(
                    f"{base}/api/hubs/chat/messages",
                    json={"target": "newMessage", "arguments": ["hi"]},
                    headers={"x-functions-key": "migrated-key"},
                )
                assert sent.status_code == 202, sent.text  # Values' key, the emulator's AccessKey

            output = "".join(running.output)  # logged by the lifespan, before the banner
            assert (
                "REST client: timeout 30 s per attempt; retries: exponential back-off, up to 6 "
                "attempts, delay 0.5 s, max delay 4 s, within 30 s." in output
            )
            assert "AzureSignalRServiceTransportType='Transient' is accepted" in output  # env
            assert "'Persistent'" not in output
            assert "Azure__SignalR__HubProtocol='NewtonsoftJson' is accepted" in output
            assert "Traceback" not in output
            assert await running.stop() == 0, output
