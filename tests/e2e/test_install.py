"""Installation: the wheel installs into a fresh virtual environment with working console scripts.

Slow (a wheel build and a dependency install from the package index, ~15-60 s) and marked
``install``: ``pytest -m "not install"`` leaves it out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from signalr_protocol.connection_string import parse_connection_string

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.install, pytest.mark.timeout(600)]


def _run(argv: list[str | Path], *, cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    """Run ``argv`` in ``cwd``; its combined output, or a failure that shows it."""
    done = subprocess.run(
        [str(part) for part in argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}"
    return done.stdout


def test_wheel_installs_console_scripts_and_the_emulator_runs_without_the_backend(
    tmp_path: Path,
) -> None:
    """From a fresh venv both scripts answer --help; signalr-emulator serves with app removed."""
    # Nothing from this checkout or its virtual environment may leak into the fresh one (the
    # working directory, first on sys.path for `python -c`, is the empty tmp_path too).
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    wheels = tmp_path / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, ROOT],
        cwd=tmp_path,
        env=env,
    )
    (wheel,) = wheels.glob("serverless_signalr-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packages = {name.split("/", 1)[0] for name in archive.namelist() if "/" in name}
    assert {"signalr_protocol", "app", "emulator"} <= packages

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp_path, env=env)
    bin_dir = venv / ("Scripts" if sys.platform == "win32" else "bin")
    python = bin_dir / "python"
    _run([python, "-m", "pip", "install", "-q", wheel], cwd=tmp_path, env=env)

    assert "usage: serverless-signalr" in _run(
        [bin_dir / "serverless-signalr", "--help"], cwd=tmp_path, env=env
    )

    # The emulator stands alone: without the backend package it still starts and serves.
    app_dir = Path(
        _run([python, "-c", "import app; print(app.__path__[0])"], cwd=tmp_path, env=env).strip()
    )
    assert app_dir.is_relative_to(venv)
    shutil.rmtree(app_dir)
    assert "usage: signalr-emulator" in _run(
        [bin_dir / "signalr-emulator", "--help"], cwd=tmp_path, env=env
    )

    with subprocess.Popen(
        [str(bin_dir / "signalr-emulator"), "--port", "0", "--log-level", "warning"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            lines: list[str] = []
            while "Endpoint=" not in (line := process.stdout.readline()):
                assert line, "signalr-emulator exited:\n" + "".join(lines)
                lines.append(line)
            endpoint = parse_connection_string(line.strip())
            answer = httpx.post(f"{endpoint.endpoint}/client/negotiate?hub=chat", timeout=10)
            assert answer.status_code == 401  # serving, and asking for a token
            process.terminate()
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
