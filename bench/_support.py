"""What the wrk benchmarks share: free ports, a server child pinned to a core, wrk runs.

Imported as ``_support``: running ``python bench/x.py`` puts ``bench/`` on ``sys.path``.
Importing it also puts the repository root there, so ``app`` imports work uninstalled.
"""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping
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
def pinned_server(
    script: str, mode: str, *, env: Mapping[str, str] | None = None, root: Path | None = None
) -> Iterator[int]:
    """Run ``script --serve mode --port N`` on :data:`SERVER_CORE`; yield N once it listens.

    See :func:`pinned_server_process`, which yields the process id too.
    """
    with pinned_server_process(script, mode, env=env, root=root) as (port, _):
        yield port


@contextmanager
def pinned_server_process(
    script: str, mode: str, *, env: Mapping[str, str] | None = None, root: Path | None = None
) -> Iterator[tuple[int, int]]:
    """Run ``script --serve mode --port N`` on :data:`SERVER_CORE`; yield N and the
    server's process id (for :func:`cpu_seconds`) once it listens.

    Args:
        env: variables added to the child's environment.
        root: another copy of the repository to run the same script from (an older
            commit, see :func:`telemetry_variants`).

    The child is terminated on exit.
    """
    port = free_port()
    if root is not None:
        script = str(root / Path(script).resolve().relative_to(ROOT))
    server = subprocess.Popen(
        ["taskset", "-c", str(SERVER_CORE), sys.executable, script, "--serve", mode]
        + ["--port", str(port)],
        cwd=root or ROOT,
        env={**os.environ, **(env or {})},
    )
    try:
        wait_ready(port)
        yield port, server.pid  # taskset execs the interpreter: same process
    finally:
        server.terminate()
        server.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a live process has used so far (Linux)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def requests_done(wrk_output: str) -> int:
    """How many requests a ``wrk`` run completed."""
    match = re.search(r"(\d+) requests in", wrk_output)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{wrk_output}")
    return int(match.group(1))


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


# -- telemetry on and off ---------------------------------------------------------------

_OTLP_SINK = """
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
"""

TELEMETRY_VARIANTS = ("before", "off", "traced", "sampled", "no-metrics")
"""``before``: the backend of an earlier commit (without telemetry); ``off``: this tree,
metrics on, tracing off (the default); ``traced``: spans exported over OTLP/HTTP to a local
sink that answers 200 (BatchSpanProcessor with its defaults, every request sampled);
``sampled``: the same with ``OTEL_TRACES_SAMPLER=parentbased_traceidratio`` at
:data:`SAMPLE_RATIO` (or ``--sample-ratio``); ``no-metrics``:
``SIGNALR_METRICS_ENABLED=false``, tracing off."""

SAMPLE_RATIO = 0.01
"""The ``sampled`` variant's ``OTEL_TRACES_SAMPLER_ARG``: the ratio README recommends."""


@contextmanager
def telemetry_variants(
    base: str, sample_ratio: float = SAMPLE_RATIO
) -> Iterator[dict[str, tuple[dict[str, str], Path | None]]]:
    """The environment and repository copy of each :data:`TELEMETRY_VARIANTS` entry.

    Args:
        base: the commit ``before`` runs (``git archive`` into a temporary directory).
        sample_ratio: the ``sampled`` variant's ratio.
    """
    archive = subprocess.run(
        ["git", "archive", "--format=tar", base], cwd=ROOT, check=True, capture_output=True
    ).stdout
    sink_port = free_port()
    sink = subprocess.Popen(
        ["taskset", "-c", str(LOAD_CORE), sys.executable, "-c", _OTLP_SINK, str(sink_port)]
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(tmp, filter="data")
            wait_ready(sink_port)
            traced = {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_METRICS_EXPORTER": "none",
                "OTEL_LOGS_EXPORTER": "none",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
            }
            yield {
                "before": ({}, Path(tmp)),
                "off": ({}, None),
                "traced": (traced, None),
                "sampled": (
                    {
                        **traced,
                        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                        "OTEL_TRACES_SAMPLER_ARG": str(sample_ratio),
                    },
                    None,
                ),
                "no-metrics": ({"SIGNALR_METRICS_ENABLED": "false"}, None),
            }
    finally:
        sink.terminate()
        sink.wait(timeout=10)
