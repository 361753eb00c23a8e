"""The live trace: an event bus with bounded history, and the page that shows it.

The emulator's counterpart of the service's Live Trace tool. Call sites publish
:class:`TraceBus` events (connection opened/closed, message in/out, upstream call, REST
call); ``GET /`` serves a page (``emulator/static/``, no CDN) that shows the hubs with
their live connections, users and groups, and the events as they happen, read from
``GET /trace/events`` (Server-Sent Events).

Cost when nobody watches: :attr:`TraceBus.active` is a plain attribute, ``False`` while
no page is subscribed; hot call sites test it before building anything::

    if bus.active:
        bus.publish("message.out", hub=hub, target=target, size=size, receivers=count)

so the fan-out path pays one attribute read. Rare events (connections, upstream and REST
calls) may publish unconditionally: :meth:`TraceBus.publish` then only appends to the
history ring buffer, so a page opened later still shows what just happened.

Events are plain JSON objects: ``seq`` (increasing), ``time`` (epoch ms), ``type`` and the
publisher's fields, encoded once however many pages are subscribed. Never publish tokens,
keys, claim values or message arguments: only names, ids, sizes and statuses.

Routes (:func:`handle_trace_request`): ``GET /`` (the page), ``GET /trace/static/{file}``
(its script and style), ``GET /trace/state`` (the hubs now, JSON), ``GET /trace/events``
(SSE: a ``history`` event first, then one message per event), ``GET /metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any, Protocol

from .http import Receive, Scope, Send, json_response, send_response

__all__ = [
    "DEFAULT_HISTORY",
    "EVENT_TYPES",
    "TRACE_PATHS",
    "Subscription",
    "TraceBus",
    "handle_trace_request",
    "hub_snapshot",
    "is_trace_path",
]

DEFAULT_HISTORY = 1000
"""Events kept for a page opened later."""

SUBSCRIBER_BACKLOG = 10_000
"""Events queued for one page before the oldest are dropped (a page that stopped reading)."""

KEEPALIVE_SECONDS = 15.0
"""An SSE comment is sent after this long without events, so proxies keep the stream."""

EVENT_TYPES = (
    "connection.opened",
    "connection.closed",
    "message.in",
    "message.out",
    "upstream",
    "rest",
)
"""The event types the page knows (others are shown as they come)."""

TRACE_PATHS = frozenset({"/", "/index.html", "/trace/state", "/trace/events", "/metrics"})
_STATIC_PREFIX = "/trace/static/"
_STATIC_TYPES = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "index.html": "text/html; charset=utf-8",
}
# The page loads nothing from elsewhere; say so to the browser too.
_PAGE_HEADERS = (
    ("cache-control", "no-cache"),
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
)


class Subscription:
    """One subscriber's queue of encoded events (bounded: the oldest are dropped).

    Iterate with ``async for batch in subscription`` (each batch: the encoded events that
    arrived since the last one); :meth:`close` (or the bus) ends the iteration.
    """

    __slots__ = ("_bus", "_queue", "_waiter", "closed", "dropped")

    def __init__(self, bus: TraceBus, backlog: int) -> None:
        self._bus = bus
        self._queue: deque[bytes] = deque(maxlen=backlog)
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.dropped = 0

    def push(self, data: bytes) -> None:
        """Queue one encoded event (the bus calls this)."""
        queue = self._queue
        if len(queue) == queue.maxlen:
            self.dropped += 1
        queue.append(data)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def take(self) -> list[bytes]:
        """Everything queued, oldest first (empty when nothing is)."""
        items = list(self._queue)
        self._queue.clear()
        return items

    async def next_batch(self, idle: float | None = None) -> list[bytes] | None:
        """Wait for events and take them; ``[]`` after ``idle`` seconds without any,
        ``None`` once closed."""
        if not self._queue and not self.closed:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(idle):
                    await waiter
            except TimeoutError:
                return []
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        if self._queue:
            return self.take()
        return None

    def close(self) -> None:
        """Stop receiving events; a pending :meth:`next_batch` returns ``None``."""
        if not self.closed:
            self.closed = True
            self._bus._unsubscribe(self)
            self._wake()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TraceBus:
    """Publishes trace events to subscribers, keeping the last ``history`` of them.

    Args:
        history: events kept for later subscribers (0: none).
        backlog: events queued per subscriber before its oldest are dropped.
        clock: wall-clock seconds, for the events' ``time``.

    Attributes:
        active: ``True`` while at least one subscriber listens. Hot call sites test it
            before building an event (see the module docstring).
    """

    __slots__ = ("_backlog", "_clock", "_history", "_seq", "_subscribers", "active")

    def __init__(
        self,
        history: int = DEFAULT_HISTORY,
        *,
        backlog: int = SUBSCRIBER_BACKLOG,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._history: deque[bytes] = deque(maxlen=max(0, history))
        self._backlog = backlog
        self._clock = clock
        self._seq = 0
        self._subscribers: list[Subscription] = []
        self.active = False

    def publish(self, type_: str, /, **fields: Any) -> None:
        """Record one event and send it to every subscriber.

        Args:
            type_: the event type (see :data:`EVENT_TYPES`).
            fields: JSON-serialisable fields (``None`` values are left out).
        """
        self._seq += 1
        event: dict[str, Any] = {
            "seq": self._seq,
            "time": round(self._clock() * 1000),
            "type": type_,
        }
        for key, value in fields.items():
            if value is not None:
                event[key] = value
        data = json.dumps(event, separators=(",", ":"), ensure_ascii=False, default=str).encode()
        self._history.append(data)
        for subscriber in self._subscribers:
            subscriber.push(data)

    def history(self) -> list[dict[str, Any]]:
        """The kept events, oldest first."""
        return [json.loads(data) for data in self._history]

    def clear(self) -> None:
        """Forget the kept events."""
        self._history.clear()

    @property
    def subscribers(self) -> int:
        """How many subscribers listen now."""
        return len(self._subscribers)

    def subscribe(self) -> Subscription:
        """Start receiving events (close the subscription when done)."""
        subscription = Subscription(self, self._backlog)
        self._subscribers.append(subscription)
        self.active = True
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(subscription)
        self.active = bool(self._subscribers)

    def close_all(self) -> None:
        """End every subscription (shutdown: open event streams finish at once)."""
        for subscription in list(self._subscribers):
            subscription.close()

    def history_bytes(self) -> list[bytes]:
        """The kept events, encoded, oldest first."""
        return list(self._history)


# -- the hubs now ------------------------------------------------------------------------


class _Connection(Protocol):
    connection_id: str
    user_id: str | None
    transport: str | None
    codec: Any
    closed: bool


class _Hub(Protocol):
    connections: Mapping[str, Any]
    users: Mapping[str, Mapping[str, Any]]
    conn_groups: Mapping[str, Any]

    def group_connections(self, group: str) -> list[Any]: ...


class _Registry(Protocol):
    @property
    def hubs(self) -> Mapping[str, Any]: ...


def hub_snapshot(registry: _Registry) -> dict[str, Any]:
    """The hubs with their live connections, users and groups, as JSON-ready data.

    ``{"hubs": [{"name", "connections": [{"id", "user", "transport", "protocol",
    "groups"}], "users": [{"id", "connections"}], "groups": [{"name", "connections"}]}]}``,
    sorted by name. Group membership includes user memberships (a user's connections are
    in the groups the user joined).
    """
    hubs: list[dict[str, Any]] = []
    for name in sorted(registry.hubs):
        hub = registry.hubs[name]
        group_names: set[str] = set(getattr(hub, "groups", {}))
        group_names.update(getattr(hub, "group_users", {}))
        members: dict[str, list[str]] = {}
        groups_of: dict[str, list[str]] = {}
        for group in sorted(group_names):
            ids = sorted(c.connection_id for c in hub.group_connections(group) if not c.closed)
            if not ids:
                continue
            members[group] = ids
            for cid in ids:
                groups_of.setdefault(cid, []).append(group)
        connections = []
        for cid in sorted(hub.connections):
            conn = hub.connections[cid]
            if conn.closed:
                continue
            codec = conn.codec
            transport = conn.transport
            connections.append(
                {
                    "id": cid,
                    "user": conn.user_id,
                    "transport": getattr(transport, "value", transport),
                    "protocol": codec.name if codec is not None else None,
                    "groups": groups_of.get(cid, []),
                }
            )
        users = [
            {"id": user, "connections": sorted(hub.users[user])}
            for user in sorted(hub.users)
            if hub.users[user]
        ]
        groups = [{"name": group, "connections": ids} for group, ids in members.items()]
        if connections or users or groups:
            hubs.append(
                {"name": name, "connections": connections, "users": users, "groups": groups}
            )
    return {"hubs": hubs}


# -- HTTP --------------------------------------------------------------------------------

_static_cache: dict[str, bytes] = {}


def _static(name: str) -> bytes | None:
    data = _static_cache.get(name)
    if data is None:
        if name not in _STATIC_TYPES:
            return None
        data = resources.files("emulator").joinpath("static", name).read_bytes()
        _static_cache[name] = data
    return data


def is_trace_path(path: str) -> bool:
    """Whether :func:`handle_trace_request` serves ``path``."""
    return path in TRACE_PATHS or path.startswith(_STATIC_PREFIX)


async def handle_trace_request(
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    bus: TraceBus,
    snapshot: Callable[[], Mapping[str, Any]],
    metrics: Callable[[], bytes] | None,
    metrics_content_type: str = "text/plain; version=0.0.4; charset=utf-8",
) -> None:
    """Serve the trace page, its assets, its state and event stream, and ``/metrics``.

    Args:
        scope: an HTTP scope whose path satisfies :func:`is_trace_path`.
        bus: the event bus to stream.
        snapshot: returns the hubs now (e.g. ``lambda: hub_snapshot(state.registry)``).
        metrics: returns the ``/metrics`` body; ``None`` when metrics are turned off (404).
        metrics_content_type: the ``Content-Type`` of that body.
    """
    method = scope.get("method", "GET")
    path: str = scope["path"]
    if method not in ("GET", "HEAD"):
        await send_response(send, 405, b"Method not allowed.\n", headers=[("allow", "GET, HEAD")])
        return
    head = method == "HEAD"
    body: bytes | None
    if path in ("/", "/index.html"):
        body = _static("index.html")
        assert body is not None
        await _send(send, body, _STATIC_TYPES["index.html"], head, _PAGE_HEADERS)
    elif path.startswith(_STATIC_PREFIX):
        name = path[len(_STATIC_PREFIX) :]
        body = _static(name)
        if body is None:
            await send_response(send, 404, b"Not found.\n")
        else:
            await _send(send, body, _STATIC_TYPES[name], head, _PAGE_HEADERS)
    elif path == "/trace/state":
        await json_response(send, 200, dict(snapshot()), headers=[("cache-control", "no-store")])
    elif path == "/trace/events":
        await stream_events(bus, receive, send, head=head)
    elif path == "/metrics":
        if metrics is None:
            await send_response(send, 404, b"Metrics are turned off.\n")
        else:
            await _send(send, metrics(), metrics_content_type, head, ())
    else:
        await send_response(send, 404, b"Not found.\n")


async def _send(
    send: Send, body: bytes, content_type: str, head: bool, headers: tuple[tuple[str, str], ...]
) -> None:
    raw = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    raw.extend((k.encode(), v.encode()) for k, v in headers)
    await send({"type": "http.response.start", "status": 200, "headers": raw})
    await send({"type": "http.response.body", "body": b"" if head else body})


def _sse_history(bus: TraceBus) -> bytes:
    return b"event: history\ndata: [" + b",".join(bus.history_bytes()) + b"]\n\n"


async def stream_events(bus: TraceBus, receive: Receive, send: Send, *, head: bool = False) -> None:
    """Stream the bus as Server-Sent Events until the client goes away.

    The first SSE event, ``history``, carries the kept events as a JSON array; each later
    ``message`` carries one event. Events queued while the client was slow are sent as one
    chunk; when a client fell :data:`SUBSCRIBER_BACKLOG` events behind, a ``dropped``
    event says how many it missed.
    """
    headers = [
        (b"content-type", b"text/event-stream; charset=utf-8"),
        (b"cache-control", b"no-store"),
        (b"x-accel-buffering", b"no"),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if head:
        await send({"type": "http.response.body", "body": b""})
        return
    subscription = bus.subscribe()
    gone = asyncio.ensure_future(_disconnected(receive))
    gone.add_done_callback(lambda _: subscription.close())
    try:
        await send({"type": "http.response.body", "body": _sse_history(bus), "more_body": True})
        reported = 0
        while True:
            batch = await subscription.next_batch(KEEPALIVE_SECONDS)
            if batch is None:
                break
            if not batch:
                chunk = b": keep-alive\n\n"
            else:
                chunk = b"".join(b"data: " + data + b"\n\n" for data in batch)
                if subscription.dropped != reported:
                    missed = subscription.dropped - reported
                    reported = subscription.dropped
                    chunk = f"event: dropped\ndata: {missed}\n\n".encode() + chunk
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except OSError:
        pass  # the client went away mid-write
    finally:
        subscription.close()
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await gone
    with contextlib.suppress(OSError, RuntimeError):
        await send({"type": "http.response.body", "body": b""})


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
