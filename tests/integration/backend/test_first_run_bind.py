"""``python -m app`` on an address it cannot listen on: one line naming the setting to change."""

from __future__ import annotations

import pytest


def test_an_address_not_of_this_machine_names_the_host_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--host 192.0.2.1 (a documentation address, on no interface) is refused with advice to
    change --host / SIGNALR_HOST, not to stop "the process using it"."""
    from app.__main__ import main

    for name in ("SIGNALR_HOST", "SIGNALR_PORT", "SIGNALR_EMULATOR_PORT", "GATEWAY_API_KEYS"):
        monkeypatch.setenv(name, "x")  # main() writes these: monkeypatch removes them after
        monkeypatch.delenv(name)
    assert main(["--host", "192.0.2.1", "--port", "0", "--emulator-port", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith("Cannot listen on 192.0.2.1:0 for the backend: ")
    assert "--host / SIGNALR_HOST" in err
    assert "Stop the process" not in err
