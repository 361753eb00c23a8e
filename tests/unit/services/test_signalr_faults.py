"""SignalRService against a fault-injecting server: the error tree and the retry matrix."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from app.exceptions import (
    ServiceBadRequestError,
    ServiceError,
    ServiceNotFoundError,
    ServiceThrottledError,
    ServiceUnauthorizedError,
    ServiceUnavailableError,
)
from app.services.retry import CallKind, RetryPolicy, parse_retry_after
from app.services.signalr import SignalRService
from app.settings import Settings
from tests.support.outbound_kit import (
    RecordingServer,
    Reply,
    recording_server,
    settings_for,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def server() -> AsyncIterator[RecordingServer]:
    async with recording_server() as server:
        yield server


@contextlib.asynccontextmanager
async def open_service(server: RecordingServer, **overrides: Any) -> AsyncIterator[SignalRService]:
    async with SignalRService.open(settings_for(server.base_url, **overrides)) as service:
        yield service


def send(service: SignalRService) -> Awaitable[None]:
    return service.send_to_group("chat", "g", "t", [1])


def other(service: SignalRService) -> Awaitable[None]:
    return service.add_connection_to_group("chat", "g", "c1")


@pytest.mark.parametrize(
    ("reply", "error_type"),
    [
        (Reply(400), ServiceBadRequestError),
        (Reply(401), ServiceUnauthorizedError),
        (Reply(403), ServiceUnauthorizedError),
        (Reply(404), ServiceNotFoundError),
        (Reply(409), ServiceError),
        (Reply(429), ServiceThrottledError),
        (Reply(500), ServiceUnavailableError),
        (Reply(503), ServiceUnavailableError),
    ],
    ids=lambda v: str(getattr(v, "status", "")) or getattr(v, "__name__", ""),
)
async def test_statuses_map_to_the_error_tree(
    server: RecordingServer, reply: Reply, error_type: type[ServiceError]
) -> None:
    """Each failing status raises its typed error, carrying the status and the error code."""
    server.replies = [
        Reply(
            reply.status,
            headers={"x-ms-error-code": "Error.Test.Code", "content-type": "application/json"},
            body=json.dumps({"code": "Body.Code", "message": "it  went\nwrong"}).encode(),
        )
    ]
    async with open_service(server, retry_max_attempts=1) as service:
        with pytest.raises(error_type) as caught:
            await send(service)
    error = caught.value
    assert type(error) is error_type
    assert error.status_code == reply.status
    assert error.error_code == "Error.Test.Code"
    assert f"answered {reply.status} (Error.Test.Code)" in str(error)
    assert "it went wrong" in str(error)
    assert "Bearer" not in str(error) and server.requests[0].token not in str(error)


async def test_error_code_falls_back_to_the_body(server: RecordingServer) -> None:
    """Without x-ms-error-code, the ErrorDetail body's code is used."""
    server.replies = [Reply(400, body=b'{"code": "InvalidArgument", "message": "bad group"}')]
    async with open_service(server) as service:
        with pytest.raises(ServiceBadRequestError) as caught:
            await send(service)
    assert caught.value.error_code == "InvalidArgument"


async def test_existence_check_errors_are_raised(server: RecordingServer) -> None:
    """An existence check that gets 401 raises instead of answering 'no'."""
    server.replies = [Reply(401)]
    async with open_service(server) as service:
        with pytest.raises(ServiceUnauthorizedError):
            await service.connection_exists("chat", "c")


Call = Callable[[SignalRService], Awaitable[None]]


@pytest.mark.parametrize(
    ("call", "status", "attempts"),
    [
        (send, 500, 1),  # a 500 may have been delivered: not retried
        (send, 408, 1),
        (send, 502, 3),
        (send, 503, 3),
        (send, 504, 3),
        (other, 500, 3),  # idempotent calls are retried on 500 ...
        (other, 408, 3),  # ... and on 408
        (other, 503, 3),
        (send, 400, 1),
        (other, 404, 1),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)),
)
async def test_retry_matrix(
    server: RecordingServer, call: Call, status: int, attempts: int
) -> None:
    """Sends retry only above 500; other calls also on 500 and 408; attempts are bounded."""
    server.responder = lambda request: Reply(status)
    async with open_service(server, retry_max_attempts=3) as service:
        with pytest.raises(ServiceError) as caught:
            await call(service)
    assert caught.value.status_code == status
    assert len(server.requests) == attempts


@pytest.mark.parametrize("status", [502, 503])
async def test_a_retried_send_succeeds(server: RecordingServer, status: int) -> None:
    """A send answered 502/503 once goes through on the retry, with the same body."""
    server.replies = [Reply(status)]
    async with open_service(server) as service:
        await send(service)
    assert [r.body for r in server.requests] == [server.requests[0].body] * 2
    assert len(server.requests) == 2


async def test_429_waits_for_retry_after(server: RecordingServer) -> None:
    """A 429 with Retry-After: 0.3 is retried after at least 0.3 s, not sooner."""
    server.replies = [Reply(429, headers={"retry-after": "0.3"})]
    async with open_service(server) as service:
        started = time.monotonic()
        await send(service)
        waited = time.monotonic() - started
    assert len(server.requests) == 2
    assert waited >= 0.3


