"""A settings error names the environment variable that was set, aliases included."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import Settings, describe_settings_error


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GATEWAY_API_KEYS", "[1,2"),
        ("WEBSITE_AUTH_ENABLED", "maybe"),
        ("SIGNALR_PORT", "abc"),
    ],
)
def test_the_error_names_the_variable_as_set(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    """GATEWAY_API_KEYS=[1,2 is reported as GATEWAY_API_KEYS, not SIGNALR_GATEWAY_API_KEYS."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)
    text = describe_settings_error(caught.value)
    assert text.split(":")[0] == variable, text
    assert "\n" not in text
