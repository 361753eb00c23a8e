"""Keyless end to end at the identity level, with the real azure-identity library.

``ManagedIdentityCredential`` talks to the emulator's App Service managed-identity endpoint
over a real port; the backend's access-key manager fetches temporary keys with its tokens;
the upstream validator checks its tokens against the emulator's discovery document and JWKS.
The access-key schedule and the ``KeyId``/``AccessKey`` answer follow Azure/azure-signalr
``src/Microsoft.Azure.SignalR.Common/Endpoints/AadAccessKey.cs``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError
from azure.identity.aio import ManagedIdentityCredential
from cryptography.hazmat.primitives.asymmetric import rsa

from app.services.identity import (
    SIGNALR_SCOPE,
    AccessKeyManager,
    AccessKeyUnavailableError,
    EntraAuth,
    EntraAuthError,
    EntraBearer,
    create_credential,
    mint_keyless_client_token,
)
from app.services.upstream_auth import (
    EntraTokenValidator,
    UpstreamAuthError,
    UpstreamKeysUnavailableError,
)
from emulator.identity import DEFAULT_CLIENT_ID, SIGNALR_RESOURCE, LocalEntraId
from signalr_protocol.connection_string import (
    EntraIdentity,
    ServiceEndpoint,
    parse_connection_string,
)
from tests.support.keyless_kit import IDENTITY_HEADER, LocalAzure, serve_local_azure
from tests.support.servers import free_port

pytestmark = pytest.mark.anyio

USER_ASSIGNED = "33333333-3333-3333-3333-333333333333"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


def _endpoint(azure: LocalAzure, extra: str = "") -> ServiceEndpoint:
    return parse_connection_string(f"Endpoint={azure.base_url};AuthType=azure.msi;{extra}")


def _validator(azure: LocalAzure, http: httpx.AsyncClient, audience: str) -> EntraTokenValidator:
    return EntraTokenValidator(
        audience=audience,
        tenant_id=azure.entra.tenant_id,
        authority=azure.entra.authority,
        client=http,
        min_refresh_interval=60.0,
    )


async def test_managed_identity_credential_gets_a_token_that_validates(
    local_azure: LocalAzure, http: httpx.AsyncClient
) -> None:
    """azure-identity's ManagedIdentityCredential gets a token the upstream validator accepts."""
    credential = ManagedIdentityCredential()
    try:
        access = await credential.get_token(SIGNALR_SCOPE)
    finally:
        await credential.close()
    claims = await _validator(local_azure, http, SIGNALR_RESOURCE).validate_header(
        f"Bearer {access.token}"
    )
    assert claims["aud"] == SIGNALR_RESOURCE and claims["appid"] == DEFAULT_CLIENT_ID
    assert claims["iss"] == f"{local_azure.base_url}/identity/{local_azure.entra.tenant_id}/v2.0"
    assert access.expires_on == claims["exp"]


async def test_user_assigned_identity_is_named_by_client_id(
    local_azure: LocalAzure, http: httpx.AsyncClient
) -> None:
    """A user-assigned identity's client id reaches the token (appid) through azure-identity."""
    identity = _endpoint(local_azure, f"ClientId={USER_ASSIGNED}").identity
    assert identity is not None
    credential = create_credential(identity)
    try:
        access = await credential.get_token("api://backend/.default")
    finally:
        await credential.close()
    claims = await _validator(local_azure, http, "api://backend").validate(access.token)
    assert claims["appid"] == USER_ASSIGNED and claims["aud"] == "api://backend"


async def test_wrong_identity_header_is_refused(
    local_azure: LocalAzure, http: httpx.AsyncClient, managed_identity_env: pytest.MonkeyPatch
) -> None:
    """A wrong X-IDENTITY-HEADER gets 401; azure-identity raises, the bearer names the endpoint."""
    url = f"{local_azure.entra.msi_endpoint}?resource={SIGNALR_RESOURCE}&api-version=2019-08-01"
    answer = await http.get(url, headers={"X-IDENTITY-HEADER": "wrong"})
    assert answer.status_code == 401 and answer.json()["error"] == "unauthorized"
    assert (await http.get(url)).status_code == 401
    missing = await http.get(
        f"{local_azure.entra.msi_endpoint}?api-version=2019-08-01",
        headers={"X-IDENTITY-HEADER": IDENTITY_HEADER},
    )
    assert missing.status_code == 400

    managed_identity_env.setenv("IDENTITY_HEADER", "wrong")
    endpoint = _endpoint(local_azure)
    credential = ManagedIdentityCredential()
    try:
        with pytest.raises(ClientAuthenticationError):
            await credential.get_token(SIGNALR_SCOPE)
        with pytest.raises(EntraAuthError, match=endpoint.endpoint) as info:
            await EntraBearer(endpoint, credential).token()
        assert info.value.endpoint == endpoint.label
    finally:
        await credential.close()


