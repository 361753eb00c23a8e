"""Client and REST tokens are minted and verified as the service expects (docs/protocol.md §2.3)."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest

from signalr_protocol.connection_string import parse_connection_string
from signalr_protocol.errors import InvalidTokenError, TokenError, TokenTooLargeError
from signalr_protocol.tokens import (
    MAX_TOKEN_LENGTH,
    NAME_IDENTIFIER_URI,
    audience_matches,
    mint_client_token,
    mint_token,
    rest_audience,
    user_id_from_claims,
    verify_token,
)

KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
SECOND = "secondary-key-secondary-key-secondary-key"
EP = parse_connection_string(f"Endpoint=http://localhost;Port=8888;AccessKey={KEY};Version=1.0;")


def decode(token: str, audience: str) -> dict[str, object]:
    return jwt.decode(token, KEY.encode(), algorithms=["HS256"], audience=audience)


def test_client_token_verifies_with_pyjwt_and_has_the_sdk_shape() -> None:
    """The token is HS256 over the UTF-8 key, with kid, port-less aud, nbf/iat/exp = now+1h."""
    now = time.time()
    token = mint_client_token(EP, "Chat", user_id="alice", now=now)
    claims = decode(token, "http://localhost/client/?hub=chat")
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert jwt.get_unverified_header(token)["kid"]
    assert claims["asrs.s.uid"] == "alice"
    assert claims["iat"] == claims["nbf"] == int(now)
    assert claims["exp"] == int(now) + 3600


def test_client_token_carries_the_user_id_and_one_portless_audience_as_the_sdk_does() -> None:
    """The user id is in asrs.s.uid only (no nameid) and aud is one port-less string, also
    with a Port (Azure/azure-signalr src/Microsoft.Azure.SignalR.Common/Utilities/
    ClaimsUtility.cs BuildJwtClaims; src/Microsoft.Azure.SignalR/EndpointProvider/
    DefaultServiceEndpointGenerator.cs GetClientAudience; Common/Endpoints/ServiceEndpoint.cs
    BuildAudienceBaseUrlEndWithSlash)."""
    claims = jwt.decode(
        mint_client_token(EP, "Chat", user_id="alice"), options={"verify_signature": False}
    )
    assert claims["aud"] == "http://localhost/client/?hub=chat"
    assert claims["asrs.s.uid"] == "alice"
    assert "nameid" not in claims
    portless = parse_connection_string(f"Endpoint=https://x.service.signalr.net;AccessKey={KEY}")
    claims = jwt.decode(mint_client_token(portless, "chat"), options={"verify_signature": False})
    assert claims["aud"] == "https://x.service.signalr.net/client/?hub=chat"


def test_a_custom_nameid_claim_passes_through_as_the_sdk_passes_it() -> None:
    """A custom nameid claim is kept as is next to asrs.s.uid, which stays the user id
    (Azure/azure-signalr src/Microsoft.Azure.SignalR.Common/Utilities/ClaimsUtility.cs)."""
    token = mint_client_token(EP, "chat", user_id="alice", claims=[("nameid", "n")])
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["nameid"] == "n"
    assert user_id_from_claims(claims) == "alice"


@pytest.mark.parametrize(
    ("audience", "claims"),
    [
        ("http://localhost/client/?hub=chat", {"asrs.s.uid": "alice"}),
        (
            ["http://localhost/client/?hub=chat", "http://localhost:8888/client/?hub=chat"],
            {"asrs.s.uid": "alice", "nameid": "alice"},
        ),
        ("http://localhost:8888/client/?hub=chat", {"nameid": "alice"}),
    ],
)
def test_emulator_accepts_old_and_new_client_token_forms(
    audience: str | list[str], claims: dict[str, str]
) -> None:
    """The emulator's check (verify_token + user_id_from_claims) accepts today's token, the
    earlier two-audience token with nameid, and a nameid-only token, finding the user."""
    token = mint_token(KEY, audience, claims=claims)
    verified = verify_token(token, [KEY], audience=EP.client_url("chat"))
    assert user_id_from_claims(verified) == "alice"


def test_lifetime_is_honoured() -> None:
    """A custom lifetime sets exp."""
    token = mint_client_token(EP, "chat", lifetime=timedelta(minutes=5), now=1000)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 300


def test_anonymous_token_has_no_user_claims() -> None:
    """Without a user id there is no asrs.s.uid (and no nameid)."""
    claims = decode(mint_client_token(EP, "chat"), "http://localhost/client/?hub=chat")
    assert "asrs.s.uid" not in claims
    assert "nameid" not in claims


def test_repeated_claim_types_become_arrays() -> None:
    """Several role claims survive as a JSON array."""
    token = mint_client_token(
        EP, "chat", claims=[("role", "admin"), ("role", "user"), ("role", "x"), ("dept", "a")]
    )
    claims = decode(token, "http://localhost/client/?hub=chat")
    assert claims["role"] == ["admin", "user", "x"]
    assert claims["dept"] == "a"


def test_reserved_claim_names_are_prefixed() -> None:
    """User claims named like registered JWT claims (or system claims) get asrs.u."""
    token = mint_client_token(
        EP,
        "chat",
        user_id="u",
        claims=[("aud", "evil"), ("exp", "1"), ("sub", "s1"), ("sub", "s2"), ("asrs.s.uid", "x")],
    )
    claims = decode(token, "http://localhost/client/?hub=chat")
    assert claims["aud"] == "http://localhost/client/?hub=chat"
    assert claims["asrs.u.aud"] == "evil"
    assert claims["asrs.u.exp"] == "1"
    assert claims["sub"] == "s1"
    assert claims["asrs.u.sub"] == "s2"
    assert claims["asrs.s.uid"] == "u"
    assert claims["asrs.u.asrs.s.uid"] == "x"


def test_token_over_4kb_is_refused() -> None:
    """A token over 4,096 characters raises instead of being handed out."""
    with pytest.raises(TokenTooLargeError, match="4096"):
        mint_client_token(EP, "chat", claims=[("big", "x" * MAX_TOKEN_LENGTH)])


def test_nonpositive_lifetime_and_bad_claims_are_refused() -> None:
    """A zero lifetime or an empty claim type is a clear error."""
    with pytest.raises(TokenError, match="lifetime"):
        mint_token(KEY, "aud", lifetime=timedelta(0))
    with pytest.raises(TokenError, match="Claim types"):
        mint_client_token(EP, "chat", claims=[("", "x")])


def test_rest_audience_is_portless_with_query() -> None:
    """REST audiences start at the port-less base and keep the api-version query."""
    aud = rest_audience(EP, "/api/hubs/chat/:send?api-version=2022-06-01")
    assert aud == "http://localhost/api/hubs/chat/:send?api-version=2022-06-01"


@pytest.mark.parametrize(
    ("aud", "url", "ok"),
    [
        ("http://localhost/client/?hub=chat", "http://localhost:8888/client/?hub=chat", True),
        ("http://LOCALHOST/client?hub=Chat", "http://localhost:8888/client/?hub=chat&id=1", True),
        ("http://localhost/client/?hub=other", "http://localhost:8888/client/?hub=chat", False),
        ("http://evil/client/?hub=chat", "http://localhost:8888/client/?hub=chat", False),
        ("https://localhost/client/?hub=chat", "http://localhost/client/?hub=chat", False),
        (
            "http://h/api/hubs/chat/:send?api-version=2022-06-01",
            "http://h:1/api/hubs/chat/:send?excluded=a",
            True,
        ),
        ("http://h/api/hubs/chat/groups/a%2Fb", "http://h/api/hubs/chat/groups/a%2fb", True),
        ("http://h/api/hubs/chat/:send", "http://h/api/hubs/other/:send", False),
    ],
)
def test_audience_comparison_is_tolerant_but_not_blind(aud: str, url: str, ok: bool) -> None:
    """Port, case, trailing slash and query differ freely; host, path and hub must match."""
    assert audience_matches(aud, url) is ok


def test_verify_accepts_either_key_and_checks_audience() -> None:
    """A token signed with the secondary key verifies; audience mismatches are explained."""
    token = mint_token(SECOND, "http://h/client/?hub=chat", claims={"nameid": "bob"})
    claims = verify_token(token, [KEY, SECOND], audience="http://h:9/client/?hub=chat")
    assert user_id_from_claims(claims) == "bob"
    with pytest.raises(InvalidTokenError, match="audience"):
        verify_token(token, [SECOND], audience="http://h/client/?hub=other")
    with pytest.raises(InvalidTokenError, match="signature"):
        verify_token(token, [KEY], audience=None)


def test_verify_refuses_expired_immature_unsigned_and_garbage() -> None:
    """Expired, not-yet-valid, exp-less, alg=none and non-JWT tokens are all refused."""
    old = mint_token(KEY, "a", lifetime=timedelta(seconds=1), now=time.time() - 100)
    with pytest.raises(InvalidTokenError, match="expired"):
        verify_token(old, [KEY], audience=None)
    future = jwt.encode({"exp": time.time() + 999, "nbf": time.time() + 500}, KEY.encode())
    with pytest.raises(InvalidTokenError, match="not valid yet"):
        verify_token(future, [KEY], audience=None)
    no_exp = jwt.encode({"aud": "a"}, KEY.encode())
    with pytest.raises(InvalidTokenError, match="'exp'"):
        verify_token(no_exp, [KEY], audience=None)
    unsigned = jwt.encode({"exp": time.time() + 99}, "", algorithm="none")
    with pytest.raises(InvalidTokenError, match="algorithm"):
        verify_token(unsigned, [KEY], audience=None)
    with pytest.raises(InvalidTokenError, match="not a JWT"):
        verify_token("garbage", [KEY], audience=None)
    with pytest.raises(InvalidTokenError, match="No access token"):
        verify_token("", [KEY], audience=None)


def test_error_messages_never_echo_the_token() -> None:
    """An invalid token's text does not appear in the error message."""
    token = mint_token("other-key-other-key-other-key-other-key", "a")
    with pytest.raises(InvalidTokenError) as info:
        verify_token(token, [KEY], audience=None)
    assert token not in str(info.value)


def test_user_id_resolution_order() -> None:
    """asrs.s.uid wins, then nameid, sub, and the long NameIdentifier URI."""
    assert user_id_from_claims({"asrs.s.uid": "a", "nameid": "b", "sub": "c"}) == "a"
    assert user_id_from_claims({"nameid": "b", "sub": "c"}) == "b"
    assert user_id_from_claims({"sub": "c"}) == "c"
    assert user_id_from_claims({NAME_IDENTIFIER_URI: "d"}) == "d"
    assert user_id_from_claims({"nameid": ["e", "f"]}) == "e"
    assert user_id_from_claims({"role": "x"}) is None
