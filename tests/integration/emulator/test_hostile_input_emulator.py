"""Hostile input to the emulator: every bad input gets a clean answer, never a traceback.

A real emulator on a real port, an upstream server that answers what a test asks for, the
official JS client where the finding was seen with it and raw WebSockets for frames no
client library would send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode

from emulator.http import read_body
from signalr_protocol.codec import get_codec
from signalr_protocol.connection_string import parse_connection_string
from signalr_protocol.messages import CompletionMessage, InvocationMessage
from signalr_protocol.tokens import mint_client_token
from tests.support.emulator import RunningEmulator, running_emulator
from tests.support.node import NodeClientError, NodeProcess
from tests.support.servers import serve_asgi

pytestmark = [pytest.mark.anyio]

RS = "\x1e"
ROOT = Path(__file__).resolve().parents[3]


class Upstream:
    """Answers each invocation by its target (the event name); see ``ANSWERS``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, str]]] = []
        self.arguments: list[list[Any]] = []  # of each invocation, in order

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = await read_body(receive, 2**31)
        event = headers.get("x-asrs-event", "")
        self.events.append((event, headers))
        status, content_type, answer = 200, b"text/plain", b""
        if headers.get("x-asrs-category") == "messages":
            codec = get_codec("messagepack" if "msgpack" in headers["content-type"] else "json")
            invocation = codec.decode_payload(body)
            assert isinstance(invocation, InvocationMessage)
            self.arguments.append(list(invocation.arguments))
            invocation_id = invocation.invocation_id or "none"
            status, content_type, answer = _answer(event, codec, invocation_id)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", content_type)],
            }
        )
        await send({"type": "http.response.body", "body": answer})


def _answer(event: str, codec: Any, invocation_id: str) -> tuple[int, bytes, bytes]:
    """What the upstream answers to an invocation of ``event``."""
    completion = codec.encode(CompletionMessage.with_result(invocation_id, "fine"))
    if event == "echo":
        return 200, codec.content_type.encode(), completion
    if event == "garbage":
        return 200, b"text/plain", b"garbage\xff, not a hub message"
    if event == "other-id":
        other = codec.encode(CompletionMessage.with_result("not-" + invocation_id, 1))
        return 200, codec.content_type.encode(), other
    if event == "not-a-completion":
        message = codec.encode(InvocationMessage(target="x", arguments=(1,)))
        return 200, codec.content_type.encode(), message
    if event == "two-completions":
        return 200, codec.content_type.encode(), completion + completion
    if event == "cut-off":
        return 200, codec.content_type.encode(), completion[:-1]
    if event == "not-found":
        reason = "No handler for hub 'chat', category 'messages', event 'not-found'."
        return 404, b"text/plain; charset=utf-8", reason.encode()
    if event == "json-reason":
        return 403, b"application/json", json.dumps({"detail": "Only admins may do that."}).encode()
    if event == "html-500":
        return 500, b"text/html", b"<html><body><h1>Internal Server Error</h1></body></html>"
    if event == "long-reason":
        reason = "bad\r\nInjected: line\x1b[31m " + "x" * 5000
        return 400, b"text/plain", reason.encode()
    return 404, b"text/plain", b""


@contextlib.asynccontextmanager
async def _emulator_with_upstream() -> AsyncIterator[tuple[Upstream, RunningEmulator]]:
    upstream = Upstream()
    async with serve_asgi(upstream, lifespan="off") as base_url:
        url = f"{base_url}/runtime/webhooks/signalr"
        async with running_emulator(upstream_url=url) as emu:
            yield upstream, emu


@pytest.fixture(scope="module")
async def upstream_emu(anyio_backend: str) -> AsyncIterator[tuple[Upstream, RunningEmulator]]:
    """One emulator whose upstream answers by event name, for the whole module."""
    async with _emulator_with_upstream() as running:
        yield running


@pytest.fixture
def emu_up(upstream_emu: tuple[Upstream, RunningEmulator]) -> RunningEmulator:
    """The module's emulator with the scripted upstream."""
    return upstream_emu[1]


@contextlib.asynccontextmanager
async def _raw(emu: RunningEmulator, protocol: str = "json") -> AsyncIterator[ClientConnection]:
    """A raw WebSocket that has completed the hub handshake."""
    token = emu.client_token("chat")
    url = emu.client_url("chat").replace("http://", "ws://") + f"&access_token={token}"
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"protocol": protocol, "version": 1}) + RS)
        assert str(await ws.recv()).startswith("{}")
        yield ws


