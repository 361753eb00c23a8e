"""Tests of the emulator's upstream caller (emulator.upstream) against a real HTTP server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import msgpack
import pytest

from emulator.errors import EmulatorConfigError, EmulatorError
from emulator.http import read_body
from emulator.upstream import (
    DEFAULT_TEMPLATES,
    MAX_RESPONSE_SIZE,
    UpstreamContext,
    UpstreamDispatcher,
    UpstreamSettingsFile,
    UpstreamTemplate,
    load_upstream_settings,
    new_upstream_session,
)
from signalr_protocol.codec import JSON_CODEC, MSGPACK_CODEC, HubCodec
from signalr_protocol.messages import CompletionMessage, InvocationMessage
from signalr_protocol.signature import compute_signature, verify_signature
from tests.support.servers import free_port, serve_asgi

PRIMARY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
SECONDARY = "second-key-for-rotation"


@dataclass
class Recorded:
    path: str
    query: str
    headers: dict[str, str]
    raw_headers: list[tuple[bytes, bytes]]
    body: bytes


Reply = Callable[[Recorded], Awaitable[tuple[int, list[bytes], dict[str, str]]]]


async def ok_empty(request: Recorded) -> tuple[int, list[bytes], dict[str, str]]:
    return 200, [b""], {}


@dataclass
class Recorder:
    """A tiny raw-ASGI app that records each request and answers with ``reply``."""

    requests: list[Recorded] = field(default_factory=list)
    reply: Reply = ok_empty
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = await read_body(receive, 2**31)
        raw = list(scope["headers"])
        request = Recorded(
            path=scope["raw_path"].decode(),
            query=scope["query_string"].decode(),
            headers={k.decode().lower(): v.decode("latin-1") for k, v in raw},
            raw_headers=raw,
            body=body,
        )
        self.requests.append(request)
        status, chunks, headers = await self.reply(request)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
            }
        )
        for index, chunk in enumerate(chunks):
            await send(
                {"type": "http.response.body", "body": chunk, "more_body": index < len(chunks) - 1}
            )


Client = httpx.AsyncClient | aiohttp.ClientSession


@contextlib.asynccontextmanager
async def http_client(kind: str) -> AsyncIterator[Client]:
    """The dispatcher's HTTP client: the emulator's aiohttp session, or an httpx client."""
    if kind == "aiohttp":
        session = new_upstream_session()
        try:
            yield session
        finally:
            await session.close()
    else:
        async with httpx.AsyncClient(trust_env=False) as client:
            yield client


@dataclass
class Harness:
    recorder: Recorder
    base_url: str
    client: Client

    def dispatcher(
        self,
        templates: list[UpstreamTemplate] | None = None,
        *,
        keys: tuple[str, ...] = (PRIMARY, SECONDARY),
        timeout: float = 5.0,
    ) -> UpstreamDispatcher:
        if templates is None:
            templates = [UpstreamTemplate(f"{self.base_url}/hook/{{hub}}/{{category}}/{{event}}")]
        return UpstreamDispatcher(lambda: templates, keys, self.client, timeout)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module-scoped asyncio backend, so one recording server serves the whole module."""
    return "asyncio"


@pytest.fixture(scope="module")
async def upstream_server(anyio_backend: str) -> AsyncIterator[tuple[Recorder, str]]:
    """One recording upstream server per module (each test resets it)."""
    recorder = Recorder()
    async with serve_asgi(recorder, lifespan="off") as base_url:
        try:
            yield recorder, base_url
        finally:
            recorder.release.set()


@pytest.fixture(params=["aiohttp", "httpx"])
async def harness(
    request: pytest.FixtureRequest, upstream_server: tuple[Recorder, str]
) -> AsyncIterator[Harness]:
    recorder, base_url = upstream_server
    recorder.requests.clear()
    recorder.reply = ok_empty
    recorder.release = asyncio.Event()
    async with http_client(request.param) as client:
        try:
            yield Harness(recorder, base_url, client)
        finally:
            recorder.release.set()