async def test_429_asking_too_long_gives_up_with_retry_after(server: RecordingServer) -> None:
    """A Retry-After beyond the longest allowed wait is not slept on; the error carries it."""
    server.replies = [Reply(429, headers={"retry-after": "120"})]
    async with open_service(server, retry_max_delay=1.0) as service:
        with pytest.raises(ServiceThrottledError) as caught:
            await send(service)
    assert caught.value.retry_after == 120
    assert len(server.requests) == 1


async def test_total_time_bounds_retries(server: RecordingServer) -> None:
    """No retry starts when its back-off would cross retry_max_total."""
    server.responder = lambda request: Reply(503)
    async with open_service(
        server, retry_max_attempts=10, retry_delay=0.4, retry_max_delay=0.4, retry_max_total=0.1
    ) as service:
        with pytest.raises(ServiceUnavailableError):
            await send(service)
    assert len(server.requests) == 1


async def test_a_hung_send_times_out_and_is_not_retried(server: RecordingServer) -> None:
    """A send with no answer within http_timeout fails as unavailable after one attempt."""
    server.responder = lambda request: Reply(202, hold=True)
    async with open_service(server, http_timeout=0.2) as service:
        started = time.monotonic()
        with pytest.raises(ServiceUnavailableError, match="ReadTimeout"):
            await send(service)
        assert time.monotonic() - started < 5  # 0.2 s timeout, no retry; slack for load
    assert len(server.requests) == 1


async def test_a_hung_idempotent_call_is_retried(server: RecordingServer) -> None:
    """A group change that times out is retried, up to the attempt bound."""
    server.responder = lambda request: Reply(200, hold=True)
    async with open_service(server, http_timeout=0.2, retry_max_attempts=2) as service:
        with pytest.raises(ServiceUnavailableError):
            await other(service)
    assert len(server.requests) == 2


@contextlib.asynccontextmanager
async def slamming_server() -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP server that accepts connections and closes them without answering."""
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        await reader.read(1)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", accepted
    finally:
        server.close()
        await server.wait_closed()


async def test_dropped_connections_are_retried_for_sends() -> None:
    """A transport error (connection closed without an answer) is retried, then unavailable."""
    async with slamming_server() as (base_url, accepted):
        settings = settings_for(base_url, retry_max_attempts=3)
        async with SignalRService.open(settings) as service:
            with pytest.raises(ServiceUnavailableError, match="did not answer") as caught:
                await send(service)
    assert caught.value.status_code == 0
    assert len(accepted) == 3


async def test_refused_connections_make_the_service_unhealthy() -> None:
    """Nothing listening: is_healthy is False and calls raise ServiceUnavailableError."""
    async with slamming_server() as (base_url, _):
        pass  # the port is closed again now
    settings = settings_for(base_url, retry_max_attempts=2)
    async with SignalRService.open(settings) as service:
        assert await service.is_healthy() is False
        with pytest.raises(ServiceUnavailableError, match="ConnectError"):
            await other(service)
        assert service.endpoints.is_online(0) is False


def test_policy_rules_without_io() -> None:
    """The retry predicates encode the SDK's rules; Retry-After reads seconds and dates."""
    assert not RetryPolicy.status_is_retryable(500, CallKind.SEND)
    assert RetryPolicy.status_is_retryable(500, CallKind.OTHER)
    assert RetryPolicy.status_is_retryable(429, CallKind.SEND)
    assert not RetryPolicy.status_is_retryable(404, CallKind.OTHER)
    policy = RetryPolicy(delay=1.0, max_delay=3.0, jitter=False)
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 3.0, 3.0]
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_unauthorized_from_a_wrong_key(server: RecordingServer) -> None:
    """A 401 says to check the AccessKey, and is not retried."""
    server.responder = lambda request: Reply(401)
    async with open_service(server) as service:
        with pytest.raises(ServiceUnauthorizedError, match="AccessKey"):
            await other(service)
    assert len(server.requests) == 1


async def test_keyless_endpoint_without_entra_fails_clearly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An AuthType=azure.msi endpoint whose managed identity can't be reached: REST calls
    raise a typed 503 error naming the endpoint, and the service says why it can't sign."""
    from app.exceptions import edge_status
    from app.services.identity import EntraAuthError
    from tests.support.servers import bind_socket

    closed = bind_socket()
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: the identity endpoint is down for real
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://127.0.0.1:{port}/identity/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "h")
    settings = Settings(
        connection_string=f"Endpoint=http://127.0.0.1;Port={port};AuthType=azure.msi;",
        upstream_code="c",
        access_key_retry_interval=60,
    )
    async with SignalRService.open(settings) as service:
        with pytest.raises(EntraAuthError, match=f"127.0.0.1:{port}") as caught:
            await service.send_to_all("chat", "t", [])
        assert edge_status(caught.value) == 503
        problems = service.keyless_problems()
        assert len(problems) == 1 and "keyless" in problems[0]
