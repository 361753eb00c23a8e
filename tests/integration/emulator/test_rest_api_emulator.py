"""The emulator's data-plane REST API: status codes, error codes, auth, bodies, names."""

from __future__ import annotations

import json
from datetime import timedelta

import msgpack
import pytest

from signalr_protocol.codec import get_codec
from signalr_protocol.messages import InvocationMessage
from signalr_protocol.tokens import mint_token
from tests.support.emulator import RunningEmulator
from tests.support.emulator_kit import Rest, eventually, q, raw_client
from tests.support.node import NodeProcess

pytestmark = pytest.mark.anyio


async def test_health_and_auth(emu: RunningEmulator, rest: Rest) -> None:
    """Every call needs a valid token; the audience may carry the port and any query."""
    assert (await rest("HEAD", "/api/health", query="api-version=2022-06-01")).status_code == 200
    assert (await rest("HEAD", "/api/v1/health")).status_code == 200
    response = await rest.client.head(f"{emu.base_url}/api/health")
    assert response.status_code == 401
    response = await rest.client.post(f"{emu.base_url}/api/hubs/chat/:send", json={"target": "x"})
    assert response.status_code == 401 and "No access token" in response.json()["message"]
    key = emu.settings.access_key
    full_url_aud = mint_token(
        key, f"{emu.base_url}/api/hubs/chat/:send?excluded=a&api-version=2024-12-01"
    )
    response = await rest.client.post(
        f"{emu.base_url}/api/hubs/chat/:send?api-version=2024-12-01",
        headers={"Authorization": f"Bearer {full_url_aud}"},
        json={"target": "x", "arguments": []},
    )
    assert response.status_code == 202
    for bad, needle in [
        (mint_token(key, "http://127.0.0.1/api/hubs/other/:send"), "audience"),
        (mint_token(key, "http://127.0.0.1/api/hubs/chat/:send", now=1_000), "expired"),
        (mint_token("k" * 44, "http://127.0.0.1/api/hubs/chat/:send"), "signature"),
    ]:
        response = await rest.client.post(
            f"{emu.base_url}/api/hubs/chat/:send",
            headers={"Authorization": f"Bearer {bad}"},
            json={"target": "x"},
        )
        assert response.status_code == 401
        assert needle in response.json()["message"]
        assert response.headers["x-ms-error-code"] == "Error.Unauthorized"


async def test_send_bodies(emu: RunningEmulator, rest: Rest, hub: str) -> None:
    """JSON (any key case), MessagePack and the SDK's binary form all reach JSON clients."""
    async with raw_client(emu, hub) as client:
        path = f"/api/hubs/{hub}/:send"
        response = await rest("POST", path, json={"Target": "a", "Arguments": [1, "x"]})
        assert response.status_code == 202
        assert await client.receive() == {"type": 1, "target": "a", "arguments": [1, "x"]}

        body = msgpack.packb({"target": "b", "arguments": [{"k": 2}]})
        headers = {"Content-Type": "application/x-msgpack"}
        assert (await rest("POST", path, content=body, headers=headers)).status_code == 202
        assert await client.receive() == {"type": 1, "target": "b", "arguments": [{"k": 2}]}

        message = InvocationMessage(target="c", arguments=(True,))
        binary = msgpack.packb(
            {
                "json": get_codec("json").encode(message),
                "messagepack": get_codec("messagepack").encode(message),
            }
        )
        headers = {"Content-Type": "application/octet-stream"}
        assert (await rest("POST", path, content=binary, headers=headers)).status_code == 202
        assert await client.receive() == {"type": 1, "target": "c", "arguments": [True]}

        only_mp = msgpack.packb({"messagepack": get_codec("messagepack").encode(message)})
        assert (await rest("POST", path, content=only_mp, headers=headers)).status_code == 202
        assert await client.receive() == {"type": 1, "target": "c", "arguments": [True]}


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"", "application/json", 400),
        (b"{not json", "application/json", 400),
        (b'{"arguments": []}', "application/json", 400),
        (b'{"target": "", "arguments": []}', "application/json", 400),
        (b'{"target": "x", "arguments": 5}', "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b"\xc1", "application/x-msgpack", 400),
        (b"\x80", "application/octet-stream", 400),
        (b"<x/>", "application/xml", 415),
        (
            b'{"target": "x", "arguments": ["' + b"a" * (1024 * 1024) + b'"]}',
            "application/json",
            413,
        ),
    ],
)
async def test_bad_send_bodies(
    emu: RunningEmulator, rest: Rest, content: bytes, content_type: str, status: int
) -> None:
    """Malformed bodies get 400, unknown media types 415, over 1 MB 413 — all with ErrorDetail."""
    response = await rest(
        "POST", "/api/hubs/chat/:send", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == status
    detail = response.json()
    assert detail["code"] == response.headers["x-ms-error-code"] and detail["message"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/hubs/1bad/:send",
        f"/api/hubs/{'h' * 129}/:send",
        "/api/hubs/chat/groups/%20%20/:send",
        f"/api/hubs/chat/groups/{'g' * 1025}/:send",
        "/api/hubs/chat/users/%FF/:send",
    ],
)
async def test_invalid_names_are_400(rest: Rest, path: str) -> None:
    """Hub, group and user names breaking the rules get 400 with an ErrorDetail body."""
    response = await rest("POST", path, json={"target": "x", "arguments": []})
    assert response.status_code == 400
    assert response.json()["message"]


