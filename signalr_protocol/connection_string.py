"""Azure SignalR Service connection strings and identity settings (docs/protocol.md §1).

A connection string is ``key=value`` pairs separated by ``;``. Keys are case-insensitive,
values are trimmed, each segment is split on its first ``=`` only (base64 keys end in
``=``), empty segments and segments without ``=`` are skipped, and a key given twice is an
error. Parse once at start-up with :func:`parse_connection_string` and keep the
:class:`ServiceEndpoint`.

Two ways name an endpoint reached with a Microsoft Entra ID identity instead of a key
(*keyless*); both end as a :class:`ServiceEndpoint` whose :attr:`ServiceEndpoint.identity`
says which credential to build (this module builds none: it is data only):

* the connection string's ``AuthType=azure|azure.msi|azure.app`` (and the legacy ``aad``),
  read as the service SDK reads them;
* the settings sections of the Functions extension, ``AzureSignalRConnectionString__serviceUri``
  and ``Azure__SignalR__Endpoints__<name>__serviceUri`` with ``__credential``,
  ``__clientId``, ``__tenantId``, ``__clientSecret`` and ``__type``
  (:func:`identity_endpoints_from_environ`).

Error messages name the offending key or setting, never its value when it is a secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit

from signalr_protocol.errors import ConnectionStringError, UnsupportedAuthTypeError

__all__ = [
    "DEFAULT_CONNECTION_STRING_SETTING",
    "EMULATOR_ACCESS_KEY",
    "ENDPOINTS_SECTION",
    "AuthType",
    "CredentialKind",
    "EntraIdentity",
    "ServiceEndpoint",
    "emulator_connection_string",
    "identity_endpoints_from_environ",
    "parse_connection_string",
]

EMULATOR_ACCESS_KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
"""The fixed access key of Microsoft's asrs-emulator, which our emulator also uses by default."""

DEFAULT_CONNECTION_STRING_SETTING = "AzureSignalRConnectionString"
"""The Functions extension's default setting name (a string, or a section with ``serviceUri``)."""

ENDPOINTS_SECTION = "Azure__SignalR__Endpoints"
"""The section whose children are named endpoints (``<name>``, ``<name>__serviceUri``, ...)."""

_VERSION_RE = re.compile(r"^1\.\d+(?:[\w\-.]+)?$")


class AuthType(StrEnum):
    """How the service authenticates us; anything but ``ACCESS_KEY`` is identity based."""

    ACCESS_KEY = "accesskey"
    AAD = "aad"
    AZURE = "azure"
    AZURE_APP = "azure.app"
    AZURE_MSI = "azure.msi"


class CredentialKind(StrEnum):
    """Which ``azure-identity`` credential an identity-based endpoint needs."""

    DEFAULT = "default"
    """``DefaultAzureCredential``: environment, workload identity, managed identity, CLI..."""
    MANAGED_IDENTITY = "managedidentity"
    """``ManagedIdentityCredential``: system-assigned, or user-assigned with ``client_id``."""
    CLIENT_SECRET = "clientsecret"  # noqa: S105 - a credential kind, not a secret
    """``ClientSecretCredential``: an app registration with a secret."""
    CLIENT_CERTIFICATE = "clientcertificate"
    """``CertificateCredential``: an app registration with a PEM/PKCS12 certificate file."""


@dataclass(frozen=True, slots=True)
class EntraIdentity:
    """The Microsoft Entra ID identity an endpoint is reached with (data only).

    Attributes:
        kind: the credential to build.
        client_id: the user-assigned identity's or the app registration's client id.
        tenant_id: the app registration's tenant (``CLIENT_SECRET`` / ``CLIENT_CERTIFICATE``).
        client_secret: the app registration's secret; never shown by ``repr``.
        client_cert_path: path of the app registration's certificate file.
    """

    kind: CredentialKind
    client_id: str | None = None
    tenant_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    client_cert_path: str | None = None

    def describe(self) -> str:
        """Who this identity is, for log lines and errors (never the secret)."""
        if self.kind is CredentialKind.MANAGED_IDENTITY:
            if self.client_id:
                return f"the user-assigned managed identity with client id {self.client_id}"
            return "the system-assigned managed identity"
        if self.kind is CredentialKind.DEFAULT:
            return "DefaultAzureCredential (AZURE_CLIENT_ID, workload or managed identity, CLI)"
        how = "secret" if self.kind is CredentialKind.CLIENT_SECRET else "certificate"
        return (
            f"the app registration with client id {self.client_id} in tenant "
            f"{self.tenant_id} (client {how})"
        )


