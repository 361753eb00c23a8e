"""What the wrk benchmarks share: free ports, a server child pinned to a core, wrk runs.

Imported as ``_support``: running ``python bench/x.py`` puts ``bench/`` on ``sys.path``.
Importing it also puts the repository root there, so ``app`` imports work uninstalled.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SERVER_CORE = 0
"""The core the server under test is pinned to."""
LOAD_CORE = 1
"""The core ``wrk`` is pinned to."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, timeout: float = 20.0) -> None:
    """Wait until something accepts connections on ``127.0.0.1:port``.

    Raises:
        RuntimeError: nothing did within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not start")


async def answer_lifespan(receive: Any, send: Any) -> None:
    """Answer an ASGI ``lifespan`` scope (startup, then shutdown) for a bare ASGI app."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


@contextmanager
def pinned_server(script: str, mode: str) -> Iterator[int]:
    """Run ``script --serve mode --port N`` on :data:`SERVER_CORE`; yield N once it listens.

    The child is terminated on exit.
    """
    port = free_port()
    server = subprocess.Popen(
        ["taskset", "-c", str(SERVER_CORE), sys.executable, script, "--serve", mode]
        + ["--port", str(port)],
        cwd=ROOT,
    )
    try:
        wait_ready(port)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)


def wrk(url: str, script: Path, connections: int, duration: int) -> tuple[float, str]:
    """Run ``wrk`` (one thread, on :data:`LOAD_CORE`) with a Lua ``script`` against ``url``.

    Returns:
        Requests per second, and wrk's whole output (for the error counts).
    """
    out = subprocess.run(
        ["taskset", "-c", str(LOAD_CORE), "wrk", "-t1", f"-c{connections}"]
        + [f"-d{duration}s", "-s", str(script), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return float(match.group(1)), out
