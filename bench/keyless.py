"""Keyless mode against access keys: negotiate and the REST client, side by side.

Two sections, each printing the ratio keyless / access key (target >= 0.9 for both):

* **negotiate**: the backend with an access key, then keyless (``AuthType=azure.msi``,
  its managed identity served by a keyless emulator in another process), each pinned to
  core 0 under uvicorn; wrk, on core 1, sends ``POST /api/negotiate``. Rounds alternate.
  Keyless signs with the temporary key the background manager holds: no Entra round trip.
* **rest**: :meth:`SignalRService.send_to_all` against a bare sink answering ``202`` (as
  in ``bench/outbound_throughput.py``), with an access key (minted, cached JWTs) and
  keyless (the cached Entra bearer), in alternating rounds in one process. The target is
  checked on requests per CPU second of this process: on a shared machine the wall-clock
  figures wander far more than the difference being measured.

    python bench/keyless.py [--rounds 3] [--duration 5] [--connections 16] [--requests 3000]

Needs Debian's ``wrk`` and ``taskset`` for the negotiate section (``--skip-negotiate`` to
run only the REST one). Exit status 1 when a ratio is below 0.9.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from _support import ROOT, free_port, pinned_server, wait_ready, wrk

TARGET = 0.9
IDENTITY_HEADER = "bench-identity-header"
MODES = ("key", "keyless")


@contextlib.contextmanager
def keyless_emulator() -> Iterator[int]:
    """A keyless emulator process (identity endpoint and accessKey); yields its port."""
    port = free_port()
    env = {
        **os.environ,
        "EMULATOR_KEYLESS": "true",
        "EMULATOR_IDENTITY_HEADER": IDENTITY_HEADER,
        "EMULATOR_UPSTREAM_URL": "",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_ready(port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def keyless_env(port: int) -> dict[str, str]:
    """The backend's environment for the keyless emulator on ``port``."""
    return {
        "AzureSignalRConnectionString": (
            f"Endpoint=http://127.0.0.1;Port={port};AuthType=azure.msi;Version=1.0;"
        ),
        "IDENTITY_ENDPOINT": f"http://127.0.0.1:{port}/identity/msi/token",
        "IDENTITY_HEADER": IDENTITY_HEADER,
        "SIGNALR_UPSTREAM_CODE": "bench",
    }


def serve(port: int) -> None:
    import uvicorn

    from app.main import create_app

    uvicorn.run(create_app(), host="127.0.0.1", port=port, log_level="error", access_log=False)


def negotiate_section(args: argparse.Namespace) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write('wrk.method = "POST"\n')
        script = Path(handle.name)
    results: dict[str, list[float]] = {mode: [] for mode in MODES}
    try:
        with keyless_emulator() as emulator_port:
            envs = {"key": {}, "keyless": keyless_env(emulator_port)}
            for _ in range(args.rounds):
                for mode in MODES:
                    with pinned_server(__file__, mode, env=envs[mode]) as port:
                        url = f"http://127.0.0.1:{port}/api/negotiate"
                        wrk(url, script, 4, 1)  # warm-up (and the first key fetch)
                        rps, out = wrk(url, script, args.connections, args.duration)
                        if "Non-2xx" in out:
                            raise RuntimeError(f"{mode}: errors during the run:\n{out}")
                    results[mode].append(rps)
                    print(f"negotiate {mode:8s} {rps:10.0f} req/s", flush=True)
    finally:
        script.unlink()
    key = statistics.median(results["key"])
    keyless = statistics.median(results["keyless"])
    ratio = keyless / key
    print(f"negotiate median: access key {key:.0f} req/s, keyless {keyless:.0f} req/s")
    print(f"negotiate ratio keyless/access key = {ratio:.2f} (target >= {TARGET})")
    return ratio


