"""A new user's first run: settings errors are one line naming the variable, and the
shipped ``.env.example`` starts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from app.exceptions import ConfigurationError
from app.services.registry import HubRegistry
from app.settings import Settings, describe_settings_error

ROOT = Path(__file__).resolve().parents[3]
PYTHON = sys.executable


def _clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without backend settings, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("SIGNALR_", "AZURE", "GATEWAY_", "WEBSITE_", "EMULATOR_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _settings_error(**values: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, **values)
    return describe_settings_error(caught.value)


def test_settings_errors_name_the_environment_variable() -> None:
    """Each problem is one line naming the variable, without pydantic's boilerplate."""
    assert _settings_error(port=99999) == (
        "SIGNALR_PORT: Input should be less than or equal to 65535"
    )
    text = _settings_error(connection_string="Endpoint=x")
    assert text.startswith("AzureSignalRConnectionString: ")
    assert "\n" not in text
    both = _settings_error(port=-1, log_level="loud").splitlines()
    assert [line.split(":")[0] for line in both] == ["SIGNALR_PORT", "SIGNALR_LOG_LEVEL"]
    for line in both:
        assert "validation error" not in line and "pydantic" not in line


def test_empty_connection_string_is_unset_and_auto_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``AzureSignalRConnectionString=`` means the emulator; ``SIGNALR_DEV_USER_HEADER=auto``
    is the documented default."""
    monkeypatch.setenv("AzureSignalRConnectionString", "  ")
    monkeypatch.setenv("SIGNALR_DEV_USER_HEADER", "auto")
    settings = Settings(_env_file=None)
    assert settings.connection_string is None
    assert settings.uses_emulator
    assert settings.dev_user_header is None
    assert settings.dev_user_header_enabled


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("nosuch_module_xyz:Hub", "Cannot import hub module 'nosuch_module_xyz'"),
        ("app.samples.chat:Nope", "has no attribute 'Nope'"),
        ("app.samples.chat:__name__", "neither a ServerlessHub subclass"),
    ],
    ids=["module", "class", "attribute"],
)
def test_bad_hub_setting_names_signalr_hubs(spec: str, reason: str) -> None:
    """SIGNALR_HUBS naming a missing module, class or attribute: one message naming it."""
    settings = Settings(_env_file=None, hubs=[spec])
    with pytest.raises(ConfigurationError) as caught:
        HubRegistry.from_settings(settings)
    assert caught.value.message.startswith(f"SIGNALR_HUBS ({spec!r}): ")
    assert reason in caught.value.message


@pytest.mark.parametrize("launcher", ["python -m app", "uvicorn app.main:app"])
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SIGNALR_LOG_LEVEL": "loud"}, "Invalid setting: SIGNALR_LOG_LEVEL: Input should be"),
        ({"SIGNALR_HUBS": "nosuch_module_xyz:Hub"}, "Invalid setting: SIGNALR_HUBS ("),
        (
            {"AzureSignalRConnectionString": "Endpoint=nope"},
            "Invalid setting: AzureSignalRConnectionString: ",
        ),
    ],
    ids=["log level", "hubs", "connection string"],
)
def test_launchers_exit_cleanly_with_one_line(
    launcher: str, env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    """Both launchers print one line naming the variable and exit 2, with no traceback."""
    if launcher == "python -m app":
        command = [PYTHON, "-m", "app", "--port", "0", "--emulator-port", "0"]
    else:
        command = [PYTHON, "-m", "uvicorn", "app.main:app", "--port", "0"]
    done = subprocess.run(
        command, env=_clean_env(**env), cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(expected)
    assert "Traceback" not in done.stderr


def _uncommented(example: str) -> str:
    """Every ``# NAME=value`` line of the example made live, bar ``<placeholder>`` ones."""
    live = []
    for line in example.splitlines():
        match = re.fullmatch(r"# ?([A-Za-z_][A-Za-z0-9_]*=.*)", line)
        if match and "<" not in match.group(1):
            live.append(match.group(1))
    return "\n".join(live) + "\n"


def test_env_example_settings_are_all_valid(tmp_path: Path) -> None:
    """Every example line of .env.example, uncommented, is a valid setting."""
    env_file = tmp_path / ".env"
    env_file.write_text(_uncommented((ROOT / ".env.example").read_text()))
    assert "SIGNALR_DEV_USER_HEADER=auto" in env_file.read_text()
    settings = Settings(_env_file=env_file)
    assert settings.dev_user_header is None


def test_backend_starts_with_the_shipped_env_example(tmp_path: Path) -> None:
    """``cp .env.example .env`` then ``python -m app``: it starts and prints its banner."""
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    command = [PYTHON, "-m", "app", "--port", "0", "--emulator-port", "0"]
    process = subprocess.Popen(
        command,
        env=_clean_env(AzureSignalRConnectionString=""),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        seen: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line)
            if "Press Ctrl-C to stop." in line:
                break
        output = "".join(seen)
        assert "serverless-signalr is running" in output, output
        assert "AzureSignalRConnectionString is set but empty: treated as unset" in output
    finally:
        process.terminate()
        process.wait(timeout=20)
        if process.stdout is not None:
            process.stdout.close()