async def test_discovery_routes_answer_for_the_tenant_only(
    local_azure: LocalAzure, http: httpx.AsyncClient
) -> None:
    """Discovery and JWKS answer for the configured tenant; another tenant or method does not."""
    entra = local_azure.entra
    config = (
        await http.get(f"{entra.authority}/{entra.tenant_id}/v2.0/.well-known/openid-configuration")
    ).json()
    assert config["issuer"] == entra.issuer
    jwks = (await http.get(config["jwks_uri"])).json()
    assert jwks == entra.jwks()
    other = await http.get(f"{entra.authority}/other/v2.0/.well-known/openid-configuration")
    assert other.status_code == 404
    assert (await http.post(config["jwks_uri"])).status_code == 405


async def test_upstream_validator_refuses_every_bad_bearer(
    local_azure: LocalAzure, http: httpx.AsyncClient
) -> None:
    """Missing, non-bearer, wrong-audience, wrong-issuer, expired, foreign or HS256 bearers: 401."""
    entra = local_azure.entra
    validator = _validator(local_azure, http, "api://backend")
    stranger = LocalEntraId(local_azure.base_url, tenant_id=entra.tenant_id)
    good, _ = entra.issue_token("api://backend")
    await validator.validate_header(f"Bearer {good}")
    await validator.validate_header(f"bearer {entra.issue_token('api://backend/')[0]}")
    bad = {
        "no 'Authorization: Bearer'": None,
        "no 'Authorization: Bearer' ": f"Basic {good}",
        "not for audience": f"Bearer {entra.issue_token('api://other')[0]}",
        "not issued by tenant": "Bearer "
        + entra.sign({"aud": "api://backend", "iss": "https://evil/v2.0", "exp": 4_000_000_000}),
        "expired": f"Bearer {entra.issue_token('api://backend', now=1_000_000)[0]}",
        "does not publish": f"Bearer {stranger.issue_token('api://backend')[0]}",
        "algorithm 'HS256'": "Bearer " + jwt.encode({"aud": "api://backend"}, "k" * 32),
        "not a JWT": "Bearer garbage",
        "no 'kid'": "Bearer "
        + jwt.encode({"aud": "x"}, rsa.generate_private_key(65537, 2048), algorithm="RS256"),
    }
    for message, header in bad.items():
        with pytest.raises(UpstreamAuthError, match=message.strip()) as info:
            await validator.validate_header(header)
        assert info.value.status_code == 401
        if header:
            assert header.split(" ", 1)[-1] not in str(info.value)


async def test_validator_refetches_keys_for_a_new_kid_at_a_limited_rate(
    local_azure: LocalAzure, http: httpx.AsyncClient
) -> None:
    """A rotated Entra key is fetched on its first use; unknown kids can't force more fetches."""
    entra = local_azure.entra
    validator = _validator(local_azure, http, SIGNALR_RESOURCE)
    await validator.validate(entra.issue_token(SIGNALR_RESOURCE)[0])
    assert validator.fetches == 1
    await validator.validate(entra.issue_token(SIGNALR_RESOURCE)[0])
    assert validator.fetches == 1  # cached

    validator.min_refresh_interval = 0.0
    entra.rotate_signing_key()
    await validator.validate(entra.issue_token(SIGNALR_RESOURCE)[0])
    assert validator.fetches == 2

    validator.min_refresh_interval = 60.0
    stranger = LocalEntraId(local_azure.base_url, tenant_id=entra.tenant_id)
    for _ in range(3):
        with pytest.raises(UpstreamAuthError, match="does not publish"):
            await validator.validate(stranger.issue_token(SIGNALR_RESOURCE)[0])
    assert validator.fetches == 2
    keys_path = f"/identity/{entra.tenant_id}/discovery/v2.0/keys"
    assert local_azure.counts[keys_path] == 2