@dataclass(frozen=True, slots=True)
class ServiceEndpoint:
    """One parsed connection string (or identity settings section).

    Attributes:
        endpoint: ``scheme://host[:port]`` with ``Port`` applied, no trailing ``/``.
        access_key: the HMAC key (UTF-8 bytes of the text are the key); ``None`` when the
            endpoint is identity based (:attr:`identity` is set then).
        version: the ``Version`` value (default ``1.0``).
        client_endpoint: base URL handed to clients in negotiate, no trailing ``/``.
        server_endpoint: base URL of REST calls, no trailing ``/``.
        audience_base: ``scheme://host/`` of the Endpoint: never a port, never the client or
            server endpoint's host. Every token audience starts with it.
        auth_type: the ``AuthType``; ``ACCESS_KEY`` when absent.
        identity: the Entra ID identity of a keyless endpoint, ``None`` with an access key.
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
    identity: EntraIdentity | None = None
    name: str = ""
    primary: bool = True

    @property
    def keyless(self) -> bool:
        """True when the endpoint is reached with an Entra ID identity, not an access key."""
        return self.identity is not None

    @property
    def access_key_url(self) -> str:
        """Where a keyless endpoint hands out its temporary signing key.

        ``GET {ServerEndpoint or Endpoint}/api/v1/auth/accessKey`` with the Entra bearer,
        as the service SDK's ``AadAccessKey`` asks for it.
        """
        return f"{self.server_endpoint}/api/v1/auth/accessKey"

    @property
    def label(self) -> str:
        """How log lines and errors name this endpoint: ``name (url)`` or the url."""
        return f"{self.name} ({self.endpoint})" if self.name else self.endpoint

    def require_access_key(self) -> str:
        """Return the access key; a keyless endpoint has none.

        Raises:
            UnsupportedAuthTypeError: the endpoint is keyless (``AuthType=...``): its tokens
                are signed with a temporary key fetched with a Microsoft Entra token, which
                is the caller's job (the backend's ``app.services.identity``).
        """
        if self.access_key is None:
            raise UnsupportedAuthTypeError(
                f"AuthType={self.auth_type.value} (keyless): this endpoint has no AccessKey; "
                "sign with its temporary key from /api/v1/auth/accessKey, fetched with a "
                "Microsoft Entra token."
            )
        return self.access_key

    def client_url(self, hub: str) -> str:
        """The ``url`` of a negotiate answer: ``{client_endpoint}/client/?hub={hub}``."""
        return f"{self.client_endpoint}/client/?hub={hub.lower()}"

    def client_audience(self, hub: str) -> str:
        """The ``aud`` of a client access token: port-less, with the ``?hub=`` query."""
        return f"{self.audience_base}client/?hub={hub.lower()}"

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


def _absolute_url(what: str, value: str) -> tuple[str, str, int | None]:
    """Check ``value`` is an absolute http(s) URL; return (scheme, host, port)."""
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConnectionStringError(
            f"{what} must be an absolute http:// or https:// URL, got {value!r}."
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise ConnectionStringError(f"{what} has an invalid port in {value!r}.") from exc
    return parts.scheme.lower(), parts.hostname.lower(), port


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _build_endpoint(
    *,
    endpoint_url: tuple[str, str, int | None],
    port: int | None,
    version: str,
    access_key: str | None,
    auth_type: AuthType,
    identity: EntraIdentity | None,
    client_endpoint: str | None = None,
    server_endpoint: str | None = None,
    name: str = "",
    primary: bool = True,
) -> ServiceEndpoint:
    scheme, host, url_port = endpoint_url
    port = url_port if port is None else port
    default_port = 443 if scheme == "https" else 80
    netloc = _format_host(host)
    if port is not None and port != default_port:
        netloc = f"{netloc}:{port}"
    endpoint = f"{scheme}://{netloc}"
    return ServiceEndpoint(
        endpoint=endpoint,
        access_key=access_key,
        version=version,
        client_endpoint=client_endpoint.rstrip("/") if client_endpoint else endpoint,
        server_endpoint=server_endpoint.rstrip("/") if server_endpoint else endpoint,
        audience_base=f"{scheme}://{_format_host(host)}/",
        auth_type=auth_type,
        identity=identity,
        name=name,
        primary=primary,
    )


def _connection_string_identity(auth_type: AuthType, pairs: Mapping[str, str]) -> EntraIdentity:
    """The identity of ``AuthType=...``, following the service SDK's ConnectionStringParser.

    * ``azure``: ``DefaultAzureCredential`` (the SDK ignores ``ClientId`` here too);
    * ``azure.msi``: managed identity, user-assigned when ``ClientId`` is given;
    * ``azure.app``: ``ClientId`` and ``TenantId`` required, then ``ClientSecret`` or
      ``ClientCert`` (the secret wins when both are given);
    * ``aad`` (legacy): no ``ClientId`` → system-assigned managed identity; ``ClientId``
      without ``TenantId`` → that user-assigned managed identity; with ``TenantId`` → an
      app registration, as ``azure.app``.
    """
    client_id = pairs.get("clientid") or None
    tenant_id = pairs.get("tenantid") or None
    secret = pairs.get("clientsecret") or None
    cert = pairs.get("clientcert") or pairs.get("clientcertpath") or None
    if auth_type is AuthType.AZURE:
        return EntraIdentity(CredentialKind.DEFAULT)
    if auth_type is AuthType.AZURE_MSI or (
        auth_type is AuthType.AAD and (client_id is None or tenant_id is None)
    ):
        return EntraIdentity(CredentialKind.MANAGED_IDENTITY, client_id=client_id)
    spelled = f"AuthType={auth_type.value}"
    if client_id is None:
        raise ConnectionStringError(f"Connection string with {spelled} needs the 'ClientId' key.")
    if tenant_id is None:
        raise ConnectionStringError(f"Connection string with {spelled} needs the 'TenantId' key.")
    if secret is not None:
        return EntraIdentity(
            CredentialKind.CLIENT_SECRET,
            client_id=client_id,
            tenant_id=tenant_id,
            client_secret=secret,
        )
    if cert is not None:
        return EntraIdentity(
            CredentialKind.CLIENT_CERTIFICATE,
            client_id=client_id,
            tenant_id=tenant_id,
            client_cert_path=cert,
        )
    raise ConnectionStringError(
        f"Connection string with {spelled} and a TenantId needs the 'ClientSecret' or the "
        "'ClientCert' (ClientCertPath) key."
    )


def parse_connection_string(text: str) -> ServiceEndpoint:
    """Parse an Azure SignalR Service connection string.

    Args:
        text: e.g. ``Endpoint=https://x.service.signalr.net;AccessKey=...;Version=1.0;``
            or ``Endpoint=https://x.service.signalr.net;AuthType=azure.msi;Version=1.0;``.

    Returns:
        The endpoint with derived URLs filled in (see :class:`ServiceEndpoint`); with an
        ``AuthType`` the SDK knows, :attr:`ServiceEndpoint.identity` says which credential
        to use and any ``AccessKey`` is ignored (as the SDK ignores it).

    Raises:
        ConnectionStringError: a key is duplicated, ``Endpoint`` or ``AccessKey`` is
            missing, a URL is not absolute http(s), ``Port`` or ``Version`` is malformed,
            or an ``AuthType`` lacks the keys it needs (``ClientId``, ``TenantId``,
            ``ClientSecret``/``ClientCert``).
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
    endpoint_url = _absolute_url("Connection string key 'Endpoint'", endpoint_value.rstrip("/"))

    port: int | None = None
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

    # An AuthType the SDK does not know falls back to access-key auth, as in the SDK.
    try:
        auth_type = AuthType(pairs.get("authtype", "").lower() or AuthType.ACCESS_KEY)
    except ValueError:
        auth_type = AuthType.ACCESS_KEY

    access_key = pairs.get("accesskey") or None
    identity = None
    if auth_type is AuthType.ACCESS_KEY:
        if access_key is None:
            raise ConnectionStringError(
                "Connection string is missing the 'AccessKey' key (or give AuthType=azure.msi "
                "and friends for identity-based auth)."
            )
    else:
        access_key = None
        identity = _connection_string_identity(auth_type, pairs)

    client_endpoint = pairs.get("clientendpoint") or None
    if client_endpoint:
        _absolute_url("Connection string key 'ClientEndpoint'", client_endpoint)
    server_endpoint = pairs.get("serverendpoint") or None
    if server_endpoint:
        _absolute_url("Connection string key 'ServerEndpoint'", server_endpoint)

    return _build_endpoint(
        endpoint_url=endpoint_url,
        port=port,
        version=version,
        access_key=access_key,
        auth_type=auth_type,
        identity=identity,
        client_endpoint=client_endpoint,
        server_endpoint=server_endpoint,
    )


