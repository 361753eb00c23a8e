"""Drive the official ``@microsoft/signalr`` JavaScript client (in Node) from Python tests.

One ``node tests/node/client.mjs`` process reads JSON commands on stdin and writes JSON
events on stdout; it can host many connections, so keep processes few::

    from tests.support.node import NodeClient, node_process

    # one process per client (simple):
    async with NodeClient.connect(emu.client_url("chat"), access_token=token,
                                  transport="ServerSentEvents", protocol="json",
                                  targets=("newMessage",)) as client:
        client.connection_id                    # the id the server gave
        await client.invoke("echo", 1)          # -> result; raises NodeClientError(text)
        await client.invoke_type_of("f")        # -> JS typeof of the result ("null" for null)
        await client.send("broadcast", "hi")    # fire and forget (awaits the send itself)
        args = await client.next_message("newMessage", timeout=5)   # -> list of arguments
        await client.closed.wait(); client.close_error   # set when the connection closes
        await client.stop()

    # several clients in one process:
    async with node_process() as node:
        async with node.connect(url, access_token=token) as a, node.connect(url, ...) as b:
            ...

``url`` may be the service URL (``http://127.0.0.1:N/client/?hub=chat`` with
``access_token``) or a backend's negotiate base (``http://127.0.0.1:M/api``), in which case
the client follows the ``{url, accessToken}`` redirect as in production; pass
``headers={"x-ms-signalr-user-id": "alice"}`` to send headers on every HTTP request
(negotiate, long polling, Node WebSockets). Options: ``transport`` ``"WebSockets"`` |
``"ServerSentEvents"`` | ``"LongPolling"``; ``protocol`` ``"json"`` | ``"messagepack"``;
``results=("getAnswer",)`` makes
those handlers return their first argument (client results, for REST ``:invoke``);
``reconnect=True`` for ``withAutomaticReconnect`` (delays 0, 0.2, 0.5, 1, 2 s;
``reconnect="default"`` for the client's own default delays 0, 2, 10, 30 s; watch
``client.reconnecting`` / ``client.reconnected`` events); ``skip_negotiation=True`` (WebSockets
only); ``server_timeout`` / ``keep_alive`` in seconds. Byte arrays (MessagePack ``bin``)
arrive as ``bytes``; a ``datetime`` argument is sent as a JS ``Date`` (MessagePack: the
timestamp extension). Connection failures raise :class:`NodeClientError` from ``connect``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

__all__ = ["NODE", "NodeClient", "NodeClientError", "NodeProcess", "node_process"]

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "node" / "client.mjs"
NODE = shutil.which("node")


class NodeClientError(Exception):
    """A command failed in the JS client; ``str()`` is the client's error text."""