def rest(args: argparse.Namespace) -> float:
    """Start the sink and the keyless emulator, then run the REST section."""
    from outbound_throughput import SINK as SINK_CODE

    sink = subprocess.Popen(
        [sys.executable, "-c", SINK_CODE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert sink.stdout is not None and sink.stdin is not None
    sink_port = int(sink.stdout.readline())
    try:
        with keyless_emulator() as emulator_port:
            os.environ.update(keyless_env(emulator_port))
            return asyncio.run(rest_section(args, sink_port))
    finally:
        sink.stdin.close()
        sink.wait(timeout=10)


async def rest_section(args: argparse.Namespace, sink_port: int) -> float:
    from outbound_throughput import measure

    from app.services.signalr import SignalRService
    from app.settings import Settings
    from signalr_protocol.connection_string import EMULATOR_ACCESS_KEY

    endpoint = f"Endpoint=http://127.0.0.1;Port={sink_port};"
    keyed = Settings(connection_string=f"{endpoint}AccessKey={EMULATOR_ACCESS_KEY};")
    # The accessKey fetch goes to the sink (202, no key): REST needs only the bearer.
    keyless = Settings(
        connection_string=f"{endpoint}AuthType=azure.msi;Version=1.0;",
        upstream_code="bench",
        access_key_retry_interval=3600,
    )
    logging_off()
    arguments = [{"sender": "bench", "text": "hello"}]
    best: dict[str, list[float]] = {mode: [] for mode in MODES}
    best_cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
    async with (
        SignalRService.open(keyed) as with_key,
        SignalRService.open(keyless) as without_key,
    ):
        services = {"key": with_key, "keyless": without_key}
        for concurrency in (1, 8, 32):
            rates = {mode: 0.0 for mode in MODES}
            cpu_rates = {mode: 0.0 for mode in MODES}
            for round_ in range(args.rounds + 1):
                for mode in MODES:
                    service = services[mode]

                    async def send(service: SignalRService = service) -> None:
                        await service.send_to_all("chat", "newMessage", arguments)

                    count = 200 if round_ == 0 else args.requests  # round 0: warm-up
                    wall, cpu = await measure(send, concurrency, count)
                    if round_:
                        rates[mode] = max(rates[mode], wall)
                        cpu_rates[mode] = max(cpu_rates[mode], cpu)
            for mode in MODES:
                best[mode].append(rates[mode])
                best_cpu[mode].append(cpu_rates[mode])
            print(
                f"rest concurrency {concurrency:>2}: access key {rates['key']:8.0f} req/s, "
                f"keyless {rates['keyless']:8.0f} req/s, ratio "
                f"{rates['keyless'] / rates['key']:.2f}, cpu ratio "
                f"{cpu_rates['keyless'] / cpu_rates['key']:.2f}",
                flush=True,
            )
    wall_ratio = min(k / a for k, a in zip(best["keyless"], best["key"], strict=True))
    ratio = min(k / a for k, a in zip(best_cpu["keyless"], best_cpu["key"], strict=True))
    print(
        f"rest ratio keyless/access key, lowest of the concurrencies: {wall_ratio:.2f} "
        f"(wall clock), {ratio:.2f} (per CPU second of this process; target >= {TARGET})"
    )
    return ratio


def logging_off() -> None:
    import logging

    logging.getLogger("app").setLevel(logging.ERROR)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=MODES)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--skip-negotiate", action="store_true")
    args = parser.parse_args()
    if args.serve:
        serve(args.port)
        return 0
    for name in ("AzureSignalRConnectionString", "IDENTITY_ENDPOINT", "IDENTITY_HEADER"):
        os.environ.pop(name, None)
    ratios = []
    if not args.skip_negotiate:
        if shutil.which("wrk") is None or shutil.which("taskset") is None:
            sys.exit("needs wrk and taskset: apt-get install wrk util-linux")
        ratios.append(negotiate_section(args))
    ratios.append(rest(args))
    return 0 if all(ratio >= TARGET for ratio in ratios) else 1


if __name__ == "__main__":
    sys.exit(main())
