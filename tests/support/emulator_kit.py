"""Helpers for the emulator's integration tests: a REST caller and a raw hub client."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.support.emulator import RunningEmulator

RS = "\x1e"


class Rest:
    """Calls the emulator's REST API with a valid bearer token for each path."""

    def __init__(self, emu: RunningEmulator, client: httpx.AsyncClient) -> None:
        self.emu = emu
        self.client = client

    async def __call__(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        token_path: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        url = self.emu.base_url + path + (f"?{query}" if query else "")
        headers = {**self.emu.rest_headers(token_path or path), **kwargs.pop("headers", {})}
        return await self.client.request(method, url, headers=headers, **kwargs)

    async def send(self, path: str, target: str, *args: Any, query: str = "") -> None:
        response = await self(
            "POST", path, query=query, json={"target": target, "arguments": list(args)}
        )
        assert response.status_code == 202, response.text


def q(name: str) -> str:
    """Percent-encode a name as one path segment."""
    return quote(name, safe="")


async def eventually(predicate: Callable[[], Awaitable[bool]], seconds: float = 5) -> None:
    """Poll ``predicate`` until it holds (server-side state has no event to wait on)."""
    async with asyncio.timeout(seconds):
        while not await predicate():  # noqa: ASYNC110 - polling another process's state
            await asyncio.sleep(0.05)


class RawClient:
    """A hand-made JSON hub-protocol client over a raw WebSocket (no SDK in between)."""

    def __init__(self, ws: ClientConnection, connection_id: str | None) -> None:
        self.ws = ws
        self.connection_id = connection_id
        self._pending: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message) + RS)

    async def receive(self, *, skip_pings: bool = True) -> dict[str, Any]:
        """The next hub message (pings skipped unless asked for)."""
        while True:
            if not self._pending:
                frame = await self.ws.recv()
                text = frame if isinstance(frame, str) else frame.decode()
                self._pending = [json.loads(p) for p in text.split(RS) if p]
            message = self._pending.pop(0)
            if skip_pings and message.get("type") == 6:
                continue
            return message


@contextlib.asynccontextmanager
async def raw_client(
    emu: RunningEmulator,
    hub: str,
    *,
    user_id: str | None = None,
    negotiate: bool = True,
    handshake: str = '{"protocol":"json","version":1}',
    **ws_options: Any,
) -> AsyncIterator[RawClient]:
    """Negotiate (v1) and open a WebSocket, send the handshake, check the reply."""
    token = emu.client_token(hub, user_id=user_id)
    url = emu.client_url(hub).replace("http://", "ws://")
    connection_id = None
    if negotiate:
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{emu.base_url}/client/negotiate?hub={hub}&negotiateVersion=1",
                headers={"Authorization": f"Bearer {token}"},
            )
            response.raise_for_status()
            body = response.json()
        connection_id = body["connectionId"]
        url += f"&id={body['connectionToken']}"
    async with connect(
        url, additional_headers={"Authorization": f"Bearer {token}"}, **ws_options
    ) as ws:
        client = RawClient(ws, connection_id)
        await ws.send(handshake + RS)
        reply = await ws.recv()
        text = reply if isinstance(reply, str) else reply.decode()
        first, _, rest = text.partition(RS)
        assert json.loads(first) == {}, first
        client._pending = [json.loads(p) for p in rest.split(RS) if p]
        yield client


async def invoke_once(url: str, token: str, target: str, *arguments: Any) -> dict[str, Any]:
    """Connect to a client ``url`` (``http://…/client/?hub=…``) with ``token`` over a raw JSON
    WebSocket, invoke ``target`` once and return the Completion, as a dict."""
    ws_url = url.replace("http", "ws", 1)
    async with connect(f"{ws_url}&access_token={token}") as socket:
        await socket.send('{"protocol":"json","version":1}' + RS)
        assert await socket.recv() == "{}" + RS
        invocation = {"type": 1, "invocationId": "1", "target": target, "arguments": arguments}
        await socket.send(json.dumps(invocation) + RS)
        async with asyncio.timeout(10):
            while True:
                frame = await socket.recv()
                assert isinstance(frame, str)
                for text in frame.split(RS):
                    if text and json.loads(text)["type"] == 3:
                        completion: dict[str, Any] = json.loads(text)
                        return completion
