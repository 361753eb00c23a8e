"""A bad ``EMULATOR_*`` value stops every launcher with one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PYTHON = sys.executable
# The console script installed next to this interpreter.
SIGNALR_EMULATOR = Path(sys.executable).parent / "signalr-emulator"


def _clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any setting of either part, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith(("SIGNALR_", "AZURE", "GATEWAY_", "WEBSITE_", "EMULATOR_"))
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _run(command: list[str], env: dict[str, str], cwd: Path) -> tuple[int, list[str], str]:
    """Run ``command`` until it exits: its status, its non-blank stderr lines, its stdout."""
    done = subprocess.run(
        command, env=_clean_env(**env), cwd=cwd, capture_output=True, text=True, timeout=60
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return done.returncode, lines, done.stdout


def _assert_no_boilerplate(line: str) -> None:
    lowered = line.lower()
    for word in ("pydantic", "validation error", "traceback", "input_value", "type="):
        assert word not in lowered, line


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("EMULATOR_TRACE_HISTORY", "abc", "Input should be a valid integer"),
        ("EMULATOR_PORT", "99999", "Input should be less than or equal to 65535"),
        ("EMULATOR_KEYLESS", "maybe", "Input should be a valid boolean"),
        ("EMULATOR_STATEFUL_RECONNECT", "sometimes", "Input should be a valid boolean"),
        ("EMULATOR_LOG_FORMAT", "xml", "Input should be 'text' or 'json'"),
        ("EMULATOR_SHUTDOWN_TIMEOUT", "-1", "Input should be greater than or equal to 0"),
        ("EMULATOR_AUDIENCE_HOSTS", '["a"', "not valid JSON"),
        ("EMULATOR_PUBLIC_URL", "emulator:8888", "must be http(s)://host[:port]"),
        ("EMULATOR_CONFIG", "no-such-settings.json", "Cannot read upstream settings"),
        ("EMULATOR_UPSTREAM_URL", "/runtime/webhooks/signalr", "absolute http:// or https://"),
    ],
    ids=[
        "int",
        "int range",
        "bool",
        "bool 2",
        "enum",
        "float",
        "json list",
        "url",
        "path",
        "upstream url",
    ],
)
def test_python_m_emulator_names_the_variable_in_one_line(
    variable: str, value: str, reason: str, tmp_path: Path
) -> None:
    """``python -m emulator`` with a bad EMULATOR_* value exits 2 with one stderr line naming
    the variable and saying what is wrong, without pydantic's boilerplate or a traceback."""
    status, lines, stdout = _run([PYTHON, "-m", "emulator"], {variable: value}, tmp_path)
    assert status == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"emulator: invalid setting: {variable}: "), lines[0]
    assert reason in lines[0]
    _assert_no_boilerplate(lines[0])
    assert "Endpoint=" not in stdout


def test_two_bad_variables_are_two_lines(tmp_path: Path) -> None:
    """Each bad variable gets its own line, in the order of the settings."""
    status, lines, _ = _run(
        [PYTHON, "-m", "emulator"],
        {"EMULATOR_PORT": "-1", "EMULATOR_TRACE_ENABLED": "perhaps"},
        tmp_path,
    )
    assert status == 2
    assert [line.split(": ")[:2] for line in lines] == [
        ["emulator", "invalid setting"],
        ["emulator", "invalid setting"],
    ]
    assert [line.split(": ")[2] for line in lines] == ["EMULATOR_PORT", "EMULATOR_TRACE_ENABLED"]
    for line in lines:
        _assert_no_boilerplate(line)


def test_a_command_line_value_is_named_by_its_option(tmp_path: Path) -> None:
    """``--port 99999`` is reported as ``--port``, the name the user typed."""
    status, lines, _ = _run([PYTHON, "-m", "emulator", "--port", "99999"], {}, tmp_path)
    assert status == 2
    assert lines == [
        "emulator: invalid setting: --port: Input should be less than or equal to 65535"
    ]


def test_a_broken_settings_file_is_one_line_naming_its_setting(tmp_path: Path) -> None:
    """A settings.json that is not JSON is one line naming ``--config`` and the JSON error."""
    config = tmp_path / "settings.json"
    config.write_text('{"UpstreamSettings": {\n  "Templates": [,]\n}}')
    status, lines, _ = _run([PYTHON, "-m", "emulator", "--config", str(config)], {}, tmp_path)
    assert status == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"emulator: invalid setting: --config: {config}: not valid JSON")
    assert "line 2" in lines[0]
    _assert_no_boilerplate(lines[0])


@pytest.mark.skipif(not SIGNALR_EMULATOR.exists(), reason="the package's scripts not installed")
def test_the_signalr_emulator_script_names_the_variable(tmp_path: Path) -> None:
    """The ``signalr-emulator`` console script reports a bad variable the same way."""
    status, lines, _ = _run([str(SIGNALR_EMULATOR)], {"EMULATOR_TRACE_HISTORY": "abc"}, tmp_path)
    assert status == 2
    assert lines == [
        "emulator: invalid setting: EMULATOR_TRACE_HISTORY: "
        "Input should be a valid integer, unable to parse string as an integer"
    ]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"EMULATOR_TRACE_HISTORY": "abc"},
            "Invalid setting: EMULATOR_TRACE_HISTORY: Input should be a valid integer",
        ),
        (
            {"EMULATOR_KEYLESS": "maybe"},
            "Invalid setting: EMULATOR_KEYLESS: Input should be a valid boolean",
        ),
        (
            {"EMULATOR_CONFIG": "no-such-settings.json"},
            "Invalid emulator settings: Cannot read upstream settings no-such-settings.json",
        ),
    ],
    ids=["int", "bool", "settings file"],
)
def test_python_m_app_names_the_embedded_emulators_variable(
    env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    """``python -m app`` with a bad EMULATOR_* value (its embedded emulator's) exits 2 with one
    line naming the variable, as for the backend's own settings."""
    status, lines, stdout = _run(
        [PYTHON, "-m", "app", "--port", "0", "--emulator-port", "0"], env, tmp_path
    )
    assert status == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(expected), lines[0]
    _assert_no_boilerplate(lines[0])
    assert "is running" not in stdout