async def test_validator_without_reachable_keys_answers_503(http: httpx.AsyncClient) -> None:
    """When the tenant's keys can't be fetched, validation fails with the 503 error, not a 401."""
    entra = LocalEntraId(f"http://127.0.0.1:{free_port()}")
    validator = EntraTokenValidator(
        audience=SIGNALR_RESOURCE,
        tenant_id=entra.tenant_id,
        authority=entra.authority,
        client=http,
        min_refresh_interval=60.0,
    )
    for _ in range(2):  # the second is answered from the remembered failure
        with pytest.raises(UpstreamKeysUnavailableError, match="could not be fetched") as info:
            await validator.validate(entra.issue_token(SIGNALR_RESOURCE)[0])
        assert info.value.status_code == 503
    assert validator.fetches == 1


def test_default_authority_also_accepts_the_v1_issuer() -> None:
    """Under login.microsoftonline.com, sts.windows.net/{tenant}/ is an accepted issuer too."""
    client = httpx.AsyncClient()
    validator = EntraTokenValidator(audience="api://a", tenant_id="t", client=client)
    assert validator.issuers == (
        "https://login.microsoftonline.com/t/v2.0",
        "https://sts.windows.net/t/",
    )
    assert validator.metadata_url == (
        "https://login.microsoftonline.com/t/v2.0/.well-known/openid-configuration"
    )
    other = EntraTokenValidator(
        audience="api://a", tenant_id="t", client=client, authority="http://h/identity/"
    )
    assert other.issuers == ("http://h/identity/t/v2.0",)


async def test_access_key_manager_fetches_a_key_that_signs_client_tokens(
    local_azure: LocalAzure, http: httpx.AsyncClient
) -> None:
    """The manager gets a temporary key with a real MSI token; tokens it signs verify by kid."""
    endpoint = _endpoint(local_azure)
    async with EntraAuth.open([endpoint], http) as auth:
        manager = auth.manager(endpoint)
        key = await manager.get(wait=10)
        assert manager.ready and auth.problems() == []
        token = mint_keyless_client_token(endpoint, key, "chat", user_id="u1")
        claims = local_azure.keys.verify(token)
        assert claims["asrs.s.uid"] == "u1"
        assert jwt.get_unverified_header(token)["kid"] == local_azure.keys.current().key_id
        bearer = await auth.bearer(endpoint)
        assert local_azure.entra.verify_service_token(bearer)["appid"] == DEFAULT_CLIENT_ID


async def test_bearer_is_cached_between_calls(
    local_azure: LocalAzure, http: httpx.AsyncClient
) -> None:
    """Many REST calls reuse one Entra token: the identity endpoint is asked once."""
    endpoint = _endpoint(local_azure)
    async with EntraAuth.open([endpoint], http, refresh_interval=3600) as auth:
        await auth.manager(endpoint).get(wait=10)
        tokens = {await auth.bearer(endpoint) for _ in range(20)}
    assert len(tokens) == 1
    assert local_azure.counts["/identity/msi/token"] == 1


