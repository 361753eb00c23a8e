"""Where the emulator's settings come from: the environment, a .env file, and empty values."""

from __future__ import annotations

from pathlib import Path

import pytest

from emulator.settings import EmulatorSettings


def test_dotenv_in_the_working_directory_is_read_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EMULATOR_* lines of .env apply (as .env.example promises); the environment wins."""
    (tmp_path / ".env").write_text(
        "EMULATOR_PORT=9123\nEMULATOR_CLIENT_TIMEOUT=45\nSIGNALR_PORT=1\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EMULATOR_CLIENT_TIMEOUT", "50")
    settings = EmulatorSettings()
    assert settings.port == 9123
    assert settings.client_timeout == 50


def test_an_empty_config_setting_means_no_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EMULATOR_CONFIG set but empty is treated as unset, not as the current directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EMULATOR_CONFIG", "  ")
    assert EmulatorSettings().config is None