# -- settings sections (the Functions extension's identity-based connections) --------------

_SECTION_KEYS = frozenset(
    {
        "serviceuri",
        "credential",
        "clientid",
        "tenantid",
        "clientsecret",
        "clientcertificate",
        "type",
    }
)


def _section_identity(prefix: str, values: Mapping[str, str]) -> EntraIdentity:
    """The credential of a section, as Microsoft.Extensions.Azure's ClientFactory picks it:
    ``credential=managedidentity`` → managed identity (user-assigned with ``clientId``);
    else ``tenantId`` + ``clientId`` + ``clientSecret`` → client secret; else
    ``DefaultAzureCredential``. A ``clientCertificate`` (a certificate *store* thumbprint)
    has no store to look in here and is refused."""
    credential = values.get("credential", "").strip().lower()
    client_id = values.get("clientid", "").strip() or None
    tenant_id = values.get("tenantid", "").strip() or None
    secret = values.get("clientsecret", "").strip() or None
    if credential == "managedidentity":
        return EntraIdentity(CredentialKind.MANAGED_IDENTITY, client_id=client_id)
    if credential:
        raise ConnectionStringError(
            f"Setting '{prefix}__credential' must be 'managedidentity' (or be left out for a "
            f"client secret or DefaultAzureCredential), got {credential!r}."
        )
    if tenant_id and client_id and secret:
        return EntraIdentity(
            CredentialKind.CLIENT_SECRET,
            client_id=client_id,
            tenant_id=tenant_id,
            client_secret=secret,
        )
    if values.get("clientcertificate", "").strip():
        raise ConnectionStringError(
            f"Setting '{prefix}__clientCertificate' (a certificate store thumbprint) is not "
            "supported: use a connection string with AuthType=azure.app;ClientId=...;"
            "TenantId=...;ClientCert=<path of a PEM or PKCS12 file>."
        )
    if secret and not (tenant_id and client_id):
        missing = "clientId" if not client_id else "tenantId"
        raise ConnectionStringError(
            f"Setting '{prefix}__clientSecret' is set but '{prefix}__{missing}' is not: a "
            "client secret needs both clientId and tenantId."
        )
    return EntraIdentity(CredentialKind.DEFAULT)