async def test_refused_access_key_is_a_typed_error_with_a_role_hint(
    local_azure: LocalAzure, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A 403 from accessKey is a typed error naming the endpoint; the log says what to check."""
    local_azure.refuse_status = 403
    endpoint = _endpoint(local_azure, f"ClientId={USER_ASSIGNED}")
    credential = create_credential(endpoint.identity)  # type: ignore[arg-type]
    manager = AccessKeyManager(EntraBearer(endpoint, credential), http)
    try:
        with caplog.at_level(logging.ERROR, logger="app.services.identity"):
            with pytest.raises(EntraAuthError, match="refused") as info:
                await manager.refresh()
        assert info.value.status_code == 403 and endpoint.endpoint in info.value.message
        logged = caplog.text
        assert "SignalR App Server" in logged and USER_ASSIGNED in logged
        with pytest.raises(AccessKeyUnavailableError, match="no key has been fetched") as unusable:
            manager.current()
        assert "refused" in unusable.value.message
        assert not manager.ready
        for record in caplog.records:  # no token in any log line
            assert "eyJ" not in record.getMessage()
    finally:
        await credential.close()


async def test_manager_recovers_when_the_service_accepts_again(
    local_azure: LocalAzure, http: httpx.AsyncClient
) -> None:
    """While refused the manager retries on its short schedule; once accepted, a key is there."""
    local_azure.refuse_status = 403
    endpoint = _endpoint(local_azure)
    async with EntraAuth.open([endpoint], http, retry_interval=0.05) as auth:
        manager = auth.manager(endpoint)
        with pytest.raises(AccessKeyUnavailableError):
            await manager.get(wait=10)
        assert auth.problems() and "refused" in auth.problems()[0]
        local_azure.refuse_status = None
        for _ in range(200):
            if manager.ready:
                break
            await asyncio.sleep(0.02)
        assert manager.ready and manager.failure is None
        assert local_azure.counts["/api/v1/auth/accessKey"] >= 2


async def test_key_older_than_max_age_is_not_used(
    local_azure: LocalAzure, http: httpx.AsyncClient
) -> None:
    """A key past max_age is refused with a reason, until the next fetch succeeds."""
    now = [0.0]
    endpoint = _endpoint(local_azure)
    credential = create_credential(endpoint.identity)  # type: ignore[arg-type]
    manager = AccessKeyManager(
        EntraBearer(endpoint, credential), http, max_age=7200, clock=lambda: now[0]
    )
    try:
        key = await manager.refresh()
        now[0] = 7200
        assert manager.current() == key
        now[0] = 7201
        with pytest.raises(AccessKeyUnavailableError, match="over 120 minutes old"):
            manager.current()
        local_azure.refuse_status = 503
        with pytest.raises(EntraAuthError, match="answered 503"):
            await manager.refresh()
        with pytest.raises(AccessKeyUnavailableError, match="answered 503"):
            manager.current()
        local_azure.refuse_status = None
        assert (await manager.refresh()).fetched_at == 7201
    finally:
        await credential.close()


async def test_rotating_service_keys_keep_new_client_tokens_valid(
    managed_identity_env: pytest.MonkeyPatch, http: httpx.AsyncClient
) -> None:
    """As the service rotates temporary keys, freshly fetched keys sign tokens it accepts."""
    async with serve_local_azure(LocalAzure(rotation=0.2)) as azure:
        managed_identity_env.setenv("IDENTITY_ENDPOINT", azure.entra.msi_endpoint)
        managed_identity_env.setenv("IDENTITY_HEADER", IDENTITY_HEADER)
        endpoint = _endpoint(azure)
        async with EntraAuth.open([endpoint], http, refresh_interval=0.05) as auth:
            manager = auth.manager(endpoint)
            seen: set[str] = set()
            for _ in range(12):
                key = manager.current() if manager.ready else await manager.get(wait=10)
                seen.add(key.key_id)
                azure.keys.verify(mint_keyless_client_token(endpoint, key, "chat"))
                await asyncio.sleep(0.05)
            assert len(seen) >= 2


async def test_mixed_endpoints_only_keyless_ones_are_managed(
    local_azure: LocalAzure, http: httpx.AsyncClient
) -> None:
    """With a keyed and a keyless endpoint, only the keyless one gets a credential and a key."""
    keyed = parse_connection_string(f"Endpoint={local_azure.base_url};AccessKey={'k' * 44}")
    keyless = _endpoint(local_azure)
    made: list[AsyncTokenCredential] = []

    def factory(identity: EntraIdentity) -> AsyncTokenCredential:
        made.append(create_credential(identity))
        return made[-1]

    closed: list[bool] = []
    async with EntraAuth.open([keyed, keyless, keyless], http, credential_factory=factory) as auth:
        assert not auth.handles(keyed) and auth.handles(keyless)
        assert len(auth.managers) == 1 and len(made) == 1
        await auth.manager(keyless).get(wait=10)
        original = made[0].close

        async def tracking_close() -> None:
            closed.append(True)
            await original()

        made[0].close = tracking_close  # type: ignore[method-assign]
    assert closed == [True]
