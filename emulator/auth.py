"""Access-token checks of the client endpoint and the REST API (docs/protocol.md §3.3, §5.1).

A token is accepted when its signature matches the primary or secondary access key, it has
not expired (``nbf`` honoured), and its ``aud`` names this emulator: the request URL's path
(``/client/?hub=chat`` or the REST path), on the host the request was sent to, a loopback
name, or one of the configured ``audience_hosts``. Port, scheme, trailing ``/`` and query
(except ``hub``) are ignored, so the .NET SDK's ``?api-version=`` audiences and the Web
PubSub SDK's full-URL audiences both pass.

Keyless (docs/protocol.md §9): with local auth disabled, only tokens signed with a current or
previous temporary key (found by ``kid``, :class:`~emulator.identity.TemporaryKeys`) pass;
an access-key token is refused saying local auth is disabled. Otherwise temporary-key tokens
pass too. The REST API also takes the local Entra ID's own tokens (``aud``
``https://signalr.azure.com``), with no path audience.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import jwt

from signalr_protocol.errors import InvalidTokenError
from signalr_protocol.tokens import verify_token

from .errors import AUDIENCE_INVALID, SIGNING_KEY_NOT_FOUND, AuthenticationError
from .http import Request
from .identity import LocalEntraId, TemporaryKeys, is_entra_token

__all__ = ["LOOPBACK_HOSTS", "authenticate", "claim_pairs", "request_token"]

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")
_CACHE_SIZE = 4096

# Tokens whose signature already verified, per key set: SDKs reuse one REST token for many
# calls, and checking a signature costs more than the rest of a small send. Expiry and
# not-before are checked again on every use.
_verified: dict[tuple[str, tuple[str, ...]], dict[str, Any]] = {}


def _verify(token: str, keys: Sequence[str]) -> dict[str, Any]:
    cache_key = (token, tuple(keys))
    claims = _verified.get(cache_key)
    if claims is not None:
        now = time.time()
        nbf = claims.get("nbf")
        if claims["exp"] > now and (not isinstance(nbf, int | float) or nbf <= now):
            return claims
        del _verified[cache_key]
    claims = verify_token(token, keys, audience=None)
    if isinstance(claims.get("exp"), int | float):
        if len(_verified) >= _CACHE_SIZE:
            _verified.clear()
        _verified[cache_key] = claims
    return claims


def _temporary_key(token: str, temp_keys: TemporaryKeys | None) -> str | None:
    """The temporary key named by the token's ``kid``, if any."""
    if temp_keys is None:
        return None
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.InvalidTokenError:
        return None
    key = temp_keys.lookup(kid) if isinstance(kid, str) else None
    return None if key is None else key.access_key


def _verify_temporary(token: str, temp_keys: TemporaryKeys) -> dict[str, Any]:
    """Verify a token signed with a current or previous temporary key (by ``kid``)."""
    key = _temporary_key(token, temp_keys)
    if key is None:
        raise AuthenticationError(
            "Local auth is disabled on this SignalR Service: tokens signed with the access "
            "key are refused. Sign with a temporary key from /api/v1/auth/accessKey (fetched "
            "with a Microsoft Entra token); an unknown or rotated-out kid is refused too.",
            description=SIGNING_KEY_NOT_FOUND,
        )
    try:
        return _verify(token, (key,))
    except InvalidTokenError as exc:
        raise AuthenticationError(str(exc)) from exc


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _normalised(url: str) -> tuple[str, str, str | None]:
    """(host, path, hub) of a URL as :func:`signalr_protocol.tokens.audience_matches` compares
    them: host lower-cased without port, path percent-decoded, lower-cased, no trailing
    ``/``; scheme and the rest of the query ignored. Cached: a token's ``aud`` and a
    route's path repeat from call to call."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    path = unquote(parts.path).rstrip("/").lower()
    hub = None
    if parts.query:
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            if name.lower() == "hub":
                hub = value.lower()
    return host, path, hub


def request_token(request: Request, *, allow_query: bool) -> str | None:
    """The bearer token of a request: the ``Authorization`` header wins; the
    ``access_token`` query parameter counts only where ``allow_query`` (WebSocket and
    Server-Sent Events requests, which browsers can't give headers)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if allow_query:
        return request.param("access_token") or None
    return None


def authenticate(
    request: Request,
    token: str | None,
    keys: Sequence[str],
    audience_path: str,
    *,
    extra_hosts: Sequence[str] = (),
    temp_keys: TemporaryKeys | None = None,
    keyless: bool = False,
    entra: LocalEntraId | None = None,
) -> dict[str, Any]:
    """Validate ``token`` for a request and return its claims.

    Args:
        request: the request (its host makes the expected audience).
        token: the bearer token, or ``None`` when none was sent.
        keys: the accepted access keys.
        audience_path: the path (and ``?hub=`` query for the client endpoint) the token
            must be made for.
        extra_hosts: further host names accepted in ``aud``.
        temp_keys: the temporary keys; tokens signed with one (by ``kid``) are accepted.
        keyless: local auth is disabled: ``keys`` are not accepted, only ``temp_keys``.
        entra: accept this local Entra ID's tokens for SignalR Service (the REST API).

    Raises:
        AuthenticationError: with what was wrong (never the token).
    """
    if not token:
        raise AuthenticationError(
            "No access token: send 'Authorization: Bearer <token>'"
            " (or the access_token query parameter on WebSocket/SSE requests).",
            token_sent=False,
        )
    if keyless:
        if entra is not None and is_entra_token(token):
            return entra.verify_service_token(token)
        if temp_keys is None:
            raise AuthenticationError("Local auth is disabled: send a Microsoft Entra token.")
        claims = _verify_temporary(token, temp_keys)
    else:
        try:
            claims = _verify(token, keys)
        except InvalidTokenError as exc:
            if entra is not None and is_entra_token(token):
                return entra.verify_service_token(token)
            key = _temporary_key(token, temp_keys)
            if key is None:
                raise AuthenticationError(str(exc)) from exc
            try:
                claims = _verify(token, (key,))
            except InvalidTokenError as again:
                raise AuthenticationError(str(again)) from again
    audience = claims.get("aud")
    _, want_path, want_hub = _normalised("http://h" + audience_path)
    hosts = {request.host.strip("[]"), *(h.strip("[]") for h in LOOPBACK_HOSTS)}
    hosts.update(h.lower() for h in extra_hosts)
    for aud in audience if isinstance(audience, list) else [audience]:
        if not isinstance(aud, str):
            continue
        host, path, hub = _normalised(aud)
        if (
            host.strip("[]") in hosts
            and path == want_path
            and (hub is None or want_hub is None or hub == want_hub)
        ):
            return claims
    expected = f"{request.scheme}://{request.host}{audience_path}"
    raise AuthenticationError(
        f"The access token's audience {audience!r} does not match {expected!r}.",
        description=AUDIENCE_INVALID,
    )


def claim_pairs(claims: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """Flatten claims to ``(type, value)`` strings; arrays become repeated pairs."""
    pairs: list[tuple[str, str]] = []
    for name, value in claims.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            pairs.append((name, item if isinstance(item, str) else str(item)))
    return tuple(pairs)
