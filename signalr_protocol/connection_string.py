"""Azure SignalR Service connection strings (PROTOCOL.md §1).

A connection string is ``key=value`` pairs separated by ``;``. Keys are case-insensitive,
values are trimmed, each segment is split on its first ``=`` only (base64 keys end in
``=``), empty segments and segments without ``=`` are skipped, and a key given twice is an
error. Parse once at start-up with :func:`parse_connection_string` and keep the
:class:`ServiceEndpoint`.

Error messages name the offending key, never its value when the key is a secret.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit

from signalr_protocol.errors import ConnectionStringError, UnsupportedAuthTypeError

__all__ = [
    "EMULATOR_ACCESS_KEY",
    "AuthType",
    "ServiceEndpoint",
    "emulator_connection_string",
    "parse_connection_string",
]

EMULATOR_ACCESS_KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
"""The fixed access key of Microsoft's asrs-emulator, which our emulator also uses by default."""

_VERSION_RE = re.compile(r"^1\.\d+(?:[\w\-.]+)?$")


class AuthType(StrEnum):
    """How the service authenticates us; anything but ``ACCESS_KEY`` is identity based."""

    ACCESS_KEY = "accesskey"
    AAD = "aad"
    AZURE = "azure"
    AZURE_APP = "azure.app"
    AZURE_MSI = "azure.msi"


@dataclass(frozen=True, slots=True)
class ServiceEndpoint:
    """One parsed connection string.

    Attributes:
        endpoint: ``scheme://host[:port]`` with ``Port`` applied, no trailing ``/``.
        access_key: the HMAC key (UTF-8 bytes of the text are the key); ``None`` with AuthType.
        version: the ``Version`` value (default ``1.0``).
        client_endpoint: base URL handed to clients in negotiate, no trailing ``/``.
        server_endpoint: base URL of REST calls, no trailing ``/``.
        audience_base: ``scheme://host/`` of the Endpoint: never a port, never the client or
            server endpoint's host. Every token audience starts with it.
        auth_type: the ``AuthType``; ``ACCESS_KEY`` when absent.
        client_id, tenant_id, client_secret, client_cert: identity settings, parsed only.
        name: the endpoint's name when configured as one of several endpoints.
        primary: ``False`` for a secondary endpoint of a multi-endpoint configuration.
    """

    endpoint: str
    access_key: str | None = field(repr=False)
    version: str
    client_endpoint: str
    server_endpoint: str
    audience_base: str
    auth_type: AuthType = AuthType.ACCESS_KEY
    client_id: str | None = None
    tenant_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    client_cert: str | None = None
    name: str = ""
    primary: bool = True

    def require_access_key(self) -> str:
        """Return the access key, or explain why identity-based auth can't mint tokens yet.

        Raises:
            UnsupportedAuthTypeError: the connection string uses ``AuthType=...``.
        """
        if self.access_key is None:
            raise UnsupportedAuthTypeError(
                f"AuthType={self.auth_type.value} (identity-based auth) is parsed but not "
                "supported yet: it needs a signing key fetched with an Entra ID token. Use a "
                "connection string with an AccessKey."
            )
        return self.access_key

    def client_url(self, hub: str) -> str:
        """The ``url`` of a negotiate answer: ``{client_endpoint}/client/?hub={hub}``."""
        return f"{self.client_endpoint}/client/?hub={hub.lower()}"

    def client_audience(self, hub: str) -> str:
        """The ``aud`` of a client access token: port-less, with the ``?hub=`` query."""
        return f"{self.audience_base}client/?hub={hub.lower()}"

    def client_audiences(self, hub: str) -> str | list[str]:
        """The ``aud`` value of a client token for ``hub``.

        The service SDK's audience is port-less (:meth:`client_audience`). When the
        negotiate ``url`` differs from it only by a port (the emulator, a custom ``Port``),
        the url is added as a second audience, so a client that checks ``aud`` against the
        url it was given also succeeds; JWT allows an array of audiences.
        """
        audience = self.client_audience(hub)
        url = self.client_url(hub)
        if url != audience and urlsplit(url).hostname == urlsplit(audience).hostname:
            return [audience, url]
        return audience

    @property
    def host(self) -> str:
        """The Endpoint's host name, lower-cased."""
        return urlsplit(self.endpoint).hostname or ""


def emulator_connection_string(
    host: str = "localhost",
    port: int = 8888,
    scheme: str = "http",
    access_key: str = EMULATOR_ACCESS_KEY,
) -> str:
    """The connection string an emulator at ``scheme://host:port`` is reached with."""
    return f"Endpoint={scheme}://{host};Port={port};AccessKey={access_key};Version=1.0;"


