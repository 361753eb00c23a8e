"""Run the emulator for real, with uvicorn, inside the test's event loop.

Use::

    from tests.support.emulator import running_emulator

    async with running_emulator(keep_alive_interval=1) as emu:
        emu.base_url           # "http://127.0.0.1:54321"
        emu.port               # 54321
        emu.connection_string  # "Endpoint=http://127.0.0.1;Port=54321;AccessKey=...;Version=1.0;"
        emu.settings           # the EmulatorSettings it runs with (port is the bound one)
        emu.app                # the EmulatorApp (emu.app.state.registry for white-box checks)
        emu.rest_token("/api/hubs/chat/:send")        # a REST bearer token for that path
        emu.client_token("chat", user_id="alice")      # a client access token
        emu.client_url("chat")  # "http://127.0.0.1:54321/client/?hub=chat"

Keyword arguments override :class:`emulator.settings.EmulatorSettings` fields (``port``
is always 0 → a free port). The emulator listens on 127.0.0.1 and is stopped on exit.
No upstream is configured unless you pass ``upstream_url="http://127.0.0.1:N/runtime/webhooks/signalr"``
(every event goes there) or ``config=`` (a settings.json path).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from emulator.runner import EmulatorServer, bind_socket, uvicorn_config
from emulator.server import EmulatorApp, create_app
from emulator.settings import EmulatorSettings
from signalr_protocol.tokens import build_client_claims, mint_token
from tests.support.servers import run_server

__all__ = ["RunningEmulator", "running_emulator"]


@dataclass
class RunningEmulator:
    """A running emulator (see the module docstring)."""

    base_url: str
    port: int
    connection_string: str
    settings: EmulatorSettings
    app: EmulatorApp

    def client_url(self, hub: str) -> str:
        """The URL a client connects to for ``hub`` (what negotiate returns as ``url``)."""
        return f"{self.base_url}/client/?hub={hub.lower()}"

    def client_token(
        self,
        hub: str,
        *,
        user_id: str | None = None,
        claims: list[tuple[str, Any]] | None = None,
        lifetime: timedelta = timedelta(hours=1),
        key: str | None = None,
    ) -> str:
        """A client access token for ``hub`` (``aud`` = ``http://127.0.0.1/client/?hub=``)."""
        return mint_token(
            key or self.settings.access_key,
            f"http://127.0.0.1/client/?hub={hub.lower()}",
            lifetime=lifetime,
            claims=build_client_claims(user_id, claims or ()),
        )

    def rest_token(self, path: str, *, key: str | None = None) -> str:
        """A REST bearer token whose ``aud`` is ``http://127.0.0.1{path}``."""
        return mint_token(key or self.settings.access_key, f"http://127.0.0.1{path}")

    def rest_headers(self, path: str) -> dict[str, str]:
        """``Authorization`` header for a REST call to ``path`` (no query)."""
        return {"Authorization": f"Bearer {self.rest_token(path)}"}


@contextlib.asynccontextmanager
async def _serve(app: EmulatorApp) -> AsyncIterator[str]:
    # The emulator's own uvicorn options and server (it closes its clients before uvicorn's
    # shutdown), on a socket made with IPPROTO_TCP (TCP_NODELAY on accepted connections).
    server = EmulatorServer(
        uvicorn_config(app, log_level="warning", timeout_graceful_shutdown=2), app
    )
    async with run_server(server, bind_socket("127.0.0.1", 0)) as base_url:
        yield base_url


@contextlib.asynccontextmanager
async def running_emulator(**overrides: Any) -> AsyncIterator[RunningEmulator]:
    """Start an emulator on a free 127.0.0.1 port; stop it on exit."""
    defaults: dict[str, Any] = {"host": "127.0.0.1", "upstream_url": ""}
    if "config" in overrides:
        defaults.pop("upstream_url")
    settings = EmulatorSettings(**{**defaults, **overrides, "port": 0})
    app = create_app(settings)
    async with _serve(app) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        bound = settings.model_copy(update={"port": port})
        app.settings = bound
        yield RunningEmulator(
            base_url=base_url,
            port=port,
            connection_string=bound.connection_string(port),
            settings=bound,
            app=app,
        )


def write_upstream_settings(path: Path, url: str) -> Path:
    """Write an asrs-emulator ``settings.json`` sending every event to ``url``."""
    path.write_text(
        json.dumps(
            {
                "UpstreamSettings": {
                    "Templates": [
                        {
                            "UrlTemplate": url,
                            "HubPattern": "*",
                            "CategoryPattern": "*",
                            "EventPattern": "*",
                        }
                    ]
                }
            }
        ),
        encoding="utf-8",
    )
    return path
