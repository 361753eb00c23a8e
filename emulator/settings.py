"""Settings of the emulator (environment prefix ``EMULATOR_``).

Every field can be set from the environment (``EMULATOR_PORT=9000``), from a ``.env`` file,
or by keyword in code and tests (``EmulatorSettings(port=0, keep_alive_interval=1)``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from signalr_protocol.connection_string import EMULATOR_ACCESS_KEY, emulator_connection_string

__all__ = ["EmulatorSettings"]


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
        upstream_timeout: seconds to wait for the upstream webhook.
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
            emulator is reached under another name than ``host:port`` (e.g. in compose).
    """

    model_config = SettingsConfigDict(env_prefix="EMULATOR_", extra="ignore")

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
    upstream_timeout: float = Field(default=100.0, gt=0)
    stateful_reconnect: bool = True
    stateful_reconnect_buffer_size: int = Field(default=100_000, ge=1)
    stateful_reconnect_window: float = Field(default=15.0, gt=0)
    audience_hosts: list[str] = Field(default_factory=list)
    public_url: str | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        """The access keys accepted for signatures: primary first, then secondary."""
        if self.secondary_access_key:
            return (self.access_key, self.secondary_access_key)
        return (self.access_key,)

    def connection_string(self, port: int | None = None) -> str:
        """The connection string a backend uses to reach this emulator.

        Args:
            port: the port actually bound (when ``port`` was 0); defaults to ``port``.
        """
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