def context(codec: HubCodec = JSON_CODEC, **overrides: Any) -> UpstreamContext:
    values: dict[str, Any] = {
        "hub": "chat",
        "connection_id": "conn-1",
        "user_id": "alice",
        "claims": (("name", "Alice"), ("role", "admin"), ("role", "user")),
        "query": "?hub=chat&id=abc&access_token=SECRET.TOKEN",
        "codec": codec,
    }
    values.update(overrides)
    return UpstreamContext(**values)


# -------------------------------------------------------------------------------- headers


@pytest.mark.anyio
async def test_connected_posts_every_header_and_type_10_body(harness: Harness) -> None:
    """connected: POST to the substituted URL with all X-ASRS-* headers and {"type":10}."""
    await harness.dispatcher().connected(context())
    [request] = harness.recorder.requests
    assert request.path == "/hook/chat/connections/connected"
    assert request.body == b'{"type":10}'
    h = request.headers
    assert h["content-type"] == "application/json"
    assert h["x-asrs-connection-id"] == "conn-1"
    assert h["x-asrs-hub"] == "chat"
    assert h["x-asrs-category"] == "connections"
    assert h["x-asrs-event"] == "connected"
    assert h["x-asrs-user-id"] == "alice"
    assert h["x-asrs-user-claims"] == "name: Alice, role: admin, role: user"
    assert h["x-asrs-client-query"] == "?hub=chat&id=abc"
    assert "SECRET" not in str(request.raw_headers)


@pytest.mark.anyio
async def test_signature_has_one_entry_per_key(harness: Harness) -> None:
    """X-ASRS-Signature carries sha256=<HEX> for the primary and the secondary key."""
    await harness.dispatcher().connected(context())
    header = harness.recorder.requests[0].headers["x-asrs-signature"]
    assert header == (
        f"{compute_signature('conn-1', PRIMARY)}, {compute_signature('conn-1', SECONDARY)}"
    )
    assert verify_signature(header, "conn-1", [PRIMARY])
    assert verify_signature(header, "conn-1", [SECONDARY])
    assert not verify_signature(header, "conn-1", ["other"])


@pytest.mark.anyio
async def test_optional_headers_are_left_out_when_empty(harness: Harness) -> None:
    """No user id, no claims and a query of only access_token send none of those headers."""
    ctx = context(user_id=None, claims=(), query="access_token=abc")
    await harness.dispatcher().connected(ctx)
    headers = harness.recorder.requests[0].headers
    assert "x-asrs-user-id" not in headers
    assert "x-asrs-user-claims" not in headers
    assert "x-asrs-client-query" not in headers


@pytest.mark.anyio
async def test_client_query_gets_a_leading_question_mark_and_loses_the_token(
    harness: Harness,
) -> None:
    """A query given without '?' is forwarded with one, minus access_token in any position."""
    ctx = context(query="access_token=x&hub=chat&Access_Token=y&a=%20b")
    await harness.dispatcher().connected(ctx)
    assert harness.recorder.requests[0].headers["x-asrs-client-query"] == "?hub=chat&a=%20b"


@pytest.mark.anyio
async def test_non_ascii_claims_travel_as_utf8(harness: Harness) -> None:
    """A claim value outside ASCII is sent as UTF-8 bytes, not dropped or crashing."""
    await harness.dispatcher().connected(context(claims=(("name", "José"),)))
    raw = dict(harness.recorder.requests[0].raw_headers)
    assert raw[b"x-asrs-user-claims"].decode("utf-8") == "name: José"


@pytest.mark.anyio
async def test_disconnected_bodies_with_and_without_error(harness: Harness) -> None:
    """disconnected sends {"type":11}, or {"type":11,"error":...} when it ended with an error."""
    dispatcher = harness.dispatcher()
    await dispatcher.disconnected(context(), None)
    await dispatcher.disconnected(context(), "Connection reset")
    first, second = harness.recorder.requests
    assert first.path == "/hook/chat/connections/disconnected"
    assert first.body == b'{"type":11}'
    assert json.loads(second.body) == {"type": 11, "error": "Connection reset"}
    assert second.headers["x-asrs-event"] == "disconnected"


