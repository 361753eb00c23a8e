"""The backend's one settings class, read from the environment (and ``.env``) at start-up.

Fixed names (docs/migrating-from-functions.md) keep an existing Function App's settings working:
``AzureSignalRConnectionString``, ``WEBSITE_AUTH_ENABLED``, ``GATEWAY_API_KEYS`` and
``Azure__SignalR__Endpoints__<name>[__primary|__secondary]``. Every other setting is
``SIGNALR_<FIELD>``. Connection strings are parsed once, here, so a bad one stops the
process at start-up with a message instead of failing each request.

:func:`get_settings` reads them once (``create_app()`` uses it when given no settings);
tests build ``Settings(...)`` and pass it to ``create_app`` instead of patching globals.
Handlers read the app's settings through ``app.dependencies.SettingsDep``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from app.functions_settings import (
    FunctionsNamesSource,
    LocalSettingsSource,
    functions_environ,
    read_local_settings,
)
from signalr_protocol import settings_errors
from signalr_protocol.connection_string import (
    ServiceEndpoint,
    emulator_connection_string,
    identity_endpoints_from_environ,
    parse_connection_string,
)
from signalr_protocol.errors import SignalRError
from signalr_protocol.names import validate_hub_name

__all__ = ["DEFAULT_HUBS", "Settings", "describe_settings_error", "env_name", "get_settings"]

DEFAULT_HUBS = ["app.samples.chat:ChatHub"]
_ENDPOINT_ENV = re.compile(
    r"^azure__signalr__endpoints__(?P<name>[^_](?:[^_]|_(?!_))*)(?:__(?P<kind>primary|secondary))?$",
    re.IGNORECASE,
)
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def _split_list(value: Any) -> Any:
    """Accept ``a,b,c`` (the Functions style) as well as a JSON list."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


