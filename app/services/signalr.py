"""The SignalR Service data-plane REST client: the Functions output binding (docs/protocol.md §5).

One :class:`SignalRService` per process, opened by the app's lifespan::

    async with SignalRService.open(settings) as signalr:
        await signalr.send_to_group("chat", "room 1", "newMessage", [{"text": "hi"}])

What it does on the wire, and why:

* **One pooled client.** An :class:`httpx.AsyncClient` whose transport is
  :class:`AiohttpTransport`: httpx's API with aiohttp's connection pool. httpx's own pool
  measured 0.4–0.9 k requests/s here and got slower with concurrency; behind the same
  httpx API the aiohttp pool is several times faster (``bench/outbound_throughput.py``).
* **Paths.** api-version ``2022-06-01`` by default (``SIGNALR_API_VERSION``; listing a
  group's connections needs ``2024-12-01`` and uses it when the setting is older). Hub names are
  validated and lower-cased; every path segment is percent-encoded with nothing left safe,
  so ``/``, ``?``, ``#``, ``%`` and spaces in a group or user name stay inside their
  segment. A segment that is exactly ``.`` or ``..`` is refused: URL normalisation (ours,
  proxies', the service's) would collapse it and hit another resource.
* **Tokens.** ``aud`` is what Microsoft's .NET SDK sends: the port-less audience base, the
  path and ``?api-version=...``; further query parameters (``excluded``, ``reason``,
  ``ttl``) are added to the URL after the token, so they are not part of ``aud``. Tokens
  live one hour and are cached per audience until five minutes before expiry (the cache is
  bounded).
* **Errors.** One typed tree (:mod:`app.exceptions`): 400 → ``ServiceBadRequestError``,
  401/403 → ``ServiceUnauthorizedError``, 404 → ``ServiceNotFoundError``, 429 →
  ``ServiceThrottledError``, 5xx / timeouts / unreachable → ``ServiceUnavailableError``;
  each carries the status and the ``x-ms-error-code``.
* **Expected 404s**, per operation, as the Management SDK decides them
  (Azure/azure-signalr ``src/Microsoft.Azure.SignalR.Management/RestHubLifetimeManager.cs``,
  ``FilterExpectedResponse``): a 404 is an answer, not an error, only when its
  ``x-ms-error-code`` (first value, compared case-insensitively) is the one the operation
  expects; any other 404 (no code: a wrong path, a proxy, another service) raises
  ``ServiceNotFoundError``. Adding a connection that has gone to a group
  (``Error.Connection.NotExisted``) and closing one (``Warning.Connection.NotExisted``)
  succeed; ``connection_exists`` / ``user_exists`` / ``group_exists`` / ``user_in_group``
  answer ``False`` on ``Warning.Connection.NotExisted`` / ``Warning.User.NotExisted`` /
  ``Warning.Group.NotExisted`` / ``Info.User.NotInGroup``. One deliberate difference: the
  SDK expects no 404 when removing a *connection* from a group or from all groups; we
  accept ``Warning.Connection.NotExisted`` and ``Info.Connection.NotInGroup`` there,
  because with several endpoints the endpoints that don't hold the connection answer so,
  and leaving a group one is not in is not a failure (``docs/decisions.md``).
* **Retries** as :mod:`app.services.retry` describes (sends are not retried on 500).
* **Several endpoints** (:mod:`app.services.endpoints`): every call goes to each *online*
  endpoint; an offline one is skipped with a warning. A send succeeds when at least one
  endpoint accepted it (the endpoints that failed are logged as a partial delivery and
  marked offline); every other call fails when any endpoint it went to failed.
  :meth:`SignalRService.negotiate_endpoint` picks where new clients go.
* **``Asrs-User-Agent``** on every call, in the SDK's shape
  ``<product>/<version> (<runtime>; <os>; <arch>)`` (Azure/azure-signalr
  ``src/Microsoft.Azure.SignalR.Common/Utilities/ProductInfo.cs``), next to ``User-Agent``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import platform
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

import aiohttp
import httpx
import yarl

from app import __version__
from app.exceptions import (
    ServiceBadRequestError,
    ServiceError,
    ServiceNotFoundError,
    ServiceThrottledError,
    ServiceUnauthorizedError,
    ServiceUnavailableError,
)
from app.hub.outbound import GroupMember
from app.settings import Settings
from app.telemetry import OTHER, RestCall, Telemetry
from signalr_protocol.connection_string import ServiceEndpoint
from signalr_protocol.errors import InvalidNameError, PayloadError, SignalRError
from signalr_protocol.limits import loads_json
from signalr_protocol.names import (
    validate_connection_id,
    validate_group_name,
    validate_hub_name,
    validate_user_id,
)
from signalr_protocol.payload import dumps as dumps_json
from signalr_protocol.tokens import mint_client_token, mint_token, rest_audience

from .endpoints import EndpointSet
from .identity import (
    AccessKeyManager,
    AccessKeyUnavailableError,
    EntraAuth,
    EntraAuthError,
    TemporaryAccessKey,
    mint_keyless_client_token,
)
from .retry import CallKind, RetryPolicy, parse_retry_after

__all__ = [
    "ASRS_USER_AGENT",
    "LIST_API_VERSION",
    "MAX_CONNECTIONS",
    "MAX_PAGE_SIZE",
    "AiohttpTransport",
    "REST_TOKEN_LIFETIME",
    "TOKEN_CACHE_SIZE",
    "TOKEN_REFRESH_MARGIN",
    "SignalRService",
    "encode_segment",
    "product_info",
]

logger = logging.getLogger("app.services.signalr")

MAX_CONNECTIONS: Final = 100
"""Connections in the pool (per process, all endpoints together)."""
REST_TOKEN_LIFETIME: Final = timedelta(hours=1)
"""Lifetime of a REST token, as the .NET SDK mints them."""
TOKEN_REFRESH_MARGIN: Final = 300.0
"""A cached REST token is replaced this many seconds before it expires."""
TOKEN_CACHE_SIZE: Final = 4096
"""At most this many REST tokens (one per endpoint and path) and as many prepared request
URLs are cached; the oldest go first."""
USER_AGENT: Final = f"serverless-signalr/{__version__}"
LIST_API_VERSION: Final = "2024-12-01"
"""The first api-version with ``GET .../groups/{group}/connections``; listing uses it (or
``SIGNALR_API_VERSION`` when that is newer)."""
MAX_PAGE_SIZE: Final = 200
"""The largest ``maxpagesize`` the service accepts when listing connections."""
KEY_WAIT_SECONDS: Final = 5.0
"""How long negotiate waits for a keyless endpoint's first signing key after start-up."""


