"""Access tokens for Azure SignalR Service (docs/protocol.md §2.3, §5.1).

Two kinds of HS256 JWT are minted with the UTF-8 bytes of the access key:

* **client tokens** (:func:`mint_client_token`), handed out by negotiate, built as the
  Management SDK builds them (Azure/azure-signalr ``Negotiation/NegotiateProcessor.cs``,
  ``Utilities/ClaimsUtility.cs``, ``EndpointProvider/DefaultServiceEndpointGenerator.cs``):
  ``aud`` is one string, ``{scheme}://{host}/client/?hub={hub}`` with no port even when the
  connection string has a ``Port``; the user id is ``asrs.s.uid`` only (an extra ``nameid``
  would reach the webhook as an ordinary claim); custom claims whose names collide with
  registered JWT claims (or start with ``asrs.s.``) are renamed ``asrs.u.<name>``; and
  repeated claim types become JSON arrays (so several ``role`` claims survive);
* **REST tokens** (:func:`mint_token` with :func:`rest_audience`), sent as bearer to the
  data-plane REST API.

:func:`verify_token` is the emulator's side: signature with any configured key, ``exp``
required, ``nbf`` honoured, and a tolerant audience comparison (see
:func:`audience_matches`).
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import jwt

from signalr_protocol.errors import InvalidTokenError, TokenError, TokenTooLargeError

from .connection_string import ServiceEndpoint

__all__ = [
    "DEFAULT_LIFETIME",
    "MAX_TOKEN_LENGTH",
    "NAME_IDENTIFIER_URI",
    "audience_matches",
    "build_client_claims",
    "key_id",
    "mint_client_token",
    "mint_token",
    "rest_audience",
    "user_id_from_claims",
    "verify_token",
]

DEFAULT_LIFETIME = timedelta(hours=1)
"""Default token lifetime, as the Management SDK and the Functions extension use."""

MAX_TOKEN_LENGTH = 4096
"""The service refuses longer tokens (413/414); we refuse to mint them."""

NAME_IDENTIFIER_URI = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier"

# Claims the JWT layer owns: a user-supplied claim of one of these names is renamed
# ``asrs.u.<name>`` so it can't override the token's own (ClaimsUtility in the SDK).
_RESERVED_CLAIMS = frozenset(
    {"aud", "exp", "iat", "nbf", "iss", "actort", "acr", "azp", "c_hash", "jti", "nonce"}
)
_USER_ID_CLAIM = "asrs.s.uid"
_ALGORITHMS = ["HS256", "HS512"]


def _add_claim(payload: dict[str, Any], name: str, value: Any) -> None:
    """Add a claim, turning a repeated claim type into a JSON array."""
    if name not in payload:
        payload[name] = value
        return
    existing = payload[name]
    if isinstance(existing, list):
        existing.append(value)
    else:
        payload[name] = [existing, value]


def build_client_claims(
    user_id: str | None, claims: Iterable[tuple[str, Any]] = ()
) -> dict[str, Any]:
    """Build the non-registered claims of a client token.

    Args:
        user_id: the user the connection belongs to, or ``None`` for anonymous.
        claims: ``(type, value)`` pairs; a type may repeat (several roles).

    Returns:
        A payload dict without ``aud``/``exp``/``nbf``/``iat``.
    """
    payload: dict[str, Any] = {}
    if user_id is not None:
        payload[_USER_ID_CLAIM] = user_id
    seen_sub = False
    for name, value in claims:
        if not isinstance(name, str) or not name:
            raise TokenError("Claim types must be non-empty strings.")
        # ``asrs.s.uid`` (the user id) is a system claim: a custom one can't impersonate.
        if name in _RESERVED_CLAIMS or name.startswith("asrs.s."):
            name = f"asrs.u.{name}"
        elif name == "sub":
            if seen_sub:
                name = "asrs.u.sub"
            seen_sub = True
        _add_claim(payload, name, value)
    return payload


@functools.lru_cache(maxsize=64)
def key_id(key: str) -> str:
    """A short, stable id for a key (the ``kid`` header), so a verifier with two keys can
    tell which one signed. It is a truncated SHA-256: it reveals nothing usable of the key.
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def mint_token(
    key: str,
    audience: str | list[str],
    *,
    lifetime: timedelta = DEFAULT_LIFETIME,
    claims: Mapping[str, Any] | None = None,
    kid: str | None = None,
    now: float | None = None,
) -> str:
    """Mint an HS256 JWT signed with the UTF-8 bytes of ``key``.

    Args:
        key: the access key, as written in the connection string.
        audience: the ``aud`` claim (a list for several audiences).
        lifetime: ``exp - iat``; must be positive.
        claims: further claims, written before the registered ones.
        kid: the ``kid`` header; by default :func:`key_id` of ``key``.
        now: the issue time in seconds since the epoch (tests).

    Returns:
        The compact JWT.

    Raises:
        TokenError: the lifetime is not positive.
        TokenTooLargeError: the token is over :data:`MAX_TOKEN_LENGTH` characters.
    """
    seconds = int(lifetime.total_seconds())
    if seconds <= 0:
        raise TokenError("Token lifetime must be at least one second.")
    issued = int(time.time() if now is None else now)
    payload: dict[str, Any] = dict(claims) if claims else {}
    payload["nbf"] = issued
    payload["exp"] = issued + seconds
    payload["iat"] = issued
    payload["aud"] = audience
    headers = {"kid": kid if kid is not None else key_id(key)}
    token = jwt.encode(payload, key.encode("utf-8"), algorithm="HS256", headers=headers)
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenTooLargeError(
            f"The access token would be {len(token)} characters; SignalR Service accepts at "
            f"most {MAX_TOKEN_LENGTH}. Send fewer or shorter claims."
        )
    return token


