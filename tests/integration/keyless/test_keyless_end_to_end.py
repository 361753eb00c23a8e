"""Keyless mode end to end: the keyless emulator, the backend with a managed identity, and the
official JS client, all on real ports.

The key schedule and the temporary ``KeyId``/``AccessKey`` follow Azure/azure-signalr
``src/Microsoft.Azure.SignalR.Common/Endpoints/AadAccessKey.cs``; the refusal of access-key
tokens with local auth disabled is the service's ``disableLocalAuth``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from azure.identity.aio import ManagedIdentityCredential

from app.main import create_app
from app.services.identity import SIGNALR_SCOPE
from emulator.identity import SIGNALR_RESOURCE
from tests.support.emulator import running_emulator
from tests.support.keyless_kit import IDENTITY_HEADER
from tests.support.keyless_stack import (
    RESOURCE,
    WEBHOOK,
    KeylessStack,
    keyless_settings,
    keyless_stack,
    use_emulator_identity,
)
from tests.support.node import NODE, node_process
from tests.support.servers import serve_asgi

pytestmark = pytest.mark.anyio


@pytest.fixture
async def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[KeylessStack]:
    """The keyless emulator and backend, wired together."""
    async with keyless_stack(tmp_path, monkeypatch) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


async def _wait_ready(http: httpx.AsyncClient, backend: str, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while True:
        response = await http.get(f"{backend}/readyz")
        if response.status_code == 200 or time.monotonic() > deadline:
            assert response.status_code == 200, response.text
            return
        await asyncio.sleep(0.05)


@pytest.mark.node
@pytest.mark.skipif(NODE is None, reason="node is not installed")
async def test_the_official_client_works_keyless_end_to_end(
    stack: KeylessStack, http: httpx.AsyncClient
) -> None:
    """Negotiate, connect, invoke and a broadcast through the REST API all work keyless."""
    await _wait_ready(http, stack.backend)
    async with node_process() as node, node.connect(f"{stack.backend}/api/chat") as client:
        assert await client.invoke("echo", {"n": 1}) == {"n": 1}
        await client.invoke("broadcast", "hello keyless")
        message = await client.next_message("newMessage")
        assert message[0]["text"] == "hello keyless"


async def test_negotiate_signs_with_the_temporary_key(
    stack: KeylessStack, http: httpx.AsyncClient
) -> None:
    """Negotiate's token is HS256 with ``kid`` = the emulator's current temporary KeyId, and
    the emulator's client endpoint accepts it."""
    await _wait_ready(http, stack.backend)
    info = (await http.post(f"{stack.backend}/api/chat/negotiate")).json()
    current = stack.emulator.app.state.temp_keys.current()
    header = jwt.get_unverified_header(info["accessToken"])
    assert header["alg"] == "HS256" and header["kid"] == current.key_id
    answer = await http.post(
        info["url"].replace("/client/?", "/client/negotiate?") + "&negotiateVersion=1",
        headers={"Authorization": f"Bearer {info['accessToken']}"},
    )
    assert answer.status_code == 200, answer.text


async def test_access_key_tokens_are_refused_when_keyless(
    stack: KeylessStack, http: httpx.AsyncClient
) -> None:
    """With local auth disabled, tokens signed with the access key get 401 saying so, on
    the client endpoint and on the REST API, and the accessKey route refuses them."""
    emu = stack.emulator
    client = await http.post(
        f"{emu.base_url}/client/negotiate?hub=chat&negotiateVersion=1",
        headers={"Authorization": f"Bearer {emu.client_token('chat')}"},
    )
    assert client.status_code == 401
    assert "local auth is disabled" in client.text.lower()
    send = "/api/hubs/chat/:send"
    rest = await http.post(
        f"{emu.base_url}{send}", headers=emu.rest_headers(send), json={"target": "t"}
    )
    access_key = "/api/v1/auth/accessKey"
    key = await http.get(f"{emu.base_url}{access_key}", headers=emu.rest_headers(access_key))
    for answer in (rest, key):
        assert answer.status_code == 401
        assert "local auth is disabled" in answer.text.lower()


async def test_real_azure_identity_gets_tokens_the_emulator_accepts(
    stack: KeylessStack, http: httpx.AsyncClient
) -> None:
    """azure-identity's ManagedIdentityCredential gets a token from the emulator's identity
    endpoint; the REST API and both accessKey routes accept it."""
    emu = stack.emulator
    credential = ManagedIdentityCredential()
    try:
        token = (await credential.get_token(SIGNALR_SCOPE)).token
    finally:
        await credential.close()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"].rstrip("/") == SIGNALR_RESOURCE
    bearer = {"Authorization": f"Bearer {token}"}
    send = await http.post(
        f"{emu.base_url}/api/hubs/chat/:send?api-version=2022-06-01",
        headers=bearer,
        json={"target": "t", "arguments": []},
    )
    assert send.status_code == 202, send.text
    for path in ("/api/v1/auth/accessKey", "/api/auth/accessKey?api-version=2022-11-01"):
        answer = await http.get(f"{emu.base_url}{path}", headers=bearer)
        assert answer.status_code == 200, (path, answer.text)
        assert set(answer.json()) == {"KeyId", "AccessKey"}


def _upstream_headers(connection_id: str = "c1") -> dict[str, str]:
    return {
        "X-ASRS-Hub": "chat",
        "X-ASRS-Category": "connections",
        "X-ASRS-Event": "connected",
        "X-ASRS-Connection-Id": connection_id,
        "Content-Type": "application/json",
    }


