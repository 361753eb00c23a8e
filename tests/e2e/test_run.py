"""``python -m app`` (what ``make run`` starts), run as a real child process on free ports."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

import httpx
import jwt
import pytest

from signalr_protocol.connection_string import EMULATOR_ACCESS_KEY, parse_connection_string
from tests.support.runner import child_environment, run_app

pytestmark = pytest.mark.anyio


async def _refused(url: str) -> bool:
    """True when nothing listens at ``url`` any more."""
    async with httpx.AsyncClient(timeout=2) as client:
        try:
            await client.get(url)
        except httpx.ConnectError:
            return True
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
async def test_run_starts_backend_and_embedded_emulator_then_stops_cleanly(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """Without a connection string, both servers run, work together, and stop on a signal."""
    async with run_app({}, cwd=tmp_path) as running:
        base = running.base_url
        emulator_url = running.line("emulator")
        shown = running.line("connection string")
        key = running.line("gateway key")
        endpoint = parse_connection_string(shown)
        assert endpoint.access_key == EMULATOR_ACCESS_KEY  # the well-known key is shown as is
        assert endpoint.client_endpoint.rsplit(":", 1)[1] == emulator_url.rsplit(":", 1)[1]

        async with httpx.AsyncClient(timeout=10) as client:
            page = await client.get(f"{base}/")
            assert page.status_code == 200 and "<title>" in page.text
            bundle = await client.get(f"{base}/static/vendor/signalr.min.js")
            assert bundle.status_code == 200 and len(bundle.content) > 10_000

            negotiated = (await client.post(f"{base}/api/negotiate")).json()
            assert negotiated["url"] == f"{endpoint.client_endpoint}/client/?hub=chat"
            claims = jwt.decode(
                negotiated["accessToken"],
                EMULATOR_ACCESS_KEY,
                algorithms=["HS256"],
                audience=endpoint.client_audience("chat"),
            )
            assert claims["exp"] > claims["iat"]

            # The embedded emulator serves the client endpoint the token is for.
            service = await client.post(
                f"{endpoint.client_endpoint}/client/negotiate?hub=chat&negotiateVersion=1",
                headers={"Authorization": f"Bearer {negotiated['accessToken']}"},
            )
            assert service.status_code == 200, service.text
            assert service.json()["connectionId"]

            # The generated gateway key is accepted, and the send goes through the emulator.
            message = {"target": "newMessage", "arguments": [{"text": "hi"}]}
            sent = await client.post(
                f"{base}/api/hubs/chat/messages", json=message, headers={"x-functions-key": key}
            )
            assert sent.status_code == 202, sent.text
            refused = await client.post(
                f"{base}/api/hubs/chat/messages", json=message, headers={"x-functions-key": "no"}
            )
            assert refused.status_code == 401

        assert await running.stop(sig) == 0, "".join(running.output)
        assert await _refused(f"{base}/healthz")
        assert await _refused(f"{emulator_url}/")
        assert "Traceback" not in "".join(running.output)


async def test_run_with_a_connection_string_starts_no_emulator(tmp_path: Path) -> None:
    """With AzureSignalRConnectionString set, only the backend runs and the key is masked."""
    from tests.support.emulator import running_emulator

    secret = "not-the-well-known-key-0123456789"
    async with running_emulator(access_key=secret) as emu:
        connection_string = emu.connection_string
        assert secret in connection_string
        env = {"AzureSignalRConnectionString": connection_string}
        async with run_app(env, cwd=tmp_path) as running:
            shown = running.line("connection string")
            assert secret not in running.banner
            assert "AccessKey=***" in shown
            assert "not started" in running.banner
            assert "gateway key" not in running.banner  # no dev key for a real service
            async with httpx.AsyncClient(timeout=10) as client:
                negotiated = (await client.post(f"{running.base_url}/api/negotiate")).json()
            assert negotiated["url"] == parse_connection_string(connection_string).client_url(
                "chat"
            )
            assert await running.stop() == 0


async def test_run_reports_a_busy_port(tmp_path: Path) -> None:
    """A port already in use stops start-up at once with a message naming the setting."""
    from tests.support.servers import bind_socket

    busy = bind_socket()
    try:
        port = busy.getsockname()[1]
        env = child_environment({"SIGNALR_PORT": str(port), "SIGNALR_EMULATOR_PORT": "0"})
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode == 1
        assert "SIGNALR_PORT" in err.decode()
    finally:
        busy.close()


# ---- in process: the same code paths, measured by coverage -----------------------------------


def test_mask_connection_string_hides_every_secret_but_the_emulator_key() -> None:
    """Access keys and client secrets print as ***, the public emulator key as it is."""
    from app.__main__ import mask_connection_string

    assert (
        mask_connection_string(
            "Endpoint=https://x.service.signalr.net;AccessKey=s3cr=t;Version=1.0;"
        )
        == "Endpoint=https://x.service.signalr.net;AccessKey=***;Version=1.0;"
    )
    assert "ClientSecret=***" in mask_connection_string(
        "Endpoint=https://x;AuthType=azure.app;ClientId=a;TenantId=b;clientsecret=c"
    ).replace("clientsecret", "ClientSecret")
    well_known = f"Endpoint=http://localhost;Port=8888;AccessKey={EMULATOR_ACCESS_KEY};"
    assert mask_connection_string(well_known) == well_known


def test_main_reports_a_busy_port_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """main() returns 1 without serving when the backend port is taken."""
    from app.__main__ import main
    from tests.support.servers import bind_socket

    for name in ("SIGNALR_HOST", "SIGNALR_PORT", "SIGNALR_EMULATOR_PORT", "GATEWAY_API_KEYS"):
        monkeypatch.setenv(name, "x")  # main() writes these: monkeypatch removes them after
        monkeypatch.delenv(name)
    busy = bind_socket()
    try:
        assert main(["--port", str(busy.getsockname()[1]), "--emulator-port", "0"]) == 1
    finally:
        busy.close()
    assert "--port" in capsys.readouterr().err


def test_main_refuses_invalid_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """main() returns 2 and names the problem when the connection string is malformed."""
    from app.__main__ import main

    monkeypatch.setenv("AzureSignalRConnectionString", "AccessKey=only-a-key")
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Invalid setting: AzureSignalRConnectionString: ")
    assert "only-a-key" not in err and len(err.strip().splitlines()) == 1


def test_embedded_emulator_calls_the_backend_unless_an_upstream_is_configured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The embedded emulator's upstream is the backend's webhook, unless EMULATOR_* names one."""
    from app.__main__ import emulator_settings
    from app.settings import Settings

    for name in ("EMULATOR_CONFIG", "EMULATOR_UPSTREAM_URL", "EMULATOR_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EMULATOR_ACCESS_KEY", "not-the-key-the-backend-uses")
    settings = Settings(host="0.0.0.0", emulator_port=9100)
    embedded = emulator_settings(settings, 9100, 7100)
    assert embedded.upstream_url == "http://127.0.0.1:7100/runtime/webhooks/signalr"
    assert (embedded.host, embedded.port) == ("0.0.0.0", 9100)
    assert embedded.access_key == settings.endpoint.access_key == EMULATOR_ACCESS_KEY

    config = tmp_path / "settings.json"
    monkeypatch.setenv("EMULATOR_CONFIG", str(config))
    embedded = emulator_settings(settings, 9100, 7100)
    assert embedded.config == config and embedded.upstream_url is None