def _header_text(text: str) -> str:
    """``text`` with what can't go in an HTTP header value (controls, non-ASCII) removed."""
    return " ".join("".join(ch if 32 <= ord(ch) < 127 else " " for ch in text).split())


def product_info() -> str:
    """The ``Asrs-User-Agent`` value: ``serverless-signalr/<version> (<runtime>; <os>;
    <arch>)``, the shape of the SDK's ``ProductInfo.GetProductInfo`` (Azure/azure-signalr
    ``src/Microsoft.Azure.SignalR.Common/Utilities/ProductInfo.cs``), with Python's names:
    e.g. ``serverless-signalr/0.1.0 (CPython 3.12.3; Linux 6.8.0; x86_64)``."""
    runtime = f"{platform.python_implementation()} {platform.python_version()}"
    system = f"{platform.system()} {platform.release()}"
    parts = "; ".join(
        _header_text(part) or "unknown" for part in (runtime, system, platform.machine())
    )
    return f"serverless-signalr/{__version__} ({parts})"


ASRS_USER_AGENT: Final = product_info()
"""What every REST call sends in ``Asrs-User-Agent``."""

# ``x-ms-error-code`` values (lower-cased) that make a 404 an answer, per operation
# (Azure/azure-signalr ``src/Microsoft.Azure.SignalR.Common/Constants.cs`` ``ErrorCodes``;
# who expects which: ``src/Microsoft.Azure.SignalR.Management/RestHubLifetimeManager.cs``).
_CONNECTION_NOT_EXISTED: Final = frozenset({"warning.connection.notexisted"})
_USER_NOT_EXISTED: Final = frozenset({"warning.user.notexisted"})
_GROUP_NOT_EXISTED: Final = frozenset({"warning.group.notexisted"})
_USER_NOT_IN_GROUP: Final = frozenset({"info.user.notingroup"})
_ADD_CONNECTION_NOT_EXISTED: Final = frozenset({"error.connection.notexisted"})
# Not in the SDK (it expects no 404 there): see the module docstring.
_LEAVE_CONNECTION_ABSENT: Final = frozenset(
    {"warning.connection.notexisted", "info.connection.notingroup"}
)

_JSON_CONTENT_TYPE: Final = "application/json; charset=utf-8"
_ERROR_DETAIL_LIMIT: Final = 300
_PATH_IN_MESSAGE_LIMIT: Final = 200

_T = TypeVar("_T")


# aiohttp errors, most specific first, and the httpx error each becomes. The distinction
# matters to retries: a connect error means the request never left, a read error may mean
# it was delivered.
_ERROR_MAP: Final[tuple[tuple[type[BaseException], type[httpx.TransportError]], ...]] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientOSError, httpx.NetworkError),
    (aiohttp.ClientError, httpx.TransportError),
    (TimeoutError, httpx.ReadTimeout),
)
_DROPPED_RESPONSE_HEADERS: Final = frozenset({b"content-encoding", b"content-length"})
_NO_AUTO_CONTENT_TYPE: Final = ("Content-Type",)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx transport over one pooled :class:`aiohttp.ClientSession`.

    httpx's API (requests, responses, timeouts, event hooks, ``MockTransport`` in tests)
    with aiohttp's connection pool, which is several times faster than httpcore's here.
    It differs from ``httpx_aiohttp.AiohttpTransport`` in the ways this client relies on:

    * the URL is sent **exactly as encoded** (``yarl.URL(..., encoded=True)``); yarl's
      re-quoting would otherwise decode ``%26``, ``%3D``, ``%3B`` ... in paths, so the
      path on the wire would differ from the one the token's ``aud`` was made for;
    * aiohttp errors map to httpx errors by what they mean for a retry (a refused
      connection is a ``ConnectError``, a dropped one a ``RemoteProtocolError``);
    * the body is read whole (REST answers are small) and the connection released at once.
    """

    def __init__(self, *, max_connections: int = MAX_CONNECTIONS, keepalive: float = 30.0) -> None:
        """Create the transport; the session is created on first use, inside the event loop.

        Args:
            max_connections: size of the connection pool.
            keepalive: seconds an idle pooled connection is kept.
        """
        self._max_connections = max_connections
        self._keepalive = keepalive
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, keepalive_timeout=self._keepalive
            )
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, auto_decompress=True
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and return the whole response."""
        session = self._get_session()
        timeouts = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.get("pool"),
            sock_connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"),
        )
        headers = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw
        ]
        content = request.content or None
        try:
            async with session.request(
                request.method,
                yarl.URL(str(request.url), encoded=True),
                headers=headers,
                data=content,
                allow_redirects=False,
                timeout=timeout,
                # aiohttp would label an empty POST/PUT application/octet-stream.
                skip_auto_headers=None if content else _NO_AUTO_CONTENT_TYPE,
            ) as response:
                body = await response.read()
                status = response.status
                reason = response.reason
                raw_headers = [
                    (name, value)
                    for name, value in response.raw_headers
                    if name.lower() not in _DROPPED_RESPONSE_HEADERS
                ]
        except (TimeoutError, aiohttp.ClientError) as exc:
            for source, target in _ERROR_MAP:
                if isinstance(exc, source):
                    raise target(str(exc) or type(exc).__name__, request=request) from exc
            raise  # pragma: no cover - the map ends with the base classes
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if reason:
            extensions["reason_phrase"] = reason.encode("latin-1", "replace")
        return httpx.Response(
            status, headers=raw_headers, content=body, request=request, extensions=extensions
        )

    async def aclose(self) -> None:
        """Close the session and its pooled connections."""
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def encode_segment(value: str, kind: str = "name") -> str:
    """Percent-encode one URL path segment, leaving nothing safe.

    Args:
        value: a hub, group, user or connection name, already validated.
        kind: what the value is, for the error message.

    Raises:
        InvalidNameError: the value is ``.`` or ``..``, which URL normalisation would
            remove from the path (so the call would reach a different resource).
    """
    if value in (".", ".."):
        raise InvalidNameError(
            f"The {kind} {value!r} can't be used: URL normalisation removes '.' and '..' "
            "path segments, so the request would reach another resource. Choose another name."
        )
    return quote(value, safe="")