async def _messages(ws: ClientConnection, timeout: float = 5) -> list[dict[str, Any]]:  # noqa: ASYNC109
    """The next frame's JSON hub messages (pings skipped: waits for a frame with others)."""
    async with asyncio.timeout(timeout):
        while True:
            frame = await ws.recv()
            text = frame if isinstance(frame, str) else frame.decode()
            messages = [json.loads(part) for part in text.split(RS) if part]
            messages = [m for m in messages if m.get("type") != 6]
            if messages:
                return messages


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        assert record.exc_info is None, f"{record.name}: {record.getMessage()}"


# ----------------------------------------------------------------------- upstream answers


INVALID_ANSWERS = ["garbage", "not-a-completion", "two-completions", "cut-off"]


@pytest.mark.node
@pytest.mark.parametrize("protocol", ["json", "messagepack"])
@pytest.mark.parametrize("event", INVALID_ANSWERS)
async def test_an_invalid_upstream_answer_is_an_error_completion(
    emu_up: RunningEmulator,
    node: NodeProcess,
    protocol: str,
    event: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A 200 whose body is not one Completion of this invocation fails the invoke; the
    connection stays open (today the bytes are relayed and the official client drops)."""
    token = emu_up.client_token("chat")
    async with node.connect(
        emu_up.client_url("chat"), access_token=token, protocol=protocol
    ) as client:
        with pytest.raises(NodeClientError, match="the upstream answered an invalid completion"):
            await client.invoke(event, 1, timeout=10)
        assert await client.invoke("echo", 1) == "fine"
        assert not client.closed.is_set()
    _no_tracebacks(caplog)


@pytest.mark.node
@pytest.mark.parametrize("protocol", ["json", "messagepack"])
async def test_a_completion_of_another_invocation_still_settles_the_invoke(
    emu_up: RunningEmulator, node: NodeProcess, protocol: str
) -> None:
    """An upstream answering with another invocation id does not leave invoke() pending for
    ever: the caller gets an error completion at once."""
    token = emu_up.client_token("chat")
    async with node.connect(
        emu_up.client_url("chat"), access_token=token, protocol=protocol
    ) as client:
        with pytest.raises(NodeClientError, match="does not complete this invocation"):
            await client.invoke("other-id", 1, timeout=5)
        assert await client.invoke("echo", 1) == "fine"
        assert not client.closed.is_set()


async def test_a_fire_and_forget_send_ignores_the_answer(emu_up: RunningEmulator) -> None:
    """A send without an invocation id gets nothing back, whatever the upstream answered."""
    async with _raw(emu_up) as ws:
        await ws.send(json.dumps({"type": 1, "target": "garbage", "arguments": []}) + RS)
        await ws.send(
            json.dumps({"type": 1, "invocationId": "7", "target": "echo", "arguments": []}) + RS
        )
        assert await _messages(ws) == [{"type": 3, "invocationId": "7", "result": "fine"}]


# ------------------------------------------------------------------- error completion text


@pytest.mark.node
async def test_the_webhooks_reason_reaches_the_caller(
    emu_up: RunningEmulator, node: NodeProcess
) -> None:
    """A 4xx answer's text is relayed after Microsoft's emulator wording "Invocation failed,
    status code N" (Azure/azure-signalr
    src/Microsoft.Azure.SignalR.Emulator/HubEmulator/HttpServerlessMessageHandler.cs), so
    the developer reads why."""
    token = emu_up.client_token("chat")
    async with node.connect(emu_up.client_url("chat"), access_token=token) as client:
        with pytest.raises(NodeClientError) as caught:
            await client.invoke("not-found")
        assert (
            "Invocation failed, status code 404: No handler for hub 'chat', "
            "category 'messages', event 'not-found'." in str(caught.value)
        )
        with pytest.raises(NodeClientError) as caught:
            await client.invoke("json-reason")
        assert "status code 403: Only admins may do that." in str(caught.value)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ("html-500", "Invocation failed, status code 500"),
        ("long-reason", "Invocation failed, status code 400: bad Injected: line"),
    ],
)
async def test_relayed_reasons_are_bounded_and_sanitised(
    emu_up: RunningEmulator, event: str, expected: str
) -> None:
    """HTML pages are not relayed; a text reason loses control characters and is cut short."""
    async with _raw(emu_up) as ws:
        await ws.send(
            json.dumps({"type": 1, "invocationId": "1", "target": event, "arguments": []}) + RS
        )
        [completion] = await _messages(ws)
    error = completion["error"]
    assert error.startswith(expected)
    assert len(error) <= 600
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in error)
    assert "<html>" not in error


# ------------------------------------------------------------------------ client messages
#
# An invocation that can be read (type, id, target) but not bound (arguments, or a target's
# text, outside the payload limits) is answered with an error completion and the connection
# stays open, as ASP.NET Core does: its hub protocols return an InvocationBindingFailureMessage
# (dotnet/aspnetcore src/SignalR/common/SignalR.Common/src/Protocol/
# InvocationBindingFailureMessage.cs) and its dispatcher answers it with an error completion
# (src/SignalR/server/Core/src/Internal/DefaultHubDispatcher.cs,
# ProcessInvocationBindingFailure). Only an unreadable envelope closes the connection.

DEEP_990: Any = 1
for _ in range(990):
    DEEP_990 = [DEEP_990]


@contextlib.contextmanager
def _deep_enough() -> Iterator[None]:
    """Room for the test's own recursive JSON encoding of a 990-level value."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(limit + 2_000)
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def _invoked(upstream: Upstream, since: int) -> list[str]:
    """The invocation events the upstream saw since ``since`` events."""
    skip = ("connected", "disconnected")
    return [event for event, _ in upstream.events[since:] if event not in skip]