def test_main_refuses_an_invalid_emulator_config(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """main() returns 2 with the file's problem when EMULATOR_CONFIG is broken, serving nothing."""
    from app.__main__ import main

    for name in ("AzureSignalRConnectionString", "EMULATOR_UPSTREAM_URL", "GATEWAY_API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    broken = tmp_path / "settings.json"
    broken.write_text("{nope")
    monkeypatch.setenv("EMULATOR_CONFIG", str(broken))
    # main() configures logging for the process: give this one its own configuration back.
    touched = [logging.getLogger(name) for name in ("", "uvicorn.error", "httpx", "httpcore")]
    saved = [(logger, logger.level, logger.handlers[:]) for logger in touched]
    try:
        assert main(["--port", "0", "--emulator-port", "0"]) == 2
    finally:
        for logger, level, handlers in saved:
            logger.setLevel(level)
            logger.handlers[:] = handlers
    err = capsys.readouterr().err
    assert "Invalid emulator settings" in err and "not valid JSON" in err


async def test_runner_serves_backend_and_embedded_emulator_in_one_loop() -> None:
    """build_runner's two servers share one loop: the official client invokes echo end to end."""
    from app.__main__ import build_runner
    from app.settings import Settings
    from emulator.runner import bind_socket
    from tests.support.node import NodeClient

    emulator_sock = bind_socket("127.0.0.1", 0)
    backend_sock = bind_socket("127.0.0.1", 0)
    try:
        settings = Settings(emulator_port=emulator_sock.getsockname()[1])
        assert settings.uses_emulator
        runner = build_runner(settings, backend_sock, emulator_sock)
        started = asyncio.Event()
        task = asyncio.create_task(runner.serve(on_started=started.set))
        try:
            await asyncio.wait_for(started.wait(), 15)
            base = f"http://127.0.0.1:{backend_sock.getsockname()[1]}"
            async with NodeClient.connect(
                f"{base}/api", headers={"x-ms-signalr-user-id": "dave"}
            ) as client:
                assert await client.invoke("echo", {"n": 1}) == {"n": 1}
        finally:
            runner.request_stop()
            assert await asyncio.wait_for(task, 15) == 0
    finally:
        emulator_sock.close()
        backend_sock.close()
    assert await _refused(f"{base}/healthz")
