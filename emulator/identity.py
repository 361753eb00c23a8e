"""The emulator's local Microsoft Entra ID, and the temporary keys of keyless mode.

So a keyless setup runs on a laptop with no Azure, the emulator plays Entra ID too:

* **Tokens** (:class:`LocalEntraId`): RS256 JWTs signed with an RSA key made at start, with
  ``iss`` ``{public base}/identity/{tenant}/v2.0``, ``aud`` = the resource asked for,
  ``tid``, ``oid``, ``sub``, ``appid`` (and ``azp``), ``iat``, ``nbf`` and ``exp`` one hour
  later.
* **A managed-identity endpoint** speaking the App Service protocol (api-version
  ``2019-08-01``), so ``azure-identity``'s ``ManagedIdentityCredential`` works with
  ``IDENTITY_ENDPOINT={base}/identity/msi/token`` and ``IDENTITY_HEADER``:
  ``GET /identity/msi/token?resource=R&api-version=2019-08-01`` with header
  ``X-IDENTITY-HEADER`` answers ``{"access_token", "expires_on", "resource",
  "token_type": "Bearer", "client_id"}`` (``expires_on`` as a string of epoch seconds, as
  App Service sends it and azure-identity's ``ManagedIdentityClient`` parses it). A
  ``client_id`` query parameter (a user-assigned identity) is echoed as ``client_id`` and
  ``appid``. A wrong or missing header answers 401.
* **OIDC discovery** ``GET /identity/{tenant}/v2.0/.well-known/openid-configuration`` (with
  ``issuer`` and ``jwks_uri``) and the JWKS ``GET /identity/{tenant}/discovery/v2.0/keys``,
  the paths Entra uses, so a backend validates upstream bearers with
  ``SIGNALR_UPSTREAM_AUTHORITY={base}/identity``.
* **The service side** (:meth:`LocalEntraId.verify_service_token`): the emulator's own Entra
  tokens with ``aud`` ``https://signalr.azure.com`` (with or without the trailing ``/``)
  are accepted on the REST API and on ``/api/v1/auth/accessKey``, which hands out a
  :class:`TemporaryKeys` key; client tokens signed with the current or the previous
  temporary key (looked up by ``kid``) are accepted; keys rotate every ``rotation`` seconds.

:func:`handle_identity_request` serves the ``/identity/`` routes as a raw ASGI handler,
like :func:`emulator.rest.handle_rest_request`. Nothing here logs a token or a key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from signalr_protocol.errors import InvalidTokenError
from signalr_protocol.tokens import verify_token

from .errors import AuthenticationError
from .http import Receive, Request, Scope, Send, json_response

__all__ = [
    "API_VERSION",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_IDENTITY_HEADER",
    "DEFAULT_TENANT_ID",
    "SIGNALR_RESOURCE",
    "TOKEN_LIFETIME",
    "LocalEntraId",
    "TemporaryKey",
    "TemporaryKeys",
    "handle_identity_request",
    "is_entra_token",
]

DEFAULT_TENANT_ID = "00000000-0000-0000-0000-000000000000"
"""``EMULATOR_TENANT_ID``'s default."""

DEFAULT_IDENTITY_HEADER = "local-identity-header"
"""``EMULATOR_IDENTITY_HEADER``'s default: what ``X-IDENTITY-HEADER`` must carry."""

DEFAULT_CLIENT_ID = "11111111-1111-1111-1111-111111111111"
"""Client id of the emulator's system-assigned managed identity."""

SIGNALR_RESOURCE = "https://signalr.azure.com"
"""The resource (audience) of Entra tokens for SignalR Service."""

API_VERSION = "2019-08-01"
"""The App Service managed-identity protocol version served."""

TOKEN_LIFETIME = 3600
"""Seconds an emulator Entra token is valid."""

_VERIFIED_CACHE_SIZE = 1024
_RENEW_MARGIN = 300
_IDENTITY_NAMESPACE = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")


def is_entra_token(token: str) -> bool:
    """True when ``token`` looks like an Entra token (RS256), not an access-key one (HS256).

    Only the unverified header is read: a caller uses it to pick which check to run.
    """
    try:
        return jwt.get_unverified_header(token).get("alg") == "RS256"
    except jwt.InvalidTokenError:
        return False


@dataclass(slots=True)
class _SigningKey:
    kid: str
    private: rsa.RSAPrivateKey = field(repr=False)
    jwk: dict[str, Any]


