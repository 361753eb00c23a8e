"""App Service and Static Web Apps principals become a user id and token claims."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from app.exceptions import PrincipalError
from app.services.principal import identity_from_headers, parse_client_principal


def b64(data: Any) -> str:
    return base64.b64encode(json.dumps(data).encode()).decode()


APP_SERVICE = {
    "auth_typ": "aad",
    "name_typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
    "role_typ": "roles",
    "claims": [
        {"typ": "aud", "val": "client-id"},
        {"typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "val": "Ann"},
        {"typ": "roles", "val": "admin"},
        {"typ": "roles", "val": "writer"},
        {
            "typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
            "val": "ann@example.com",
        },
        {"typ": "custom", "val": "x"},
    ],
}
SWA = {
    "identityProvider": "github",
    "userId": "d75b260a64504067bfc5b2905e3b8182",
    "userDetails": "ann",
    "userRoles": ["anonymous", "authenticated", "admin"],
}


def test_app_service_shape() -> None:
    """Claims are shortened, roles (per role_typ) become 'role', token mechanics dropped."""
    identity = parse_client_principal(b64(APP_SERVICE))
    assert identity.provider == "aad"
    assert identity.user_id is None
    assert ("role", "admin") in identity.claims and ("role", "writer") in identity.claims
    assert ("unique_name", "Ann") in identity.claims
    assert ("email", "ann@example.com") in identity.claims
    assert ("custom", "x") in identity.claims
    assert all(t != "aud" for t, _ in identity.claims)


def test_custom_role_type_is_mapped() -> None:
    """Whatever role_typ names the role claims, they become 'role'."""
    data = {"auth_typ": "x", "role_typ": "grp", "claims": [{"typ": "grp", "val": "admin"}]}
    assert parse_client_principal(b64(data)).claims == [("role", "admin")]


def test_static_web_apps_shape() -> None:
    """userId, userDetails and userRoles map to the user id, unique_name and roles."""
    identity = parse_client_principal(b64(SWA))
    assert identity.provider == "github"
    assert identity.user_id == SWA["userId"]
    assert ("unique_name", "ann") in identity.claims
    assert [v for t, v in identity.claims if t == "role"] == ["anonymous", "authenticated", "admin"]


def test_urlsafe_and_unpadded_base64_is_accepted() -> None:
    """Unpadded or URL-safe base64 still decodes."""
    text = base64.urlsafe_b64encode(json.dumps(SWA).encode()).decode().rstrip("=")
    assert parse_client_principal(text).user_id == SWA["userId"]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("%%%not-base64%%%", "base64"),
        (base64.b64encode(b"\xff\xfe not json").decode(), "JSON"),
        (base64.b64encode(b"{not json").decode(), "JSON"),
        (b64([1, 2]), "JSON object"),
        (b64({"auth_typ": "aad"}), "neither"),
        (b64({"auth_typ": "aad", "claims": "x"}), "list"),
        (b64({"auth_typ": "aad", "claims": [{"typ": "a"}]}), "'typ' and 'val'"),
        (b64({"auth_typ": 5, "claims": []}), "auth_typ"),
        (b64({"userId": "u", "userRoles": "admin"}), "userRoles"),
        (b64({"userId": 7}), "userId"),
        ("A" * 20000, "over"),
    ],
)
def test_malformed_principals_are_clear_errors(header: str, message: str) -> None:
    """Bad base64, bad JSON and wrong shapes raise PrincipalError (a 400), never crash."""
    with pytest.raises(PrincipalError, match=message):
        parse_client_principal(header)


def test_principal_id_header_sets_user_id_and_name_adds_claim() -> None:
    """X-MS-CLIENT-PRINCIPAL-ID alone sets the user id; -NAME adds unique_name."""
    identity = identity_from_headers(
        {
            "x-ms-client-principal-id": "id-1",
            "x-ms-client-principal-name": "ann@example.com",
            "x-ms-client-principal": b64(SWA),
        }
    )
    assert identity.user_id == "id-1"
    assert ("unique_name", "ann@example.com") in identity.claims


def test_no_headers_is_anonymous() -> None:
    """Without headers the identity is anonymous."""
    identity = identity_from_headers({})
    assert identity.user_id is None and identity.claims == []


def test_principal_id_and_name_are_read_as_utf8() -> None:
    """The id and name headers as a server hands them over (one Latin-1 character per
    UTF-8 byte) are read back as the UTF-8 they were written in; other bytes stay as sent."""
    as_served = "José 李".encode().decode("latin-1")
    identity = identity_from_headers(
        {"x-ms-client-principal-id": as_served, "x-ms-client-principal-name": as_served}
    )
    assert identity.user_id == "José 李"
    assert ("unique_name", "José 李") in identity.claims
    assert identity_from_headers({"x-ms-client-principal-id": "Jos\xe9"}).user_id == "Jos\xe9"
