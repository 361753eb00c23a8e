"""Settings of the emulator (environment prefix ``EMULATOR_``).

Every field can be set from the environment (``EMULATOR_PORT=9000``), from a ``.env`` file in
the working directory (the same file the backend reads; the environment wins), or by keyword
in code and tests (``EmulatorSettings(port=0, keep_alive_interval=1)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from signalr_protocol import settings_errors
from signalr_protocol.connection_string import EMULATOR_ACCESS_KEY, emulator_connection_string

from .identity import DEFAULT_IDENTITY_HEADER, DEFAULT_TENANT_ID

__all__ = ["EmulatorSettings", "describe_settings_error"]


class EmulatorSettings(BaseSettings):
    """Configuration of one emulator instance.

    Attributes:
        host: interface to listen on (``127.0.0.1``; ``0.0.0.0`` in a container).
        port: TCP port (8888, like Microsoft's ``asrs-emulator``; 0 picks a free one).
        access_key: the primary access key tokens must be signed with.
        secondary_access_key: an optional second key also accepted (key-rotation tests).
        config: an ``asrs-emulator`` ``settings.json`` with upstream templates; reloaded
            when it changes. ``None``: the default upstream (local Functions host).
        upstream_url: a shortcut instead of ``config``: send every event to this URL
            (e.g. ``http://127.0.0.1:7071/runtime/webhooks/signalr``); ``""`` disables the
            upstream; ``None`` (default) uses ``config`` or the default template.
        keep_alive_interval: seconds of silence after which a Ping is sent to a client.
        client_timeout: seconds without any message from a client before it is closed.
        handshake_timeout: seconds a new connection has to send its handshake.
        disconnect_timeout: seconds a negotiated connection may stay without an active
            transport request (not started yet, or between two long polls) before it is
            dropped.
        long_poll_timeout: seconds a long-poll request waits for data before it answers
            empty (the client then polls again).
        max_buffered_bytes: outbound bytes queued for one connection before it is deemed
            too slow and closed, so it cannot stall or bloat the others.
        max_message_size: largest single hub message a client may send, in bytes.
        max_rest_body: largest REST request body, in bytes (the service's 1 MB).
        body_read_timeout: seconds a request body (REST, or a Server-Sent Events / long
            polling send) may take to arrive before the request is answered 408.
        upstream_timeout: seconds to wait for the upstream webhook.
        shutdown_timeout: seconds a stop (Ctrl-C, SIGTERM) gives what is in flight (Close
            messages still being written, ``disconnected`` events and other upstream calls)
            before the remaining connections are dropped and the calls cut short; short, so
            that a restart fits before the official client's 2 s reconnect retry.
        stateful_reconnect: grant stateful reconnect to clients that ask for it on negotiate
            (``useStatefulReconnect=true``); ``False`` answers as Microsoft's emulator does.
        stateful_reconnect_buffer_size: bytes sent to a stateful-reconnect client and not yet
            acknowledged beyond which further messages wait for its Ack (ASP.NET Core's
            ``HubOptions.StatefulReconnectBufferSize`` default, 100,000).
        stateful_reconnect_window: seconds a stateful-reconnect connection whose transport
            dropped waits for its client to come back before it ends and ``disconnected``
            goes upstream (ASP.NET Core's ``DisconnectTimeout`` default, 15 s).
        audience_hosts: extra host names accepted in a token's ``aud`` besides the host the
            request was sent to and loopback names (e.g. a public name behind a proxy).
        public_url: scheme and host:port to print in the connection string, when the
            emulator is reached under another name than ``host:port`` (e.g. in compose);
            also the base of the local Entra ID's issuer.
        keyless: local auth disabled (``--keyless``): tokens signed with the access key are
            refused; only the local Entra ID's tokens and temporary keys are accepted, and
            upstream calls carry no ``X-ASRS-Signature``.
        tenant_id: the local Entra ID's tenant.
        identity_header: what ``X-IDENTITY-HEADER`` must carry on ``/identity/msi/token``.
        temp_key_rotation: seconds between two temporary access keys.
        upstream_auth_resource: the default upstream's ManagedIdentity resource: upstream
            calls carry an Entra bearer token with this ``aud``.
        metrics_enabled: serve ``GET /metrics`` (Prometheus text format).
        trace_enabled: serve the live trace page at ``/`` and its ``/trace/*`` routes; off,
            ``/`` answers a line of text (for an emulator reachable beyond localhost).
        trace_history: events the live trace keeps for a page opened later.
        log_format: ``text`` or ``json`` (one JSON object per line) for ``signalr-emulator``
            (``--log-format``); the embedded emulator of ``serverless-signalr`` logs as the
            backend does (``SIGNALR_LOG_FORMAT``).
    """

    model_config = SettingsConfigDict(
        env_prefix="EMULATOR_",
        env_file=".env",
        extra="ignore",
        # Validation errors must not echo inputs: they may hold access keys.
        hide_input_in_errors=True,
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8888, ge=0, le=65535)
    access_key: str = Field(default=EMULATOR_ACCESS_KEY, min_length=1, repr=False)
    secondary_access_key: str | None = Field(default=None, repr=False)
    config: Path | None = None
    upstream_url: str | None = None
    keep_alive_interval: float = Field(default=15.0, gt=0)
    client_timeout: float = Field(default=30.0, gt=0)
    handshake_timeout: float = Field(default=15.0, gt=0)
    disconnect_timeout: float = Field(default=15.0, gt=0)
    long_poll_timeout: float = Field(default=90.0, gt=0)
    max_buffered_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_message_size: int = Field(default=1024 * 1024, ge=1024)
    max_rest_body: int = Field(default=1024 * 1024, ge=1024)
    body_read_timeout: float = Field(default=30.0, gt=0)
    upstream_timeout: float = Field(default=100.0, gt=0)
    shutdown_timeout: float = Field(default=0.5, ge=0, le=60)
    stateful_reconnect: bool = True
    stateful_reconnect_buffer_size: int = Field(default=100_000, ge=1)
    stateful_reconnect_window: float = Field(default=15.0, gt=0)
    audience_hosts: list[str] = Field(default_factory=list)
    public_url: str | None = None
    keyless: bool = False
    tenant_id: str = Field(default=DEFAULT_TENANT_ID, min_length=1)
    identity_header: str = Field(default=DEFAULT_IDENTITY_HEADER, min_length=1, repr=False)
    temp_key_rotation: float = Field(default=3600.0, gt=0)
    upstream_auth_resource: str | None = None
    metrics_enabled: bool = True
    trace_enabled: bool = True
    trace_history: int = Field(default=1000, ge=0, le=1_000_000)
    log_format: Literal["text", "json"] = "text"

    @property
    def public_base(self) -> str:
        """Where clients reach this emulator: ``public_url``, else ``http://host:port``."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "localhost"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @field_validator("config", mode="before")
    @classmethod
    def _empty_config_is_unset(cls, value: object) -> object:
        # ``EMULATOR_CONFIG=`` (set but empty) means no file, not the current directory.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if not value:
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            parts = None
        if (
            parts is None
            or parts.scheme.lower() not in ("http", "https")
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            raise ValueError(
                "must be http(s)://host[:port] with no path, such as http://emulator:8888"
            )
        return value

    @property
    def keys(self) -> tuple[str, ...]:
        """The access keys accepted for signatures: primary first, then secondary."""
        if self.secondary_access_key:
            return (self.access_key, self.secondary_access_key)
        return (self.access_key,)

    def connection_string(self, port: int | None = None) -> str:
        """The connection string a backend uses to reach this emulator.

        Keyless, it names no key: ``...;AuthType=azure.msi;Version=1.0;`` (the backend then
        needs ``IDENTITY_ENDPOINT`` / ``IDENTITY_HEADER`` pointing at this emulator).

        Args:
            port: the port actually bound (when ``port`` was 0); defaults to ``port``.
        """
        text = self._key_connection_string(port)
        if self.keyless:
            return text.replace(f"AccessKey={self.access_key};", "AuthType=azure.msi;")
        return text

    def _key_connection_string(self, port: int | None) -> str:
        if self.public_url:
            scheme, _, rest = self.public_url.partition("://")
            host, _, port_text = rest.rstrip("/").partition(":")
            return emulator_connection_string(
                host=host,
                port=int(port_text) if port_text else (443 if scheme == "https" else 80),
                scheme=scheme,
                access_key=self.access_key,
            )
        host = self.host
        if host in ("0.0.0.0", "::", ""):  # a wildcard is not an address to dial
            host = "localhost"
        return emulator_connection_string(
            host=host, port=self.port if port is None else port, access_key=self.access_key
        )


def describe_settings_error(exc: BaseException, *, names: Mapping[str, str] | None = None) -> str:
    """One line per problem of an :class:`EmulatorSettings` error, naming the variable.

    ``EMULATOR_TRACE_HISTORY: Input should be a valid integer ...``, not pydantic's
    several lines naming the field ``trace_history``; the backend's settings errors read the
    same (both use :func:`signalr_protocol.settings_errors.describe_settings_error`).

    Args:
        exc: the error raised while building the settings.
        names: what to call fields given another way, e.g. ``{"port": "--port"}``.
    """
    return settings_errors.describe_settings_error(exc, EmulatorSettings, names=names)