# ----------------------------------------------------------------------------- invocations


@pytest.mark.anyio
async def test_json_invocation_body_and_relayed_answer(harness: Harness) -> None:
    """A JSON invocation is POSTed unframed as JSON; a 200 body is returned byte for byte."""
    answer = JSON_CODEC.encode(CompletionMessage.with_result("7", "pong"))

    async def reply(request: Recorded) -> tuple[int, list[bytes], dict[str, str]]:
        return 200, [answer], {"content-type": "application/json"}

    harness.recorder.reply = reply
    message = InvocationMessage("echo", ["ping"], invocation_id="7")
    assert await harness.dispatcher().invoke(context(), message) == answer
    [request] = harness.recorder.requests
    assert request.path == "/hook/chat/messages/echo"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-asrs-category"] == "messages"
    assert request.headers["x-asrs-event"] == "echo"
    assert request.body == JSON_CODEC.encode_payload(message)
    assert not request.body.endswith(b"\x1e")


@pytest.mark.anyio
async def test_each_invocation_carries_its_own_event_and_the_dispatchers_keys(
    harness: Harness,
) -> None:
    """Headers made once per connection and target stay right across targets and key sets."""
    ctx = context()
    primary = harness.dispatcher(keys=(PRIMARY,))
    for target in ("echo", "shout", "echo"):
        await primary.invoke(ctx, InvocationMessage(target, [], invocation_id="1"))
    await harness.dispatcher(keys=(SECONDARY,)).invoke(ctx, InvocationMessage("echo", []))
    requests = harness.recorder.requests
    assert [r.headers["x-asrs-event"] for r in requests] == ["echo", "shout", "echo", "echo"]
    assert [r.path.rsplit("/", 1)[1] for r in requests] == ["echo", "shout", "echo", "echo"]
    signatures = [r.headers["x-asrs-signature"] for r in requests]
    assert signatures[:3] == [compute_signature("conn-1", PRIMARY)] * 3
    assert signatures[3] == compute_signature("conn-1", SECONDARY)
    assert all(r.headers["x-asrs-client-query"] == "?hub=chat&id=abc" for r in requests)


@pytest.mark.anyio
async def test_a_lone_surrogate_in_a_name_is_replaced_not_fatal(harness: Harness) -> None:
    """A target with no UTF-8 form still reaches the upstream, the bad character replaced."""
    answer = await harness.dispatcher().invoke(context(), InvocationMessage("a\ud800b", [], "2"))
    assert answer == JSON_CODEC.encode(CompletionMessage.void("2"))
    [request] = harness.recorder.requests
    assert request.headers["x-asrs-event"] == "a?b"
    assert request.path == "/hook/chat/messages/a%3Fb"


@pytest.mark.anyio
async def test_msgpack_invocation_body_and_empty_answer(harness: Harness) -> None:
    """A MessagePack invocation is POSTed without length prefix; an empty 200 gives a void one."""
    message = InvocationMessage("send", [b"\x00\x01", 5], invocation_id="3")
    reply = await harness.dispatcher().invoke(context(MSGPACK_CODEC), message)
    assert reply == MSGPACK_CODEC.encode(CompletionMessage.void("3"))
    [request] = harness.recorder.requests
    assert request.headers["content-type"] == "application/x-msgpack"
    assert msgpack.unpackb(request.body) == [1, {}, "3", "send", [b"\x00\x01", 5], []]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "chunks", "headers"),
    [(204, [b""], {}), (200, [b"", b""], {}), (200, [b""], {"content-length": "0"})],
    ids=["204", "chunked-empty-200", "content-length-0"],
)
async def test_empty_answers_give_an_empty_completion(
    harness: Harness, status: int, chunks: list[bytes], headers: dict[str, str]
) -> None:
    """204, an empty chunked 200 and Content-Length: 0 all complete the invoke without result."""

    async def reply(request: Recorded) -> tuple[int, list[bytes], dict[str, str]]:
        return status, chunks, headers

    harness.recorder.reply = reply
    result = await harness.dispatcher().invoke(context(), InvocationMessage("x", [], "9"))
    assert result == b'{"type":3,"invocationId":"9"}\x1e'