def _section_endpoint(prefix: str, values: Mapping[str, str], name: str) -> ServiceEndpoint:
    uri = values.get("serviceuri", "").strip()
    if not uri:
        present = ", ".join(f"'{prefix}__{key}'" for key in sorted(values))
        raise ConnectionStringError(
            f"Setting '{prefix}__serviceUri' is missing while {present} is set: an "
            "identity-based endpoint needs its service URL."
        )
    endpoint_url = _absolute_url(f"Setting '{prefix}__serviceUri'", uri.rstrip("/"))
    kind = values.get("type", "primary").strip().lower()
    if kind not in ("primary", "secondary"):
        raise ConnectionStringError(
            f"Setting '{prefix}__type' must be 'primary' or 'secondary', got {kind!r}."
        )
    identity = _section_identity(prefix, values)
    auth_type = {
        CredentialKind.MANAGED_IDENTITY: AuthType.AZURE_MSI,
        CredentialKind.CLIENT_SECRET: AuthType.AZURE_APP,
    }.get(identity.kind, AuthType.AZURE)
    return _build_endpoint(
        endpoint_url=endpoint_url,
        port=None,
        version="1.0",
        access_key=None,
        auth_type=auth_type,
        identity=identity,
        name=name,
        primary=kind == "primary",
    )