def mint_client_token(
    endpoint: ServiceEndpoint,
    hub: str,
    *,
    user_id: str | None = None,
    claims: Iterable[tuple[str, Any]] = (),
    lifetime: timedelta = DEFAULT_LIFETIME,
    now: float | None = None,
) -> str:
    """Mint the ``accessToken`` of a negotiate answer for ``hub``.

    Args:
        endpoint: the service endpoint (its key signs, its host makes the audience).
        hub: the hub name; lower-cased in the audience.
        user_id: goes into ``asrs.s.uid`` (only there, as the SDK does).
        claims: custom ``(type, value)`` claims; repeated types become arrays.
        lifetime: token lifetime (default one hour).
        now: issue time (tests).

    Raises:
        UnsupportedAuthTypeError: the endpoint has no access key.
        TokenTooLargeError: too many or too long claims.
    """
    return mint_token(
        endpoint.require_access_key(),
        # One port-less string, also with a ``Port`` (the SDK's ``GetClientAudience``).
        endpoint.client_audience(hub),
        lifetime=lifetime,
        claims=build_client_claims(user_id, claims),
        now=now,
    )


def rest_audience(endpoint: ServiceEndpoint, path_and_query: str) -> str:
    """The ``aud`` Microsoft's SDK puts in a REST token: port-less base + path + query.

    Args:
        endpoint: the service endpoint.
        path_and_query: e.g. ``/api/hubs/chat/:send?api-version=2022-06-01`` (leading
            ``/`` optional), without the ``excluded`` parameters.
    """
    return endpoint.audience_base + path_and_query.lstrip("/")


def _normalised(url: str) -> tuple[str, str, str, str | None]:
    parts = urlsplit(url.strip())
    path = unquote(parts.path).rstrip("/").lower()
    hub = None
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name.lower() == "hub":
            hub = value.lower()
    return parts.scheme.lower(), (parts.hostname or "").lower(), path, hub


def audience_matches(token_audience: str, expected: str) -> bool:
    """Compare a token's ``aud`` with the URL it is used for, tolerantly.

    Scheme and host compare case-insensitively, the port and a trailing ``/`` are
    ignored, paths compare percent-decoded and case-insensitively (hub names are
    lower-cased by SDKs), and the query is ignored except ``hub``, which must match when
    both carry it. This accepts the .NET SDK's ``?api-version=`` audiences and the Web
    PubSub SDK's full-URL audiences, and still refuses a token made for another hub,
    host or path.
    """
    got = _normalised(token_audience)
    want = _normalised(expected)
    if got[:3] != want[:3]:
        return False
    return got[3] is None or want[3] is None or got[3] == want[3]


def verify_token(
    token: str,
    keys: Sequence[str],
    *,
    audience: str | None,
    leeway: float = 0.0,
) -> dict[str, Any]:
    """Validate a bearer token the way the service does, and return its claims.

    Args:
        token: the compact JWT.
        keys: every access key that may have signed it (primary and secondary).
        audience: the URL the token is used for; ``None`` skips the audience check.
        leeway: seconds of clock skew tolerated for ``exp`` and ``nbf``.

    Raises:
        InvalidTokenError: with a message that says what was wrong, never the token.
    """
    if not token:
        raise InvalidTokenError("No access token: send 'Authorization: Bearer <token>'.")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise InvalidTokenError(f"The access token is not a JWT ({exc}).") from exc
    if header.get("alg") not in _ALGORITHMS:
        raise InvalidTokenError(
            f"The access token uses algorithm {header.get('alg')!r}; only HS256 and HS512 "
            "are accepted."
        )
    claims: dict[str, Any] | None = None
    last_error: Exception | None = None
    for key in keys:
        try:
            claims = jwt.decode(
                token,
                key.encode("utf-8"),
                algorithms=_ALGORITHMS,
                options={"require": ["exp"], "verify_aud": False},
                leeway=leeway,
            )
            break
        except jwt.InvalidSignatureError as exc:
            last_error = exc
            continue
        except jwt.ExpiredSignatureError as exc:
            raise InvalidTokenError("The access token has expired.") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidTokenError("The access token is not valid yet (nbf).") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidTokenError(f"The access token has no '{exc.claim}' claim.") from exc
        except jwt.InvalidTokenError as exc:
            raise InvalidTokenError(f"The access token is invalid ({exc}).") from exc
    if claims is None:
        raise InvalidTokenError(
            "The access token's signature matches none of the service's access keys."
        ) from last_error
    if audience is not None:
        token_audience = claims.get("aud")
        candidates = token_audience if isinstance(token_audience, list) else [token_audience]
        if not any(isinstance(a, str) and audience_matches(a, audience) for a in candidates):
            raise InvalidTokenError(
                f"The access token's audience {token_audience!r} does not match {audience!r}."
            )
    return claims


def user_id_from_claims(claims: Mapping[str, Any]) -> str | None:
    """The user id of a validated token: ``asrs.s.uid``, ``nameid``, ``sub``, then the
    long NameIdentifier claim URI; ``None`` when none is present."""
    for name in (_USER_ID_CLAIM, "nameid", "sub", NAME_IDENTIFIER_URI):
        value = claims.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, str) and value:
            return value
    return None
