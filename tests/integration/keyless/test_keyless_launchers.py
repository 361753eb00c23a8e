"""The launchers in keyless mode: `python -m app --keyless` runs keyless end to end, and
keyless with no webhook protection refuses to start, under both launchers, in one line."""

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


def test_python_m_app_keyless_runs_the_whole_stack_keyless(tmp_path: Path) -> None:
    """``python -m app --keyless`` says so in its banner, prints a key-less connection
    string, and its negotiate hands out tokens signed with the emulator's temporary key,
    which the emulator accepts, while the emulator refuses access-key tokens."""
    import re
    import time

    import httpx
    import jwt

    from signalr_protocol.connection_string import EMULATOR_ACCESS_KEY
    from signalr_protocol.tokens import mint_token

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("SIGNALR_", "AZURE", "GATEWAY_", "EMULATOR_", "IDENTITY_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "--keyless", "--port", "0", "--emulator-port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "".join(banner)
            banner.append(line)
            if "Press Ctrl-C" in line:
                break
        text = "".join(banner)
        assert "keyless" in text and "AuthType=azure.msi" in text and "AccessKey" not in text
        backend = re.search(r"negotiate\s+(http://\S+)/api/negotiate", text)
        emulator = re.search(r"emulator\s+(http://\S+)\s", text)
        assert backend and emulator, text
        with httpx.Client(timeout=10) as http:
            answer = http.post(f"{backend.group(1)}/api/negotiate")
            assert answer.status_code == 200, answer.text
            info = answer.json()
            assert "kid" in jwt.get_unverified_header(info["accessToken"])
            url = info["url"].replace("/client/?", "/client/negotiate?")
            accepted = http.post(url, headers={"Authorization": f"Bearer {info['accessToken']}"})
            assert accepted.status_code == 200, accepted.text
            keyed = mint_token(EMULATOR_ACCESS_KEY, info["url"])
            refused = http.post(url, headers={"Authorization": f"Bearer {keyed}"})
            assert refused.status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=15)
        if process.stdout is not None:
            process.stdout.close()