def _split(text: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    count = 0
    for raw in text.split(";"):
        segment = raw.strip()
        if not segment:
            continue
        count += 1
        if "=" not in segment:
            continue
        key, value = segment.split("=", 1)
        key = key.strip().lower()
        if key in pairs:
            raise ConnectionStringError(
                f"Connection string has the key '{key}' twice; give each key once."
            )
        pairs[key] = value.strip()
    if count < 2 and "endpoint" not in pairs:
        raise ConnectionStringError(
            "Connection string is missing 'Endpoint=...;AccessKey=...;': expected "
            "key=value pairs separated by ';'."
        )
    return pairs


def _absolute_url(key: str, value: str) -> tuple[str, str, int | None]:
    """Check ``value`` is an absolute http(s) URL; return (scheme, host, port)."""
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConnectionStringError(
            f"Connection string key '{key}' must be an absolute http:// or https:// URL, "
            f"got {value!r}."
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise ConnectionStringError(
            f"Connection string key '{key}' has an invalid port in {value!r}."
        ) from exc
    return parts.scheme.lower(), parts.hostname.lower(), port


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def parse_connection_string(text: str) -> ServiceEndpoint:
    """Parse an Azure SignalR Service connection string.

    Args:
        text: e.g. ``Endpoint=https://x.service.signalr.net;AccessKey=...;Version=1.0;``.

    Returns:
        The endpoint with derived URLs filled in (see :class:`ServiceEndpoint`).

    Raises:
        ConnectionStringError: a key is duplicated, ``Endpoint`` or ``AccessKey`` is
            missing, a URL is not absolute http(s), ``Port`` or ``Version`` is malformed.
    """
    if not text or not text.strip():
        raise ConnectionStringError(
            "Connection string is empty: set AzureSignalRConnectionString to "
            "'Endpoint=https://<name>.service.signalr.net;AccessKey=<key>;Version=1.0;'."
        )
    pairs = _split(text)
    # Unknown keys are ignored, as the service SDK does, so strings from newer portals
    # keep working; a misspelt required key still fails below with its name.
    endpoint_value = pairs.get("endpoint")
    if not endpoint_value:
        raise ConnectionStringError("Connection string is missing the 'Endpoint' key.")
    scheme, host, url_port = _absolute_url("Endpoint", endpoint_value.rstrip("/"))

    port = url_port
    if "port" in pairs:
        raw_port = pairs["port"]
        if not raw_port.isdigit() or not 1 <= int(raw_port) <= 65535:
            raise ConnectionStringError(
                f"Connection string key 'Port' must be an integer from 1 to 65535, got "
                f"{raw_port!r}."
            )
        port = int(raw_port)

    version = pairs.get("version", "1.0")
    if not _VERSION_RE.match(version):
        raise ConnectionStringError(
            f"Connection string key 'Version' must look like '1.0', got {version!r}."
        )

    raw_auth = pairs.get("authtype", "").lower()
    auth_type = AuthType.ACCESS_KEY
    if raw_auth:
        try:
            auth_type = AuthType(raw_auth)
        except ValueError:
            auth_type = AuthType.ACCESS_KEY

    access_key = pairs.get("accesskey") or None
    if auth_type is AuthType.ACCESS_KEY and access_key is None:
        raise ConnectionStringError(
            "Connection string is missing the 'AccessKey' key (or give AuthType=azure.msi "
            "and friends for identity-based auth)."
        )
    if auth_type is not AuthType.ACCESS_KEY:
        access_key = None

    default_port = 443 if scheme == "https" else 80
    netloc = _format_host(host)
    if port is not None and port != default_port:
        netloc = f"{netloc}:{port}"
    endpoint = f"{scheme}://{netloc}"

    client_endpoint = endpoint
    if pairs.get("clientendpoint"):
        _absolute_url("ClientEndpoint", pairs["clientendpoint"])
        client_endpoint = pairs["clientendpoint"].rstrip("/")
    server_endpoint = endpoint
    if pairs.get("serverendpoint"):
        _absolute_url("ServerEndpoint", pairs["serverendpoint"])
        server_endpoint = pairs["serverendpoint"].rstrip("/")

    return ServiceEndpoint(
        endpoint=endpoint,
        access_key=access_key,
        version=version,
        client_endpoint=client_endpoint,
        server_endpoint=server_endpoint,
        audience_base=f"{scheme}://{_format_host(host)}/",
        auth_type=auth_type,
        client_id=pairs.get("clientid") or None,
        tenant_id=pairs.get("tenantid") or None,
        client_secret=pairs.get("clientsecret") or None,
        client_cert=pairs.get("clientcert") or pairs.get("clientcertpath") or None,
    )