@pytest.mark.anyio
@pytest.mark.parametrize("status", [202, 400, 401, 404, 500, 503])
async def test_other_statuses_give_an_error_completion(harness: Harness, status: int) -> None:
    """Any status but 200/204 completes the invoke with 'Invocation failed, status code N'
    and the answer's text as the reason."""

    async def reply(request: Recorded) -> tuple[int, list[bytes], dict[str, str]]:
        return status, [b"the reason\n"], {}

    harness.recorder.reply = reply
    result = await harness.dispatcher().invoke(context(), InvocationMessage("x", [], "1"))
    assert result == JSON_CODEC.encode(
        CompletionMessage.with_error("1", f"Invocation failed, status code {status}: the reason")
    )


@pytest.mark.anyio
async def test_error_completion_uses_the_connection_protocol(harness: Harness) -> None:
    """A MessagePack connection gets its error Completion in MessagePack."""

    async def reply(request: Recorded) -> tuple[int, list[bytes], dict[str, str]]:
        return 404, [b""], {}

    harness.recorder.reply = reply
    result = await harness.dispatcher().invoke(
        context(MSGPACK_CODEC), InvocationMessage("x", [], "1")
    )
    assert result is not None
    assert MSGPACK_CODEC.new_parser().feed(result) == [
        CompletionMessage.with_error("1", "Invocation failed, status code 404")
    ]


@pytest.mark.anyio
async def test_slow_upstream_times_out_with_a_clear_error(harness: Harness) -> None:
    """An upstream slower than the timeout gives 'upstream timed out after N s.' in time."""

    async def reply(request: Recorded) -> tuple[int, list[bytes], dict[str, str]]:
        await asyncio.wait_for(harness.recorder.release.wait(), timeout=5)
        return 200, [b""], {}

    harness.recorder.reply = reply
    loop = asyncio.get_running_loop()
    started = loop.time()
    result = await harness.dispatcher(timeout=0.3).invoke(
        context(), InvocationMessage("slow", [], "1")
    )
    assert loop.time() - started < 2
    assert result == JSON_CODEC.encode(
        CompletionMessage.with_error("1", "Invocation failed, upstream timed out after 0.3 s.")
    )
    harness.recorder.release.set()


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["aiohttp", "httpx"])
async def test_refused_connection_gives_unreachable_error(kind: str) -> None:
    """A closed port gives 'Invocation failed, upstream unreachable: <reason>.'."""
    port = free_port()
    async with http_client(kind) as client:
        dispatcher = UpstreamDispatcher(
            lambda: [UpstreamTemplate(f"http://127.0.0.1:{port}/hook")], [PRIMARY], client, 5
        )
        result = await dispatcher.invoke(context(), InvocationMessage("x", [], "1"))
    assert result is not None
    [completion] = JSON_CODEC.new_parser().feed(result)
    assert isinstance(completion, CompletionMessage)
    assert completion.error is not None
    assert completion.error.startswith("Invocation failed, upstream unreachable: ")
    assert completion.error.endswith(".")


@pytest.mark.anyio
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_answer_over_16_mib_is_refused(harness: Harness, chunked: bool) -> None:
    """An answer over 16 MiB (announced or streamed) gives 'response too large.'."""
    size = MAX_RESPONSE_SIZE + 1
    chunk = b"x" * (1024 * 1024)

    async def reply(request: Recorded) -> tuple[int, list[bytes], dict[str, str]]:
        chunks = [chunk] * 16 + [b"x"]
        return 200, chunks, {} if chunked else {"content-length": str(size)}

    harness.recorder.reply = reply
    result = await harness.dispatcher().invoke(context(), InvocationMessage("x", [], "1"))
    assert result == JSON_CODEC.encode(
        CompletionMessage.with_error("1", "Invocation failed, response too large.")
    )


