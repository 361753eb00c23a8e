"""The emulator's upstream: POST client events to the app's webhook, as the service does.

docs/protocol.md §4. For every client event (connected, disconnected, an invocation) the
first upstream template whose hub, category and event patterns match receives a signed POST
with the ``X-ASRS-*`` headers, written by the core
(:func:`signalr_protocol.upstream.encode_upstream_headers`); for an invocation with an id, the
answer becomes the bytes written back to the client (the app's framed Completion, or an error
Completion made here).

API:

- ``UpstreamTemplate(url_template, hub_pattern="*", category_pattern="*", event_pattern="*",
  auth_resource=None)`` with ``matches(hub, category, event) -> bool`` and
  ``url_for(hub, category, event) -> str``; ``auth_resource`` (a template's ``"Auth":
  {"Type": "ManagedIdentity", "ManagedIdentity": {"Resource": R}}``) adds an Entra bearer;
  raises :class:`~emulator.errors.EmulatorConfigError` for a URL that is not absolute http(s) or
  a blank pattern.
- ``DEFAULT_TEMPLATES`` – ``http://localhost:7071/runtime/webhooks/signalr`` for everything.
- ``load_upstream_settings(path) -> list[UpstreamTemplate]`` – reads asrs-emulator's
  ``settings.json`` (``{"UpstreamSettings": {"Templates": [...]}}``, keys case-insensitive);
  an absent or empty list means "no upstream". ``EmulatorConfigError`` names the bad field.
- ``UpstreamSettingsFile(path, *, interval=1.0)`` – a callable returning the templates of a
  settings file, reloaded when its mtime or size changes (checked at most once per
  ``interval`` seconds, on call). A broken edit is logged and the previous templates stay.
- ``UpstreamContext(hub, connection_id, user_id, claims, query, codec)`` – one connection's
  side of the headers; ``request(category, event)`` makes the core's ``UpstreamRequest``.
  An invocation's headers are made once per connection and target, then reused.
- ``UpstreamDispatcher(templates, keys, client, timeout, *, bearer=None)`` – no keys (local
  auth disabled) sends no signature; ``bearer(resource)`` makes the templates' tokens;
  ``connected(ctx)``,
  ``disconnected(ctx, error)``, ``invoke(ctx, message) -> bytes | None``. It never raises for
  upstream failures: connection events and fire-and-forget invocations log a warning with the
  connection id; invocations with an id get an error Completion.
- ``new_upstream_session()`` – the pooled ``aiohttp.ClientSession`` the emulator passes as
  ``client`` (an ``httpx.AsyncClient`` works too).
- ``MAX_RESPONSE_SIZE`` – 16 MiB, the largest upstream answer relayed (as the service).

Where this differs from Microsoft's asrs-emulator, on purpose:

- patterns match case-insensitively (asrs-emulator compares ordinally, but hub names reach it
  lower-cased by the SDKs while templates are written as declared, and Functions matches
  case-insensitively) – see :meth:`UpstreamTemplate.matches`;
- an invocation with an id always gets an answer: no template, an empty chunked 200, a
  timeout or a refused connection give an error or empty Completion instead of a hang;
- ``access_token`` is removed from ``X-ASRS-Client-Query``: tokens are never forwarded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

import aiohttp
import httpx
import yarl

from signalr_protocol.codec import HubCodec
from signalr_protocol.errors import HubProtocolError
from signalr_protocol.messages import CompletionMessage, InvocationMessage
from signalr_protocol.upstream import (
    CATEGORY_CONNECTIONS,
    CATEGORY_MESSAGES,
    EVENT_CONNECTED,
    EVENT_DISCONNECTED,
    UpstreamRequest,
    encode_upstream_headers,
)

from .errors import EmulatorConfigError
from .metrics import EmulatorMetrics
from .trace import TraceBus
from .upstream_answer import completion_problem, webhook_reason

__all__ = [
    "DEFAULT_TEMPLATES",
    "DEFAULT_UPSTREAM_URL",
    "MAX_RESPONSE_SIZE",
    "UpstreamContext",
    "UpstreamDispatcher",
    "UpstreamSettingsFile",
    "UpstreamTemplate",
    "load_upstream_settings",
    "new_upstream_session",
]

logger = logging.getLogger("emulator.upstream")

DEFAULT_UPSTREAM_URL: Final = "http://localhost:7071/runtime/webhooks/signalr"
MAX_RESPONSE_SIZE: Final = 16 * 1024 * 1024

_PLACEHOLDER: Final = re.compile(r"\{(hub|category|event)\}", re.IGNORECASE)
_CONNECTED_BODY: Final = b'{"type":10}'
_JSON: Final = b"application/json"
_URL_CACHE_SIZE: Final = 1024
_HEADER_CACHE_SIZE: Final = 32  # per connection: the invoked targets whose headers are kept

Headers = list[tuple[bytes, bytes]]


# ------------------------------------------------------------------------------- templates


def _parse_pattern(pattern: str, what: str) -> frozenset[str] | None:
    """``None`` matches everything; otherwise the case-folded names of a comma list."""
    items = {item.strip() for item in pattern.split(",")}
    items.discard("")
    if not items:
        raise EmulatorConfigError(
            f'{what} must not be empty: use "*" to match everything, or a comma list of names.'
        )
    if "*" in items:
        return None
    return frozenset(item.casefold() for item in items)


def _check_url(url_template: str, what: str) -> None:
    sample = _PLACEHOLDER.sub("x", url_template)
    try:
        parts = urlsplit(sample)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise EmulatorConfigError(
            f"{what} must be an absolute http:// or https:// URL, got {url_template!r}."
        )


@dataclass(frozen=True, slots=True)
class UpstreamTemplate:
    """One upstream rule: where to POST the events whose hub, category and event match.

    Patterns are ``*`` (everything), a comma-separated list (items trimmed) or one name.
    ``{hub}``, ``{category}`` and ``{event}`` in ``url_template`` are replaced by the
    percent-encoded values. With ``auth_resource`` (the service's ``ManagedIdentity``
    upstream auth), calls carry ``Authorization: Bearer`` with an Entra token for it.

    Raises:
        EmulatorConfigError: ``url_template`` is not an absolute http(s) URL, or a pattern is
            blank.
    """

    url_template: str
    hub_pattern: str = "*"
    category_pattern: str = "*"
    event_pattern: str = "*"
    auth_resource: str | None = None
    _hubs: frozenset[str] | None = field(init=False, repr=False, compare=False)
    _categories: frozenset[str] | None = field(init=False, repr=False, compare=False)
    _events: frozenset[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_url(self.url_template, "UrlTemplate")
        object.__setattr__(self, "_hubs", _parse_pattern(self.hub_pattern, "HubPattern"))
        object.__setattr__(
            self, "_categories", _parse_pattern(self.category_pattern, "CategoryPattern")
        )
        object.__setattr__(self, "_events", _parse_pattern(self.event_pattern, "EventPattern"))

    def matches(self, hub: str, category: str, event: str) -> bool:
        """Whether this template takes the event.

        Names are compared case-insensitively. (asrs-emulator compares them case-sensitively;
        we don't, because SDKs lower-case hub names in URLs while people write templates with
        the declared names, and the Functions host matches case-insensitively too.)
        """
        return (
            (self._hubs is None or hub.casefold() in self._hubs)
            and (self._categories is None or category.casefold() in self._categories)
            and (self._events is None or event.casefold() in self._events)
        )

    def url_for(self, hub: str, category: str, event: str) -> str:
        """The URL to POST to, with the placeholders replaced by percent-encoded values.

        A character with no UTF-8 form (a lone surrogate, which a JSON client can send in a
        target) is encoded as ``?``, as in the ``X-ASRS-*`` headers.
        """
        values = {"hub": hub, "category": category, "event": event}
        return _PLACEHOLDER.sub(
            lambda match: quote(values[match.group(1).lower()], safe="", errors="replace"),
            self.url_template,
        )


DEFAULT_TEMPLATES: Final[list[UpstreamTemplate]] = [UpstreamTemplate(DEFAULT_UPSTREAM_URL)]


def _get(obj: Mapping[str, Any], key: str) -> Any:
    """Case-insensitive key lookup, like .NET configuration binding (the last match wins)."""
    found: Any = None
    lowered = key.lower()
    for name, value in obj.items():
        if name.lower() == lowered:
            found = value
    return found


def _pattern(item: Mapping[str, Any], key: str, where: str) -> str:
    value = _get(item, key)
    if value is None:
        return "*"
    if not isinstance(value, str):
        raise EmulatorConfigError(f'{where}.{key} must be a string such as "*" or "a,b".')
    return value


def _auth_resource(item: Mapping[str, Any], where: str) -> str | None:
    """The resource of ``"Auth": {"Type": "ManagedIdentity", "ManagedIdentity": {"Resource":
    R}}`` (the service's ARM shape, keys case-insensitive); ``None`` without auth."""
    auth = _get(item, "Auth")
    if auth is None:
        return None
    if not isinstance(auth, dict):
        raise EmulatorConfigError(f'{where}.Auth must be an object such as {{"Type": "None"}}.')
    kind = _get(auth, "Type")
    if kind is None or (isinstance(kind, str) and kind.strip().lower() == "none"):
        return None
    if not isinstance(kind, str) or kind.strip().lower() != "managedidentity":
        raise EmulatorConfigError(f'{where}.Auth.Type must be "None" or "ManagedIdentity".')
    identity = _get(auth, "ManagedIdentity")
    resource = _get(identity, "Resource") if isinstance(identity, dict) else None
    if not isinstance(resource, str) or not resource.strip():
        raise EmulatorConfigError(
            f"{where}.Auth.ManagedIdentity.Resource is missing: the audience of the upstream's "
            "token (e.g. api://my-app)."
        )
    return resource.strip()


def _template_from(item: Any, where: str) -> UpstreamTemplate:
    if not isinstance(item, dict):
        raise EmulatorConfigError(f"{where} must be an object with a UrlTemplate.")
    url = _get(item, "UrlTemplate")
    if not isinstance(url, str) or not url.strip():
        raise EmulatorConfigError(f"{where}.UrlTemplate is missing or not a string.")
    try:
        return UpstreamTemplate(
            url.strip(),
            hub_pattern=_pattern(item, "HubPattern", where),
            category_pattern=_pattern(item, "CategoryPattern", where),
            event_pattern=_pattern(item, "EventPattern", where),
            auth_resource=_auth_resource(item, where),
        )
    except EmulatorConfigError as exc:
        raise EmulatorConfigError(f"{where}.{exc.message}") from None


def parse_upstream_settings(data: Any, source: str = "settings") -> list[UpstreamTemplate]:
    """Build templates from an already parsed ``settings.json`` document.

    Raises:
        EmulatorConfigError: the document has the wrong shape; the message names the field.
    """
    if not isinstance(data, dict):
        raise EmulatorConfigError(f"{source}: the top level must be a JSON object.")
    upstream = _get(data, "UpstreamSettings")
    if upstream is None:
        return []
    if not isinstance(upstream, dict):
        raise EmulatorConfigError(f"{source}: UpstreamSettings must be an object.")
    templates = _get(upstream, "Templates")
    if templates is None:
        return []
    if not isinstance(templates, list):
        raise EmulatorConfigError(f"{source}: UpstreamSettings.Templates must be an array.")
    return [
        _template_from(item, f"{source}: UpstreamSettings.Templates[{index}]")
        for index, item in enumerate(templates)
    ]


def load_upstream_settings(path: Path) -> list[UpstreamTemplate]:
    """Read asrs-emulator's ``settings.json``: the upstream templates, in order.

    Args:
        path: the file, or a folder holding ``settings.json`` (as ``asrs-emulator -c`` takes).

    Returns:
        The templates; an empty list (absent or empty ``Templates``) disables the upstream.

    Raises:
        EmulatorConfigError: unreadable file, invalid JSON, or a bad field (named).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "settings.json"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise EmulatorConfigError(
            f"Cannot read upstream settings {path}: {exc.strerror or exc}."
        ) from None
    except UnicodeDecodeError:
        raise EmulatorConfigError(f"{path}: not UTF-8 text.") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EmulatorConfigError(
            f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from None
    return parse_upstream_settings(data, str(path))


class UpstreamSettingsFile:
    """The templates of a ``settings.json``, reloaded when the file changes.

    Call the instance to get the current templates (pass it as ``templates`` to
    :class:`UpstreamDispatcher`). At most once per ``interval`` seconds a call checks the
    file's mtime and size and reloads on a change. A reload that fails (broken JSON while
    someone edits, file removed) is logged as a warning and the previous templates stay.

    Args:
        path: the file (or a folder holding ``settings.json``).
        interval: seconds between two checks.

    Raises:
        EmulatorConfigError: the first load failed.
    """

    def __init__(self, path: Path, *, interval: float = 1.0) -> None:
        self.path = Path(path) / "settings.json" if Path(path).is_dir() else Path(path)
        self._interval = interval
        self._stamp = self._file_stamp()
        self._templates: list[UpstreamTemplate] = load_upstream_settings(self.path)
        self._checked = time.monotonic()

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def __call__(self) -> Sequence[UpstreamTemplate]:
        """The current templates (reloading first if the file changed)."""
        now = time.monotonic()
        if now - self._checked >= self._interval:
            self._checked = now
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._stamp = stamp
                self.reload()
        return self._templates

    def reload(self) -> None:
        """Read the file now; keep the previous templates if it is broken."""
        try:
            templates = load_upstream_settings(self.path)
        except EmulatorConfigError as exc:
            logger.warning("Upstream settings not reloaded, keeping the previous ones: %s", exc)
            return
        self._templates = templates
        logger.info("Upstream settings reloaded from %s: %d template(s)", self.path, len(templates))


# ------------------------------------------------------------------------------ dispatcher


@dataclass(frozen=True, slots=True)
class UpstreamContext:
    """What the upstream headers of one client connection are made from.

    Attributes:
        hub: the hub name (as the connection asked for it, lower-cased by the SDKs).
        connection_id: the client's connection id.
        user_id: the user id from the token, if any.
        claims: the token's claims as ``(type, value)`` pairs (multi-valued claims repeat).
        query: the connect request's query string (with or without ``?``); ``access_token``
            is removed before it is forwarded.
        codec: the connection's hub protocol (body format of invocations).
    """

    hub: str
    connection_id: str
    user_id: str | None
    claims: Sequence[tuple[str, str]]
    query: str
    codec: HubCodec
    # The headers of this connection's invocations, per (dispatcher, target): everything
    # in them but the event is fixed for the connection's life, so each is made once.
    invocation_headers: dict[tuple[object, str], Headers] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def request(self, category: str, event: str) -> UpstreamRequest:
        """The upstream request of one event of this connection."""
        return UpstreamRequest(
            hub=self.hub,
            category=category,
            event=event,
            connection_id=self.connection_id,
            user_id=self.user_id,
            claims=tuple(self.claims),
            query=self.query,
        )


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if len(text) > 200:
        text = text[:197] + "..."
    return text.rstrip(".")


def _redact(url: str) -> str:
    # The URL may carry the Functions key (?code=...): log scheme, host and path only.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


class _Failure(Exception):
    """An upstream call failed; ``reason`` completes "Invocation failed, ..."."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def new_upstream_session(max_connections: int = 200) -> aiohttp.ClientSession:
    """The HTTP client the emulator posts upstream with (call inside the event loop).

    aiohttp rather than httpx: with 100 clients invoking at once, httpx's request and
    pool bookkeeping made the emulator's CPU the bottleneck of the round trip
    (``bench/webhook.py``, 10,000 invokes from 100 clients: p50 94 ms / p99 558 ms with
    httpx, 15 ms / 33 ms with aiohttp). Proxies from the environment are ignored (the
    upstream is normally local); responses are decompressed.

    Args:
        max_connections: size of the connection pool (concurrent upstream calls).
    """
    # Idle connections are dropped after 4 s, before a server with a 5 s keep-alive
    # (uvicorn's default) closes them under a request that was just sent.
    connector = aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=4.0)
    return aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=True)


