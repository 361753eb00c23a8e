"""A Function App's settings, honoured: ``local.settings.json`` and the extension's own names.

Two pydantic-settings sources, placed below the environment and ``.env`` by
:meth:`app.settings.Settings.settings_customise_sources`:

* :class:`LocalSettingsSource` reads ``local.settings.json`` from the working directory, as
  ``func start`` does: its ``Values`` are read like environment variables (same names; a
  ``:`` in a key, the file's section separator, is read as ``__``), its
  ``ConnectionStrings.AzureSignalRConnectionString`` wins over the ``Values`` entry (the
  Functions extension reads ``GetConnectionString(key) ?? configuration[key]``:
  Azure/azure-sdk-for-net
  ``sdk/signalr/Microsoft.Azure.WebJobs.Extensions.SignalRService/src/Config/OptionsSetup.cs``),
  and ``Host.CORS`` / ``Host.CORSCredentials`` / ``Host.LocalHttpPort`` stand for
  ``SIGNALR_CORS_ORIGINS`` / ``SIGNALR_CORS_CREDENTIALS`` / ``SIGNALR_PORT``. A file with
  ``"IsEncrypted": true`` stops the start-up: its values can't be read here.
* :class:`FunctionsNamesSource` maps the extension's settings, from the environment or the
  file, onto ours: ``AzureSignalRHttpClientTimeout`` (a .NET ``TimeSpan``) onto
  ``http_timeout``; the ``AzureSignalRRetry`` section (``Mode``, ``MaxRetries``, ``Delay``,
  ``MaxDelay``, defaults from Azure/azure-signalr
  ``src/Microsoft.Azure.SignalR.Management/Configuration/ServiceManagerRetryOptions.cs``)
  onto the retry policy; ``Azure__SignalR__Endpoints__*`` written in the file onto
  ``endpoint_strings``.

Precedence, per setting: our ``SIGNALR_*`` name wins over the Functions name, wherever each is
set; for one name, the environment wins over ``.env``, which wins over ``local.settings.json``.
``AzureSignalRServiceTransportType`` and ``Azure__SignalR__HubProtocol`` are read into
settings only to be reported: :func:`start_notes` gives the start-up log lines saying what
this backend does instead.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic.fields import FieldInfo
from pydantic_settings import EnvSettingsSource, PydanticBaseSettingsSource
from pydantic_settings.exceptions import SettingsError

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

    from app.settings import Settings

__all__ = [
    "LOCAL_SETTINGS_FILE",
    "FunctionsNamesSource",
    "LocalSettings",
    "LocalSettingsSource",
    "functions_environ",
    "functions_values",
    "parse_timespan",
    "read_local_settings",
    "rest_client_summary",
    "start_notes",
]

LOCAL_SETTINGS_FILE = "local.settings.json"
"""Read from the working directory at start, as ``func start`` reads it."""

_CONNECTION_NAME = "AzureSignalRConnectionString"
_RETRY = "azuresignalrretry__"
_TIMEOUT = "azuresignalrhttpclienttimeout"
_ENDPOINTS = "azure__signalr__endpoints__"

# ServiceManagerRetryOptions' defaults, used for the keys a set AzureSignalRRetry section omits.
SDK_MAX_RETRIES = 3
SDK_RETRY_DELAY = 0.8
SDK_RETRY_MAX_DELAY = 60.0
SDK_HTTP_CLIENT_TIMEOUT = 100.0
"""ServiceManagerOptions.HttpClientTimeout's default; bounds all attempts of a send."""

_RETRY_MODES = {"fixed": "fixed", "0": "fixed", "exponential": "exponential", "1": "exponential"}

# .NET TimeSpan.Parse, invariant culture: "d" (days) or "[d.]hh:mm[:ss[.fffffff]]".
_TIMESPAN = re.compile(
    r"^\s*(?:(?P<days_only>\d+)|(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2})"
    r"(?::(?P<s>\d{1,2})(?:\.(?P<f>\d{1,7}))?)?)\s*$"
)


