"""Keyless with no webhook protection refuses to start, under both launchers, in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

KEYLESS = "Endpoint=https://demo.service.signalr.net;AuthType=azure.msi;Version=1.0;"
ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "app", "--port", "0", "--emulator-port", "0"],
        ["-m", "uvicorn", "app.main:app", "--port", "0"],
    ],
    ids=["python -m app", "uvicorn app.main:app"],
)
def test_keyless_without_protection_refuses_to_start(command: list[str], tmp_path: Path) -> None:
    """No SIGNALR_UPSTREAM_AUDIENCE or SIGNALR_UPSTREAM_CODE with a keyless endpoint: a
    non-zero exit and one line naming the settings, no traceback."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("SIGNALR_", "AZURE", "GATEWAY_", "EMULATOR_"))
    }
    env.update(AzureSignalRConnectionString=KEYLESS, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, *command],
        cwd=tmp_path,  # no .env here
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "SIGNALR_UPSTREAM_AUDIENCE" in lines[0] and "SIGNALR_UPSTREAM_CODE" in lines[0]
    assert "Traceback" not in done.stderr + done.stdout