async def test_the_webhook_requires_a_valid_upstream_bearer(
    stack: KeylessStack, http: httpx.AsyncClient
) -> None:
    """A webhook call with no bearer, or one for another audience, from another issuer, or
    expired, gets 401; the emulator's own token for the resource is accepted."""
    entra = stack.emulator.app.state.entra
    now = time.time()
    good, _ = entra.issue_token(RESOURCE)
    wrong_audience, _ = entra.issue_token("api://someone-else")
    expired, _ = entra.issue_token(RESOURCE, now=now - 3 * 3600)
    claims: dict[str, Any] = jwt.decode(good, options={"verify_signature": False})
    wrong_issuer = entra.sign({**claims, "iss": "https://login.example.com/other/v2.0"})
    url = f"{stack.backend}{WEBHOOK}"
    body = b'{"type":10}'
    for name, token in (
        ("missing", None),
        ("audience", wrong_audience),
        ("issuer", wrong_issuer),
        ("expired", expired),
    ):
        headers = _upstream_headers()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        answer = await http.post(url, headers=headers, content=body)
        assert answer.status_code == 401, (name, answer.text)
    accepted = await http.post(
        url, headers={**_upstream_headers(), "Authorization": f"Bearer {good}"}, content=body
    )
    assert accepted.status_code == 200, accepted.text


async def test_the_temporary_key_rotates_while_clients_keep_connecting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http: httpx.AsyncClient
) -> None:
    """With the emulator rotating its temporary key every second and the backend refreshing
    every 0.3 s, every negotiate in three seconds gives a token the emulator accepts, signed
    with several successive keys."""
    async with keyless_stack(
        tmp_path,
        monkeypatch,
        temp_key_rotation=1.0,
        backend={"access_key_refresh_interval": 0.3},
    ) as stack:
        await _wait_ready(http, stack.backend)
        kids: set[str] = set()
        deadline = time.monotonic() + 3.0
        rounds = 0
        while time.monotonic() < deadline:
            info = (await http.post(f"{stack.backend}/api/chat/negotiate")).json()
            kids.add(jwt.get_unverified_header(info["accessToken"])["kid"])
            answer = await http.post(
                f"{stack.emulator.base_url}/client/negotiate?hub=chat&negotiateVersion=1",
                headers={"Authorization": f"Bearer {info['accessToken']}"},
            )
            assert answer.status_code == 200, answer.text
            rounds += 1
            await asyncio.sleep(0.05)
        assert len(kids) >= 3, kids
        assert rounds > 20


async def test_entra_down_gives_503_then_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, http: httpx.AsyncClient
) -> None:
    """While the identity endpoint refuses the app, negotiate answers 503 with a JSON reason
    and /readyz 503; once it serves the app again, both answer 200 without a restart."""
    async with running_emulator(keyless=True, identity_header="not-the-apps-header") as emu:
        use_emulator_identity(monkeypatch, emu)  # the app sends IDENTITY_HEADER: refused
        app = create_app(keyless_settings(emu))
        async with serve_asgi(app) as backend:
            await asyncio.sleep(0.5)  # the first fetch was refused
            negotiate = await http.post(f"{backend}/api/chat/negotiate")
            assert negotiate.status_code == 503
            reason = negotiate.json()
            assert "keyless" in reason["error"] and reason["type"] == "AccessKeyUnavailableError"
            ready = await http.get(f"{backend}/readyz")
            assert ready.status_code == 503 and "keyless" in ready.json()["error"]
            # Entra is back: the emulator now expects the header the app sends.
            emu.app.state.entra._identity_header = IDENTITY_HEADER.encode()
            await _wait_ready(http, backend)
            assert (await http.post(f"{backend}/api/chat/negotiate")).status_code == 200


async def test_mixed_key_and_keyless_endpoints(
    monkeypatch: pytest.MonkeyPatch, http: httpx.AsyncClient
) -> None:
    """One keyed and one keyless emulator as two endpoints: negotiate hands out both, each
    with a token its emulator accepts, and REST calls reach both (each with its own auth)."""
    async with (
        running_emulator() as keyed,
        running_emulator(keyless=True, identity_header=IDENTITY_HEADER) as keyless,
    ):
        use_emulator_identity(monkeypatch, keyless)
        settings = keyless_settings(
            keyless,
            connection_string=keyed.connection_string,
            endpoint_strings={"east:primary": keyless.connection_string},
        )
        assert settings.access_keys and settings.keyless
        app = create_app(settings)
        async with serve_asgi(app) as backend:
            await _wait_ready(http, backend)
            seen: set[str] = set()
            for _ in range(40):
                info = (await http.post(f"{backend}/api/chat/negotiate")).json()
                base = info["url"].split("/client/")[0]
                seen.add(base)
                answer = await http.post(
                    f"{base}/client/negotiate?hub=chat&negotiateVersion=1",
                    headers={"Authorization": f"Bearer {info['accessToken']}"},
                )
                assert answer.status_code == 200, answer.text
                if len(seen) == 2:
                    break
            assert seen == {keyed.base_url, keyless.base_url}
            # A non-send call fails when any endpoint refuses it: both must accept.
            await app.state.signalr.close_all_connections("chat")
            assert await app.state.signalr.is_healthy()