def _from_wire(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_wire(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$bytes"} and isinstance(value["$bytes"], str):
            return base64.b64decode(value["$bytes"])
        return {k: _from_wire(v) for k, v in value.items()}
    return value


def _to_wire(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, datetime):
        return {"$date": value.isoformat()}
    if isinstance(value, list | tuple):
        return [_to_wire(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_wire(v) for k, v in value.items()}
    return value


class NodeProcess:
    """One Node process hosting JS client connections (see the module docstring)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[Any]] = {}
        self._clients: dict[str, NodeClient] = {}
        self.stderr = ""
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(cls) -> NodeProcess:
        """Start ``node tests/node/client.mjs``."""
        if NODE is None:
            raise RuntimeError("node is not installed")
        proc = await asyncio.create_subprocess_exec(
            NODE,
            str(SCRIPT),
            cwd=str(ROOT),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self._proc.stdout is not None
        while True:
            line = await self._proc.stdout.readline()
            if not line:
                break
            event = json.loads(line)
            kind = event["event"]
            if kind == "reply":
                future = self._replies.pop(event["req"], None)
                if future is not None and not future.done():
                    if event["ok"]:
                        future.set_result(_from_wire(event["result"]))
                    else:
                        future.set_exception(NodeClientError(event["error"]))
                continue
            client = self._clients.get(event.get("cid", ""))
            if client is not None:
                client._on_event(kind, event)
        for future in self._replies.values():
            if not future.done():
                future.set_exception(NodeClientError("the node process exited"))
        for client in self._clients.values():
            client._on_event("closed", {"error": "the node process exited"})

    async def command(self, cmd: str, *, timeout: float = 30, **fields: Any) -> Any:  # noqa: ASYNC109
        """Send one command and wait for its reply."""
        req = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._replies[req] = future
        line = json.dumps({"cmd": cmd, "req": req, **fields}) + "\n"
        assert self._proc.stdin is not None
        try:
            if self._proc.returncode is not None:
                raise ConnectionResetError("exited")
            self._proc.stdin.write(line.encode())
            await self._proc.stdin.drain()
        except (ConnectionResetError, BrokenPipeError) as exc:
            self._replies.pop(req, None)
            raise NodeClientError(
                f"the node process exited (code {self._proc.returncode})"
            ) from exc
        async with asyncio.timeout(timeout):
            return await future

    @contextlib.asynccontextmanager
    async def connect(
        self,
        url: str,
        *,
        transport: str = "WebSockets",
        protocol: str = "json",
        access_token: str | None = None,
        headers: Mapping[str, str] | None = None,
        targets: Sequence[str] = ("newMessage",),
        results: Sequence[str] = (),
        reconnect: bool | Literal["default"] = False,
        skip_negotiation: bool = False,
        server_timeout: float | None = None,
        keep_alive: float | None = None,
        timeout: float = 15,  # noqa: ASYNC109 - the JS start() may take this long
    ) -> AsyncIterator[NodeClient]:
        """Start a connection in this process; stop it on exit."""
        client = NodeClient(self, f"c{next(self._ids)}")
        self._clients[client.cid] = client
        try:
            result = await self.command(
                "connect",
                timeout=timeout,
                cid=client.cid,
                url=url,
                transport=transport,
                protocol=protocol,
                accessToken=access_token,
                headers=dict(headers) if headers else None,
                targets=list(targets),
                results=list(results),
                reconnect=reconnect,
                skipNegotiation=skip_negotiation,
                serverTimeoutMs=int(server_timeout * 1000) if server_timeout else None,
                keepAliveMs=int(keep_alive * 1000) if keep_alive else None,
            )
            client.connection_id = result["connectionId"]
            yield client
        finally:
            with contextlib.suppress(NodeClientError, TimeoutError):
                await self.command("stop", cid=client.cid, timeout=10)
            self._clients.pop(client.cid, None)

    async def close(self) -> None:
        """Stop every connection and end the process."""
        proc = self._proc
        if proc.returncode is None:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(b'{"cmd":"exit"}\n')
                await proc.stdin.drain()
                proc.stdin.close()
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await self._reader
        if proc.stderr is not None:
            self.stderr = (await proc.stderr.read()).decode(errors="replace")


@contextlib.asynccontextmanager
async def node_process() -> AsyncIterator[NodeProcess]:
    """A Node process for several clients; ended on exit."""
    process = await NodeProcess.start()
    try:
        yield process
    finally:
        await process.close()


class NodeClient:
    """One JS ``HubConnection`` (see the module docstring).

    Attributes:
        connection_id: ``connection.connectionId`` after start (updated on reconnect).
        closed: set when the connection closed (``onclose``).
        close_error: the ``onclose`` error text, or ``None``.
        reconnecting: set on ``onreconnecting``; reconnected: set on ``onreconnected``.
    """

    def __init__(self, process: NodeProcess, cid: str) -> None:
        self.process = process
        self.cid = cid
        self.connection_id: str | None = None
        self.closed = asyncio.Event()
        self.close_error: str | None = None
        self.reconnecting = asyncio.Event()
        self.reconnected = asyncio.Event()
        self._messages: dict[str, asyncio.Queue[list[Any]]] = {}

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str, **options: Any) -> AsyncIterator[NodeClient]:
        """Start a Node process with one connection (options as :meth:`NodeProcess.connect`)."""
        async with node_process() as process, process.connect(url, **options) as client:
            yield client

    def _queue(self, target: str) -> asyncio.Queue[list[Any]]:
        queue = self._messages.get(target.lower())
        if queue is None:
            queue = self._messages[target.lower()] = asyncio.Queue()
        return queue

    def _on_event(self, kind: str, event: dict[str, Any]) -> None:
        if kind == "message":
            self._queue(event["target"]).put_nowait(_from_wire(event["args"]))
        elif kind == "closed":
            self.close_error = event.get("error")
            self.closed.set()
        elif kind == "reconnecting":
            self.reconnecting.set()
        elif kind == "reconnected":
            self.connection_id = event.get("connectionId")
            self.reconnected.set()

    async def invoke(self, target: str, *args: Any, timeout: float = 15) -> Any:  # noqa: ASYNC109
        """``connection.invoke(target, ...args)``: the result, or NodeClientError."""
        return await self.process.command(
            "invoke", cid=self.cid, target=target, args=_to_wire(list(args)), timeout=timeout
        )

    async def invoke_type_of(self, target: str, *args: Any, timeout: float = 15) -> str:  # noqa: ASYNC109
        """JS ``typeof`` of ``invoke``'s value (``"null"`` for null): tells null from undefined."""
        kind: str = await self.process.command(
            "invokeTypeOf", cid=self.cid, target=target, args=_to_wire(list(args)), timeout=timeout
        )
        return kind

    async def send(self, target: str, *args: Any, timeout: float = 15) -> None:  # noqa: ASYNC109
        """``connection.send(target, ...args)``."""
        await self.process.command(
            "send", cid=self.cid, target=target, args=_to_wire(list(args)), timeout=timeout
        )

    async def next_message(self, target: str, timeout: float = 5) -> list[Any]:  # noqa: ASYNC109
        """The arguments of the next ``target`` message received (TimeoutError if none)."""
        async with asyncio.timeout(timeout):
            return await self._queue(target).get()

    def pending(self, target: str) -> int:
        """How many ``target`` messages were received and not yet taken."""
        return self._queue(target).qsize()

    async def stop(self) -> None:
        """``connection.stop()``."""
        await self.process.command("stop", cid=self.cid)