CommaList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Every setting of the backend. The README's table documents each one."""

    model_config = SettingsConfigDict(
        env_prefix="SIGNALR_",
        env_file=".env",
        extra="ignore",
        populate_by_name=True,
        # Validation errors must not echo inputs: they may hold access keys.
        hide_input_in_errors=True,
    )

    connection_string: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AzureSignalRConnectionString", "connection_string"),
        description="SignalR Service connection string; unset means the local emulator.",
    )
    endpoint_strings: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Extra named endpoints, 'name' or 'name:primary'/'name:secondary' to connection "
            "string; read from Azure__SignalR__Endpoints__* when not given."
        ),
    )
    default_hub: str = "chat"
    hubs: CommaList = Field(default_factory=lambda: list(DEFAULT_HUBS))
    token_lifetime_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)

    website_auth_enabled: bool = Field(
        default=False,
        validation_alias=AliasChoices("WEBSITE_AUTH_ENABLED", "website_auth_enabled"),
    )
    trust_client_principal: bool = False
    dev_user_header: bool | None = Field(
        default=None, description="true / false, or auto (unset): on only for a local service."
    )

    cors_origins: CommaList = Field(default_factory=list)
    cors_credentials: bool = True

    gateway_api_keys: CommaList = Field(
        default_factory=list,
        validation_alias=AliasChoices("GATEWAY_API_KEYS", "gateway_api_keys"),
    )
    gateway_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)

    upstream_code: str | None = None
    upstream_audience: str | None = Field(
        default=None,
        description="Keyless webhook: the aud of the service's upstream Entra bearer.",
    )
    upstream_tenant_id: str | None = Field(
        default=None, description="Keyless webhook: the tenant that issues that bearer."
    )
    upstream_authority: str = Field(
        default="https://login.microsoftonline.com",
        description="Keyless webhook: the Entra authority the tenant's keys are read from.",
    )
    access_key_refresh_interval: float = Field(default=55 * 60.0, gt=0)
    access_key_retry_interval: float = Field(default=5 * 60.0, gt=0)
    webhook_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    body_read_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds to read a request body (webhook, gateway, negotiate); 408.",
    )

    api_version: str = "2022-06-01"
    http_timeout: float = Field(default=10.0, gt=0)
    http_max_connections: int = Field(default=100, ge=1, le=10_000)
    retry_max_attempts: int = Field(default=3, ge=1, le=20)
    retry_delay: float = Field(default=0.8, ge=0)
    retry_max_delay: float = Field(default=10.0, ge=0)
    retry_max_total: float = Field(default=30.0, gt=0)
    retry_mode: Literal["exponential", "fixed"] = "exponential"
    health_check_interval: float = Field(default=10.0, gt=0)
    # Functions settings read only to say at start what we do instead (app/functions_settings.py).
    service_transport_type: str | None = Field(
        default=None, validation_alias="AzureSignalRServiceTransportType"
    )
    hub_protocol: str | None = Field(default=None, validation_alias="Azure__SignalR__HubProtocol")

    host: str = "127.0.0.1"
    port: int = Field(default=7071, ge=0, le=65535)
    emulator_port: int = Field(default=8888, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    metrics_enabled: bool = True

    _endpoints: list[ServiceEndpoint] = PrivateAttr(default_factory=list)
    _identity_default: bool = PrivateAttr(default=False)
    _identity_count: int = PrivateAttr(default=0)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Below the environment and ``.env``: ``local.settings.json``, then Functions names."""
        local = read_local_settings()
        return (
            init_settings,
            env_settings,
            dotenv_settings,
            file_secret_settings,
            LocalSettingsSource(settings_cls, local),
            FunctionsNamesSource(settings_cls, local),
        )

    @field_validator("hubs", "cors_origins", "gateway_api_keys", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("connection_string", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # AzureSignalRConnectionString= (set but empty) means the emulator, as unset does.
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("dev_user_header", mode="before")
    @classmethod
    def _auto(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("", "auto"):
            return None
        return value

    @field_validator("default_hub")
    @classmethod
    def _hub(cls, value: str) -> str:
        try:
            return validate_hub_name(value)
        except SignalRError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return [origin.rstrip("/") for origin in value]

    @model_validator(mode="after")
    def _parse_endpoints(self) -> Settings:
        if "*" in self.cors_origins and self.cors_credentials:
            raise ValueError(
                "SIGNALR_CORS_ORIGINS contains '*' while SIGNALR_CORS_CREDENTIALS is true: "
                "browsers refuse that combination and the SignalR client sends credentials. "
                "List the origins explicitly (e.g. https://app.example.com)."
            )
        if not self.endpoint_strings:
            self.endpoint_strings = _endpoints_from_environ(os.environ)
        endpoints: list[ServiceEndpoint] = []
        try:
            # The __serviceUri sections (keyless), from the environment or local.settings.json;
            # a named one wins over a connection string of the same name, as the Functions
            # extension reads them.
            identity = identity_endpoints_from_environ(functions_environ(read_local_settings()))
            if self.connection_string is not None:
                identity = [endpoint for endpoint in identity if endpoint.name]
            identity_names = {endpoint.name.lower() for endpoint in identity if endpoint.name}
            self.endpoint_strings = {
                key: text
                for key, text in self.endpoint_strings.items()
                if key.partition(":")[0].lower() not in identity_names
            }
            self._identity_default = bool(identity) and not identity[0].name
            self._identity_count = len(identity)
            if not self._identity_default and (
                self.connection_string is not None or not (self.endpoint_strings or identity)
            ):
                text = self.connection_string or emulator_connection_string(port=self.emulator_port)
                endpoints.append(_parse_named(text, "AzureSignalRConnectionString"))
            endpoints += identity[:1] if self._identity_default else []
            for key, text in sorted(self.endpoint_strings.items()):
                name, _, kind = key.partition(":")
                suffix = "__secondary" if kind.lower() == "secondary" else ""
                endpoint = _parse_named(text, f"Azure__SignalR__Endpoints__{name}{suffix}")
                endpoints.append(
                    dataclasses.replace(endpoint, name=name, primary=kind.lower() != "secondary")
                )
            endpoints += identity[1:] if self._identity_default else identity
        except SignalRError as exc:
            raise ValueError(str(exc)) from exc
        self._endpoints = endpoints
        self._check_keyless()
        return self

    def _check_keyless(self) -> None:
        """Keyless settings that can't work stop the start-up, naming the settings."""
        if self.upstream_audience is not None and not self.upstream_audience.strip():
            self.upstream_audience = None
        if self.upstream_tenant_id is not None and not self.upstream_tenant_id.strip():
            self.upstream_tenant_id = None
        if self.upstream_audience and not self.upstream_tenant_id:
            raise ValueError(
                "SIGNALR_UPSTREAM_AUDIENCE is set without SIGNALR_UPSTREAM_TENANT_ID: set the "
                "tenant id that issues the service's upstream token."
            )
        if self.upstream_tenant_id and not self.upstream_audience:
            raise ValueError(
                "SIGNALR_UPSTREAM_TENANT_ID is set without SIGNALR_UPSTREAM_AUDIENCE: set the "
                "resource the service's upstream ManagedIdentity auth asks a token for."
            )
        if not self.upstream_authority.startswith(("https://", "http://")):
            raise ValueError(
                "SIGNALR_UPSTREAM_AUTHORITY must be an http(s) URL such as "
                "https://login.microsoftonline.com."
            )
        if not self.access_keys and not self.upstream_audience and not self.upstream_code:
            raise ValueError(
                "Keyless mode needs webhook protection: set SIGNALR_UPSTREAM_AUDIENCE "
                "(with SIGNALR_UPSTREAM_TENANT_ID) or SIGNALR_UPSTREAM_CODE."
            )

    def service_endpoints(self) -> list[ServiceEndpoint]:
        """Every configured service endpoint; the first is the main connection string."""
        return list(self._endpoints)

    @property
    def endpoint(self) -> ServiceEndpoint:
        """The main service endpoint (the connection string, or the local emulator)."""
        return self._endpoints[0]

    @property
    def access_keys(self) -> list[str]:
        """Every access key of every endpoint: upstream signatures may use any of them."""
        keys: list[str] = []
        for endpoint in self._endpoints:
            if endpoint.access_key is not None and endpoint.access_key not in keys:
                keys.append(endpoint.access_key)
        return keys

    @property
    def uses_emulator(self) -> bool:
        """True when no connection string is set and the local emulator is the service."""
        return (
            self.connection_string is None
            and not self.endpoint_strings
            and not self._identity_count
        )

    @property
    def keyless(self) -> bool:
        """True when any endpoint is keyless (Microsoft Entra ID instead of an access key)."""
        return any(endpoint.keyless for endpoint in self._endpoints)

    @property
    def principal_trusted(self) -> bool:
        """True when App Service authentication headers may be believed."""
        return self.website_auth_enabled or self.trust_client_principal

    @property
    def dev_user_header_enabled(self) -> bool:
        """True when ``x-ms-signalr-user-id`` may set the user id (local development only).

        Never when App Service authentication is trusted. By default on only when the
        service is the local emulator (no connection string, or a localhost endpoint).
        """
        if self.principal_trusted:
            return False
        if self.dev_user_header is not None:
            return self.dev_user_header
        return self.uses_emulator or self.endpoint.host in _LOCAL_HOSTS


def _parse_named(text: str, setting: str) -> ServiceEndpoint:
    """Parse a connection string; an error names the setting it came from."""
    try:
        return parse_connection_string(text)
    except SignalRError as exc:
        raise ValueError(f"{setting}: {exc}") from None


def env_name(field: str) -> str:
    """The environment variable of a :class:`Settings` field (``port`` -> ``SIGNALR_PORT``)."""
    return settings_errors.env_name(Settings, field)


def describe_settings_error(exc: Exception) -> str:
    """One line per problem of a settings error, each naming its environment variable.

    For a pydantic :class:`~pydantic.ValidationError` of :class:`Settings`: the field's
    variable (``SIGNALR_PORT``, ``AzureSignalRConnectionString``) and pydantic's message
    without its boilerplate (no "1 validation error for Settings", no URL, no input).
    Anything else (a ``local.settings.json`` error, a hub that cannot load): its message.
    The emulator formats its own with the same core function
    (:func:`signalr_protocol.settings_errors.describe_settings_error`).
    """
    return settings_errors.describe_settings_error(exc, Settings)


def _endpoints_from_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """Read ``Azure__SignalR__Endpoints__<name>[__primary|__secondary]`` variables."""
    found: dict[str, str] = {}
    for key, value in environ.items():
        match = _ENDPOINT_ENV.match(key)
        if match is None or not value.strip():
            continue
        kind = (match.group("kind") or "primary").lower()
        found[f"{match.group('name')}:{kind}"] = value
    return found


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read from the environment once and cached."""
    return Settings()
