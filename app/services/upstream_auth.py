"""Validate the Microsoft Entra ID bearer token SignalR Service sends upstream.

With the upstream setting ``"auth": {"type": "ManagedIdentity", "managedIdentity":
{"resource": R}}`` the service calls the webhook with ``Authorization: Bearer <token>``, a
token its managed identity got from Entra for resource ``R``. Without access keys this is
how the webhook knows the caller is the service (the Functions extension turns upstream
validation off when keyless; we don't).

:class:`EntraTokenValidator` accepts a token only when

* it is an RS256 JWT signed by a key of the tenant's published JWKS (``kid`` looked up in
  ``{authority}/{tenant}/v2.0/.well-known/openid-configuration`` → ``jwks_uri``, fetched
  with the process's httpx client, parsed with PyJWT's :class:`jwt.PyJWKSet`, cached, and
  fetched again when a token names an unknown ``kid`` — at most once per
  ``min_refresh_interval`` — or when the keys are a day old);
* ``aud`` is the configured audience (a trailing ``/`` is ignored);
* ``iss`` is ``{authority}/{tenant}/v2.0``, or, for the default authority
  ``https://login.microsoftonline.com``, also the v1 issuer ``https://sts.windows.net/{tenant}/``;
* it has not expired (``exp`` required, ``nbf`` honoured, ``leeway`` seconds of clock skew).

Failures raise :class:`UpstreamAuthError` (401 at the edge) saying what was wrong, never the
token; keys that cannot be fetched raise :class:`UpstreamKeysUnavailableError` (503: the
request may be fine, we can't tell).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from signalr_protocol.errors import SignalRError

__all__ = [
    "DEFAULT_AUTHORITY",
    "EntraTokenValidator",
    "UpstreamAuthError",
    "UpstreamKeysUnavailableError",
]

DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
"""Microsoft Entra ID's public-cloud authority (``SIGNALR_UPSTREAM_AUTHORITY``'s default)."""

_KEYS_MAX_AGE = 24 * 3600.0


class UpstreamAuthError(SignalRError):
    """The upstream request's Entra bearer token is missing or did not validate (401)."""

    status_code = 401


class UpstreamKeysUnavailableError(UpstreamAuthError):
    """The tenant's signing keys could not be fetched, so no token can be checked (503)."""

    status_code = 503


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