def identity_endpoints_from_environ(
    environ: Mapping[str, str],
    *,
    setting: str = DEFAULT_CONNECTION_STRING_SETTING,
) -> list[ServiceEndpoint]:
    """Read the identity-based endpoints of the Functions extension's settings sections.

    * The default endpoint: ``{setting}__serviceUri`` with ``__credential``
      (``managedidentity``), ``__clientId``, ``__tenantId``, ``__clientSecret``; used only
      when ``{setting}`` itself (a connection string) is not set, as the extension does.
      Its :attr:`ServiceEndpoint.name` is ``""`` and it comes first.
    * Named endpoints: ``Azure__SignalR__Endpoints__<name>__serviceUri`` with
      ``__type`` (``primary``, the default, or ``secondary``) and the same credential
      keys, sorted by name. A name given this way is identity based; a connection string
      under the same name (``Azure__SignalR__Endpoints__<name>[__primary]``) is then
      ignored, as the extension ignores it (the caller drops it: compare names).

    Names match case-insensitively and ``:`` may stand for ``__`` (App Service on Windows).

    Args:
        environ: the environment (``os.environ`` or a test mapping).
        setting: the default connection string's setting name.

    Raises:
        ConnectionStringError: a section has credential keys but no ``serviceUri``, a
            ``serviceUri`` is not an absolute http(s) URL, ``type`` or ``credential`` has an
            unknown value, a client secret lacks its ``clientId``/``tenantId``, a key is
            given twice in different case, or a ``clientCertificate`` thumbprint is given.
            The message names the setting and never echoes a secret.
    """
    default_prefix = setting.lower()
    named_prefix = ENDPOINTS_SECTION.lower() + "__"
    default_values: dict[str, str] = {}
    named: dict[str, dict[str, str]] = {}
    spelled: dict[str, str] = {}
    connection_string_set = False
    for raw_key, value in environ.items():
        key = raw_key.replace(":", "__").lower()
        if key == default_prefix:
            connection_string_set = connection_string_set or bool(value.strip())
            continue
        head, sep, leaf = key.rpartition("__")
        if not sep or leaf not in _SECTION_KEYS:
            continue
        if head == default_prefix:
            target, prefix = default_values, setting
        elif head.startswith(named_prefix) and len(head) > len(named_prefix):
            name = raw_key.replace(":", "__").rpartition("__")[0][len(named_prefix) :]
            target = named.setdefault(name.lower(), {})
            spelled.setdefault(name.lower(), name)
            prefix = f"{ENDPOINTS_SECTION}__{spelled[name.lower()]}"
        else:
            continue
        if leaf in target:
            raise ConnectionStringError(
                f"Setting '{prefix}__{leaf}' is given twice (in different case); give it once."
            )
        target[leaf] = value
    endpoints: list[ServiceEndpoint] = []
    if default_values and not connection_string_set:
        endpoints.append(_section_endpoint(setting, default_values, ""))
    for lowered in sorted(named):
        name = spelled[lowered]
        endpoints.append(_section_endpoint(f"{ENDPOINTS_SECTION}__{name}", named[lowered], name))
    return endpoints
