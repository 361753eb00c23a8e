"""Who is negotiating: App Service / Static Web Apps authentication headers.

App Service authentication ("Easy Auth") puts the signed-in user in request headers that
outside callers cannot set *through App Service*, but anyone can send them to a process
reached directly. So they are read only when the settings say they are trusted
(``WEBSITE_AUTH_ENABLED=True`` or ``SIGNALR_TRUST_CLIENT_PRINCIPAL=true``).

* ``X-MS-CLIENT-PRINCIPAL-ID`` alone sets the user id;
* ``X-MS-CLIENT-PRINCIPAL-NAME`` becomes a ``unique_name`` claim;
* ``X-MS-CLIENT-PRINCIPAL`` (base64 JSON) adds its claims. Two shapes exist:
  App Service's ``{"auth_typ", "claims": [{"typ", "val"}], "name_typ", "role_typ"}`` and
  Static Web Apps' ``{"identityProvider", "userId", "userDetails", "userRoles"}``. Role
  claims, whatever ``role_typ`` calls them, become ``role``; long .NET claim type URIs are
  shortened as the SignalR SDK does (``nameid``, ``unique_name``, ``email``...). Claims
  that only describe the ID token itself (``aud``, ``iss``, ``exp``...) are dropped: they
  would collide with the access token's own.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.exceptions import PrincipalError
from signalr_protocol.errors import PayloadError
from signalr_protocol.limits import loads_json
from signalr_protocol.upstream import header_text

__all__ = ["Identity", "identity_from_headers", "parse_client_principal"]

_ROLE_URI = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
_SHORT_TYPES = {
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier": "nameid",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name": "unique_name",
    _ROLE_URI: "role",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress": "email",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname": "given_name",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname": "family_name",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": "upn",
    "http://schemas.microsoft.com/identity/claims/objectidentifier": "oid",
    "http://schemas.microsoft.com/identity/claims/tenantid": "tid",
    "roles": "role",
}
# Claims about the ID token, not the user: copying them would only bloat the access token.
_TOKEN_MECHANICS = frozenset(
    {"aud", "iss", "iat", "nbf", "exp", "nonce", "c_hash", "at_hash", "auth_time", "uti", "rh"}
)
_MAX_PRINCIPAL_BYTES = 16 * 1024
_URLSAFE_B64 = re.compile(r"[A-Za-z0-9_-]+={0,2}")


@dataclass(slots=True)
class Identity:
    """The user a negotiate request is for.

    Attributes:
        user_id: the SignalR user id, or ``None`` for an anonymous connection.
        claims: ``(type, value)`` pairs for the access token; types may repeat.
        provider: the identity provider named by the principal, if any.
    """

    user_id: str | None = None
    claims: list[tuple[str, str]] = field(default_factory=list)
    provider: str | None = None


def _decode(header: str) -> Any:
    if len(header) > _MAX_PRINCIPAL_BYTES:
        raise PrincipalError(
            f"X-MS-CLIENT-PRINCIPAL is over {_MAX_PRINCIPAL_BYTES} bytes; refusing to parse it."
        )
    text = header.strip()
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        if not _URLSAFE_B64.fullmatch(text):
            raise PrincipalError("X-MS-CLIENT-PRINCIPAL is not valid base64.") from None
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    try:
        return loads_json(raw)
    except PayloadError as exc:
        # Nesting, number and text limits too (signalr_protocol.limits): a 400, never a 500.
        raise PrincipalError(
            f"X-MS-CLIENT-PRINCIPAL does not decode to usable JSON: {exc.message}"
        ) from None


def _str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise PrincipalError(f"X-MS-CLIENT-PRINCIPAL: {what} must be a string.")
    return value


def parse_client_principal(header: str) -> Identity:
    """Parse a base64 ``X-MS-CLIENT-PRINCIPAL`` of either shape.

    Raises:
        PrincipalError: not base64, not JSON, not an object, or fields of the wrong type.
    """
    data = _decode(header)
    if not isinstance(data, dict):
        raise PrincipalError("X-MS-CLIENT-PRINCIPAL must be a JSON object.")
    identity = Identity()
    if "userId" in data or "userRoles" in data or "identityProvider" in data:
        _parse_static_web_apps(data, identity)
    else:
        _parse_app_service(data, identity)
    return identity


def _parse_static_web_apps(data: Mapping[str, Any], identity: Identity) -> None:
    if data.get("identityProvider") is not None:
        identity.provider = _str(data["identityProvider"], "identityProvider")
    if data.get("userId") is not None:
        identity.user_id = _str(data["userId"], "userId") or None
    if data.get("userDetails") is not None:
        identity.claims.append(("unique_name", _str(data["userDetails"], "userDetails")))
    roles = data.get("userRoles") or []
    if not isinstance(roles, list):
        raise PrincipalError("X-MS-CLIENT-PRINCIPAL: userRoles must be a list of strings.")
    for role in roles:
        identity.claims.append(("role", _str(role, "each of userRoles")))
    _add_claim_list(data.get("claims"), identity, role_type=None)


def _parse_app_service(data: Mapping[str, Any], identity: Identity) -> None:
    if data.get("auth_typ") is not None:
        identity.provider = _str(data["auth_typ"], "auth_typ")
    role_type = data.get("role_typ")
    if role_type is not None:
        role_type = _str(role_type, "role_typ")
    if "claims" not in data:
        raise PrincipalError("X-MS-CLIENT-PRINCIPAL has neither 'claims' nor 'userId'.")
    _add_claim_list(data.get("claims"), identity, role_type=role_type)


def _add_claim_list(claims: Any, identity: Identity, *, role_type: str | None) -> None:
    if claims is None:
        return
    if not isinstance(claims, list):
        raise PrincipalError("X-MS-CLIENT-PRINCIPAL: claims must be a list.")
    for item in claims:
        if not isinstance(item, dict) or "typ" not in item or "val" not in item:
            raise PrincipalError(
                "X-MS-CLIENT-PRINCIPAL: each claim must be an object with 'typ' and 'val'."
            )
        claim_type = _str(item["typ"], "a claim's typ")
        value = item["val"]
        if not isinstance(value, str):
            value = json.dumps(value)
        if claim_type == role_type:
            claim_type = "role"
        claim_type = _SHORT_TYPES.get(claim_type, claim_type)
        if claim_type in _TOKEN_MECHANICS:
            continue
        identity.claims.append((claim_type, value))


def identity_from_headers(headers: Mapping[str, str]) -> Identity:
    """The identity App Service authentication put in trusted request headers.

    Call only when the settings say these headers are trusted.

    Args:
        headers: the request headers (a case-insensitive mapping, e.g. Starlette's); the
            id and name are read as UTF-8 when their bytes are (a name "José" stays "José").

    Raises:
        PrincipalError: a malformed ``X-MS-CLIENT-PRINCIPAL``.
    """
    principal = headers.get("x-ms-client-principal")
    identity = parse_client_principal(principal) if principal else Identity()
    principal_id = header_text(headers.get("x-ms-client-principal-id", ""))
    if principal_id:
        identity.user_id = principal_id
    name = header_text(headers.get("x-ms-client-principal-name", ""))
    if name and ("unique_name", name) not in identity.claims:
        identity.claims.append(("unique_name", name))
    return identity
