"""Settings errors as a user reads them: one line per problem, naming the environment variable.

The backend's ``Settings`` and the emulator's ``EmulatorSettings`` are pydantic-settings
classes read from the environment. When a value is wrong, pydantic's own message names the
*field* (``port``), spreads over several lines and ends in a documentation URL; a user set a
*variable* (``SIGNALR_PORT``, ``EMULATOR_TRACE_HISTORY``, ``AzureSignalRConnectionString``).
:func:`describe_settings_error` turns either kind of error into lines such as::

    EMULATOR_TRACE_HISTORY: Input should be a valid integer, unable to parse string as an integer

Pure computation over the error and the settings class: both launchers (``python -m app``,
``python -m emulator``) and the backend's ``uvicorn app.main:app`` start-up use it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from pydantic import AliasChoices, BaseModel, ValidationError

__all__ = ["describe_settings_error", "env_name"]

# pydantic-settings' message when a complex field's value (a list, a dict) is not valid JSON.
_PARSE_FAILURE: Final = re.compile(r'error parsing value for field "(?P<field>\w+)" from source')


def env_name(settings_cls: type[BaseModel], field: str) -> str:
    """The environment variable that sets ``field`` of ``settings_cls``.

    A field read under an alias is named by its first alias (``connection_string`` ->
    ``AzureSignalRConnectionString``); an alias given as ``field`` (pydantic reports a value
    read by its alias under the alias) is returned as is; any other field is the class's
    ``env_prefix`` plus the name in capitals (``port`` -> ``SIGNALR_PORT``).
    """
    info = settings_cls.model_fields.get(field)
    if info is not None:
        alias = info.validation_alias
        if isinstance(alias, str):
            return alias
        if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
            return alias.choices[0]
    elif _is_alias(settings_cls, field):
        return field
    prefix = str(settings_cls.model_config.get("env_prefix") or "")
    return f"{prefix}{field}".upper()


def _is_alias(settings_cls: type[BaseModel], name: str) -> bool:
    for info in settings_cls.model_fields.values():
        alias = info.validation_alias
        if alias == name or (isinstance(alias, AliasChoices) and name in alias.choices):
            return True
    return False


def describe_settings_error(
    exc: BaseException,
    settings_cls: type[BaseModel],
    *,
    names: Mapping[str, str] | None = None,
) -> str:
    """One line per problem of a settings error, each naming what the user set.

    For a :class:`~pydantic.ValidationError`: the field's variable (:func:`env_name`) and
    pydantic's message without its boilerplate (no "1 validation error for ...", no URL, no
    input value, which may be a key). For pydantic-settings' "error parsing value for field"
    (a list or dict variable that is not JSON): the variable and the JSON error. Anything
    else (a ``local.settings.json`` error, an unreadable file): its message on one line.

    Args:
        exc: the error raised while building ``settings_cls``.
        settings_cls: the settings class, for its fields' variables.
        names: what to call some fields instead of their variable, e.g. ``{"port":
            "--port"}`` for a value that came from the command line.
    """
    names = names or {}

    def name(field: str) -> str:
        return names.get(field) or env_name(settings_cls, field)

    lines: list[str] = []
    if isinstance(exc, ValidationError):
        for error in exc.errors(include_url=False, include_input=False, include_context=False):
            message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
            loc = error.get("loc") or ()
            if loc and isinstance(loc[0], str):
                lines.append(f"{name(loc[0])}: {message}")
            else:
                lines.append(message)  # a check of the whole model: its message names them
    elif (match := _PARSE_FAILURE.match(str(exc))) is not None:
        cause = f": {exc.__cause__}" if exc.__cause__ is not None else ""
        lines.append(f"{name(match.group('field'))}: not valid JSON{cause}")
    else:
        lines.append(str(exc) or type(exc).__name__)
    return "\n".join(" ".join(line.split()) for line in lines)