class EntraTokenValidator:
    """Checks upstream ``Authorization: Bearer`` tokens against one tenant's keys.

    Args:
        audience: the expected ``aud`` (``SIGNALR_UPSTREAM_AUDIENCE``).
        tenant_id: the tenant that issues the tokens (``SIGNALR_UPSTREAM_TENANT_ID``).
        client: the process's HTTP client (not closed here).
        authority: ``SIGNALR_UPSTREAM_AUTHORITY``, default ``https://login.microsoftonline.com``.
        leeway: seconds of clock skew tolerated on ``exp`` / ``nbf`` / ``iat``.
        min_refresh_interval: at most one key fetch per this many seconds, whatever
            ``kid`` callers send.
        clock: monotonic seconds (tests).
    """

    def __init__(
        self,
        *,
        audience: str,
        tenant_id: str,
        client: httpx.AsyncClient,
        authority: str = DEFAULT_AUTHORITY,
        leeway: float = 60.0,
        min_refresh_interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not audience.strip() or not tenant_id.strip():
            raise ValueError("An upstream audience and tenant id are both required.")
        self.audience = audience.strip()
        self.tenant_id = tenant_id.strip()
        self.authority = authority.strip().rstrip("/")
        base = self.audience.rstrip("/")
        self.audiences = (base, base + "/")
        issuers = [f"{self.authority}/{self.tenant_id}/v2.0"]
        if self.authority.lower() == DEFAULT_AUTHORITY:
            issuers.append(f"https://sts.windows.net/{self.tenant_id}/")
        self.issuers = tuple(issuers)
        self.metadata_url = (
            f"{self.authority}/{self.tenant_id}/v2.0/.well-known/openid-configuration"
        )
        self.leeway = leeway
        self.min_refresh_interval = min_refresh_interval
        self._client = client
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._failure: str | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many times the keys were fetched (diagnostics and tests)."""

    async def validate_header(self, authorization: str | None) -> dict[str, Any]:
        """Validate an ``Authorization`` header value; return the token's claims.

        Raises:
            UpstreamAuthError: no ``Bearer`` token, or it did not validate.
            UpstreamKeysUnavailableError: the tenant's keys could not be fetched.
        """
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UpstreamAuthError(
                "The upstream request has no 'Authorization: Bearer' token: set the upstream's "
                f"auth to ManagedIdentity with resource {self.audience!r}."
            )
        return await self.validate(token.strip())

    async def validate(self, token: str) -> dict[str, Any]:
        """Validate a compact JWT; return its claims.

        Raises:
            UpstreamAuthError: not a JWT, not RS256, unknown key, bad signature, wrong
                audience or issuer, expired or not yet valid.
            UpstreamKeysUnavailableError: the tenant's keys could not be fetched.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise UpstreamAuthError(f"The upstream bearer is not a JWT ({_short(exc)}).") from exc
        if header.get("alg") != "RS256":
            raise UpstreamAuthError(
                f"The upstream bearer uses algorithm {header.get('alg')!r}; Entra tokens are RS256."
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise UpstreamAuthError("The upstream bearer has no 'kid' header.")
        key = await self._key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=["RS256"],
                audience=self.audiences,
                issuer=self.issuers,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise UpstreamAuthError("The upstream bearer has expired.") from exc
        except jwt.ImmatureSignatureError as exc:
            raise UpstreamAuthError("The upstream bearer is not valid yet (nbf/iat).") from exc
        except jwt.InvalidAudienceError as exc:
            raise UpstreamAuthError(
                f"The upstream bearer is not for audience {self.audience!r}: set the "
                "upstream's ManagedIdentity resource to SIGNALR_UPSTREAM_AUDIENCE."
            ) from exc
        except jwt.InvalidIssuerError as exc:
            raise UpstreamAuthError(
                f"The upstream bearer was not issued by tenant {self.tenant_id} under "
                f"{self.authority} (expected issuer {' or '.join(self.issuers)})."
            ) from exc
        except jwt.InvalidSignatureError as exc:
            raise UpstreamAuthError("The upstream bearer's signature does not verify.") from exc
        except jwt.InvalidTokenError as exc:
            raise UpstreamAuthError(f"The upstream bearer is invalid: {_short(exc)}.") from exc
        return claims

    async def _key(self, kid: str) -> jwt.PyJWK:
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at > _KEYS_MAX_AGE
        if kid in self._keys and not stale:
            return self._keys[kid]
        async with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at > _KEYS_MAX_AGE
            if kid not in self._keys or stale:
                recent = (
                    self._attempted_at is not None
                    and now - self._attempted_at < self.min_refresh_interval
                )
                if not recent:
                    await self._refresh()
                elif not self._keys and self._failure is not None:
                    raise UpstreamKeysUnavailableError(self._failure)
            found = self._keys.get(kid)
        if found is None:
            raise UpstreamAuthError(
                f"The upstream bearer is signed with a key (kid {kid!r}) tenant "
                f"{self.tenant_id} does not publish."
            )
        return found

    async def _refresh(self) -> None:
        self._attempted_at = self._clock()
        self.fetches += 1
        try:
            metadata = await self._get_json(self.metadata_url)
            jwks_uri = metadata.get("jwks_uri") if isinstance(metadata, dict) else None
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
                raise ValueError(f"{self.metadata_url} names no jwks_uri")
            data = await self._get_json(jwks_uri)
            if not isinstance(data, dict):
                raise ValueError(f"{jwks_uri} is not a JWKS")
            keys = jwt.PyJWKSet.from_dict(data).keys
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
            self._failure = (
                f"The signing keys of tenant {self.tenant_id} could not be fetched from "
                f"{self.metadata_url}: {_short(exc)}"
            )
            if self._keys:
                return  # keep the keys we have; an unknown kid is refused by the caller
            raise UpstreamKeysUnavailableError(self._failure) from exc
        self._keys = {key.key_id: key for key in keys if key.key_id}
        self._fetched_at = self._attempted_at
        self._failure = None

    async def _get_json(self, url: str) -> Any:
        response = await self._client.get(url, headers={"Accept": "application/json"})
        if response.status_code != 200:
            raise ValueError(f"{url} answered {response.status_code}")
        return response.json()