@pytest.mark.anyio
async def test_no_matching_template_answers_at_once_without_a_request(harness: Harness) -> None:
    """With no template for the event, the invoke gets an error completion, never a hang."""
    only_other = [UpstreamTemplate(f"{harness.base_url}/hook", event_pattern="other")]
    result = await harness.dispatcher(only_other).invoke(
        context(), InvocationMessage("echo", [], "5")
    )
    assert result == JSON_CODEC.encode(
        CompletionMessage.with_error(
            "5", "Invocation failed, no upstream is configured for hub 'chat' event 'echo'."
        )
    )
    assert harness.recorder.requests == []


@pytest.mark.anyio
async def test_upstream_disabled_drops_connection_events(harness: Harness) -> None:
    """An empty template list reports no connection events and refuses invocations clearly."""
    dispatcher = harness.dispatcher([])
    await dispatcher.connected(context())
    await dispatcher.disconnected(context(), "x")
    assert harness.recorder.requests == []
    result = await dispatcher.invoke(context(), InvocationMessage("echo", [], "1"))
    assert result is not None and b"no upstream is configured" in result


@pytest.mark.anyio
async def test_invocation_without_id_returns_none_and_logs_failures(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A fire-and-forget invocation is POSTed, returns None, and a failure is only logged."""

    async def reply(request: Recorded) -> tuple[int, list[bytes], dict[str, str]]:
        return 500, [b""], {}

    harness.recorder.reply = reply
    with caplog.at_level(logging.WARNING, logger="emulator.upstream"):
        result = await harness.dispatcher().invoke(
            context(), InvocationMessage("broadcast", ["hi"])
        )
    assert result is None
    assert len(harness.recorder.requests) == 1
    assert "conn-1" in caplog.text and "status code 500" in caplog.text


@pytest.mark.anyio
async def test_failed_connection_events_log_a_warning_and_never_raise(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """connected answered 403 and disconnected to a closed port are logged with the id."""

    async def reply(request: Recorded) -> tuple[int, list[bytes], dict[str, str]]:
        return 403, [b"forbidden"], {}

    harness.recorder.reply = reply
    closed = [UpstreamTemplate(f"http://127.0.0.1:{free_port()}/hook?code=SECRETKEY")]
    with caplog.at_level(logging.WARNING, logger="emulator.upstream"):
        await harness.dispatcher().connected(context(connection_id="conn-403"))
        await harness.dispatcher(closed).disconnected(context(connection_id="conn-gone"), None)
    assert "conn-403" in caplog.text and "403" in caplog.text
    assert "conn-gone" in caplog.text and "unreachable" in caplog.text
    assert "SECRETKEY" not in caplog.text


@pytest.mark.anyio
async def test_first_matching_template_wins_case_insensitively(harness: Harness) -> None:
    """Templates are tried in order; hub, category and event match ignoring case."""
    templates = [
        UpstreamTemplate(f"{harness.base_url}/a", hub_pattern="other"),
        UpstreamTemplate(f"{harness.base_url}/b", hub_pattern="Chat, Admin", event_pattern="Echo"),
        UpstreamTemplate(f"{harness.base_url}/c"),
    ]
    dispatcher = harness.dispatcher(templates)
    await dispatcher.invoke(context(), InvocationMessage("echo", [], "1"))
    await dispatcher.invoke(context(), InvocationMessage("broadcast", [], "2"))
    assert [r.path for r in harness.recorder.requests] == ["/b", "/c"]


@pytest.mark.anyio
async def test_event_names_are_percent_encoded_in_the_url(harness: Harness) -> None:
    """{event} is percent-encoded (Uri.EscapeDataString-like), so odd targets stay one segment."""
    await harness.dispatcher().invoke(context(), InvocationMessage("a b/c?d", [], "1"))
    assert harness.recorder.requests[0].path == "/hook/chat/messages/a%20b%2Fc%3Fd"


# ------------------------------------------------------------------------------- templates


def test_template_matching_rules() -> None:
    """'*' matches all, comma lists are trimmed, exact names match, case is ignored."""
    template = UpstreamTemplate(
        "http://h/x", hub_pattern=" chat , admin ", category_pattern="messages", event_pattern="*"
    )
    assert template.matches("chat", "messages", "anything")
    assert template.matches("ADMIN", "Messages", "x")
    assert not template.matches("other", "messages", "x")
    assert not template.matches("chat", "connections", "connected")
    assert UpstreamTemplate("http://h/x", event_pattern="a,*").matches("z", "z", "z")


def test_template_url_substitution() -> None:
    """{hub}, {category}, {event} are replaced (any case) and percent-encoded."""
    template = UpstreamTemplate("https://h:8443/api/{Hub}/{category}/{event}?code=k")
    assert template.url_for("chat", "messages", "é&x") == (
        "https://h:8443/api/chat/messages/%C3%A9%26x?code=k"
    )


@pytest.mark.parametrize(
    "url", ["/relative/path", "ftp://h/x", "localhost:7071/x", "http://", "http://h:99999/"]
)
def test_template_refuses_non_absolute_http_urls(url: str) -> None:
    """UrlTemplate must be an absolute http(s) URL."""
    with pytest.raises(EmulatorConfigError, match="absolute http"):
        UpstreamTemplate(url)


def test_default_templates_point_at_the_local_functions_host() -> None:
    """DEFAULT_TEMPLATES sends everything to localhost:7071's webhook."""
    [template] = DEFAULT_TEMPLATES
    assert template.matches("any", "connections", "connected")
    assert template.url_for("any", "messages", "x") == (
        "http://localhost:7071/runtime/webhooks/signalr"
    )


def write(tmp_path: Path, content: Any, name: str = "settings.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), "utf-8")
    return path


def test_load_settings_in_asrs_emulator_format(tmp_path: Path) -> None:
    """The asrs-emulator file parses, keys case-insensitively, missing patterns meaning '*'."""
    path = write(
        tmp_path,
        {
            "upstreamSettings": {
                "templates": [
                    {
                        "UrlTemplate": "http://localhost:7071/runtime/webhooks/signalr",
                        "EventPattern": "*",
                        "HubPattern": "*",
                        "CategoryPattern": "*",
                    },
                    {"urltemplate": "http://x/{event}", "EVENTPATTERN": "a, b", "Auth": {}},
                ]
            }
        },
    )
    assert load_upstream_settings(path) == [
        UpstreamTemplate("http://localhost:7071/runtime/webhooks/signalr"),
        UpstreamTemplate("http://x/{event}", event_pattern="a, b"),
    ]
    assert load_upstream_settings(tmp_path) == load_upstream_settings(path)


def test_load_settings_accepts_a_utf8_bom(tmp_path: Path) -> None:
    """A BOM (as some .NET tools write) is accepted."""
    path = tmp_path / "settings.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"UpstreamSettings": {}}).encode())
    assert load_upstream_settings(path) == []


@pytest.mark.parametrize(
    "content", [{}, {"UpstreamSettings": None}, {"UpstreamSettings": {"Templates": []}}]
)
def test_absent_or_empty_templates_disable_the_upstream(tmp_path: Path, content: Any) -> None:
    """No UpstreamSettings, no Templates or an empty list means no upstream."""
    assert load_upstream_settings(write(tmp_path, content)) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ([], "top level must be a JSON object"),
        ({"UpstreamSettings": []}, "UpstreamSettings must be an object"),
        ({"UpstreamSettings": {"Templates": {}}}, "UpstreamSettings.Templates must be an array"),
        ({"UpstreamSettings": {"Templates": ["x"]}}, "Templates[0] must be an object"),
        ({"UpstreamSettings": {"Templates": [{}]}}, "Templates[0].UrlTemplate is missing"),
        (
            {"UpstreamSettings": {"Templates": [{"UrlTemplate": "http://a"}, {"UrlTemplate": 1}]}},
            "Templates[1].UrlTemplate is missing or not a string",
        ),
        (
            {"UpstreamSettings": {"Templates": [{"UrlTemplate": "/x"}]}},
            "Templates[0].UrlTemplate must be an absolute http",
        ),
        (
            {"UpstreamSettings": {"Templates": [{"UrlTemplate": "http://a", "HubPattern": " "}]}},
            "Templates[0].HubPattern must not be empty",
        ),
        (
            {"UpstreamSettings": {"Templates": [{"UrlTemplate": "http://a", "EventPattern": 3}]}},
            "Templates[0].EventPattern must be a string",
        ),
    ],
)
def test_bad_settings_name_the_field(tmp_path: Path, content: Any, message: str) -> None:
    """Every shape error raises EmulatorConfigError naming the file and the field."""
    path = write(tmp_path, content)
    with pytest.raises(EmulatorConfigError) as info:
        load_upstream_settings(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert isinstance(info.value, EmulatorError)


def test_missing_settings_file_is_a_config_error(tmp_path: Path) -> None:
    """A --config path that does not exist is reported clearly."""
    with pytest.raises(EmulatorConfigError, match="Cannot read upstream settings"):
        load_upstream_settings(tmp_path / "nope.json")


def test_settings_file_reloads_on_change_and_keeps_last_good(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A changed file is reloaded on the next call; a broken edit keeps the previous templates."""
    one = {"UpstreamSettings": {"Templates": [{"UrlTemplate": "http://one/"}]}}
    two = {"UpstreamSettings": {"Templates": [{"UrlTemplate": "http://two/"}]}}
    path = write(tmp_path, one)
    source = UpstreamSettingsFile(path, interval=0)
    assert [t.url_template for t in source()] == ["http://one/"]
    write(tmp_path, two)
    os.utime(path, ns=(1, 10**18))  # mtime granularity must not hide the change
    assert [t.url_template for t in source()] == ["http://two/"]
    write(tmp_path, "{broken")
    os.utime(path, ns=(1, 2 * 10**18))
    with caplog.at_level(logging.WARNING, logger="emulator.upstream"):
        assert [t.url_template for t in source()] == ["http://two/"]
    assert "not reloaded" in caplog.text


def test_settings_file_checks_at_most_once_per_interval(tmp_path: Path) -> None:
    """Within the interval the file is not looked at again."""
    path = write(tmp_path, {"UpstreamSettings": {"Templates": [{"UrlTemplate": "http://one/"}]}})
    source = UpstreamSettingsFile(path, interval=3600)
    write(tmp_path, {})
    os.utime(path, ns=(1, 10**18))
    assert len(source()) == 1


@pytest.mark.anyio
async def test_answer_cut_off_gives_an_error_completion_and_the_next_call_works(
    harness: Harness,
) -> None:
    """An answer that stops short of its Content-Length gives 'Invocation failed, error: ...'."""
    cut = True

    async def reply(request: Recorded) -> tuple[int, list[bytes], dict[str, str]]:
        if cut:
            # More promised than sent: uvicorn drops the connection mid-body.
            return 200, [b"x" * 10], {"content-length": "100"}
        return 204, [b""], {}

    harness.recorder.reply = reply
    result = await harness.dispatcher().invoke(context(), InvocationMessage("x", [], "1"))
    assert result is not None
    [completion] = JSON_CODEC.new_parser().feed(result)
    assert isinstance(completion, CompletionMessage) and completion.error is not None
    assert completion.error.startswith("Invocation failed, error: ")
    cut = False
    result = await harness.dispatcher().invoke(context(), InvocationMessage("x", [], "2"))
    assert result == JSON_CODEC.encode(CompletionMessage.void("2"))
