"""The live-trace event bus: bounded history, subscriptions, and the idle path's cost."""

from __future__ import annotations

import asyncio
import json
import timeit

import pytest

from emulator.trace import TraceBus


def test_history_keeps_only_the_last_events() -> None:
    """The ring buffer keeps ``history`` events, oldest first, with increasing seq."""
    bus = TraceBus(history=3, clock=lambda: 1.5)
    for n in range(5):
        bus.publish("message.out", hub="chat", size=n, receivers=None)
    events = bus.history()
    assert [e["size"] for e in events] == [2, 3, 4]
    assert [e["seq"] for e in events] == [3, 4, 5]
    assert events[0] == {"seq": 3, "time": 1500, "type": "message.out", "hub": "chat", "size": 2}
    bus.clear()
    assert bus.history() == []


def _active(bus: TraceBus) -> bool:
    return bus.active


def test_active_follows_subscribe_and_unsubscribe() -> None:
    """``active`` is true exactly while someone is subscribed."""
    bus = TraceBus()
    assert not _active(bus)
    first, second = bus.subscribe(), bus.subscribe()
    assert _active(bus) and bus.subscribers == 2
    first.close()
    assert _active(bus)
    with second:
        pass
    assert not _active(bus) and bus.subscribers == 0
    second.close()  # idempotent
    assert not _active(bus)


@pytest.mark.anyio
async def test_subscribers_get_each_event_once_encoded_once() -> None:
    """Every subscriber gets the same encoded bytes; a waiting subscriber wakes up."""
    bus = TraceBus()
    one, two = bus.subscribe(), bus.subscribe()
    waiting = asyncio.create_task(one.next_batch(idle=5))
    await asyncio.sleep(0)
    bus.publish("connection.opened", hub="chat", connectionId="c1", userId="alice")
    bus.publish("connection.closed", hub="chat", connectionId="c1", reason="Normal")
    first = await waiting
    assert first is not None and len(first) >= 1
    rest = one.take()
    batch_two = await two.next_batch(idle=1)
    assert batch_two is not None
    assert [json.loads(b)["type"] for b in first + rest] == [
        "connection.opened",
        "connection.closed",
    ]
    assert (first + rest)[0] is batch_two[0]  # one encoding for all subscribers
    one.close()
    assert await one.next_batch(idle=1) is None
    assert await two.next_batch(idle=0.01) == []  # idle: nothing new


@pytest.mark.anyio
async def test_close_all_ends_every_stream() -> None:
    """Shutdown: waiting subscribers return ``None`` and the bus goes idle."""
    bus = TraceBus()
    subs = [bus.subscribe() for _ in range(3)]
    waiting = [asyncio.create_task(sub.next_batch(idle=5)) for sub in subs]
    await asyncio.sleep(0)
    bus.close_all()
    assert await asyncio.gather(*waiting) == [None, None, None]
    assert not _active(bus) and bus.subscribers == 0


def test_a_subscriber_that_stops_reading_loses_its_oldest_events() -> None:
    """Per-subscriber backlog is bounded; the drop count is kept for the stream to report."""
    bus = TraceBus(backlog=4)
    sub = bus.subscribe()
    for n in range(10):
        bus.publish("message.in", size=n)
    assert [json.loads(b)["size"] for b in sub.take()] == [6, 7, 8, 9]
    assert sub.dropped == 6


def test_publish_leaves_out_none_and_never_needs_secrets() -> None:
    """``None`` fields are omitted; values are encoded as JSON (non-JSON via str)."""
    bus = TraceBus()
    bus.publish("rest", operation="send_all", status=202, latencyMs=1.25, userId=None)
    (event,) = bus.history()
    assert event["operation"] == "send_all" and "userId" not in event


def test_idle_guard_costs_a_single_attribute_read() -> None:
    """With nobody subscribed, the guarded call site costs about one attribute read
    (micro-benchmark; prints the figures), far below publishing."""
    bus = TraceBus()
    hub, target, size, count = "chat", "newMessage", 120, 1000
    number = 200_000

    def guarded() -> None:
        if bus.active:
            bus.publish("message.out", hub=hub, target=target, size=size, receivers=count)

    def baseline() -> None:
        pass

    idle = min(timeit.repeat(guarded, number=number, repeat=5)) / number
    empty = min(timeit.repeat(baseline, number=number, repeat=5)) / number
    sub = bus.subscribe()
    active = min(timeit.repeat(guarded, number=20_000, repeat=3)) / 20_000
    sub.close()
    print(
        f"\nidle guard {idle * 1e9:.0f} ns/call (empty call {empty * 1e9:.0f} ns), "
        f"publishing to one subscriber {active * 1e9:.0f} ns/call"
    )
    assert idle - empty < 100e-9  # one attribute read and a branch
    assert active > 5 * max(idle - empty, 10e-9)
