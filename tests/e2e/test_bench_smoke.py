"""The benchmark scripts still run against the code as it is now (tiny sizes, no figures).

README's performance table is only as good as the scripts behind it: a script that no longer
runs after a refactoring would leave stale figures unnoticed. Each script here runs with the
smallest sizes it takes and must reach its result line without a traceback; whether a target
is met at these sizes is noise and is not judged. ``bench/negotiate.py``, ``bench/webhook.py``
and the negotiate section of ``bench/keyless.py`` need Debian's ``wrk`` and are left out.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

RUNS = {
    "outbound_throughput": (
        ["bench/outbound_throughput.py", "--requests", "100", "--rounds", "1"],
        "Target ratio",
    ),
    "keyless_rest": (
        ["bench/keyless.py", "--skip-negotiate", "--rounds", "1", "--requests", "100"],
        "rest ratio keyless/access key",
    ),
    "idle_connections": (
        ["bench/idle_connections.py", "--connections", "50", "--broadcasts", "1"],
        "per idle connection",
    ),
    "emulator_broadcast": (
        ["bench/emulator_broadcast.py", "--clients", "5", "--messages", "20", "--rounds", "1"],
        "ratio emulator/bare",
    ),
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_benchmark_script_runs_to_its_result_line(name: str) -> None:
    """The script finishes within its bound, prints its result line and no traceback."""
    args, result_line = RUNS[name]
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output[-3000:]
    assert result_line in output, output[-3000:]