def _payload(target: str, arguments: Sequence[Any]) -> bytes:
    """The ``PayloadMessage`` body ``{"target", "arguments"}`` as UTF-8 JSON."""
    if not isinstance(target, str) or not target:
        raise InvalidNameError("The target (the client method to call) must be a non-empty string.")
    if isinstance(arguments, str | bytes | bytearray) or not isinstance(arguments, Iterable):
        raise TypeError(
            "arguments must be a list of the client method's arguments, e.g. [text], "
            f"not {type(arguments).__name__}."
        )
    try:
        # NaN and Infinity are not JSON: the service and the clients' parsers refuse them.
        text = dumps_json({"target": target, "arguments": list(arguments)})
    except (TypeError, ValueError) as exc:
        raise TypeError(f"The arguments of {target!r} are not JSON serializable: {exc}") from exc
    return text.encode("utf-8")


def _first_error_code(response: httpx.Response) -> str | None:
    """The first ``x-ms-error-code`` header value, lower-cased (``None`` without one)."""
    values = response.headers.get_list("x-ms-error-code")
    return values[0].strip().lower() if values else None


def _short(path: str) -> str:
    if len(path) <= _PATH_IN_MESSAGE_LIMIT:
        return path
    return path[: _PATH_IN_MESSAGE_LIMIT - 3] + "..."


def _error_from_response(response: httpx.Response, method: str, path: str) -> ServiceError:
    """Translate a non-success answer into the typed error tree."""
    status = response.status_code
    error_code = response.headers.get("x-ms-error-code") or None
    detail = ""
    if response.content:
        try:
            data = loads_json(response.content)  # bounded: a deep body can't raise RecursionError
        except PayloadError:
            detail = response.text
        else:
            if isinstance(data, dict):
                code = data.get("code")
                if error_code is None and isinstance(code, str) and code:
                    error_code = code
                message = data.get("message")
                detail = message if isinstance(message, str) else ""
    detail = " ".join(detail.split())[:_ERROR_DETAIL_LIMIT]
    text = f"SignalR Service answered {status}"
    if error_code:
        text += f" ({error_code})"
    text += f" to {method} {_short(path)}"
    if detail:
        text += f": {detail}"
    if status == 400:
        return ServiceBadRequestError(text, status_code=status, error_code=error_code)
    if status in (401, 403):
        return ServiceUnauthorizedError(
            text + " - check the AccessKey of the connection string",
            status_code=status,
            error_code=error_code,
        )
    if status == 404:
        return ServiceNotFoundError(text, status_code=status, error_code=error_code)
    if status == 429:
        return ServiceThrottledError(
            text,
            status_code=status,
            error_code=error_code,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )
    if status >= 500 or status == 408:
        return ServiceUnavailableError(text, status_code=status, error_code=error_code)
    return ServiceError(text, status_code=status, error_code=error_code)


def _not_a_page(response: httpx.Response, path: str, why: str) -> ServiceError:
    return ServiceError(
        f"SignalR Service answered GET {_short(path)} with something that is not a page of "
        f"group members: {why}",
        status_code=response.status_code,
    )


def _group_page(response: httpx.Response, path: str) -> tuple[list[GroupMember], str | None]:
    """The members and the ``nextLink`` of one ``GroupMemberPagedValues`` answer.

    Raises:
        ServiceError: the body is not ``{"value": [{"connectionId", "userId"?}...],
            "nextLink"?}`` (decoded within :mod:`signalr_protocol.limits`).
    """
    if response.status_code == 204:
        return [], None
    try:
        data = loads_json(response.content)
    except PayloadError as exc:
        raise _not_a_page(response, path, str(exc)) from None
    if not isinstance(data, dict) or not isinstance(data.get("value"), list):
        raise _not_a_page(response, path, 'no "value" array.')
    members: list[GroupMember] = []
    for item in data["value"]:
        connection_id = item.get("connectionId") if isinstance(item, dict) else None
        if not isinstance(connection_id, str) or not connection_id:
            raise _not_a_page(response, path, 'a member without a "connectionId" string.')
        user_id = item.get("userId")
        if user_id is not None and not isinstance(user_id, str):
            raise _not_a_page(response, path, 'a "userId" that is not a string.')
        members.append(GroupMember(connection_id, user_id or None))
    next_link = data.get("nextLink")
    if next_link is not None and not isinstance(next_link, str):
        raise _not_a_page(response, path, '"nextLink" is not a string.')
    return members, next_link or None


def _next_page_query(next_link: str) -> list[tuple[str, str]]:
    """The query parameters of a ``nextLink`` (its continuation token, page size, ``top``),
    without ``api-version``, which every call adds itself."""
    return [
        (name, value)
        for name, value in parse_qsl(urlsplit(next_link).query, keep_blank_values=True)
        if name.lower() != "api-version"
    ]


def _keyless_refusal(error: ServiceError, manager: AccessKeyManager) -> ServiceError:
    """A keyless endpoint's 401/403: name the endpoint and say what to check."""
    who = manager.bearer.who
    text = error.message.replace(" - check the AccessKey of the connection string", "")
    return ServiceUnauthorizedError(
        f"{text} (endpoint {manager.endpoint.label}, keyless) - check that {who} has the role "
        "'SignalR App Server' on the SignalR resource and that the ClientId names that identity",
        status_code=error.status_code,
        error_code=error.error_code,
    )


def _combine(errors: Sequence[BaseException], total: int, what: str) -> BaseException:
    """One error for a fan-out where some calls failed: the first one's type, all counted."""
    first = errors[0]
    if len(errors) == 1 and total == 1:
        return first
    if not isinstance(first, ServiceError):
        return first
    message = f"{len(errors)} of {total} {what} failed; first: {first.message}"
    if isinstance(first, ServiceThrottledError):
        return ServiceThrottledError(
            message,
            status_code=first.status_code,
            error_code=first.error_code,
            retry_after=first.retry_after,
        )
    return type(first)(message, status_code=first.status_code, error_code=first.error_code)


def _raise_failures(results: Sequence[object], what: str) -> None:
    """Raise one error for the failed results of a fan-out (see :func:`_combine`)."""
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        combined = _combine(errors, len(results), what)
        if combined is errors[0]:
            raise combined
        raise combined from errors[0]


async def _all(calls: Sequence[Awaitable[_T]], what: str) -> list[_T]:
    """Await every call (none is abandoned half-way), then raise if any failed."""
    if len(calls) == 1:
        return [await calls[0]]
    results = await asyncio.gather(*calls, return_exceptions=True)
    _raise_failures(results, what)
    return [r for r in results if not isinstance(r, BaseException)]