class UpstreamDispatcher:
    """Sends client events to the upstream webhook.

    Args:
        templates: returns the current templates, e.g. ``lambda: DEFAULT_TEMPLATES`` or an
            :class:`UpstreamSettingsFile`; called once per event.
        keys: the access keys; one ``X-ASRS-Signature`` entry is sent per key.
        client: the process's shared HTTP client (owned and closed by the caller): an
            ``httpx.AsyncClient``, or an ``aiohttp.ClientSession``, which the emulator
            uses because it costs several times less CPU per call (see
            :func:`new_upstream_session`). Both behave the same here.
        timeout: seconds one upstream call may take in all (connect, send, read).
        bearer: makes the Entra token (for a resource) that calls to a template with an
            ``auth_resource`` carry as ``Authorization: Bearer``.
        metrics: counts each call (category, status, latency, body size), if given.
        trace: the live trace each call is published to, if given.
    """

    def __init__(
        self,
        templates: Callable[[], Sequence[UpstreamTemplate]],
        keys: Sequence[str],
        client: httpx.AsyncClient | aiohttp.ClientSession,
        timeout: float,
        *,
        bearer: Callable[[str], str] | None = None,
        metrics: EmulatorMetrics | None = None,
        trace: TraceBus | None = None,
    ) -> None:
        self._metrics = metrics
        self._trace = trace
        self._templates = templates
        self._bearer = bearer
        self._keys = tuple(keys)
        self._client = client
        self._timeout = timeout
        self._httpx_timeout = httpx.Timeout(timeout)
        self._aiohttp_timeout = aiohttp.ClientTimeout(total=timeout)
        self._urls: dict[str, yarl.URL] = {}

    def _find(self, hub: str, category: str, event: str) -> UpstreamTemplate | None:
        for template in self._templates():
            if template.matches(hub, category, event):
                return template
        return None

    def _headers(
        self, ctx: UpstreamContext, category: str, event: str, content_type: bytes
    ) -> Headers:
        """The ``X-ASRS-*`` headers (signed with this dispatcher's keys) and Content-Type."""
        headers = encode_upstream_headers(ctx.request(category, event), self._keys)
        headers.append((b"Content-Type", content_type))
        return headers

    def _authorized(self, headers: Headers, template: UpstreamTemplate) -> Headers:
        """``headers`` plus the template's ``Authorization: Bearer``, if it has auth."""
        resource = template.auth_resource
        if resource is None or self._bearer is None:
            return headers
        token = self._bearer(resource)
        return [*headers, (b"Authorization", b"Bearer " + token.encode("ascii"))]

    def _invocation_headers(self, ctx: UpstreamContext, event: str) -> Headers:
        """:meth:`_headers` of an invocation of ``event``, made once per connection and target."""
        cache = ctx.invocation_headers
        key = (self, event)
        headers = cache.get(key)
        if headers is None:
            if len(cache) >= _HEADER_CACHE_SIZE:
                cache.clear()
            content_type = ctx.codec.content_type.encode()
            headers = cache[key] = self._headers(ctx, CATEGORY_MESSAGES, event, content_type)
        return headers

    async def _post(self, url: str, headers: Headers, body: bytes) -> tuple[int, bytes]:
        """POST and read the answer; raise :class:`_Failure` with the reason."""
        if isinstance(self._client, aiohttp.ClientSession):
            return await self._post_aiohttp(self._client, url, headers, body)
        try:
            async with asyncio.timeout(self._timeout):
                async with self._client.stream(
                    "POST", url, headers=headers, content=body, timeout=self._httpx_timeout
                ) as response:
                    length = response.headers.get("content-length")
                    if length is not None and length.isdigit() and int(length) > MAX_RESPONSE_SIZE:
                        raise _Failure("response too large")
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > MAX_RESPONSE_SIZE:
                            raise _Failure("response too large")
                        chunks.append(chunk)
                    return response.status_code, b"".join(chunks)
        except (TimeoutError, httpx.TimeoutException):
            raise _Failure(f"upstream timed out after {self._timeout:g} s") from None
        except httpx.ConnectError as exc:
            raise _Failure(f"upstream unreachable: {_short(exc)}") from None
        except httpx.HTTPError as exc:  # after connecting: a dropped or malformed answer
            raise _Failure(f"error: {_short(exc)}") from None

    async def _post_aiohttp(
        self,
        session: aiohttp.ClientSession,
        url: str,
        headers: Headers,
        body: bytes,
    ) -> tuple[int, bytes]:
        target = self._urls.get(url)
        if target is None:
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            # Sent exactly as made: yarl would otherwise re-quote the encoded event name.
            target = self._urls[url] = yarl.URL(url, encoded=True)
        try:
            async with asyncio.timeout(self._timeout):
                async with session.post(
                    target,
                    data=body,
                    # aiohttp writes str header values as UTF-8: give back what was encoded.
                    headers=[(k.decode("ascii"), v.decode("utf-8")) for k, v in headers],
                    allow_redirects=False,
                    timeout=self._aiohttp_timeout,
                ) as response:
                    length = response.content_length
                    if length is not None and length > MAX_RESPONSE_SIZE:
                        raise _Failure("response too large")
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.content.iter_any():
                        size += len(chunk)
                        if size > MAX_RESPONSE_SIZE:
                            raise _Failure("response too large")
                        chunks.append(chunk)
                    return response.status, b"".join(chunks)
        except TimeoutError:
            raise _Failure(f"upstream timed out after {self._timeout:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            raise _Failure(f"upstream unreachable: {_short(exc)}") from None
        except aiohttp.ClientError as exc:  # after connecting: a dropped or malformed answer
            raise _Failure(f"error: {_short(exc)}") from None

    async def _observed_post(
        self,
        ctx: UpstreamContext,
        category: str,
        event: str,
        url: str,
        headers: Headers,
        body: bytes,
    ) -> tuple[int, bytes]:
        """:meth:`_post`, counted in the metrics and published to the live trace."""
        started = time.perf_counter()
        status: int | None = None
        failure: str | None = None
        try:
            status, answer = await self._post(url, headers, body)
        except _Failure as exc:
            failure = exc.reason
            raise
        finally:
            elapsed = time.perf_counter() - started
            if self._metrics is not None:
                self._metrics.upstream_request(category, status, elapsed, len(body))
            if self._trace is not None:
                fields: dict[str, Any] = {}
                if failure is not None:
                    fields["error"] = failure
                self._trace.publish(
                    "upstream",
                    hub=ctx.hub,
                    connectionId=ctx.connection_id,
                    userId=ctx.user_id,
                    category=category,
                    event=event,
                    status=status,
                    latencyMs=round(elapsed * 1000, 2),
                    **fields,
                )
        return status, answer

    async def _notify(self, ctx: UpstreamContext, event: str, body: bytes) -> None:
        template = self._find(ctx.hub, CATEGORY_CONNECTIONS, event)
        if template is None:
            logger.debug(
                "No upstream template for hub %s event %s; connection %s not reported",
                ctx.hub,
                event,
                ctx.connection_id,
            )
            return
        url = template.url_for(ctx.hub, CATEGORY_CONNECTIONS, event)
        headers = self._authorized(self._headers(ctx, CATEGORY_CONNECTIONS, event, _JSON), template)
        try:
            status, _ = await self._observed_post(
                ctx, CATEGORY_CONNECTIONS, event, url, headers, body
            )
        except _Failure as failure:
            logger.warning(
                "Upstream %s for connection %s failed: %s (%s)",
                event,
                ctx.connection_id,
                failure.reason,
                _redact(url),
            )
            return
        except Exception:
            logger.exception("Upstream %s for connection %s failed", event, ctx.connection_id)
            return
        if status not in (200, 204):
            logger.warning(
                "Upstream %s for connection %s answered status %d (%s)",
                event,
                ctx.connection_id,
                status,
                _redact(url),
            )

    async def connected(self, ctx: UpstreamContext) -> None:
        """Report a new connection (``connections``/``connected``, body ``{"type":10}``).

        The answer is only logged when it is not 200/204: a refused connect does not close
        the client, as in the service's emulator.
        """
        await self._notify(ctx, EVENT_CONNECTED, _CONNECTED_BODY)

    async def disconnected(self, ctx: UpstreamContext, error: str | None) -> None:
        """Report a closed connection (body ``{"type":11}`` or ``{"type":11,"error":...}``)."""
        payload: dict[str, Any] = {"type": 11}
        if error:
            payload["error"] = error
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        await self._notify(ctx, EVENT_DISCONNECTED, body)

    async def invoke(self, ctx: UpstreamContext, message: InvocationMessage) -> bytes | None:
        """Send an invocation upstream; return the bytes to write to the client.

        Args:
            ctx: the calling connection.
            message: the client's Invocation (its target is the event name).

        Returns:
            ``None`` when the message has no ``invocation_id``; otherwise framed bytes in the
            connection's protocol: the upstream's 200 body as is when it is exactly one
            Completion of this invocation, an empty Completion for an empty 200 or a 204,
            or an error Completion (``Invocation failed, status code N: <the webhook's
            reason>``, ``Invocation failed, the upstream answered an invalid completion:
            ...`` for any other 200 body, see :mod:`emulator.upstream_answer`; a timeout, an
            unreachable upstream, ``Invocation failed, error: ...`` for an answer cut off
            or malformed, a response over 16 MiB, no matching template). Never raises
            for upstream failures.
        """
        codec = ctx.codec
        invocation_id = message.invocation_id
        event = message.target
        template = self._find(ctx.hub, CATEGORY_MESSAGES, event)
        if template is None:
            text = (
                f"Invocation failed, no upstream is configured for hub '{ctx.hub}' event '{event}'."
            )
            logger.warning("Connection %s: %s", ctx.connection_id, text)
            return self._error(codec, invocation_id, text)
        url = template.url_for(ctx.hub, CATEGORY_MESSAGES, event)
        try:
            body = codec.encode_payload(message)
            headers = self._authorized(self._invocation_headers(ctx, event), template)
            status, answer = await self._observed_post(
                ctx, CATEGORY_MESSAGES, event, url, headers, body
            )
        except _Failure as failure:
            text = f"Invocation failed, {failure.reason}."
        except HubProtocolError as exc:
            text = f"Invocation failed, error: {exc.message}."
        except Exception as exc:  # a bug here must not leave the caller's invoke hanging
            logger.exception("Upstream invocation for connection %s failed", ctx.connection_id)
            text = f"Invocation failed, error: {_short(exc)}."
        else:
            if status in (200, 204):
                if invocation_id is None:
                    return None
                if status == 200 and answer:
                    problem = completion_problem(codec, answer, invocation_id)
                    if problem is None:
                        return answer
                    text = f"Invocation failed, {problem}."
                else:
                    return codec.encode(CompletionMessage.void(invocation_id))
            else:
                reason = webhook_reason(answer)
                text = f"Invocation failed, status code {status}" + (
                    f": {reason}" if reason else ""
                )
        logger.warning(
            "Upstream invocation %s of connection %s failed: %s (%s)",
            event,
            ctx.connection_id,
            text,
            _redact(url),
        )
        return self._error(codec, invocation_id, text)

    @staticmethod
    def _error(codec: HubCodec, invocation_id: str | None, text: str) -> bytes | None:
        if invocation_id is None:
            return None
        return codec.encode(CompletionMessage.with_error(invocation_id, text))
