"""``python -m emulator [--host H] [--port P] [--config settings.json]``.

Starts the emulator with uvicorn and prints the connection string to use, e.g.
``Endpoint=http://127.0.0.1;Port=8888;AccessKey=...;Version=1.0;``. ``--port 0`` picks a
free port (the printed string names it). Settings not given on the command line come
from ``EMULATOR_*`` environment variables.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .errors import EmulatorError
from .logs import configure_logging
from .runner import EmulatorServer, bind_socket, uvicorn_config
from .server import create_app
from .settings import EmulatorSettings

logger = logging.getLogger("emulator.server")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m emulator",
        description="A local Azure SignalR Service (serverless mode).",
    )
    parser.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port (default 8888; 0 = any free port)")
    parser.add_argument(
        "--config", type=Path, help="asrs-emulator settings.json (upstream templates)"
    )
    parser.add_argument("--log-level", default="info", help="debug, info, warning (default info)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until interrupted; returns the exit status."""
    args = _parse(argv)
    configure_logging(args.log_level)
    overrides = {
        k: v
        for k, v in (("host", args.host), ("port", args.port), ("config", args.config))
        if v is not None
    }
    try:
        settings = EmulatorSettings(**overrides)
        app = create_app(settings)
        sock = bind_socket(settings.host, settings.port)
    except (EmulatorError, ValueError, OSError) as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    settings = settings.model_copy(update={"port": port})
    app.settings = settings
    print(f"Azure SignalR Service emulator listening on http://{settings.host}:{port}")
    print("Connection string:")
    print(f"  {settings.connection_string(port)}", flush=True)
    config = uvicorn_config(app, log_level=args.log_level)
    try:
        EmulatorServer(config, app).run(sockets=[sock])
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