class SignalRService:
    """Client of the SignalR Service REST API, for every configured endpoint.

    Build it with :meth:`open` (which owns the HTTP client) or, in tests, with an
    :class:`httpx.AsyncClient` of your own. Every method validates names before the first
    request, so an invalid name never leaves a fan-out half done.

    Raises (every async method):
        InvalidNameError: a hub, group, user or connection name breaks the service's rules.
        ServiceError: a subclass saying what the service answered (after retries).
    """

    def __init__(
        self,
        settings: Settings,
        client: httpx.AsyncClient,
        *,
        endpoints: EndpointSet | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        entra: EntraAuth | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        """Use ``client`` for every request (its transport and pool are shared).

        Args:
            settings: api version, timeouts, retry bounds and endpoints.
            client: an open client; the caller closes it.
            endpoints: the endpoint set; by default ``settings.service_endpoints()``.
            retry: the retry policy; by default from settings.
            clock: wall-clock seconds, for token issue and expiry (tests).
            entra: the Entra credentials and key managers of the keyless endpoints (made
                and closed by :meth:`open`); keyless endpoints can't be called without it.
            telemetry: a span per REST call and the REST and endpoint health metrics;
                by default neither.
        """
        self._settings = settings
        self._client = client
        self._endpoints = endpoints or EndpointSet(settings.service_endpoints())
        self._telemetry = telemetry if telemetry is not None else Telemetry()
        if self._telemetry.metrics is not None:
            self._endpoints.on_health = self._telemetry.metrics.endpoint_health
            for index in range(len(self._endpoints)):
                self._telemetry.metrics.endpoint_health(
                    self._endpoint_label(index), self._endpoints.is_online(index)
                )
        self._retry = retry or RetryPolicy.from_settings(settings)
        self._no_retry = dataclasses.replace(self._retry, max_attempts=1)
        self._api_query = "api-version=" + quote(settings.api_version, safe="")
        self._timeout = float(settings.http_timeout)
        self._timeout_extension = httpx.Timeout(self._timeout).as_dict()
        self._clock = clock
        self._tokens: dict[tuple[int, str], tuple[str, float]] = {}
        self._prepared: dict[
            tuple[int, str, bool], tuple[httpx.URL, httpx.Headers, float, str | None]
        ] = {}
        # The .NET SDK identifies the calling server in ``nameid``: machine and instance.
        self._claims = {"nameid": f"{socket.gethostname()}_{uuid.uuid4().hex}"}
        # Keyless endpoints, by index (REST calls) and by identity (negotiate's pick).
        self._entra = entra
        self._keyless: dict[int, AccessKeyManager] = {}
        self._keyless_by_id: dict[int, AccessKeyManager] = {}
        if entra is not None:
            for index, endpoint in enumerate(self._endpoints.endpoints):
                if entra.handles(endpoint):
                    self._keyless[index] = self._keyless_by_id[id(endpoint)] = entra.manager(
                        endpoint
                    )

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, settings: Settings, *, telemetry: Telemetry | None = None
    ) -> AsyncIterator[SignalRService]:
        """Open the process's one pooled HTTP client and yield the service around it.

        With several endpoints, a background task checks each endpoint's health every
        ``settings.health_check_interval`` seconds. Keyless endpoints get their Entra
        credential and a background task keeping their temporary signing key fresh
        (:class:`~app.services.identity.EntraAuth`). Everything is closed on exit.
        """
        transport = AiohttpTransport(max_connections=settings.http_max_connections)
        async with (
            httpx.AsyncClient(
                transport=transport,
                timeout=httpx.Timeout(settings.http_timeout),
                headers={"user-agent": USER_AGENT, "asrs-user-agent": ASRS_USER_AGENT},
                trust_env=False,
            ) as client,
            contextlib.AsyncExitStack() as stack,
        ):
            entra: EntraAuth | None = None
            if settings.keyless:
                entra = await stack.enter_async_context(
                    EntraAuth.open(
                        settings.service_endpoints(),
                        client,
                        refresh_interval=settings.access_key_refresh_interval,
                        retry_interval=settings.access_key_retry_interval,
                    )
                )
            service = cls(settings, client, entra=entra, telemetry=telemetry)
            monitor: asyncio.Task[None] | None = None
            if len(service._endpoints) > 1:
                monitor = asyncio.create_task(service._monitor_health())
            try:
                yield service
            finally:
                if monitor is not None:
                    monitor.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await monitor

    # -- endpoints and health -------------------------------------------------------------

    @property
    def http_client(self) -> httpx.AsyncClient:
        """The pooled HTTP client (shared, e.g. by the webhook's Entra key fetches)."""
        return self._client

    @property
    def endpoints(self) -> EndpointSet:
        """The configured endpoints and what is known of their health."""
        return self._endpoints

    def negotiate_endpoint(self) -> ServiceEndpoint:
        """The endpoint a new client should connect to: a random online primary, else an
        online secondary (see :meth:`EndpointSet.negotiate_endpoint`)."""
        return self._endpoints.negotiate_endpoint()

    async def is_healthy(self) -> bool:
        """Check every endpoint's ``HEAD /api/health`` once (no retries).

        Returns:
            ``True`` when at least one endpoint answers 2xx (negotiate can then hand out
            a working endpoint). Each endpoint's health is recorded for negotiate.
        """
        results = await asyncio.gather(
            *(self._check_health(index) for index in range(len(self._endpoints)))
        )
        return any(results)

    async def _check_health(self, index: int) -> bool:
        try:
            await self._call(
                index,
                "HEAD",
                "/api/health",
                CallKind.OTHER,
                retry=self._no_retry,
                operation="health",
            )
        except SignalRError as exc:  # ServiceError, or a key this version can't use
            logger.warning(
                "health check of endpoint %s failed: %s", self._endpoint_label(index), exc
            )
            return False
        return True

    async def _monitor_health(self) -> None:
        interval = float(self._settings.health_check_interval)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.is_healthy()
            except Exception:  # a failed check must not end the monitor
                logger.exception("endpoint health check crashed")

    def _endpoint_label(self, index: int) -> str:
        endpoint = self._endpoints.endpoints[index]
        return endpoint.name or endpoint.endpoint

    # -- tokens ---------------------------------------------------------------------------

    def _token_entry(self, index: int, path_and_query: str) -> tuple[str, float]:
        key = (index, path_and_query)
        now = self._clock()
        cached = self._tokens.get(key)
        if cached is not None and cached[1] > now:
            return cached
        endpoint = self._endpoints.endpoints[index]
        token = mint_token(
            endpoint.require_access_key(),
            rest_audience(endpoint, path_and_query),
            lifetime=REST_TOKEN_LIFETIME,
            claims=self._claims,
            now=now,
        )
        if cached is None and len(self._tokens) >= TOKEN_CACHE_SIZE:
            del self._tokens[next(iter(self._tokens))]
        entry = (token, now + REST_TOKEN_LIFETIME.total_seconds() - TOKEN_REFRESH_MARGIN)
        self._tokens[key] = entry
        return entry

    def _prepare(
        self, index: int, path_and_query: str, url: str, has_body: bool, bearer: str | None = None
    ) -> tuple[httpx.URL, httpx.Headers]:
        """The parsed URL and the headers (token included) of a call, cached with the token.

        Parsing a URL and normalising headers cost httpx about 45 µs a request, a sixth
        of a whole call against a local sink; repeated calls to one target skip both.
        A keyless endpoint's ``bearer`` (its Entra token) is used as it is; the entry is
        reused while that token is the same.
        """
        key = (index, url, has_body)
        now = self._clock()
        cached = self._prepared.get(key)
        if cached is not None and cached[2] > now and cached[3] == bearer:
            return cached[0], cached[1]
        if bearer is not None:
            token, valid_until = bearer, math.inf
        else:
            token, valid_until = self._token_entry(index, path_and_query)
        header_values = {
            "authorization": "Bearer " + token,
            "user-agent": USER_AGENT,
            "asrs-user-agent": ASRS_USER_AGENT,
        }
        if has_body:
            header_values["content-type"] = _JSON_CONTENT_TYPE
        prepared = (httpx.URL(url), httpx.Headers(header_values), valid_until, bearer)
        if cached is None and len(self._prepared) >= TOKEN_CACHE_SIZE:
            del self._prepared[next(iter(self._prepared))]
        self._prepared[key] = prepared
        return prepared[0], prepared[1]

    # -- the request loop -----------------------------------------------------------------

    async def _send_once(self, request: httpx.Request) -> httpx.Response:
        try:
            async with asyncio.timeout(self._timeout):
                return await self._client.send(request)
        except TimeoutError as exc:
            # The whole attempt overran: treat it as a read timeout (maybe delivered).
            raise httpx.ReadTimeout(
                f"no answer within {self._timeout:g} s", request=request
            ) from exc

    async def _call(
        self,
        index: int,
        method: str,
        path: str,
        kind: CallKind,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        expected_404: frozenset[str] = frozenset(),
        retry: RetryPolicy | None = None,
        operation: str = OTHER,
        api_version: str | None = None,
        answer: list[httpx.Response] | None = None,
    ) -> int:
        """Make one REST call to endpoint ``index``, with retries; return the status.

        The call (all its attempts) is one span, a child of the current one (the hub
        method's), with its retries as events, and one count in the metrics.

        Args:
            path: the percent-encoded path, e.g. ``/api/hubs/chat/:send``.
            query: parameters added after the token is made (not part of ``aud``).
            expected_404: lower-cased ``x-ms-error-code`` values that make a 404 an
                answer (returned as 404), not an error; see the module docstring.
            operation: the metrics' and span's name of the call (a
                :data:`~app.telemetry.REST_OPERATIONS` value).
            api_version: this call's api-version instead of ``SIGNALR_API_VERSION``.
            answer: receives the successful response (for calls that read its body).
        """
        endpoint = self._endpoints.endpoints[index]
        with self._telemetry.rest_call(operation, endpoint.server_endpoint, method) as call:
            return await self._attempts(
                call,
                index,
                method,
                path,
                kind,
                query=query,
                body=body,
                expected_404=expected_404,
                retry=retry,
                api_version=api_version,
                answer=answer,
            )

    async def _attempts(
        self,
        call: RestCall,
        index: int,
        method: str,
        path: str,
        kind: CallKind,
        *,
        query: Sequence[tuple[str, str]],
        body: bytes | None,
        expected_404: frozenset[str],
        retry: RetryPolicy | None,
        api_version: str | None = None,
        answer: list[httpx.Response] | None = None,
    ) -> int:
        """:meth:`_call`'s attempts, reported to ``call``."""
        policy = retry or self._retry
        endpoint = self._endpoints.endpoints[index]
        api_query = self._api_query
        if api_version is not None:
            api_query = "api-version=" + quote(api_version, safe="")
        path_and_query = f"{path}?{api_query}"
        url = endpoint.server_endpoint + path_and_query
        for name, value in query:
            url += f"&{name}={quote(value, safe='')}"
        started = time.monotonic()
        attempt = 0
        manager = self._keyless.get(index)
        tracing = call.span.is_recording()
        while True:
            attempt += 1
            bearer: str | None = None
            if manager is not None:
                try:
                    bearer = await manager.bearer.token()
                except EntraAuthError:
                    self._endpoints.record(index, online=False)
                    raise
            parsed_url, headers = self._prepare(
                index, path_and_query, url, body is not None, bearer
            )
            if tracing:
                headers = headers.copy()  # the cached headers stay trace-free
                carrier: dict[str, str] = {}
                Telemetry.inject(carrier)
                headers.update(carrier)
            request = httpx.Request(
                method,
                parsed_url,
                headers=headers,
                content=body,
                extensions={"timeout": self._timeout_extension},
            )
            wait: float | None = None
            try:
                response = await self._send_once(request)
            except httpx.TransportError as exc:
                retryable = policy.error_is_retryable(exc, kind)
                error: ServiceError = ServiceUnavailableError(
                    f"SignalR Service at {endpoint.server_endpoint} did not answer "
                    f"{method} {_short(path)}: {type(exc).__name__}"
                    + (f": {exc}" if str(exc) else ""),
                )
                cause: BaseException = exc
            else:
                status = response.status_code
                if 200 <= status < 300 or (
                    status == 404 and expected_404 and _first_error_code(response) in expected_404
                ):
                    self._endpoints.record(index, online=True)
                    call.done(status)
                    if answer is not None:
                        answer.append(response)
                    return status
                error = _error_from_response(response, method, path)
                if manager is not None and status in (401, 403):
                    manager.bearer.forget()
                    error = _keyless_refusal(error, manager)
                cause = error
                retryable = policy.status_is_retryable(status, kind)
                wait = parse_retry_after(response.headers.get("retry-after"))
            delay = policy.backoff(attempt) if wait is None else min(wait, policy.max_delay)
            elapsed = time.monotonic() - started
            if (
                not retryable
                or attempt >= policy.max_attempts
                or elapsed + delay > policy.max_total
                or (wait is not None and wait > policy.max_delay)
            ):
                call.done(None if cause is not error else status)
                self._endpoints.record(index, online=not isinstance(error, ServiceUnavailableError))
                if cause is error:
                    raise error
                raise error from cause
            logger.warning(
                "retrying %s %s in %.2f s (attempt %d of %d failed: %s)",
                method,
                _short(path),
                delay,
                attempt,
                policy.max_attempts,
                error,
            )
            if cause is error:
                call.retry(delay, f"status {status}", status=status)
            else:
                call.retry(delay, type(cause).__name__)
            await asyncio.sleep(delay)

    def _route(self, method: str, path: str) -> list[int]:
        """The endpoints a call goes to (the online ones); warn about skipped ones."""
        called, skipped = self._endpoints.route()
        for index in skipped:
            count = self._endpoints.note_skipped(index)
            if count is not None:
                logger.warning(
                    "%s %s skipped endpoint %s: it is offline since a health check or a "
                    "call failed (%d call(s) skipped since the last warning); clients "
                    "connected to it miss these messages until it is healthy again",
                    method,
                    _short(path),
                    self._endpoint_label(index),
                    count,
                )
        return called

    async def _everywhere(
        self,
        operation: str,
        method: str,
        path: str,
        kind: CallKind,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        expected_404: frozenset[str] = frozenset(),
    ) -> list[int]:
        """Make the call on every online endpoint.

        A send succeeds when at least one endpoint accepted it: the ones that failed are
        logged (a partial delivery) and are offline until a health check finds them
        healthy. Any other call raises when any endpoint failed.
        """
        indices = self._route(method, path)
        calls = [
            self._call(
                index,
                method,
                path,
                kind,
                query=query,
                body=body,
                expected_404=expected_404,
                operation=operation,
            )
            for index in indices
        ]
        if kind is not CallKind.SEND or len(calls) == 1:
            return await _all(calls, "endpoints")
        results = await asyncio.gather(*calls, return_exceptions=True)
        statuses = [r for r in results if not isinstance(r, BaseException)]
        if statuses and len(statuses) < len(results):
            for index, result in zip(indices, results, strict=True):
                if isinstance(result, BaseException):
                    logger.warning(
                        "partial delivery: %s %s was accepted by %d of %d endpoints; "
                        "endpoint %s failed: %s",
                        method,
                        _short(path),
                        len(statuses),
                        len(results),
                        self._endpoint_label(index),
                        result,
                    )
            return statuses
        _raise_failures(results, "endpoints")
        return statuses

    async def _exists(self, operation: str, path: str, expected_404: frozenset[str]) -> bool:
        """``HEAD`` on every online endpoint: ``True`` when any answers 200, ``False`` when
        all answer a 404 with the expected error code; anything else raises."""
        indices = self._route("HEAD", path)
        results = await asyncio.gather(
            *(
                self._call(
                    index,
                    "HEAD",
                    path,
                    CallKind.OTHER,
                    expected_404=expected_404,
                    operation=operation,
                )
                for index in indices
            ),
            return_exceptions=True,
        )
        if any(status == 200 for status in results if isinstance(status, int)):
            return True
        _raise_failures(results, "endpoints")
        return False

    @staticmethod
    def _hub_path(hub: str) -> str:
        validate_hub_name(hub)
        return "/api/hubs/" + encode_segment(hub.lower(), "hub name")

    @staticmethod
    def _excluded(excluded: Sequence[str]) -> list[tuple[str, str]]:
        if isinstance(excluded, str):
            raise TypeError("excluded must be a list of connection ids, not a string.")
        return [("excluded", validate_connection_id(cid)) for cid in excluded]

    @staticmethod
    def _reason(reason: str | None) -> list[tuple[str, str]]:
        return [] if reason is None else [("reason", reason)]

    # -- sends ----------------------------------------------------------------------------

    async def send_to_all(
        self,
        hub: str,
        target: str,
        arguments: Sequence[Any],
        *,
        excluded: Sequence[str] = (),
    ) -> None:
        """Send ``target(*arguments)`` to every connection of ``hub`` except ``excluded``."""
        path = self._hub_path(hub) + "/:send"
        query = self._excluded(excluded)
        await self._everywhere(
            "send_to_all",
            "POST",
            path,
            CallKind.SEND,
            query=query,
            body=_payload(target, arguments),
        )

    async def send_to_user(
        self, hub: str, user_id: str, target: str, arguments: Sequence[Any]
    ) -> None:
        """Send to every connection of one user."""
        path = self._user_path(hub, user_id) + "/:send"
        await self._everywhere(
            "send_to_user", "POST", path, CallKind.SEND, body=_payload(target, arguments)
        )

    async def send_to_users(
        self, hub: str, user_ids: Sequence[str], target: str, arguments: Sequence[Any]
    ) -> None:
        """Send to every connection of several users (one REST call per distinct user)."""
        paths = [self._user_path(hub, uid) + "/:send" for uid in self._distinct(user_ids)]
        await self._fan_out("send_to_user", paths, target, arguments, (), "user sends")

    async def send_to_group(
        self,
        hub: str,
        group: str,
        target: str,
        arguments: Sequence[Any],
        *,
        excluded: Sequence[str] = (),
    ) -> None:
        """Send to every connection in ``group`` except ``excluded``."""
        path = self._group_path(hub, group) + "/:send"
        query = self._excluded(excluded)
        await self._everywhere(
            "send_to_group",
            "POST",
            path,
            CallKind.SEND,
            query=query,
            body=_payload(target, arguments),
        )

    async def send_to_groups(
        self,
        hub: str,
        groups: Sequence[str],
        target: str,
        arguments: Sequence[Any],
        *,
        excluded: Sequence[str] = (),
    ) -> None:
        """Send to several groups (one REST call per distinct group).

        A connection in two of the groups receives the message twice, as with the
        service's own per-group sends.
        """
        paths = [self._group_path(hub, g) + "/:send" for g in self._distinct(groups)]
        await self._fan_out(
            "send_to_group", paths, target, arguments, self._excluded(excluded), "group sends"
        )

    async def send_to_connection(
        self, hub: str, connection_id: str, target: str, arguments: Sequence[Any]
    ) -> None:
        """Send to one connection."""
        path = self._connection_path(hub, connection_id) + "/:send"
        await self._everywhere(
            "send_to_connection", "POST", path, CallKind.SEND, body=_payload(target, arguments)
        )

    async def send_to_connections(
        self, hub: str, connection_ids: Sequence[str], target: str, arguments: Sequence[Any]
    ) -> None:
        """Send to several connections (one REST call per distinct connection)."""
        paths = [
            self._connection_path(hub, cid) + "/:send" for cid in self._distinct(connection_ids)
        ]
        await self._fan_out("send_to_connection", paths, target, arguments, (), "connection sends")

    async def _fan_out(
        self,
        operation: str,
        paths: Sequence[str],
        target: str,
        arguments: Sequence[Any],
        query: Sequence[tuple[str, str]],
        what: str,
    ) -> None:
        if not paths:
            return
        body = _payload(target, arguments)
        await _all(
            [
                self._everywhere(operation, "POST", p, CallKind.SEND, query=query, body=body)
                for p in paths
            ],
            what,
        )

    @staticmethod
    def _distinct(names: Sequence[str]) -> list[str]:
        if isinstance(names, str):
            raise TypeError("Pass a list of names, not a single string.")
        return list(dict.fromkeys(names))

    # Each ``_*_segment`` validates one name and encodes it; the ``_*_path`` methods build
    # on them, so every name is checked before the first request of a call.

    @staticmethod
    def _user_segment(user_id: str) -> str:
        return encode_segment(validate_user_id(user_id), "user id")

    @staticmethod
    def _group_segment(group: str) -> str:
        return encode_segment(validate_group_name(group), "group name")

    @staticmethod
    def _connection_segment(connection_id: str) -> str:
        return encode_segment(validate_connection_id(connection_id), "connection id")

    def _user_path(self, hub: str, user_id: str) -> str:
        user = self._user_segment(user_id)
        return self._hub_path(hub) + "/users/" + user

    def _group_path(self, hub: str, group: str) -> str:
        segment = self._group_segment(group)
        return self._hub_path(hub) + "/groups/" + segment

    def _connection_path(self, hub: str, connection_id: str) -> str:
        segment = self._connection_segment(connection_id)
        return self._hub_path(hub) + "/connections/" + segment

    def _group_connection_path(self, hub: str, group: str, connection_id: str) -> str:
        return (
            self._group_path(hub, group) + "/connections/" + self._connection_segment(connection_id)
        )

    def _user_group_path(self, hub: str, group: str, user_id: str) -> str:
        return self._user_path(hub, user_id) + "/groups/" + self._group_segment(group)

    # -- groups ---------------------------------------------------------------------------

    async def add_connection_to_group(self, hub: str, group: str, connection_id: str) -> None:
        """Add a connection to a group.

        A connection that has already gone (404 ``Error.Connection.NotExisted``) is not an
        error, as in the SDK's ``AddToGroupAsync``; with several endpoints the connection
        lives on one of them and the others answer so too.
        """
        path = self._group_connection_path(hub, group, connection_id)
        await self._everywhere(
            "add_connection_to_group",
            "PUT",
            path,
            CallKind.OTHER,
            expected_404=_ADD_CONNECTION_NOT_EXISTED,
        )

    async def remove_connection_from_group(self, hub: str, group: str, connection_id: str) -> None:
        """Remove a connection from a group; a connection that is not in it or has gone
        (a 404 saying so) is not an error."""
        path = self._group_connection_path(hub, group, connection_id)
        await self._everywhere(
            "remove_connection_from_group",
            "DELETE",
            path,
            CallKind.OTHER,
            expected_404=_LEAVE_CONNECTION_ABSENT,
        )

    async def remove_connection_from_all_groups(self, hub: str, connection_id: str) -> None:
        """Remove a connection from every group it is in (gone: not an error)."""
        path = self._connection_path(hub, connection_id) + "/groups"
        await self._everywhere(
            "remove_connection_from_all_groups",
            "DELETE",
            path,
            CallKind.OTHER,
            expected_404=_LEAVE_CONNECTION_ABSENT,
        )

    async def add_user_to_group(
        self, hub: str, group: str, user_id: str, *, ttl: float | None = None
    ) -> None:
        """Add a user (its current and future connections) to a group.

        Args:
            ttl: seconds the membership lasts (rounded up); ``None`` keeps it (the service
                keeps at most a year, and only the latest 100 groups of a user without
                TTL); ``0`` adds only the user's currently connected connections.
        """
        query: list[tuple[str, str]] = []
        if ttl is not None:
            if not math.isfinite(ttl) or ttl < 0 or ttl > 2**31 - 1:
                raise ValueError(f"ttl must be 0 to {2**31 - 1} seconds, got {ttl!r}.")
            query.append(("ttl", str(math.ceil(ttl))))
        path = self._user_group_path(hub, group, user_id)
        await self._everywhere("add_user_to_group", "PUT", path, CallKind.OTHER, query=query)

    async def remove_user_from_group(self, hub: str, group: str, user_id: str) -> None:
        """Remove a user from a group (the service answers 204 whether or not it was in).
        Any 404 raises, as in the SDK's ``UserRemoveFromGroupAsync``."""
        path = self._user_group_path(hub, group, user_id)
        await self._everywhere("remove_user_from_group", "DELETE", path, CallKind.OTHER)

    async def remove_user_from_all_groups(self, hub: str, user_id: str) -> None:
        """Remove a user from every group (any 404 raises, as in the SDK)."""
        path = self._user_path(hub, user_id) + "/groups"
        await self._everywhere("remove_user_from_all_groups", "DELETE", path, CallKind.OTHER)

    # -- close ----------------------------------------------------------------------------

    async def close_connection(
        self, hub: str, connection_id: str, *, reason: str | None = None
    ) -> None:
        """Close one client connection, telling the client ``reason``; a connection that
        has gone (404 ``Warning.Connection.NotExisted``) is not an error."""
        path = self._connection_path(hub, connection_id)
        await self._everywhere(
            "close_connection",
            "DELETE",
            path,
            CallKind.OTHER,
            query=self._reason(reason),
            expected_404=_CONNECTION_NOT_EXISTED,
        )

    async def close_all_connections(
        self, hub: str, *, excluded: Sequence[str] = (), reason: str | None = None
    ) -> None:
        """Close every connection of the hub except ``excluded``."""
        path = self._hub_path(hub) + "/:closeConnections"
        query = self._excluded(excluded) + self._reason(reason)
        await self._everywhere("close_all_connections", "POST", path, CallKind.OTHER, query=query)

    async def close_group_connections(
        self,
        hub: str,
        group: str,
        *,
        excluded: Sequence[str] = (),
        reason: str | None = None,
    ) -> None:
        """Close every connection in a group except ``excluded``."""
        path = self._group_path(hub, group) + "/:closeConnections"
        query = self._excluded(excluded) + self._reason(reason)
        await self._everywhere("close_group_connections", "POST", path, CallKind.OTHER, query=query)

    async def close_user_connections(
        self,
        hub: str,
        user_id: str,
        *,
        excluded: Sequence[str] = (),
        reason: str | None = None,
    ) -> None:
        """Close every connection of a user except ``excluded``."""
        path = self._user_path(hub, user_id) + "/:closeConnections"
        query = self._excluded(excluded) + self._reason(reason)
        await self._everywhere("close_user_connections", "POST", path, CallKind.OTHER, query=query)

    # -- existence ------------------------------------------------------------------------

    async def connection_exists(self, hub: str, connection_id: str) -> bool:
        """Whether a connection is open (on any endpoint)."""
        return await self._exists(
            "connection_exists", self._connection_path(hub, connection_id), _CONNECTION_NOT_EXISTED
        )

    async def user_exists(self, hub: str, user_id: str) -> bool:
        """Whether a user has at least one open connection (on any endpoint)."""
        return await self._exists("user_exists", self._user_path(hub, user_id), _USER_NOT_EXISTED)

    async def group_exists(self, hub: str, group: str) -> bool:
        """Whether a group has at least one connection (on any endpoint)."""
        return await self._exists("group_exists", self._group_path(hub, group), _GROUP_NOT_EXISTED)

    async def user_in_group(self, hub: str, group: str, user_id: str) -> bool:
        """Whether a user belongs to a group (on any endpoint)."""
        path = self._user_group_path(hub, group, user_id)
        return await self._exists("user_in_group", path, _USER_NOT_IN_GROUP)

    # -- listing --------------------------------------------------------------------------

    async def list_group_connections(
        self,
        hub: str,
        group: str,
        *,
        top: int | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> list[GroupMember]:
        """The connections in ``group`` (connection id and user id), at most ``top``.

        ``GET /api/hubs/{hub}/groups/{group}/connections`` (api-version 2024-12-01, or a
        newer ``SIGNALR_API_VERSION``), page by page: each answer's ``nextLink`` is followed
        until there is none or ``top`` members arrived. Only the link's query (continuation
        token, page size, ``top``) is used, sent to the same endpoint and path with this
        client's token, so the token never goes to a host an answer names. With several
        endpoints each online endpoint is asked in turn for what is still missing (a
        connection lives on one endpoint). A group without connections gives ``[]``.

        Args:
            top: at most this many members; ``None`` lists them all.
            page_size: members per page (``maxpagesize``), 1 to 200.

        Raises:
            ValueError: ``top`` below 1, or ``page_size`` outside 1 to 200.
            ServiceError: a call failed (mapped as every other call's errors), an answer is
                not a page of members, or a ``nextLink`` repeats a page already asked for.
        """
        if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
            raise ValueError(f"top must be a whole number of at least 1, got {top!r}.")
        if isinstance(page_size, bool) or not isinstance(page_size, int):
            raise ValueError(f"page_size must be a whole number, got {page_size!r}.")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1 to {MAX_PAGE_SIZE}, got {page_size}.")
        path = self._group_path(hub, group) + "/connections"
        configured = self._settings.api_version
        version = configured if configured[:10] > LIST_API_VERSION else LIST_API_VERSION
        members: list[GroupMember] = []
        for index in self._route("GET", path):
            wanted = None if top is None else top - len(members)
            if wanted == 0:
                break
            query = [("maxpagesize", str(page_size if wanted is None else min(page_size, wanted)))]
            if wanted is not None:
                query.append(("top", str(wanted)))
            asked: set[tuple[tuple[str, str], ...]] = set()
            while True:
                asked.add(tuple(query))
                answer: list[httpx.Response] = []
                await self._call(
                    index,
                    "GET",
                    path,
                    CallKind.OTHER,
                    query=query,
                    operation="list_group_connections",
                    api_version=version,
                    answer=answer,
                )
                page, next_link = _group_page(answer[0], path)
                members.extend(page if top is None else page[: top - len(members)])
                if next_link is None or (top is not None and len(members) >= top):
                    break
                try:
                    query = _next_page_query(next_link)
                except ValueError:  # urlsplit: e.g. a broken IPv6 host
                    raise _not_a_page(answer[0], path, "its nextLink is not a URL.") from None
                if tuple(query) in asked:
                    why = f"its nextLink repeats a page already read ({_short(next_link)})."
                    raise _not_a_page(answer[0], path, why)
        return members

    # -- client tokens --------------------------------------------------------------------

    async def generate_client_token(
        self, hub: str, *, user_id: str | None = None, minutes_to_expire: int = 60
    ) -> str:
        """A client access token for ``hub`` on the negotiate endpoint.

        Minted locally, as ``POST /api/hubs/{hub}/:generateToken`` would answer, so no
        round trip is needed: with the access key, or for a keyless endpoint with its
        temporary key (header ``kid``).

        Raises:
            AccessKeyUnavailableError: a keyless endpoint has no usable temporary key.
            ValueError: ``minutes_to_expire`` is below 1.
        """
        validate_hub_name(hub)
        if user_id is not None:
            validate_user_id(user_id)
        if minutes_to_expire < 1:
            raise ValueError(f"minutes_to_expire must be at least 1, got {minutes_to_expire}.")
        endpoint = self.negotiate_endpoint()
        lifetime = timedelta(minutes=minutes_to_expire)
        if endpoint.keyless:
            key = await self.signing_key(endpoint)
            return mint_keyless_client_token(endpoint, key, hub, user_id=user_id, lifetime=lifetime)
        return mint_client_token(endpoint, hub, user_id=user_id, lifetime=lifetime)

    async def signing_key(
        self, endpoint: ServiceEndpoint, *, wait: float = KEY_WAIT_SECONDS
    ) -> TemporaryAccessKey:
        """The temporary key to sign a keyless endpoint's client tokens with.

        Answers at once in the steady state; only right after start-up, before the first
        fetch ended, it waits up to ``wait`` seconds for it.

        Raises:
            AccessKeyUnavailableError: no usable key (never fetched, refused, too old);
                the message names the endpoint and says why (503 at the edge).
        """
        manager = self._keyless_by_id.get(id(endpoint))
        if manager is None:
            if self._entra is None or not self._entra.handles(endpoint):
                raise AccessKeyUnavailableError(
                    f"SignalR endpoint {endpoint.label} is keyless but not configured here.",
                    endpoint=endpoint.label,
                )
            manager = self._entra.manager(endpoint)
        return await manager.get(wait=wait)

    def keyless_problems(self) -> list[str]:
        """Why keyless endpoints can't sign client tokens now (empty when all can)."""
        return self._entra.problems() if self._entra is not None else []
