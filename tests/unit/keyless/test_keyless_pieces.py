"""Keyless building blocks without a network: the emulator's Entra tokens and temporary keys,
the backend's credential choice, and client tokens signed with a temporary key."""

from __future__ import annotations

import datetime
from pathlib import Path

import jwt
import pytest
from azure.identity.aio import (
    CertificateCredential,
    ClientSecretCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from app.exceptions import ConfigurationError
from app.services.identity import (
    TemporaryAccessKey,
    create_credential,
    mint_keyless_client_token,
)
from emulator.errors import AuthenticationError
from emulator.identity import (
    DEFAULT_CLIENT_ID,
    DEFAULT_TENANT_ID,
    SIGNALR_RESOURCE,
    LocalEntraId,
    TemporaryKeys,
    is_entra_token,
)
from signalr_protocol.connection_string import (
    CredentialKind,
    EntraIdentity,
    parse_connection_string,
)
from signalr_protocol.tokens import mint_token

BASE = "http://localhost:8888"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_tokens_carry_the_contract_claims() -> None:
    """An emulator token is RS256 with iss, aud, tid, oid, sub, appid, iat, nbf and a 1 h exp."""
    entra = LocalEntraId(BASE)
    token, expires_on = entra.issue_token(SIGNALR_RESOURCE, now=1_700_000_000)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "RS256" and header["kid"] == entra.jwks()["keys"][0]["kid"]
    assert claims["iss"] == f"{BASE}/identity/{DEFAULT_TENANT_ID}/v2.0" == entra.issuer
    assert claims["aud"] == SIGNALR_RESOURCE
    assert claims["tid"] == DEFAULT_TENANT_ID
    assert claims["appid"] == DEFAULT_CLIENT_ID
    assert claims["oid"] == claims["sub"] == entra.object_id(DEFAULT_CLIENT_ID)
    assert claims["iat"] == claims["nbf"] == 1_700_000_000
    assert claims["exp"] == expires_on == 1_700_003_600
    assert is_entra_token(token)


def test_discovery_names_the_issuer_and_the_jwks() -> None:
    """Discovery and JWKS sit where Entra puts them, under {base}/identity/{tenant}."""
    entra = LocalEntraId(BASE + "/", tenant_id="t1")
    config = entra.openid_configuration()
    assert config["issuer"] == f"{BASE}/identity/t1/v2.0"
    assert config["jwks_uri"] == f"{BASE}/identity/t1/discovery/v2.0/keys"
    [key] = entra.jwks()["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
    assert "d" not in key  # the public half only
    assert entra.msi_endpoint == f"{BASE}/identity/msi/token"


def test_msi_response_has_the_app_service_shape() -> None:
    """The managed-identity answer has expires_on as a string of epoch seconds, and client_id."""
    entra = LocalEntraId(BASE)
    answer = entra.msi_response("api://backend", "22222222-2222-2222-2222-222222222222")
    assert set(answer) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert answer["expires_on"].isdigit() and answer["token_type"] == "Bearer"
    assert answer["client_id"] == "22222222-2222-2222-2222-222222222222"
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert claims["appid"] == answer["client_id"] and claims["aud"] == "api://backend"


@pytest.mark.parametrize("aud", [SIGNALR_RESOURCE, SIGNALR_RESOURCE + "/"])
def test_service_side_accepts_signalr_audience_with_or_without_slash(aud: str) -> None:
    """Its own token for https://signalr.azure.com, with or without "/", passes the REST check."""
    entra = LocalEntraId(BASE)
    token, _ = entra.issue_token(aud)
    assert entra.verify_service_token(token)["aud"] == aud


def test_service_side_refuses_foreign_expired_and_misaddressed_tokens() -> None:
    """Another audience, issuer, signer, an expired token or an HS256 one are all refused."""
    entra = LocalEntraId(BASE)
    other = LocalEntraId(BASE)
    cases = {
        "audience": entra.issue_token("api://else")[0],
        "not issued by this": other.issue_token(SIGNALR_RESOURCE)[0],
        "expired": entra.issue_token(SIGNALR_RESOURCE, now=1_000_000)[0],
        "issuer": entra.sign(
            {"aud": SIGNALR_RESOURCE, "iss": "https://evil/v2.0", "exp": 4_000_000_000}
        ),
        "not issued by this ": mint_token("k" * 44, SIGNALR_RESOURCE),
        "not a JWT": "garbage",
    }
    for expected, token in cases.items():
        with pytest.raises(AuthenticationError, match=expected.strip()) as info:
            entra.verify_service_token(token)
        assert token not in str(info.value)
    assert not is_entra_token(cases["not issued by this "]) and not is_entra_token("garbage")


def test_rotated_signing_key_stays_published() -> None:
    """After a signing-key rotation, tokens from both keys verify and JWKS lists both."""
    entra = LocalEntraId(BASE)
    old, _ = entra.issue_token(SIGNALR_RESOURCE)
    kid = entra.rotate_signing_key()
    new, _ = entra.issue_token(SIGNALR_RESOURCE)
    assert jwt.get_unverified_header(new)["kid"] == kid
    assert len(entra.jwks()["keys"]) == 2
    entra.verify_service_token(old)
    entra.verify_service_token(new)


def test_identity_header_compare() -> None:
    """Only the configured X-IDENTITY-HEADER value passes."""
    entra = LocalEntraId(BASE, identity_header="abc")
    assert entra.check_identity_header("abc")
    assert not entra.check_identity_header("abd") and not entra.check_identity_header(None)


def test_temporary_keys_rotate_keeping_one_previous() -> None:
    """Current and previous keys are accepted by kid; a key two rotations old is not."""
    clock = Clock()
    keys = TemporaryKeys(60, clock=clock)
    first = keys.current()
    token = mint_token(first.access_key, "http://h/client/?hub=chat", kid=first.key_id)
    assert keys.verify(token)["aud"] == "http://h/client/?hub=chat"
    clock.now += 60
    second = keys.current()
    assert second != first and keys.lookup(first.key_id) == first
    assert keys.verify(token)
    clock.now += 60
    assert keys.lookup(first.key_id) is None and keys.lookup(second.key_id) == second
    with pytest.raises(AuthenticationError, match="rotated-out"):
        keys.verify(token)


def test_temporary_keys_idle_for_two_periods_forget_both() -> None:
    """After two idle rotation periods no earlier key survives."""
    clock = Clock()
    keys = TemporaryKeys(60, clock=clock)
    first = keys.current()
    clock.now += 150
    assert keys.lookup(first.key_id) is None
    assert keys.current().as_json().keys() == {"KeyId", "AccessKey"}


def test_temporary_key_tokens_need_the_right_kid_and_signature() -> None:
    """A token with no kid, a forged kid or the wrong signature is refused."""
    keys = TemporaryKeys(60)
    key = keys.current()
    with pytest.raises(AuthenticationError, match="kid"):
        keys.verify(mint_token(key.access_key, "http://h/", kid="nope"))
    with pytest.raises(AuthenticationError, match="signature"):
        keys.verify(
            mint_token("another-key-0123456789-0123456789-0123", "http://h/", kid=key.key_id)
        )
    with pytest.raises(AuthenticationError, match="not a JWT"):
        keys.verify("x.y")
    with pytest.raises(ValueError, match="positive"):
        TemporaryKeys(0)


def test_keyless_client_token_is_signed_with_the_temporary_key() -> None:
    """A keyless negotiate token is HS256 with the temporary key, kid = KeyId, the usual aud."""
    endpoint = parse_connection_string("Endpoint=https://x.service.signalr.net;AuthType=azure.msi")
    key = TemporaryAccessKey("kid-1", "temporary-access-key-0123456789-abcdef", 0.0)
    token = mint_keyless_client_token(endpoint, key, "Chat", user_id="alice")
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "kid": "kid-1", "typ": "JWT"}
    claims = jwt.decode(
        token,
        key.access_key.encode(),
        algorithms=["HS256"],
        audience="https://x.service.signalr.net/client/?hub=chat",
    )
    assert claims["asrs.s.uid"] == "alice"
    assert "temporary-access-key" not in repr(key)


def test_keyless_client_token_has_one_port_less_audience_as_key_signed_ones() -> None:
    """With a Port, a keyless token's aud is the one port-less string the SDK builds, the
    same as a key-signed token's (Azure/azure-signalr src/Microsoft.Azure.SignalR/
    EndpointProvider/DefaultServiceEndpointGenerator.cs GetClientAudience, as cited by the
    key-signed test in tests/unit/signalr_protocol/test_tokens.py)."""
    endpoint = parse_connection_string(
        "Endpoint=http://localhost;Port=8888;AuthType=azure.msi;Version=1.0;"
    )
    key = TemporaryAccessKey("kid-1", "temporary-access-key-0123456789-abcdef", 0.0)
    token = mint_keyless_client_token(endpoint, key, "Chat")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == "http://localhost/client/?hub=chat"


def _certificate_pem(tmp_path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "app.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        + cert.public_bytes(serialization.Encoding.PEM)
    )
    return path


@pytest.mark.anyio
async def test_each_identity_kind_gets_its_azure_identity_credential(tmp_path: Path) -> None:
    """Managed identity, secret, certificate and default map to the azure-identity classes."""
    pem = _certificate_pem(tmp_path)
    cases = [
        (EntraIdentity(CredentialKind.MANAGED_IDENTITY, client_id="c"), ManagedIdentityCredential),
        (
            EntraIdentity(CredentialKind.CLIENT_SECRET, "c", "t", client_secret="s"),
            ClientSecretCredential,
        ),
        (
            EntraIdentity(CredentialKind.CLIENT_CERTIFICATE, "c", "t", client_cert_path=str(pem)),
            CertificateCredential,
        ),
        (EntraIdentity(CredentialKind.DEFAULT), DefaultAzureCredential),
    ]
    for identity, cls in cases:
        credential = create_credential(identity)
        try:
            assert isinstance(credential, cls)
        finally:
            await credential.close()


def test_unreadable_certificate_is_a_configuration_error(tmp_path: Path) -> None:
    """A ClientCert path that is missing or not a certificate stops start-up, naming the path."""
    bad = tmp_path / "not-a-cert.pem"
    bad.write_text("hello")
    for path in (tmp_path / "missing.pem", bad):
        identity = EntraIdentity(
            CredentialKind.CLIENT_CERTIFICATE, "c", "t", client_cert_path=str(path)
        )
        with pytest.raises(ConfigurationError, match=str(path.name)):
            create_credential(identity)
