"""``signalr-emulator [--host H] [--port P] [--config F] [--keyless] [--log-level L]``.

The same program as ``python -m emulator``. Starts the emulator with uvicorn and prints the
connection string to use, e.g. ``Endpoint=http://127.0.0.1;Port=8888;AccessKey=...;Version=1.0;``.
``--port 0`` picks a free port (the printed string names it). ``--keyless`` (or
``EMULATOR_KEYLESS=true``) disables local auth: the connection string is then
``...;AuthType=azure.msi;...`` and the settings a backend needs are printed too.
Settings not given on the command line come from ``EMULATOR_*`` environment variables.
Ctrl-C or SIGTERM closes every client with a Close message allowing reconnect, then stops;
a second one forces the exit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import EmulatorError
from .identity import DEFAULT_IDENTITY_HEADER
from .logs import configure_logging
from .runner import EmulatorServer, ServerGroup, bind_socket, uvicorn_config
from .server import create_app
from .settings import EmulatorSettings

__all__ = ["main"]

LOG_LEVELS = ("debug", "info", "warning", "error")


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="signalr-emulator",
        description=(
            "A local Azure SignalR Service (serverless mode). Also runs as python -m emulator."
        ),
    )
    parser.add_argument("--host", help="interface to listen on (EMULATOR_HOST, 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, help="TCP port (EMULATOR_PORT, 8888; 0 = any free port)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        help="asrs-emulator settings.json with upstream templates (EMULATOR_CONFIG)",
    )
    parser.add_argument(
        "--keyless",
        action="store_true",
        default=None,
        help="local auth disabled: Microsoft Entra ID only (EMULATOR_KEYLESS)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        type=str.lower,
        choices=LOG_LEVELS,
        help="log level (default info)",
    )
    return parser.parse_args(argv)


def keyless_banner(settings: EmulatorSettings) -> str:
    """What a backend sets to reach a keyless emulator (its port as bound)."""
    base = settings.public_base
    header = settings.identity_header
    if header != DEFAULT_IDENTITY_HEADER:
        header = "<the value of EMULATOR_IDENTITY_HEADER>"  # a secret of its owner's choosing
    entra = f"{base}/identity"
    lines = [
        "Keyless (local auth disabled): access-key tokens are refused. For the backend, set",
        f"  IDENTITY_ENDPOINT={entra}/msi/token",
        f"  IDENTITY_HEADER={header}",
        f"  SIGNALR_UPSTREAM_TENANT_ID={settings.tenant_id}",
        f"  SIGNALR_UPSTREAM_AUTHORITY={entra}",
    ]
    if settings.upstream_auth_resource:
        lines.append(f"  SIGNALR_UPSTREAM_AUDIENCE={settings.upstream_auth_resource}")
    else:
        lines.append(
            "  and EMULATOR_UPSTREAM_AUTH_RESOURCE / SIGNALR_UPSTREAM_AUDIENCE to one resource "
            "(e.g. api://serverless-signalr) so upstream calls carry a bearer"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until Ctrl-C or SIGTERM; returns the exit status."""
    args = _parse(argv)
    configure_logging(args.log_level)
    overrides = {
        k: v
        for k, v in (
            ("host", args.host),
            ("port", args.port),
            ("config", args.config),
            ("keyless", args.keyless),
        )
        if v is not None
    }
    try:
        settings = EmulatorSettings(**overrides)
        app = create_app(settings)
        sock = bind_socket(settings.host, settings.port)
    except (EmulatorError, ValueError, OSError) as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    port = sock.getsockname()[1]
    settings = settings.model_copy(update={"port": port})
    app.settings = settings
    print(f"Azure SignalR Service emulator listening on http://{settings.host}:{port}")
    print("Connection string:")
    print(f"  {settings.connection_string(port)}", flush=True)
    if settings.keyless:
        print(keyless_banner(settings), flush=True)
    group = ServerGroup()
    group.add("emulator", EmulatorServer(uvicorn_config(app), app), sock)
    try:
        return group.run()
    except KeyboardInterrupt:  # before the group took over signal handling
        return 130


if __name__ == "__main__":
    sys.exit(main())
