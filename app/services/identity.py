"""Keyless mode: Microsoft Entra ID credentials and the temporary access keys they unlock.

An endpoint configured with an identity (``AuthType=azure.msi`` and friends, or a
``__serviceUri`` settings section; see :class:`signalr_protocol.connection_string.EntraIdentity`)
has no access key. Against it the backend

* sends REST calls with the Entra token itself as ``Authorization: Bearer`` (scope
  ``https://signalr.azure.com/.default``), from one ``azure-identity`` async credential per
  endpoint (:func:`create_credential`, :class:`EntraBearer`); tokens are cached until five
  minutes before they expire and never logged;
* signs client access tokens (negotiate) HS256 with a temporary key that
  ``GET {ServerEndpoint or Endpoint}/api/v1/auth/accessKey`` hands out for that bearer, with
  header ``kid`` = its ``KeyId`` (:func:`mint_keyless_client_token`). The
  :class:`AccessKeyManager` fetches it in the background every 55 minutes, every 5 minutes
  while that fails, and stops using a key older than 120 minutes, so negotiate never waits
  on Entra in the steady state. These are the service SDK's numbers (Azure/azure-signalr
  ``src/Microsoft.Azure.SignalR.Common/Endpoints/AadAccessKey.cs``: ``AuthorizeInterval``,
  ``AuthorizeIntervalWhenFailed``), the last one rounded to 120 minutes.

Failures are typed: :class:`EntraAuthError` (a :class:`~app.exceptions.ServiceUnavailableError`,
so an edge answers 503) names the endpoint and says what was refused;
:class:`AccessKeyUnavailableError` says why there is no usable key right now. A log line
says what to check: the role assignment "SignalR App Server" and the identity's client id.

:class:`EntraAuth` holds all of it for a process: ``async with EntraAuth.open(endpoints,
client) as auth`` starts the key managers and closes every credential on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from azure.core.credentials_async import AsyncTokenCredential

from app.exceptions import ConfigurationError, ServiceUnavailableError
from signalr_protocol.connection_string import CredentialKind, EntraIdentity, ServiceEndpoint
from signalr_protocol.tokens import DEFAULT_LIFETIME, build_client_claims, mint_token

__all__ = [
    "MAX_KEY_AGE",
    "REFRESH_INTERVAL",
    "RETRY_INTERVAL",
    "SIGNALR_SCOPE",
    "AccessKeyManager",
    "AccessKeyUnavailableError",
    "EntraAuth",
    "EntraAuthError",
    "EntraBearer",
    "TemporaryAccessKey",
    "create_credential",
    "mint_keyless_client_token",
]

logger = logging.getLogger("app.services.identity")

# azure-core logs every identity request and response at INFO; keep their warnings only,
# unless the application configured those loggers itself.
for _name in ("azure.core.pipeline.policies.http_logging_policy", "azure.identity"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.WARNING)

SIGNALR_SCOPE = "https://signalr.azure.com/.default"
"""The scope every Entra token for SignalR Service is asked for."""

REFRESH_INTERVAL = 55 * 60.0
"""Seconds between two fetches of the temporary access key while they succeed."""

RETRY_INTERVAL = 5 * 60.0
"""Seconds between two fetches while they fail."""

MAX_KEY_AGE = 120 * 60.0
"""A temporary key fetched longer ago than this is not used any more."""

_TOKEN_MARGIN = 300.0  # seconds before expiry at which a cached Entra token is renewed
_ROLE_HINT = (
    "check that {who} has the role 'SignalR App Server' on the SignalR resource, and that "
    "the ClientId (client id) names that identity"
)


class EntraAuthError(ServiceUnavailableError):
    """Microsoft Entra ID or the service refused or could not be reached, for one endpoint.

    Attributes:
        endpoint: how the endpoint is named (``name (url)`` or the url).
        status_code: the service's HTTP status when it answered (401, 403, 5xx), else 0.
    """

    def __init__(self, message: str, *, endpoint: str, status_code: int = 0) -> None:
        super().__init__(message, status_code=status_code)
        self.endpoint = endpoint


class AccessKeyUnavailableError(EntraAuthError):
    """No usable temporary access key for an endpoint: never fetched, refused, or too old."""


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def create_credential(identity: EntraIdentity) -> AsyncTokenCredential:
    """The ``azure-identity`` async credential an identity needs.

    Managed identity → ``ManagedIdentityCredential`` (with the client id of a user-assigned
    one); client secret → ``ClientSecretCredential``; certificate → ``CertificateCredential``
    (the file is read now); otherwise ``DefaultAzureCredential``. The library's environment
    variables apply (``IDENTITY_ENDPOINT`` + ``IDENTITY_HEADER``, ``AZURE_CLIENT_ID``, ...).

    Raises:
        ConfigurationError: the certificate file can't be read or isn't a certificate.
    """
    from azure.identity.aio import (
        CertificateCredential,
        ClientSecretCredential,
        DefaultAzureCredential,
        ManagedIdentityCredential,
    )

    if identity.kind is CredentialKind.MANAGED_IDENTITY:
        return ManagedIdentityCredential(client_id=identity.client_id)
    if identity.kind is CredentialKind.CLIENT_SECRET:
        assert identity.tenant_id and identity.client_id and identity.client_secret
        return ClientSecretCredential(
            identity.tenant_id, identity.client_id, identity.client_secret
        )
    if identity.kind is CredentialKind.CLIENT_CERTIFICATE:
        assert identity.tenant_id and identity.client_id and identity.client_cert_path
        try:
            return CertificateCredential(
                identity.tenant_id, identity.client_id, certificate_path=identity.client_cert_path
            )
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"ClientCert '{identity.client_cert_path}' can't be used: {_first_line(exc)}"
            ) from exc
    return DefaultAzureCredential()


class EntraBearer:
    """Entra tokens for one endpoint, cached until five minutes before they expire.

    Args:
        endpoint: the keyless endpoint (its ``identity`` is set).
        credential: the endpoint's credential (closed by whoever created it).
        clock: wall-clock seconds (tests).
    """

    def __init__(
        self,
        endpoint: ServiceEndpoint,
        credential: AsyncTokenCredential,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.endpoint = endpoint
        self.credential = credential
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def who(self) -> str:
        """The identity, described for log lines (never a secret)."""
        identity = self.endpoint.identity
        return identity.describe() if identity is not None else "the identity"

    async def token(self) -> str:
        """An Entra access token for SignalR Service.

        Raises:
            EntraAuthError: the credential gave no token (Entra refused or unreachable, no
                managed identity in this environment, ...); the message says what to check.
        """
        if self._token is not None and self._clock() < self._renew_at:
            return self._token
        async with self._lock:
            if self._token is not None and self._clock() < self._renew_at:
                return self._token
            try:
                access = await self.credential.get_token(SIGNALR_SCOPE)
            except Exception as exc:  # AzureError mostly; a bad IDENTITY_ENDPOINT: ValueError
                message = (
                    f"Microsoft Entra ID gave no token for SignalR endpoint "
                    f"{self.endpoint.label} with {self.who}: {_first_line(exc)}"
                )
                logger.error(
                    "%s; check that this identity exists and is assigned to the app "
                    "(IDENTITY_ENDPOINT/IDENTITY_HEADER on App Service and Container Apps) and "
                    "that the ClientId is its client id",
                    message,
                )
                raise EntraAuthError(message, endpoint=self.endpoint.label) from exc
            self._token = access.token
            self._renew_at = max(self._clock(), access.expires_on - _TOKEN_MARGIN)
            return access.token

    def forget(self) -> None:
        """Drop the cached token (after the service refused it)."""
        self._token = None


@dataclass(frozen=True, slots=True)
class TemporaryAccessKey:
    """A signing key from ``/api/v1/auth/accessKey``.

    Attributes:
        key_id: the ``KeyId``; client tokens carry it as header ``kid``.
        access_key: the ``AccessKey``; its UTF-8 bytes sign HS256. Never shown by ``repr``.
        fetched_at: ``AccessKeyManager``'s clock when it arrived.
    """

    key_id: str
    access_key: str = field(repr=False)
    fetched_at: float


class AccessKeyManager:
    """Keeps one keyless endpoint's temporary access key fresh, in the background.

    Args:
        bearer: the endpoint's Entra tokens.
        client: the process's HTTP client (not closed here).
        refresh_interval: seconds between fetches while they succeed (55 min).
        retry_interval: seconds between fetches while they fail (5 min).
        max_age: a key older than this is not used (120 min).
        clock: monotonic seconds (tests).
    """

    def __init__(
        self,
        bearer: EntraBearer,
        client: httpx.AsyncClient,
        *,
        refresh_interval: float = REFRESH_INTERVAL,
        retry_interval: float = RETRY_INTERVAL,
        max_age: float = MAX_KEY_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bearer = bearer
        self.endpoint = bearer.endpoint
        self._client = client
        self.refresh_interval = refresh_interval
        self.retry_interval = retry_interval
        self.max_age = max_age
        self._clock = clock
        self._key: TemporaryAccessKey | None = None
        self._failure: str | None = None
        self._attempted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def failure(self) -> str | None:
        """Why the last fetch failed, or ``None`` after a success."""
        return self._failure

    @property
    def ready(self) -> bool:
        """True when a key is there and young enough to sign with."""
        return self._key is not None and self._clock() - self._key.fetched_at <= self.max_age

    def current(self) -> TemporaryAccessKey:
        """The key to sign client tokens with, without waiting.

        Raises:
            AccessKeyUnavailableError: none was fetched yet, fetching fails, or the last
                key is older than ``max_age``; the message says which, naming the endpoint.
        """
        key = self._key
        if key is not None and self._clock() - key.fetched_at <= self.max_age:
            return key
        label = self.endpoint.label
        if key is not None:
            why = f"its last key is over {self.max_age / 60:.0f} minutes old"
        else:
            why = "no key has been fetched yet"
        if self._failure:
            why += f"; the last attempt failed: {self._failure}"
        raise AccessKeyUnavailableError(
            f"No signing key for SignalR endpoint {label} (keyless): {why}.", endpoint=label
        )

    async def get(self, *, wait: float = 0.0) -> TemporaryAccessKey:
        """:meth:`current`, waiting up to ``wait`` seconds for the first fetch to end.

        Only a process that has just started waits: once a fetch has been tried, this
        answers at once.
        """
        if self._key is None and not self._attempted.is_set() and wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._attempted.wait(), wait)
        return self.current()

    async def refresh(self) -> TemporaryAccessKey:
        """Fetch a new key now.

        Raises:
            EntraAuthError: Entra gave no token, or the service refused it (401/403: the
                role is missing), failed (5xx) or could not be reached, or answered
                without ``KeyId`` / ``AccessKey``.
        """
        try:
            key = await self._fetch()
        except EntraAuthError as exc:
            self._failure = exc.message
            raise
        finally:
            self._attempted.set()
        if self._failure is not None or self._key is None:
            logger.info(
                "Signing key for SignalR endpoint %s fetched (kid %s)",
                self.endpoint.label,
                key.key_id,
            )
        self._key = key
        self._failure = None
        return key

    async def _fetch(self) -> TemporaryAccessKey:
        label = self.endpoint.label
        url = self.endpoint.access_key_url
        token = await self.bearer.token()
        try:
            response = await self._client.get(url, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            message = f"SignalR endpoint {label} could not be reached at {url}: {_first_line(exc)}"
            logger.warning("%s; retrying in %.0f s", message, self.retry_interval)
            raise EntraAuthError(message, endpoint=label) from exc
        status = response.status_code
        if status in (401, 403):
            self.bearer.forget()
            message = (
                f"SignalR endpoint {label} refused the Entra token of {self.bearer.who} "
                f"({status}) at {url}"
            )
            logger.error("%s; %s", message, _ROLE_HINT.format(who=self.bearer.who))
            raise EntraAuthError(message, endpoint=label, status_code=status)
        if status != 200:
            message = f"SignalR endpoint {label} answered {status} at {url}"
            logger.warning("%s; retrying in %.0f s", message, self.retry_interval)
            raise EntraAuthError(message, endpoint=label, status_code=status)
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        key_id = body.get("KeyId") if isinstance(body, dict) else None
        access_key = body.get("AccessKey") if isinstance(body, dict) else None
        if not isinstance(key_id, str) or not key_id or not isinstance(access_key, str):
            message = f"SignalR endpoint {label} answered {url} without a KeyId and AccessKey"
            logger.error(message)
            raise EntraAuthError(message, endpoint=label, status_code=status)
        if not access_key:
            message = f"SignalR endpoint {label} answered {url} with an empty AccessKey"
            logger.error(message)
            raise EntraAuthError(message, endpoint=label, status_code=status)
        return TemporaryAccessKey(key_id, access_key, self._clock())

    async def run(self) -> None:
        """Fetch now, then every ``refresh_interval`` (``retry_interval`` while failing)."""
        while True:
            try:
                await self.refresh()
                delay = self.refresh_interval
            except EntraAuthError:
                delay = self.retry_interval
            except Exception as exc:  # never let the loop die: no key would ever come again
                self._failure = f"{type(exc).__name__}: {_first_line(exc)}"
                logger.exception(
                    "Fetching the signing key of SignalR endpoint %s failed", self.endpoint.label
                )
                delay = self.retry_interval
            await asyncio.sleep(delay)

    def start(self) -> None:
        """Run :meth:`run` as a background task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(
                self.run(), name=f"signalr-access-key:{self.endpoint.label}"
            )

    async def aclose(self) -> None:
        """Stop the background task."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def mint_keyless_client_token(
    endpoint: ServiceEndpoint,
    key: TemporaryAccessKey,
    hub: str,
    *,
    user_id: str | None = None,
    claims: Iterable[tuple[str, Any]] = (),
    lifetime: timedelta = DEFAULT_LIFETIME,
    now: float | None = None,
) -> str:
    """A negotiate ``accessToken`` for a keyless endpoint: HS256 with the temporary key,
    header ``kid`` = its ``KeyId``, the same claims and audience as a key-signed one.

    Raises:
        TokenTooLargeError: too many or too long claims.
    """
    return mint_token(
        key.access_key,
        endpoint.client_audience(hub),
        lifetime=lifetime,
        claims=build_client_claims(user_id, claims),
        now=now,
        kid=key.key_id,
    )


class EntraAuth:
    """Every keyless endpoint's credential, bearer and key manager, for one process.

    Endpoints with an access key are ignored, so a mixed configuration works: ask
    :meth:`handles` first. Credentials are shared by endpoints with the same identity.

    Args:
        endpoints: every configured endpoint.
        client: the process's HTTP client (not closed here).
        credential_factory: makes a credential for an identity (tests, other clouds).
        refresh_interval, retry_interval, max_age: see :class:`AccessKeyManager`.
    """

    def __init__(
        self,
        endpoints: Sequence[ServiceEndpoint],
        client: httpx.AsyncClient,
        *,
        credential_factory: Callable[[EntraIdentity], AsyncTokenCredential] = create_credential,
        refresh_interval: float = REFRESH_INTERVAL,
        retry_interval: float = RETRY_INTERVAL,
        max_age: float = MAX_KEY_AGE,
    ) -> None:
        self._credentials: dict[EntraIdentity, AsyncTokenCredential] = {}
        self._managers: dict[ServiceEndpoint, AccessKeyManager] = {}
        # A credential opens no connection before its first token: one made before a
        # later factory call fails needs no closing.
        for endpoint in endpoints:
            identity = endpoint.identity
            if identity is None or endpoint in self._managers:
                continue
            credential = self._credentials.get(identity)
            if credential is None:
                credential = credential_factory(identity)
                self._credentials[identity] = credential
            self._managers[endpoint] = AccessKeyManager(
                EntraBearer(endpoint, credential),
                client,
                refresh_interval=refresh_interval,
                retry_interval=retry_interval,
                max_age=max_age,
            )

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, endpoints: Sequence[ServiceEndpoint], client: httpx.AsyncClient, **options: Any
    ) -> AsyncIterator[EntraAuth]:
        """Create, start, and on exit stop and close everything."""
        auth = cls(endpoints, client, **options)
        try:
            auth.start()
            yield auth
        finally:
            await auth.aclose()

    @property
    def managers(self) -> tuple[AccessKeyManager, ...]:
        """The key manager of each keyless endpoint."""
        return tuple(self._managers.values())

    def handles(self, endpoint: ServiceEndpoint) -> bool:
        """True when ``endpoint`` is keyless (and so handled here)."""
        return endpoint in self._managers

    def manager(self, endpoint: ServiceEndpoint) -> AccessKeyManager:
        """The key manager of a keyless endpoint (``KeyError`` for a keyed one)."""
        return self._managers[endpoint]

    async def bearer(self, endpoint: ServiceEndpoint) -> str:
        """The Entra token to send as REST ``Authorization: Bearer`` to ``endpoint``.

        Raises:
            EntraAuthError: no token could be had.
        """
        return await self._managers[endpoint].bearer.token()

    def problems(self) -> list[str]:
        """Why keyless endpoints can't sign client tokens now (empty when all can)."""
        found: list[str] = []
        for manager in self._managers.values():
            try:
                manager.current()
            except AccessKeyUnavailableError as exc:
                found.append(exc.message)
        return found

    def start(self) -> None:
        """Start every key manager."""
        for manager in self._managers.values():
            manager.start()

    async def aclose(self) -> None:
        """Stop the key managers and close every credential."""
        for manager in self._managers.values():
            await manager.aclose()
        credentials, self._credentials = list(self._credentials.values()), {}
        for credential in credentials:
            with contextlib.suppress(Exception):
                await credential.close()