def _refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if " refused: " in r.getMessage()]


async def test_a_lone_surrogate_gets_an_error_completion_and_one_log_line(
    upstream_emu: tuple[Upstream, RunningEmulator], caplog: pytest.LogCaptureFixture
) -> None:
    """A JSON client can write "\\ud800" in a target or an argument, which no header, URL or
    MessagePack peer can carry: the invocation never goes upstream, its caller gets an error
    completion naming the lone surrogate, the log one line (no traceback), and the
    connection stays open (see the section's note on ASP.NET Core)."""
    upstream, emu = upstream_emu
    caplog.set_level(logging.INFO)
    before = len(upstream.events)
    async with _raw(emu) as ws:
        for payload, target in (
            ('{"type":1,"invocationId":"s1","target":"a\\ud800","arguments":[]}', "a\\ud800"),
            ('{"type":1,"invocationId":"s2","target":"echo","arguments":["\\udc00"]}', "echo"),
        ):
            await ws.send(payload + RS)
            [completion] = await _messages(ws)
            assert completion["type"] == 3
            assert completion["error"].startswith(f"Invocation '{target}' refused: ")
            assert "lone UTF-16 surrogate" in completion["error"]
        await ws.send('{"type":1,"invocationId":"ok","target":"echo","arguments":[]}' + RS)
        assert await _messages(ws) == [{"type": 3, "invocationId": "ok", "result": "fine"}]
    assert _invoked(upstream, before) == ["echo"]
    _no_tracebacks(caplog)
    refused = _refusals(caplog)
    assert len(refused) == 2 and all("\n" not in line for line in refused)


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ("[NaN]", "NaN is not valid JSON"),
        ("[" + "[" * 10_000 + "]" * 10_000 + "]", "nested too deeply (10001 levels)"),
        ("[" + "[" * 70 + "]" * 70 + "]", "at most 64 nested arrays"),
        ("[" + "9" * 5_000 + "]", "at most 4,300 digits"),
        ("[1e999]", "the number 1e999 is too large"),
    ],
    ids=["nan", "deep", "over-depth-limit", "long-int", "overflow"],
)
async def test_arguments_outside_the_json_limits_get_an_error_completion(
    upstream_emu: tuple[Upstream, RunningEmulator],
    arguments: str,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Arguments outside the JSON limits (``NaN``, 10,000 levels, 70 levels, a 5,000-digit
    integer, ``1e999``) get an error completion naming the limit, one log line without a
    traceback, no upstream call, and the connection stays open."""
    upstream, emu = upstream_emu
    caplog.set_level(logging.INFO)
    before = len(upstream.events)
    async with _raw(emu) as ws:
        await ws.send(
            '{"type":1,"invocationId":"1","target":"echo","arguments":' + arguments + "}" + RS
        )
        [completion] = await _messages(ws)
        assert completion["invocationId"] == "1"
        assert completion["error"].startswith("Invocation 'echo' refused: ")
        assert reason in completion["error"]
        await ws.send('{"type":1,"invocationId":"2","target":"echo","arguments":[]}' + RS)
        assert await _messages(ws) == [{"type": 3, "invocationId": "2", "result": "fine"}]
    assert _invoked(upstream, before) == ["echo"]
    assert len(_refusals(caplog)) == 1
    _no_tracebacks(caplog)


async def test_a_send_with_bad_arguments_is_dropped_with_one_log_line(
    upstream_emu: tuple[Upstream, RunningEmulator], caplog: pytest.LogCaptureFixture
) -> None:
    """A send (no invocation id) whose arguments break a limit has nobody to answer: one log
    line, no upstream call, no close; the next invocation is answered as usual."""
    upstream, emu = upstream_emu
    caplog.set_level(logging.INFO)
    before = len(upstream.events)
    async with _raw(emu) as ws:
        await ws.send('{"type":1,"target":"echo","arguments":[1e999]}' + RS)
        await ws.send('{"type":1,"invocationId":"2","target":"echo","arguments":[]}' + RS)
        assert await _messages(ws) == [{"type": 3, "invocationId": "2", "result": "fine"}]
    assert _invoked(upstream, before) == ["echo"]
    [line] = _refusals(caplog)
    assert "1e999" in line and "a send: nothing answered" in line
    _no_tracebacks(caplog)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (
            '{"type":1,"invocationId":"1","target":"echo","arguments":[' + "[" * 10_000,
            "nested too deeply",
        ),
        (
            '{"type":1,"invocationId":"1","target":"echo","arguments":[],"headers":{"h":'
            + "[" * 70
            + "]" * 70
            + "}}",
            "at most 64",
        ),
        ('{"type":1,"invocationId":"\\ud800","target":"echo","arguments":[NaN]}', "NaN"),
    ],
    ids=["unterminated", "deep-headers", "surrogate-id"],
)
async def test_an_unreadable_envelope_closes_with_a_reason(
    emu_up: RunningEmulator, payload: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A message whose envelope can't be read (cut-off JSON, headers outside the limits, an
    invocation id no encoder can answer) closes the connection with a Close message naming
    the problem, and logs one line without a traceback."""
    caplog.set_level(logging.INFO)
    async with _raw(emu_up) as ws:
        await ws.send(payload + RS)
        [close] = await _messages(ws)
        assert close["type"] == 7
        assert reason in close["error"]
    _no_tracebacks(caplog)


async def _msgpack_messages(ws: ClientConnection) -> list[Any]:
    """The next MessagePack hub messages other than pings."""
    codec = get_codec("messagepack")
    async with asyncio.timeout(5):
        while True:
            data = await ws.recv()
            assert isinstance(data, bytes)
            messages = [m for m in codec.new_parser().feed(data) if m.message_type != 6]
            if messages:
                return messages


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (b"\x91" + b"\x91" * 1_000 + b"\x01", "nested too deeply"),
        (b"\x91" + b"\x91" * 5_000 + b"\x01", "nested too deeply"),
        (b"\x91\xa3\xed\xa0\x80", "lone UTF-16 surrogate"),
        (b"\x91\xa2\xff\xfe", "not valid UTF-8"),
        (msgpack.packb([msgpack.ExtType(5, b"x")]), "extension type 5 is not supported"),
    ],
    ids=["deep", "deeper-than-msgpack", "surrogate", "bad-utf8", "ext-5"],
)
async def test_messagepack_arguments_outside_the_limits_get_an_error_completion(
    upstream_emu: tuple[Upstream, RunningEmulator],
    arguments: bytes,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """MessagePack arguments nested 1,000 or 5,000 deep, holding a lone surrogate or invalid
    UTF-8, or an extension other than the timestamp: an error completion naming the limit,
    no upstream call, one log line, the connection stays open (MessagePack's hub protocol
    in ASP.NET Core returns a binding failure for arguments it can't bind:
    dotnet/aspnetcore src/SignalR/common/Protocols.MessagePack/src/Protocol/
    MessagePackHubProtocolWorker.cs)."""
    upstream, emu = upstream_emu
    caplog.set_level(logging.INFO)
    before = len(upstream.events)
    codec = get_codec("messagepack")
    head = msgpack.packb([1, {}, "1", "echo"], use_bin_type=True)
    body = b"\x95" + head[1:] + arguments  # the array header says 5 items
    async with _raw(emu, "messagepack") as ws:
        await ws.send(codec.frame(body))
        [completion] = await _msgpack_messages(ws)
        assert isinstance(completion, CompletionMessage)
        assert completion.invocation_id == "1" and completion.error is not None
        assert completion.error.startswith("Invocation 'echo' refused: ")
        assert reason in completion.error
        stamp = msgpack.Timestamp(seconds=1_900_000_000)
        await ws.send(codec.frame(msgpack.packb([1, {}, "2", "echo", [stamp]], datetime=False)))
        [answer] = await _msgpack_messages(ws)
        assert answer == CompletionMessage.with_result("2", "fine")
    assert _invoked(upstream, before) == ["echo"]
    assert upstream.arguments[-1] == ["2030-03-17T17:46:40+00:00"]  # the timestamp, converted
    assert len(_refusals(caplog)) == 1
    _no_tracebacks(caplog)


@pytest.mark.node
@pytest.mark.parametrize("protocol", ["json", "messagepack"])
@pytest.mark.parametrize(
    ("argument", "reason"),
    [
        ("\ud800", "lone UTF-16 surrogate"),
        ("deep", "at most 64 nested arrays"),
    ],
    ids=["surrogate", "deep"],
)
async def test_the_official_client_gets_a_rejected_invoke_and_stays_connected(
    upstream_emu: tuple[Upstream, RunningEmulator],
    node: NodeProcess,
    protocol: str,
    argument: Any,
    reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The official JS client's invoke("echo", "\\ud800") or of a value nested 990 deep (70
    in MessagePack, whose JS encoder stops at 100) rejects with the limit's message; the
    connection stays open and the next invoke works. Nothing reaches the upstream."""
    upstream, emu = upstream_emu
    caplog.set_level(logging.INFO)
    if argument == "deep":
        argument = DEEP_990
        if protocol == "messagepack":
            argument = 1
            for _ in range(70):
                argument = [argument]
    before = len(upstream.events)
    token = emu.client_token("chat")
    async with node.connect(
        emu.client_url("chat"), access_token=token, protocol=protocol
    ) as client:
        with pytest.raises(NodeClientError) as caught, _deep_enough():
            await client.invoke("echo", argument, timeout=10)
        assert "Invocation 'echo' refused: " in str(caught.value)
        assert reason in str(caught.value)
        assert await client.invoke("echo", 1) == "fine"
        assert not client.closed.is_set()
    assert _invoked(upstream, before) == ["echo"]
    _no_tracebacks(caplog)


@pytest.mark.node
async def test_the_official_messagepack_client_sends_dates_as_timestamps(
    upstream_emu: tuple[Upstream, RunningEmulator], node: NodeProcess
) -> None:
    """A JS Date travels as the MessagePack timestamp extension, which is converted (a UTC
    datetime, not refused like other extensions) and reaches the upstream as its ISO text."""
    upstream, emu = upstream_emu
    token = emu.client_token("chat")
    when = datetime(2030, 3, 17, 17, 46, 40, 123000, tzinfo=UTC)
    async with node.connect(
        emu.client_url("chat"), access_token=token, protocol="messagepack"
    ) as client:
        assert await client.invoke("echo", when) == "fine"
    assert upstream.arguments[-1] == [when.isoformat()]


# ------------------------------------------------------------------------------ frames


async def _send_invalid_text(ws: ClientConnection) -> None:
    ws.protocol.send_frame(Frame(Opcode.TEXT, b"\xff\xfe not UTF-8" + RS.encode()))
    ws.send_data()


async def test_invalid_utf8_closes_with_1007_and_one_line(
    emu_up: RunningEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A text frame that is not UTF-8 closes the connection with 1007 and one log line, at
    most one per interval however many clients do it (uvicorn logs a traceback each time)."""
    caplog.set_level(logging.INFO)
    for _ in range(20):
        async with _raw(emu_up) as ws:
            await _send_invalid_text(ws)
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(5):
                    while True:
                        await ws.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1007
    _no_tracebacks(caplog)
    lines = [r for r in caplog.records if "UTF-8" in r.getMessage()]
    assert 1 <= len(lines) <= 2, [r.getMessage() for r in lines]


# ------------------------------------------------------------------------------ REST bodies


@pytest.mark.parametrize(
    "body",
    [
        b'{"target":"t","arguments":[NaN]}',
        b'{"target":"t","arguments":[' + b"[" * 10_000 + b"]" * 10_000 + b"]}",
        b'{"target":"t","arguments":["\\ud800"]}',
        b'{"target":"t","arguments":[' + b"9" * 5_000 + b"]}",
        b'{"target":"t","arguments":[1e999]}',
        b'{"target":"t","arguments":[' + b"[" * 200 + b"]" * 200 + b"]}",
    ],
    ids=["nan", "deep", "surrogate", "long-int", "infinity", "over-depth-limit"],
)
async def test_hostile_rest_bodies_get_400(emu_up: RunningEmulator, body: bytes) -> None:
    """JSON a REST caller controls gets a 400 whose message says what is wrong, never a 500."""
    path = "/api/hubs/chat/:send"
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            emu_up.base_url + path,
            content=body,
            headers={**emu_up.rest_headers(path), "content-type": "application/json"},
        )
    assert response.status_code == 400, response.text
    assert response.json()["message"]