async def test_application_prefix_and_unknown_paths(emu: RunningEmulator, rest: Rest) -> None:
    """application=app targets hub app_hub; unknown paths 404, wrong methods 405 with Allow."""
    async with raw_client(emu, "myapp_chat") as client:
        await rest.send("/api/hubs/Chat/:send", "x", 1, query="application=MyApp")
        assert (await client.receive())["arguments"] == [1]
    assert (await rest("POST", "/api/hubs/chat/:nope")).status_code == 404
    response = await rest("GET", "/api/hubs/chat/:send")
    assert response.status_code == 405 and response.headers["allow"] == "POST"


NAMES = ["a/b", "100%", "what?", "#tag", "with space", "😀 emoji", "x" * 1024, "dot.", ":send"]


@pytest.mark.parametrize("name", NAMES, ids=lambda n: n[:12])
async def test_odd_names_work_for_groups_and_users(
    emu: RunningEmulator, rest: Rest, hub: str, name: str
) -> None:
    """Group and user names with /, %, ?, #, spaces, emoji or 1,024 characters round-trip."""
    async with raw_client(emu, hub, user_id=name) as client:
        base = f"/api/hubs/{hub}"
        assert (await rest("HEAD", f"{base}/users/{q(name)}")).status_code == 200
        cid = q(client.connection_id or "")
        assert (await rest("PUT", f"{base}/groups/{q(name)}/connections/{cid}")).status_code == 200
        await rest.send(f"{base}/groups/{q(name)}/:send", "g", name)
        assert (await client.receive())["arguments"] == [name]
        await rest.send(f"{base}/users/{q(name)}/:send", "u", name)
        assert (await client.receive())["arguments"] == [name]
        listing = (await rest("GET", f"{base}/groups/{q(name)}/connections")).json()
        assert listing["value"] == [{"connectionId": client.connection_id, "userId": name}]