def parse_timespan(text: str, name: str) -> float:
    """Seconds in a .NET ``TimeSpan`` text, as the configuration binder reads it.

    ``00:01:40`` is 100 s, ``1.00:00:00`` a day, ``00:00:00.8`` 0.8 s; a bare number is a
    number of **days**, as ``TimeSpan.Parse`` reads it.

    Args:
        text: the setting's value.
        name: the setting's name, for the error message.

    Raises:
        SettingsError: not a ``TimeSpan``, or out of range (hours > 23, minutes or seconds > 59).
    """
    match = _TIMESPAN.match(text)
    if match is None:
        raise SettingsError(
            f"{name}={text!r} is not a .NET TimeSpan: write hh:mm:ss, e.g. 00:01:40 for 100 s."
        )
    if match["days_only"] is not None:
        return int(match["days_only"]) * 86400.0
    hours, minutes = int(match["h"]), int(match["m"])
    seconds = int(match["s"] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise SettingsError(f"{name}={text!r}: hours must be 0-23, minutes and seconds 0-59.")
    fraction = float(f"0.{match['f']}") if match["f"] else 0.0
    days = int(match["days"] or 0)
    return days * 86400.0 + hours * 3600.0 + minutes * 60.0 + seconds + fraction


@dataclass(frozen=True)
class LocalSettings:
    """What a ``local.settings.json`` holds that this backend reads.

    Attributes:
        path: the file.
        values: ``Values`` (and the SignalR connection string of ``ConnectionStrings``), keys
            with ``:`` written as ``__``, every value as text.
        host: ``Host.CORS`` / ``Host.CORSCredentials`` / ``Host.LocalHttpPort`` as our field
            names (``cors_origins``, ``cors_credentials``, ``port``).
    """

    path: Path
    values: dict[str, str] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(value)


def read_local_settings(directory: Path | None = None) -> LocalSettings | None:
    """Read ``local.settings.json`` from ``directory`` (the working directory by default).

    Returns:
        The file's settings, or ``None`` when there is no such file.

    Raises:
        SettingsError: the file is not readable JSON of the Functions shape, or it is
            encrypted (``"IsEncrypted": true``).
    """
    path = (directory if directory is not None else Path.cwd()) / LOCAL_SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SettingsError(f"{path} can't be read as JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise SettingsError(f"{path} must hold a JSON object with 'Values'.")
    if document.get("IsEncrypted") is True:
        raise SettingsError(
            f"{path} is encrypted (IsEncrypted: true) and its values can't be read here: "
            "run 'func settings decrypt' in that folder, or set the settings as environment "
            "variables."
        )
    values: dict[str, str] = {}
    for section in ("Values", "ConnectionStrings"):
        entries = document.get(section) or {}
        if not isinstance(entries, dict):
            raise SettingsError(f"{path}: '{section}' must be a JSON object.")
        for key, value in entries.items():
            text = _text(value)
            if section == "ConnectionStrings" and key != _CONNECTION_NAME:
                continue  # only the SignalR connection string is ours
            if text is not None:
                values[str(key).replace(":", "__")] = text
    host: dict[str, Any] = {}
    raw_host = document.get("Host") or {}
    if not isinstance(raw_host, dict):
        raise SettingsError(f"{path}: 'Host' must be a JSON object.")
    for key, name in (
        ("CORS", "cors_origins"),
        ("CORSCredentials", "cors_credentials"),
        ("LocalHttpPort", "port"),
    ):
        if raw_host.get(key) is not None:
            host[name] = raw_host[key]
    if "cors_origins" in host:
        # func start allows credentials only when CORSCredentials says so (default false):
        # Azure/azure-functions-core-tools src/Azure.Functions.Cli/Actions/HostActions/
        # StartHostAction.cs and Startup.cs. So "CORS": "*" alone starts, as it does there.
        host.setdefault("cors_credentials", False)
    return LocalSettings(path=path, values=values, host=host)


class LocalSettingsSource(EnvSettingsSource):
    """``local.settings.json``'s ``Values`` read like environment variables, then its ``Host``.

    Placed below the environment and ``.env``; ``Host.*`` only fills what no ``Values`` entry
    named.
    """

    def __init__(self, settings_cls: type[BaseSettings], local: LocalSettings | None) -> None:
        self._local = local
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        values = self._local.values if self._local is not None else {}
        if self.case_sensitive:
            return dict(values)
        return {key.lower(): value for key, value in values.items()}

    def __call__(self) -> dict[str, Any]:
        found = super().__call__()
        if self._local is not None:
            for name, value in self._local.host.items():
                found.setdefault(name, value)
        return found

    def __repr__(self) -> str:
        return f"LocalSettingsSource({self._local.path if self._local else None!r})"


def functions_values(local: LocalSettings | None) -> dict[str, str]:
    """Functions-named settings, lower-cased: the environment over the file's ``Values``."""
    merged: dict[str, str] = {}
    if local is not None:
        merged.update((key.lower(), value) for key, value in local.values.items())
    merged.update((key.lower().replace(":", "__"), value) for key, value in os.environ.items())
    return merged


def functions_environ(
    local: LocalSettings | None, environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """``environ`` with the file's ``Values`` beneath it, names spelled as written.

    For readers of whole settings sections, such as the keyless ``…__serviceUri`` sections
    (:func:`signalr_protocol.connection_string.identity_endpoints_from_environ`). An entry of
    the environment hides the file's entry of the same name (compared case-insensitively, ``:``
    as ``__``); the file's ``Azure__SignalR__Endpoints__*`` entries are left out when the
    environment names any endpoint, which then wins as a whole, as for connection strings.
    """
    merged = dict(environ)
    if local is None:
        return merged
    names = {key.replace(":", "__").lower() for key in environ}
    endpoints_in_environ = any(name.startswith(_ENDPOINTS) for name in names)
    for key, value in local.values.items():
        name = key.lower()
        if name in names or (endpoints_in_environ and name.startswith(_ENDPOINTS)):
            continue
        merged[key] = value
    return merged


class FunctionsNamesSource(PydanticBaseSettingsSource):
    """The Functions extension's own setting names, mapped onto our fields.

    Below every ``SIGNALR_*`` source, so our names stay overrides.
    """

    def __init__(self, settings_cls: type[BaseSettings], local: LocalSettings | None) -> None:
        super().__init__(settings_cls)
        self._local = local

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Not used: __call__ maps whole sections at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        values = functions_values(self._local)
        found: dict[str, Any] = {}
        if _TIMEOUT in values:
            timeout = parse_timespan(values[_TIMEOUT], "AzureSignalRHttpClientTimeout")
            if timeout:  # the extension ignores a zero TimeSpan ("default")
                found["http_timeout"] = timeout
        retry = {
            key[len(_RETRY) :]: value for key, value in values.items() if key.startswith(_RETRY)
        }
        if retry:
            found.update(_retry_fields(retry, found.get("http_timeout", SDK_HTTP_CLIENT_TIMEOUT)))
        if self._local is not None:
            # The environment's Azure__SignalR__Endpoints__* are read by Settings itself; here
            # those of the file, unless the environment names endpoints (it wins as a whole).
            in_file = {
                key: value
                for key, value in self._local.values.items()
                if key.lower().startswith(_ENDPOINTS)
            }
            in_environ = any(key.lower().startswith(_ENDPOINTS) for key in os.environ)
            if in_file and not in_environ:
                from app.settings import _endpoints_from_environ  # here: app.settings imports us

                found["endpoint_strings"] = _endpoints_from_environ(in_file)
        return found

    def __repr__(self) -> str:
        return "FunctionsNamesSource()"


def _retry_fields(section: Mapping[str, str], timeout: float) -> dict[str, Any]:
    """``AzureSignalRRetry__*`` (keys lower-cased, prefix removed) as our retry fields."""
    mode_text = section.get("mode", "Fixed").strip()
    mode = _RETRY_MODES.get(mode_text.lower())
    if mode is None:
        raise SettingsError(
            f"AzureSignalRRetry__Mode={mode_text!r} is not a retry mode: use Fixed or Exponential."
        )
    max_retries_text = section.get("maxretries", str(SDK_MAX_RETRIES)).strip()
    try:
        max_retries = int(max_retries_text)
    except ValueError:
        max_retries = -1
    if not 0 <= max_retries <= 19:
        raise SettingsError(
            f"AzureSignalRRetry__MaxRetries={max_retries_text!r} must be a whole number "
            "from 0 to 19."
        )
    delay = SDK_RETRY_DELAY
    if "delay" in section:
        delay = parse_timespan(section["delay"], "AzureSignalRRetry__Delay")
    max_delay = SDK_RETRY_MAX_DELAY
    if "maxdelay" in section:
        max_delay = parse_timespan(section["maxdelay"], "AzureSignalRRetry__MaxDelay")
    return {
        "retry_mode": mode,
        "retry_max_attempts": max_retries + 1,
        "retry_delay": delay,
        "retry_max_delay": max_delay,
        # The SDK bounds a send's attempts by HttpClientTimeout; so do we, for every call.
        "retry_max_total": timeout,
    }


def start_notes(settings: Settings) -> list[str]:
    """The start-up log lines about Functions settings this backend reads but does not use.

    Returns:
        One line per such setting that is set; none when neither is.
    """
    notes: list[str] = []
    transport = settings.service_transport_type
    if transport is not None and transport.strip():
        known = transport.strip() in ("Transient", "Persistent")
        notes.append(
            f"AzureSignalRServiceTransportType={transport.strip()!r} is "
            f"{'accepted' if known else 'not a Functions transport type, and ignored'}: this "
            "backend always talks to the SignalR Service over its REST API (what Functions "
            "calls Transient); there are no persistent server connections."
        )
    protocol = settings.hub_protocol
    if protocol is not None and protocol.strip():
        notes.append(
            f"Azure__SignalR__HubProtocol={protocol.strip()!r} is accepted: payloads are "
            "encoded as JSON by this backend's own codec (camelCase is the caller's choice "
            "of keys), whatever serializer that setting picks in Functions."
        )
    return notes


def rest_client_summary(settings: Settings) -> str:
    """One line with the REST client's timeout and retry policy, for the start-up log."""
    if settings.retry_max_attempts <= 1:
        retries = "no retries"
    else:
        retries = (
            f"{settings.retry_mode} back-off, up to {settings.retry_max_attempts} attempts, "
            f"delay {settings.retry_delay:g} s, max delay {settings.retry_max_delay:g} s, "
            f"within {settings.retry_max_total:g} s"
        )
    return f"REST client: timeout {settings.http_timeout:g} s per attempt; retries: {retries}."