def _new_signing_key() -> _SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, Any] = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    # The kid is the key's own thumbprint (RFC 7638 members, sorted, no blanks).
    members = f'{{"e":"{jwk["e"]}","kty":"RSA","n":"{jwk["n"]}"}}'
    digest = hashlib.sha256(members.encode("ascii")).digest()
    kid = base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
    jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return _SigningKey(kid, private, jwk)


class LocalEntraId:
    """A tiny Entra ID: one tenant, RS256 tokens, managed identity, discovery and JWKS.

    Args:
        public_base: ``scheme://host:port`` the emulator is reached at (``EMULATOR_PUBLIC_URL``
            or the bound address); may be set later with :attr:`public_base`, before the
            first token (the port is known only once bound).
        tenant_id: ``EMULATOR_TENANT_ID``.
        identity_header: ``EMULATOR_IDENTITY_HEADER``, the managed-identity secret.
        client_id: the system-assigned identity's client id.
        clock: wall-clock seconds (tests).
    """

    def __init__(
        self,
        public_base: str = "",
        *,
        tenant_id: str = DEFAULT_TENANT_ID,
        identity_header: str = DEFAULT_IDENTITY_HEADER,
        client_id: str = DEFAULT_CLIENT_ID,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # Upstream bearers per resource (token, renew at), and service tokens whose
        # signature verified (token -> claims): made and checked once, not per call.
        self._upstream_tokens: dict[str, tuple[str, float]] = {}
        self._verified: dict[str, dict[str, Any]] = {}
        self.public_base = public_base
        self.tenant_id = tenant_id
        self.client_id = client_id
        self._identity_header = identity_header.encode("utf-8")
        self._clock = clock
        self._keys = [_new_signing_key()]

    @property
    def public_base(self) -> str:
        """``scheme://host:port`` of the emulator, no trailing ``/``."""
        return self._public_base

    @public_base.setter
    def public_base(self, value: str) -> None:
        self._public_base = value.rstrip("/")
        self._upstream_tokens.clear()  # their issuer names the old base

    @property
    def authority(self) -> str:
        """What a backend sets ``SIGNALR_UPSTREAM_AUTHORITY`` to: ``{public base}/identity``."""
        return f"{self._public_base}/identity"

    @property
    def issuer(self) -> str:
        """``iss`` of every token: ``{public base}/identity/{tenant}/v2.0``."""
        return f"{self.authority}/{self.tenant_id}/v2.0"

    @property
    def msi_endpoint(self) -> str:
        """What ``IDENTITY_ENDPOINT`` is set to for ``azure-identity``."""
        return f"{self.authority}/msi/token"

    @property
    def jwks_uri(self) -> str:
        """Where the signing keys are published."""
        return f"{self.authority}/{self.tenant_id}/discovery/v2.0/keys"

    def rotate_signing_key(self) -> str:
        """Sign with a new RSA key from now on; the old one stays published. Returns its kid."""
        self._keys.insert(0, _new_signing_key())
        del self._keys[2:]
        self._upstream_tokens.clear()
        self._verified.clear()
        return self._keys[0].kid

    def jwks(self) -> dict[str, Any]:
        """The JWKS document: the public half of every published key."""
        return {"keys": [dict(key.jwk) for key in self._keys]}

    def openid_configuration(self) -> dict[str, Any]:
        """The OIDC discovery document of the tenant."""
        return {
            "issuer": self.issuer,
            "jwks_uri": self.jwks_uri,
            "token_endpoint": f"{self.authority}/{self.tenant_id}/oauth2/v2.0/token",
            "authorization_endpoint": f"{self.authority}/{self.tenant_id}/oauth2/v2.0/authorize",
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            "tenant_region_scope": "local",
        }

    def object_id(self, client_id: str) -> str:
        """The (stable) object id of the identity with ``client_id``."""
        return str(uuid.uuid5(_IDENTITY_NAMESPACE, f"{self.tenant_id}/{client_id}"))

    def issue_token(
        self,
        resource: str,
        *,
        client_id: str | None = None,
        lifetime: int = TOKEN_LIFETIME,
        now: float | None = None,
    ) -> tuple[str, int]:
        """A token for ``resource`` (its ``aud``) for the identity ``client_id``.

        Returns:
            ``(token, expires_on)`` with ``expires_on`` in epoch seconds.
        """
        issued = int(self._clock() if now is None else now)
        app = client_id or self.client_id
        oid = self.object_id(app)
        claims = {
            "aud": resource,
            "iss": self.issuer,
            "iat": issued,
            "nbf": issued,
            "exp": issued + lifetime,
            "tid": self.tenant_id,
            "oid": oid,
            "sub": oid,
            "appid": app,
            "azp": app,
            "idtyp": "app",
            "ver": "2.0",
        }
        return self.sign(claims), issued + lifetime

    def sign(self, claims: Mapping[str, Any]) -> str:
        """Sign arbitrary ``claims`` RS256 with the current key (header ``kid``)."""
        key = self._keys[0]
        return jwt.encode(dict(claims), key.private, algorithm="RS256", headers={"kid": key.kid})

    def verify(
        self, token: str, audiences: Sequence[str], *, leeway: float = 0.0
    ) -> dict[str, Any]:
        """Validate one of this emulator's Entra tokens for one of ``audiences``.

        A trailing ``/`` on either side is ignored.

        Raises:
            AuthenticationError: not RS256, unknown ``kid``, bad signature, wrong issuer or
                audience, expired; the message says which, never the token.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError(f"The Entra token is not a JWT ({exc}).") from exc
        kid = header.get("kid")
        key = next((k for k in self._keys if k.kid == kid), None)
        if header.get("alg") != "RS256" or key is None:
            raise AuthenticationError(
                "The Entra token was not issued by this emulator's identity endpoint "
                f"({self.issuer})."
            )
        wanted = {a.rstrip("/") for a in audiences} | {a.rstrip("/") + "/" for a in audiences}
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.private.public_key(),
                algorithms=["RS256"],
                audience=sorted(wanted),
                issuer=self.issuer,
                leeway=leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("The Entra token has expired.") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthenticationError(
                f"The Entra token's audience is not {' or '.join(sorted(wanted))}."
            ) from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthenticationError(f"The Entra token's issuer is not {self.issuer}.") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError(f"The Entra token is invalid: {exc}.") from exc
        return claims

    def verify_service_token(self, token: str) -> dict[str, Any]:
        """Validate an Entra token sent to the service side (REST API, ``accessKey``).

        Raises:
            AuthenticationError: as :meth:`verify`, for audience ``https://signalr.azure.com``.
        """
        claims = self._verified.get(token)
        if claims is not None:
            if claims["exp"] > self._clock():
                return claims
            del self._verified[token]
        claims = self.verify(token, (SIGNALR_RESOURCE,))
        if len(self._verified) >= _VERIFIED_CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    def upstream_bearer(self, resource: str) -> str:
        """The token upstream calls carry for ``resource`` (the template's ManagedIdentity
        resource), made once and renewed five minutes before it expires."""
        cached = self._upstream_tokens.get(resource)
        now = self._clock()
        if cached is not None and now < cached[1]:
            return cached[0]
        token, expires_on = self.issue_token(resource, now=now)
        if len(self._upstream_tokens) >= _VERIFIED_CACHE_SIZE:
            self._upstream_tokens.clear()
        self._upstream_tokens[resource] = (token, expires_on - _RENEW_MARGIN)
        return token

    def check_identity_header(self, value: str | None) -> bool:
        """Whether ``X-IDENTITY-HEADER`` carries the configured secret (constant time)."""
        return value is not None and hmac.compare_digest(
            value.encode("utf-8"), self._identity_header
        )

    def msi_response(self, resource: str, client_id: str | None = None) -> dict[str, str]:
        """The App Service managed-identity answer for ``resource``."""
        token, expires_on = self.issue_token(resource, client_id=client_id)
        return {
            "access_token": token,
            "expires_on": str(expires_on),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id or self.client_id,
        }


@dataclass(frozen=True, slots=True)
class TemporaryKey:
    """A temporary access key handed out to keyless callers.

    Attributes:
        key_id: ``KeyId`` (client tokens carry it as ``kid``).
        access_key: ``AccessKey``; never shown by ``repr``.
    """

    key_id: str
    access_key: str = field(repr=False)

    def as_json(self) -> dict[str, str]:
        """``{"KeyId": ..., "AccessKey": ...}``, the ``/api/v1/auth/accessKey`` answer."""
        return {"KeyId": self.key_id, "AccessKey": self.access_key}


class TemporaryKeys:
    """The current and previous temporary access keys, rotating every ``rotation`` seconds.

    Rotation happens on use (no background task): after one period the current key
    becomes the previous one; after two or more periods with no use, neither survives.

    Args:
        rotation: seconds between two keys (``EMULATOR_TEMP_KEY_ROTATION``, default 3600).
        clock: monotonic seconds (tests).
    """

    def __init__(
        self, rotation: float = 3600.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rotation <= 0:
            raise ValueError("rotation must be positive")
        self.rotation = rotation
        self._clock = clock
        self._start = clock()
        self._generation = 0
        self._current = self._new()
        self._previous: TemporaryKey | None = None

    @staticmethod
    def _new() -> TemporaryKey:
        return TemporaryKey(
            key_id=uuid.uuid4().hex, access_key=base64.b64encode(secrets.token_bytes(32)).decode()
        )

    def _advance(self) -> None:
        generation = int((self._clock() - self._start) // self.rotation)
        if generation == self._generation:
            return
        self._previous = self._current if generation == self._generation + 1 else None
        self._current = self._new()
        self._generation = generation

    def current(self) -> TemporaryKey:
        """The key to hand out now."""
        self._advance()
        return self._current

    def lookup(self, key_id: str | None) -> TemporaryKey | None:
        """The current or previous key with ``KeyId`` ``key_id``, else ``None``."""
        self._advance()
        if key_id is None:
            return None
        for key in (self._current, self._previous):
            if key is not None and hmac.compare_digest(key.key_id, key_id):
                return key
        return None

    def verify(self, token: str) -> dict[str, Any]:
        """Validate a client/REST token signed with a temporary key; return its claims.

        The audience is not checked here (the caller checks it against the request, as for
        access-key tokens).

        Raises:
            AuthenticationError: no ``kid``, an unknown or rotated-out ``kid``, a bad
                signature, or expired.
        """
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError(f"The access token is not a JWT ({exc}).") from exc
        key = self.lookup(kid if isinstance(kid, str) else None)
        if key is None:
            raise AuthenticationError(
                "The access token is not signed with a current temporary access key (unknown "
                "or rotated-out kid): local auth is disabled, fetch a key from "
                "/api/v1/auth/accessKey with an Entra token."
            )
        try:
            return verify_token(token, [key.access_key], audience=None)
        except InvalidTokenError as exc:
            raise AuthenticationError(str(exc)) from exc


# -- ASGI routes ------------------------------------------------------------------------------


async def _oauth_error(send: Send, status: int, error: str, description: str) -> None:
    await json_response(send, status, {"error": error, "error_description": description})


async def handle_identity_request(
    identity: LocalEntraId, scope: Scope, receive: Receive, send: Send
) -> None:
    """Serve ``GET /identity/...``: the managed-identity token, discovery, and JWKS.

    Errors answer OAuth-style JSON ``{"error", "error_description"}``: 400 for a missing
    ``resource`` or another ``api-version``, 401 for a wrong ``X-IDENTITY-HEADER``, 404 for
    another tenant or path, 405 for another method.
    """
    request = Request(scope)
    path = request.path.rstrip("/")
    tenant_prefix = f"/identity/{identity.tenant_id}/"
    known = (
        path == "/identity/msi/token"
        or path == f"{tenant_prefix}v2.0/.well-known/openid-configuration"
        or path == f"{tenant_prefix}discovery/v2.0/keys"
    )
    if not known:
        await _oauth_error(
            send, 404, "not_found", f"No such identity route (tenant is {identity.tenant_id})."
        )
        return
    if request.method not in ("GET", "HEAD"):
        await _oauth_error(send, 405, "invalid_request", "Use GET.")
        return
    if path.endswith("/openid-configuration"):
        await json_response(send, 200, identity.openid_configuration())
        return
    if path.endswith("/keys"):
        await json_response(send, 200, identity.jwks())
        return
    if not identity.check_identity_header(request.headers.get("x-identity-header")):
        await _oauth_error(
            send,
            401,
            "unauthorized",
            "Missing or wrong X-IDENTITY-HEADER: set IDENTITY_HEADER to EMULATOR_IDENTITY_HEADER.",
        )
        return
    version = request.param("api-version")
    if version != API_VERSION:
        await _oauth_error(
            send, 400, "invalid_request", f"api-version must be {API_VERSION}, got {version!r}."
        )
        return
    resource = (request.param("resource") or "").strip()
    if not resource:
        await _oauth_error(send, 400, "invalid_request", "The resource parameter is required.")
        return
    client_id = (request.param("client_id") or "").strip() or None
    await json_response(send, 200, identity.msi_response(resource, client_id))