async def test_status_codes_and_error_codes(emu: RunningEmulator, rest: Rest, hub: str) -> None:
    """Each operation answers its documented status; not-found answers carry x-ms-error-code."""
    base = f"/api/hubs/{hub}"

    async def status(method: str, path: str, query: str = "") -> tuple[int, str | None]:
        response = await rest(method, path, query=query)
        return response.status_code, response.headers.get("x-ms-error-code")

    assert await status("HEAD", f"{base}/connections/none") == (
        404,
        "Warning.Connection.NotExisted",
    )
    assert await status("HEAD", f"{base}/users/none") == (404, "Warning.User.NotExisted")
    assert await status("HEAD", f"{base}/groups/none") == (404, "Warning.Group.NotExisted")
    assert await status("HEAD", f"{base}/users/none/groups/g") == (404, "Info.User.NotInGroup")
    assert await status("GET", f"{base}/users/none/groups/g") == (404, "Info.User.NotInGroup")
    assert await status("PUT", f"{base}/groups/g/connections/none") == (
        404,
        "Error.Connection.NotExisted",
    )
    assert (await status("DELETE", f"{base}/connections/none"))[0] == 200
    assert (await status("DELETE", f"/api/v1/hubs/{hub}/connections/none"))[0] == 202
    assert (await status("PUT", f"{base}/users/u/groups/g", "ttl=-1"))[0] == 400
    assert (await status("PUT", f"{base}/users/u/groups/g", "ttl=x"))[0] == 400
    assert (await status("PUT", f"{base}/users/u/groups/g"))[0] == 200
    assert (await status("PUT", f"/api/v1/hubs/{hub}/groups/g/users/u"))[0] == 202
    assert (await status("HEAD", f"{base}/users/u/groups/g"))[0] == 200
    assert (await status("GET", f"/api/v1/hubs/{hub}/groups/g/users/u"))[0] == 200
    assert (await status("DELETE", f"{base}/users/u/groups/g"))[0] == 204
    assert (await status("DELETE", f"/api/v1/hubs/{hub}/groups/g/users/u"))[0] == 202
    assert (await status("DELETE", f"{base}/users/u/groups"))[0] == 204
    assert (await status("DELETE", f"/api/v1/hubs/{hub}/users/u/groups"))[0] == 200
    assert (await status("DELETE", f"{base}/connections/none/groups"))[0] == 200
    assert (await status("POST", f"{base}/:closeConnections"))[0] == 204
    assert (await status("POST", f"{base}/users/u/:closeConnections"))[0] == 204
    assert (await status("POST", f"{base}/groups/g/:closeConnections"))[0] == 204
    assert (await status("POST", f"{base}/:execute"))[0] == 501

    async with raw_client(emu, hub, user_id="u") as client:
        cid = q(client.connection_id or "")
        assert await status("DELETE", f"{base}/groups/g/connections/{cid}") == (
            404,
            "Info.Connection.NotInGroup",
        )
        assert (await status("PUT", f"{base}/groups/g/connections/{cid}"))[0] == 200
        assert (await status("GET", f"/api/v1/hubs/{hub}/groups/g"))[0] == 200
        assert (await status("DELETE", f"{base}/groups/g/connections/{cid}"))[0] == 200
        assert (await status("HEAD", f"{base}/groups/g"))[0] == 404
        assert (await status("POST", f"{base}/users/u/:closeConnections", "reason=done"))[0] == 204
        message = await client.receive()
        assert message == {"type": 7, "error": "done", "allowReconnect": True}


async def test_close_connections_honours_exclusions(
    emu: RunningEmulator, rest: Rest, hub: str
) -> None:
    """Closing a hub's or group's connections spares the excluded ones."""
    async with raw_client(emu, hub) as a, raw_client(emu, hub) as b:
        base = f"/api/hubs/{hub}"
        for c in (a, b):
            await rest("PUT", f"{base}/groups/g/connections/{q(c.connection_id or '')}")
        response = await rest(
            "POST", f"{base}/groups/g/:closeConnections", query=f"excluded={a.connection_id}"
        )
        assert response.status_code == 204
        assert (await b.receive())["type"] == 7
        await rest.send(f"{base}/:send", "still", "here")
        assert (await a.receive())["target"] == "still"
        await rest("POST", f"{base}/:closeConnections", query=f"excluded={a.connection_id}")
        await rest.send(f"{base}/:send", "still", "here")
        assert (await a.receive())["target"] == "still"


async def test_list_group_connections_pages(emu: RunningEmulator, rest: Rest, hub: str) -> None:
    """Listing a group's connections pages with maxpagesize/nextLink and honours top."""
    async with raw_client(emu, hub) as a, raw_client(emu, hub) as b, raw_client(emu, hub) as c:
        base = f"/api/hubs/{hub}"
        for client in (a, b, c):
            await rest("PUT", f"{base}/groups/g/connections/{q(client.connection_id or '')}")
        first = (await rest("GET", f"{base}/groups/g/connections", query="maxpagesize=2")).json()
        assert len(first["value"]) == 2
        next_link = first["nextLink"]
        path, _, query = next_link.removeprefix(emu.base_url).partition("?")
        second = (await rest("GET", path, query=query)).json()
        assert len(second["value"]) == 1 and "nextLink" not in second
        seen = {m["connectionId"] for m in first["value"] + second["value"]}
        assert seen == {a.connection_id, b.connection_id, c.connection_id}
        top = (await rest("GET", f"{base}/groups/g/connections", query="top=1")).json()
        assert len(top["value"]) == 1 and "nextLink" not in top
        bad = await rest("GET", f"{base}/groups/g/connections", query="maxpagesize=500")
        assert bad.status_code == 400