async def test_a_rest_body_that_never_arrives_gets_408() -> None:
    """A request that declares a body and never sends it is answered 408 within the bound."""
    async with running_emulator(body_read_timeout=0.5) as emu:
        path = "/api/hubs/chat/:send"
        reader, writer = await asyncio.open_connection("127.0.0.1", emu.port)
        token = emu.rest_token(path)
        writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            ).encode()
        )
        await writer.drain()
        async with asyncio.timeout(5):
            status_line = await reader.readline()
        writer.close()
    assert b" 408 " in status_line


# ------------------------------------------------------------------------------ log lines


async def test_client_values_are_escaped_in_the_log() -> None:
    """``signalr-emulator``'s log escapes control characters from clients: a target with a
    newline and a fake log line stays on its own line, visibly escaped."""
    fake = "2030-01-01 00:00:00,000 ERROR   emulator.auth: forged line"
    async with serve_asgi(Upstream(), lifespan="off") as base_url:
        env = {**os.environ, "EMULATOR_UPSTREAM_URL": f"{base_url}/runtime/webhooks/signalr"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "emulator",
            "--port",
            "0",
            cwd=str(ROOT),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            async with asyncio.timeout(15):
                while b"Endpoint=" not in (line := await proc.stdout.readline()):
                    assert line, "the emulator exited"
            endpoint = parse_connection_string(line.decode().strip())
            token = mint_client_token(endpoint, "chat")
            url = endpoint.client_url("chat").replace("http://", "ws://")
            async with connect(f"{url}&access_token={token}") as ws:
                await ws.send('{"protocol":"json","version":1}' + RS)
                await ws.recv()
                target = f"x\n{fake}\r\n\x1b[2J"
                await ws.send(
                    json.dumps({"type": 1, "invocationId": "1", "target": target, "arguments": []})
                    + RS
                )
                [completion] = await _messages(ws)
                assert completion["type"] == 3
        finally:
            proc.terminate()
            _, stderr = await asyncio.wait_for(proc.communicate(), 15)
    lines = stderr.decode().splitlines()
    assert not any(line.startswith(fake) for line in lines)
    assert "\x1b" not in stderr.decode()
    assert any("x\\n" + fake in line for line in lines), stderr.decode()


# ------------------------------------------------------------------- client results (:invoke)


@pytest.mark.parametrize(
    ("result", "status", "expected"),
    [
        (b"\x01\x02", 200, {"result": "AQI="}),
        (msgpack.Timestamp(0), 200, {"result": "1970-01-01T00:00:00+00:00"}),
        (float("nan"), 400, None),
    ],
    ids=["bytes", "timestamp", "nan"],
)
async def test_client_results_json_cannot_carry_as_is(
    emu_up: RunningEmulator,
    result: Any,
    status: int,
    expected: dict[str, Any] | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A MessagePack client's result to a REST ``:invoke`` is written as the payload policy
    says (binary as base64, timestamps as ISO 8601); one with no JSON form (``NaN``) is a
    400 naming the problem, never a 500."""
    codec = get_codec("messagepack")
    async with _raw(emu_up, "messagepack") as ws:
        hub = emu_up.app.state.registry.hub("chat")
        [connection_id] = [c for c in hub.connections]
        path = f"/api/hubs/chat/connections/{connection_id}/:invoke"

        async def answer() -> None:
            while True:
                data = await ws.recv()
                assert isinstance(data, bytes)
                for message in codec.new_parser().feed(data):
                    if isinstance(message, InvocationMessage) and message.invocation_id:
                        body = msgpack.packb(
                            [3, {}, message.invocation_id, 3, result], use_bin_type=True
                        )
                        await ws.send(codec.frame(body))
                        return

        answering = asyncio.create_task(answer())
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(
                emu_up.base_url + path,
                json={"target": "getAnswer", "arguments": []},
                headers=emu_up.rest_headers(path),
            )
        await answering
    assert response.status_code == status, response.text
    if expected is not None:
        assert response.json() == expected
    else:
        assert "NaN" in response.json()["message"]
    _no_tracebacks(caplog)
