"""Keyless edges found in review: the keyless emulator's ``:generateToken`` signs with the
temporary key, and a credential failing in an unexpected way neither escapes untyped nor
stops the background key fetch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest

from app.services.identity import AccessKeyUnavailableError, EntraAuth, EntraAuthError
from emulator.identity import SIGNALR_RESOURCE
from signalr_protocol.connection_string import parse_connection_string
from tests.support.emulator import running_emulator

pytestmark = pytest.mark.anyio


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


async def test_generate_token_is_signed_with_the_temporary_key_when_keyless(
    http: httpx.AsyncClient,
) -> None:
    """With local auth disabled, ``:generateToken`` (called with an Entra token) answers a
    token signed with the current temporary key, ``kid`` = its KeyId, which the client
    endpoint accepts (the operation ``HubProxyV20221101_GenerateClientToken`` of
    Azure/azure-signalr ``docs/swagger/V20230701.json``)."""
    async with running_emulator(keyless=True) as emu:
        entra, _ = emu.app.state.entra.issue_token(SIGNALR_RESOURCE)
        answer = await http.post(
            f"{emu.base_url}/api/hubs/chat/:generateToken?api-version=2022-06-01&userId=ann",
            headers={"Authorization": f"Bearer {entra}"},
        )
        assert answer.status_code == 200, answer.text
        token = answer.json()["token"]
        current = emu.app.state.temp_keys.current()
        assert jwt.get_unverified_header(token)["kid"] == current.key_id
        connect = await http.post(
            f"{emu.base_url}/client/negotiate?hub=chat&negotiateVersion=1",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert connect.status_code == 200, connect.text


async def test_a_credential_failing_with_another_error_is_typed_and_retried(
    managed_identity_env: pytest.MonkeyPatch, http: httpx.AsyncClient
) -> None:
    """azure-identity raising something other than an AzureError (a malformed
    IDENTITY_ENDPOINT gives a ValueError) is an EntraAuthError naming the endpoint, and the
    background fetch keeps retrying instead of dying."""
    managed_identity_env.setenv("IDENTITY_ENDPOINT", "http://[::1")
    managed_identity_env.setenv("IDENTITY_HEADER", "any-header")
    endpoint = parse_connection_string("Endpoint=http://127.0.0.1:9;AuthType=azure.msi;")
    async with EntraAuth.open([endpoint], http, retry_interval=0.02) as auth:
        manager = auth.manager(endpoint)
        with pytest.raises(EntraAuthError, match="gave no token") as info:
            await auth.bearer(endpoint)
        assert endpoint.endpoint in info.value.message
        with pytest.raises(AccessKeyUnavailableError, match="gave no token"):
            await manager.get(wait=5)
        task = manager._task
        await asyncio.sleep(0.2)  # several retries
        assert task is not None and not task.done()