@pytest.mark.node
async def test_generate_token_works_for_the_js_client(
    emu: RunningEmulator, rest: Rest, node: NodeProcess, hub: str
) -> None:
    """A :generateToken token connects the official client as that user."""
    response = await rest(
        "POST",
        f"/api/hubs/{hub}/:generateToken",
        query="userId=dave&minutesToExpire=5&api-version=2024-12-01",
    )
    assert response.status_code == 200
    token = response.json()["token"]
    async with node.connect(emu.client_url(hub), access_token=token) as client:
        await rest.send(f"/api/hubs/{hub}/users/dave/:send", "newMessage", "hi dave")
        assert await client.next_message("newMessage") == ["hi dave"]
    bad = await rest("POST", f"/api/hubs/{hub}/:generateToken", query="minutesToExpire=0")
    assert bad.status_code == 400


@pytest.mark.node
async def test_user_group_ttl_expires_for_the_js_client(
    emu: RunningEmulator, rest: Rest, node: NodeProcess, hub: str
) -> None:
    """A user added to a group with a TTL receives group messages until the TTL ends."""
    token = emu.client_token(hub, user_id="erin")
    async with node.connect(emu.client_url(hub), access_token=token, protocol="messagepack") as c:
        base = f"/api/hubs/{hub}"
        assert (
            await rest("PUT", f"{base}/users/erin/groups/vip", query="ttl=2")
        ).status_code == 200
        assert (await rest("HEAD", f"{base}/users/erin/groups/vip")).status_code == 200
        await rest.send(f"{base}/groups/vip/:send", "newMessage", "in")
        assert await c.next_message("newMessage") == ["in"]

        async def expired() -> bool:
            return (await rest("HEAD", f"{base}/groups/vip")).status_code == 404

        await eventually(expired, seconds=10)
        await rest.send(f"{base}/groups/vip/:send", "newMessage", "out")
        await rest.send(f"{base}/users/erin/:send", "newMessage", "direct")
        assert await c.next_message("newMessage") == ["direct"]
        assert (await rest("HEAD", f"{base}/users/erin/groups/vip")).status_code == 404


async def test_access_key_and_expired_rest_token(emu: RunningEmulator, rest: Rest) -> None:
    """auth/accessKey returns the key with a key id; a token past exp is refused."""
    body = (await rest("GET", "/api/auth/accessKey")).json()
    assert body["AccessKey"] == emu.settings.access_key and body["KeyId"]
    token = mint_token(
        emu.settings.access_key, "http://127.0.0.1/api/health", lifetime=timedelta(seconds=1), now=0
    )
    response = await rest.client.head(
        f"{emu.base_url}/api/health", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    assert json.dumps(body)  # serialisable


@pytest.mark.node
async def test_invoke_returns_the_client_result(
    emu: RunningEmulator, rest: Rest, node: NodeProcess, hub: str
) -> None:
    """:invoke sends an Invocation with an id and answers with the client's Completion."""
    token = emu.client_token(hub)
    async with node.connect(
        emu.client_url(hub), access_token=token, protocol="messagepack", results=("getAnswer",)
    ) as client:
        path = f"/api/hubs/{hub}/connections/{q(client.connection_id or '')}/:invoke"
        body = {"target": "getAnswer", "arguments": [{"answer": 42}]}
        response = await rest("POST", path, query="api-version=2024-12-01", json=body)
        assert response.status_code == 200
        assert response.json() == {"result": {"answer": 42}}
        body = {"target": "noResult", "arguments": []}
        response = await rest("POST", path, json=body)
        assert response.status_code == 400
        assert "didn't provide a result" in response.json()["message"]
    response = await rest("POST", path, json=body)
    assert response.status_code == 404
