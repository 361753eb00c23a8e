"""The negotiator decides identity safely and mints tokens for registered hubs."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import timedelta

import jwt
import pytest

from app.exceptions import PrincipalError
from app.hub import NegotiateOptions
from app.services.negotiation import HubNotFoundError, Negotiator
from app.services.principal import Identity
from app.settings import Settings
from signalr_protocol.errors import InvalidNameError

KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
CS = f"Endpoint=https://x.service.signalr.net;AccessKey={KEY};Version=1.0;"
PRINCIPAL = base64.b64encode(
    json.dumps({"userId": "swa-user", "userRoles": ["admin"], "identityProvider": "gh"}).encode()
).decode()
FORGED = {
    "x-ms-client-principal-id": "mallory",
    "x-ms-client-principal": PRINCIPAL,
    "x-ms-signalr-user-id": "dev-user",
}


class Hooks:
    def __init__(self, shaped: NegotiateOptions | None = None) -> None:
        self.shaped = shaped
        self.seen: list[Identity] = []

    def has_hub(self, name: str) -> bool:
        return name.lower() in {"chat", "other"}

    async def shape_negotiation(
        self, hub: str, identity: Identity, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> NegotiateOptions | None:
        self.seen.append(identity)
        return self.shaped


def claims_of(token: str, hub: str = "chat") -> dict[str, object]:
    return jwt.decode(
        token,
        KEY.encode(),
        algorithms=["HS256"],
        audience=f"https://x.service.signalr.net/client/?hub={hub}",
    )


@pytest.mark.anyio
async def test_anonymous_when_untrusted_and_not_dev() -> None:
    """With a real service and no App Service auth, forged identity headers are ignored."""
    negotiator = Negotiator(Settings(connection_string=CS), Hooks())
    info = await negotiator.negotiate("Chat", FORGED, {})
    assert info.url == "https://x.service.signalr.net/client/?hub=chat"
    claims = claims_of(info.access_token)
    assert "asrs.s.uid" not in claims and "role" not in claims


@pytest.mark.anyio
async def test_trusted_app_service_headers_set_user_and_roles() -> None:
    """WEBSITE_AUTH_ENABLED trusts the principal headers; the dev header is then ignored."""
    settings = Settings(connection_string=CS, website_auth_enabled=True, dev_user_header=True)
    info = await Negotiator(settings, Hooks()).negotiate("chat", FORGED, {})
    claims = claims_of(info.access_token)
    assert claims["asrs.s.uid"] == "mallory"
    assert claims["role"] == "admin"


@pytest.mark.anyio
async def test_trust_override_setting() -> None:
    """SIGNALR_TRUST_CLIENT_PRINCIPAL trusts the headers without WEBSITE_AUTH_ENABLED."""
    settings = Settings(connection_string=CS, trust_client_principal=True)
    info = await Negotiator(settings, Hooks()).negotiate("chat", FORGED, {})
    assert claims_of(info.access_token)["asrs.s.uid"] == "mallory"


@pytest.mark.anyio
async def test_malformed_trusted_principal_is_a_principal_error() -> None:
    """A malformed principal from a trusted source is refused (400), not a crash."""
    settings = Settings(connection_string=CS, website_auth_enabled=True)
    with pytest.raises(PrincipalError):
        await Negotiator(settings, Hooks()).negotiate("chat", {"x-ms-client-principal": "!!"}, {})


@pytest.mark.anyio
async def test_dev_header_only_with_the_emulator_or_explicit_setting() -> None:
    """x-ms-signalr-user-id sets the user with the emulator, or when explicitly enabled."""
    emulator = Negotiator(Settings(), Hooks())
    info = await emulator.negotiate("chat", {"x-ms-signalr-user-id": "dev-user"}, {})
    assert jwt.decode(info.access_token, options={"verify_signature": False})["asrs.s.uid"] == (
        "dev-user"
    )
    explicit = Negotiator(Settings(connection_string=CS, dev_user_header=True), Hooks())
    info = await explicit.negotiate("chat", {"x-ms-signalr-user-id": "dev-user"}, {})
    assert claims_of(info.access_token)["asrs.s.uid"] == "dev-user"
    off = Negotiator(Settings(dev_user_header=False), Hooks())
    info = await off.negotiate("chat", {"x-ms-signalr-user-id": "dev-user"}, {})
    assert "asrs.s.uid" not in jwt.decode(info.access_token, options={"verify_signature": False})


@pytest.mark.anyio
async def test_invalid_dev_user_id_is_refused() -> None:
    """A dev user id over 1,024 characters is a 400-class error."""
    with pytest.raises(InvalidNameError):
        await Negotiator(Settings(), Hooks()).negotiate(
            "chat", {"x-ms-signalr-user-id": "u" * 2000}, {}
        )


@pytest.mark.anyio
async def test_hook_shapes_user_claims_and_lifetime() -> None:
    """A hub's negotiate hook replaces user id and claims and sets the lifetime."""
    hooks = Hooks(NegotiateOptions("hooked", [("role", "a"), ("role", "b")], timedelta(minutes=2)))
    info = await Negotiator(Settings(connection_string=CS), hooks).negotiate("other", {}, {})
    claims = claims_of(info.access_token, "other")
    assert claims["asrs.s.uid"] == "hooked"
    assert claims["role"] == ["a", "b"]
    assert int(claims["exp"]) - int(claims["iat"]) == 120  # type: ignore[call-overload]
    assert hooks.seen[0].user_id is None


@pytest.mark.anyio
async def test_lifetime_setting() -> None:
    """SIGNALR_TOKEN_LIFETIME_SECONDS sets the default lifetime."""
    settings = Settings(connection_string=CS, token_lifetime_seconds=90)
    info = await Negotiator(settings, Hooks()).negotiate("chat", {}, {})
    claims = claims_of(info.access_token)
    assert int(claims["exp"]) - int(claims["iat"]) == 90  # type: ignore[call-overload]


@pytest.mark.anyio
@pytest.mark.parametrize("hub", ["", "1chat", "chat room", "a" * 129, "chat/x", "é"])
async def test_invalid_hub_names(hub: str) -> None:
    """Names breaking the service's rule are a 400 InvalidNameError."""
    with pytest.raises(InvalidNameError) as info:
        await Negotiator(Settings(), Hooks()).negotiate(hub, {}, {})
    assert info.value.status_code == 400


@pytest.mark.anyio
async def test_unregistered_hub_is_404() -> None:
    """A valid name that no hub class registers is a 404."""
    with pytest.raises(HubNotFoundError) as info:
        await Negotiator(Settings(), Hooks()).negotiate("nothere", {}, {})
    assert info.value.status_code == 404
