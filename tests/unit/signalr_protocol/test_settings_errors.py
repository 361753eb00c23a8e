"""The core's settings-error formatter: one line per problem naming the environment variable."""

from __future__ import annotations

import os

import pytest
from pydantic import AliasChoices, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from signalr_protocol.settings_errors import describe_settings_error, env_name


class DemoSettings(BaseSettings):
    """A settings class shaped like the backend's and the emulator's."""

    model_config = SettingsConfigDict(env_prefix="DEMO_", populate_by_name=True)

    port: int = Field(default=1, ge=0, le=65535)
    secret: str = Field(
        default="x" * 8,
        min_length=8,
        validation_alias=AliasChoices("DemoSecretConnection", "secret"),
    )
    mode: str = Field(default="a", validation_alias="DemoMode")
    hosts: list[str] = Field(default_factory=list)
    low: int = 0
    high: int = 1

    @model_validator(mode="after")
    def _ordered(self) -> DemoSettings:
        if self.low > self.high:
            raise ValueError("DEMO_LOW must not exceed DEMO_HIGH")
        return self


def _error(monkeypatch: pytest.MonkeyPatch, **environ: str) -> BaseException:
    for key in list(os.environ):
        if key.upper().startswith("DEMO"):
            monkeypatch.delenv(key)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    with pytest.raises((ValidationError, SettingsError)) as caught:
        DemoSettings()
    return caught.value


def test_env_name_follows_prefix_and_aliases() -> None:
    """A field is its prefix plus its name in capitals, or its (first) alias; an alias is itself."""
    assert env_name(DemoSettings, "port") == "DEMO_PORT"
    assert env_name(DemoSettings, "secret") == "DemoSecretConnection"
    assert env_name(DemoSettings, "mode") == "DemoMode"
    assert env_name(DemoSettings, "DemoMode") == "DemoMode"
    assert env_name(DemoSettings, "DemoSecretConnection") == "DemoSecretConnection"


def test_a_validation_error_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``DEMO_PORT=abc`` reads ``DEMO_PORT: Input should be a valid integer...``, on one line."""
    text = describe_settings_error(_error(monkeypatch, DEMO_PORT="abc"), DemoSettings)
    assert (
        text == "DEMO_PORT: Input should be a valid integer, unable to parse string as an integer"
    )


def test_the_input_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The value (which may be a key) never appears: an aliased variable is named by its alias."""
    text = describe_settings_error(
        _error(monkeypatch, DemoSecretConnection="hunter2"), DemoSettings
    )
    assert text == "DemoSecretConnection: String should have at least 8 characters"
    assert "hunter2" not in text


def test_each_problem_is_its_own_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two bad variables give two lines, each naming its variable, no pydantic boilerplate."""
    text = describe_settings_error(_error(monkeypatch, DEMO_PORT="-1", DEMO_LOW="x"), DemoSettings)
    lines = text.splitlines()
    assert [line.split(":")[0] for line in lines] == ["DEMO_PORT", "DEMO_LOW"]
    assert "validation error" not in text and "pydantic" not in text


def test_a_check_of_the_whole_model_is_its_own_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model validator's message stands alone, without pydantic's "Value error, " prefix."""
    text = describe_settings_error(_error(monkeypatch, DEMO_LOW="5", DEMO_HIGH="2"), DemoSettings)
    assert text == "DEMO_LOW must not exceed DEMO_HIGH"


def test_a_list_that_is_not_json_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """pydantic-settings' "error parsing value for field" reads as the variable and JSON's error."""
    exc = _error(monkeypatch, DEMO_HOSTS='["a"')
    assert isinstance(exc, SettingsError)
    text = describe_settings_error(exc, DemoSettings)
    assert text.startswith("DEMO_HOSTS: not valid JSON: Expecting")
    assert "\n" not in text


def test_names_override_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A field given on the command line is named as the caller says (``--port``)."""
    with pytest.raises(ValidationError) as caught:
        DemoSettings(port=70000)
    text = describe_settings_error(caught.value, DemoSettings, names={"port": "--port"})
    assert text == "--port: Input should be less than or equal to 65535"


def test_any_other_error_is_its_message_on_one_line() -> None:
    """An error that is not pydantic's (a settings file's) is its own message, on one line."""
    exc = ValueError("settings.json: not valid JSON:\n  line 2")
    assert describe_settings_error(exc, DemoSettings) == "settings.json: not valid JSON: line 2"
