"""Run a coroutine synchronously until it first suspends; finish it in a task only if it does.

A fan-out writes to hundreds of WebSockets. An ASGI ``send`` that can complete at once
(the transport is writable) never suspends, so driving it by hand costs one coroutine
call — no task, no event-loop round trip per receiver. Only a send that has to wait (a
slow client, the transport paused) becomes a task. This is what Python 3.12's eager task
factory does; it is written out here for 3.11.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

__all__ = ["start_eagerly"]


def start_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Start ``coro`` now.

    Returns:
        ``None`` when it ran to completion synchronously; otherwise a task that finishes it.

    Raises:
        Exception: whatever ``coro`` raised before its first suspension.
    """
    try:
        yielded = coro.send(None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_finish(coro, yielded))


async def _finish(coro: Coroutine[Any, Any, None], yielded: Any) -> None:
    while True:
        try:
            if yielded is None:  # a bare yield (asyncio.sleep(0))
                await asyncio.sleep(0)
            else:  # the future the coroutine waits for; take it over as a Task would
                yielded._asyncio_future_blocking = False
                await yielded
        except asyncio.CancelledError:
            coro.close()
            raise
        except BaseException:  # noqa: S110 - the coroutine sees the outcome via result()
            pass
        try:
            yielded = coro.send(None)
        except StopIteration:
            return
