"""The upstream request format: the ``X-ASRS-*`` headers, in both directions.

For every client event the service POSTs to the upstream URL (the backend's webhook) with::

    X-ASRS-Connection-Id   the client's connection id (the signed value)
    X-ASRS-Hub             the hub name
    X-ASRS-Category        "connections" or "messages"
    X-ASRS-Event           "connected" / "disconnected", or the invoked target
    X-ASRS-User-Id         the user id, when the client token carried one
    X-ASRS-User-Claims     the token's other claims as "type: value" joined with ", "
    X-ASRS-Client-Query    the client's connect query ("?hub=chat&id=…"), access_token removed
    X-ASRS-Signature       "sha256=<hex>" per access key (absent when local auth is off)

The emulator writes them with :func:`encode_upstream_headers`; the webhook reads them with
:func:`parse_upstream_headers`. ``docs/protocol.md`` describes the format in full.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar, overload
from urllib.parse import parse_qsl, unquote_plus

from .errors import UpstreamFormatError
from .signature import signature_header

__all__ = [
    "CATEGORY_CONNECTIONS",
    "CATEGORY_MESSAGES",
    "CATEGORY_KEY",
    "CONNECTION_ID_KEY",
    "EVENT_CONNECTED",
    "EVENT_DISCONNECTED",
    "EVENT_KEY",
    "HUB_KEY",
    "CaseInsensitiveMapping",
    "UpstreamRequest",
    "encode_upstream_headers",
    "header_text",
    "parse_client_query",
    "parse_upstream_headers",
    "parse_user_claims",
    "strip_access_token",
]

CATEGORY_CONNECTIONS: Final = "connections"
"""The category of connect and disconnect events."""
CATEGORY_MESSAGES: Final = "messages"
"""The category of client invocations; the event is the invoked target."""
EVENT_CONNECTED: Final = "connected"
"""The ``connections`` event sent when a client connects."""
EVENT_DISCONNECTED: Final = "disconnected"
"""The ``connections`` event sent when a client disconnects."""

# The identifying headers as lower-case lookup keys (ASGI header names are lower-case), for
# a receiver that must label a request before it is parsed (a trace span, a metric).
HUB_KEY: Final = "x-asrs-hub"
CATEGORY_KEY: Final = "x-asrs-category"
EVENT_KEY: Final = "x-asrs-event"
CONNECTION_ID_KEY: Final = "x-asrs-connection-id"

# The client's own token: never forwarded, and handlers have no use for it.
_HIDDEN_QUERY_KEY: Final = "access_token"
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_T = TypeVar("_T")


class CaseInsensitiveMapping(Mapping[str, str]):
    """A read-only ``str -> str`` mapping whose keys are compared case-insensitively.

    Used for request headers and the parsed client query. Iteration yields lower-cased keys.

    Args:
        items: ``(key, value)`` pairs; values of repeated keys are joined with ``","``
            (as the Functions extension does).
    """

    __slots__ = ("_data",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        data: dict[str, str] = {}
        for key, value in items:
            lower = key.lower()
            previous = data.get(lower)
            data[lower] = value if previous is None else f"{previous},{value}"
        self._data = data

    def __getitem__(self, key: str) -> str:
        return self._data[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._data

    @overload
    def get(self, key: str, /) -> str | None: ...
    @overload
    def get(self, key: str, /, default: str | _T) -> str | _T: ...
    def get(self, key: str, /, default: Any = None) -> Any:
        """Return the value of ``key`` (any case), or ``default``.

        One dict lookup: the webhook reads a dozen headers per request through this.
        """
        return self._data.get(key.lower(), default) if isinstance(key, str) else default

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"CaseInsensitiveMapping({self._data!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamRequest:
    """The ``X-ASRS-*`` facts of one upstream request, decoded.

    Attributes:
        hub: ``X-ASRS-Hub``.
        category: ``X-ASRS-Category``, lower-cased (see :data:`CATEGORY_CONNECTIONS`).
        event: ``X-ASRS-Event`` as sent (a target keeps its case).
        connection_id: ``X-ASRS-Connection-Id``.
        user_id: ``X-ASRS-User-Id``, ``None`` when absent or empty.
        claims: ``X-ASRS-User-Claims`` as ``(type, value)`` pairs, repeated types kept.
        query: ``X-ASRS-Client-Query`` as sent (``"?a=1&b=2"``, or ``""``); parse it with
            :func:`parse_client_query`.
        signature: ``X-ASRS-Signature``, ``None`` when absent (check it with
            :func:`signalr_protocol.signature.verify_signature`).
    """

    hub: str
    category: str
    event: str
    connection_id: str
    user_id: str | None = None
    claims: tuple[tuple[str, str], ...] = ()
    query: str = ""
    signature: str | None = None


def _header_value(value: str) -> bytes:
    # Header values can't carry CR/LF or other controls, and a lone surrogate has no UTF-8
    # form: both are replaced, so a client-chosen name can never break the request.
    return _CONTROL.sub(" ", value).encode("utf-8", "replace")


def header_text(value: str) -> str:
    """A request header's value as its sender wrote it, UTF-8.

    HTTP servers (and ASGI) hand a header over as one Latin-1 character per byte, but
    clients (a UTF-8 terminal's ``curl``, the service's upstream calls) write UTF-8, which
    is also how Kestrel reads headers by default: the bytes are read back as UTF-8. A
    value that is not valid UTF-8 is kept as received.
    """
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def strip_access_token(query: str) -> str:
    """The query without ``access_token``, with a leading ``?``; ``""`` when nothing is left."""
    kept = [
        part
        for part in query.lstrip("?").split("&")
        if part and unquote_plus(part.partition("=")[0]).lower() != _HIDDEN_QUERY_KEY
    ]
    return "?" + "&".join(kept) if kept else ""


def encode_upstream_headers(
    request: UpstreamRequest, keys: Sequence[str] = ()
) -> list[tuple[bytes, bytes]]:
    """The ``X-ASRS-*`` headers of ``request``, as the service writes them.

    Args:
        request: what to send; ``signature`` is ignored (it is computed from ``keys``) and
            ``access_token`` is removed from ``query``.
        keys: the access keys to sign with, one ``X-ASRS-Signature`` entry each; none (local
            auth disabled) sends no signature.

    Returns:
        ``(name, value)`` byte pairs, ready for an HTTP client; add ``Content-Type`` yourself.
    """
    headers = [
        (b"X-ASRS-Connection-Id", _header_value(request.connection_id)),
        (b"X-ASRS-Hub", _header_value(request.hub)),
        (b"X-ASRS-Category", _header_value(request.category)),
        (b"X-ASRS-Event", _header_value(request.event)),
    ]
    if request.user_id:
        headers.append((b"X-ASRS-User-Id", _header_value(request.user_id)))
    if request.claims:
        claims = ", ".join(f"{kind}: {value}" for kind, value in request.claims)
        headers.append((b"X-ASRS-User-Claims", _header_value(claims)))
    query = strip_access_token(request.query)
    if query:
        headers.append((b"X-ASRS-Client-Query", _header_value(query)))
    if keys:
        signature = signature_header(request.connection_id, keys)
        headers.append((b"X-ASRS-Signature", signature.encode("ascii")))
    return headers


_REQUIRED: Final = (
    ("X-ASRS-Hub", HUB_KEY),
    ("X-ASRS-Category", CATEGORY_KEY),
    ("X-ASRS-Event", EVENT_KEY),
    ("X-ASRS-Connection-Id", CONNECTION_ID_KEY),
)


def parse_upstream_headers(headers: Mapping[str, str]) -> UpstreamRequest:
    """Decode the ``X-ASRS-*`` headers of an upstream request.

    Only the format is checked here: that the four identifying headers are present and not
    empty. The signature, the category's value and the handler lookup are the receiver's.

    Args:
        headers: the request headers; their keys must compare case-insensitively (e.g. a
            :class:`CaseInsensitiveMapping` or Starlette's ``Headers``). Values decoded one
            Latin-1 character per byte, as ASGI servers do, are read back as the UTF-8 the
            service wrote (a user id "José" stays "José").

    Returns:
        The decoded request.

    Raises:
        UpstreamFormatError: a required header is missing or empty (``header`` names it).
    """
    values: list[str] = []
    for name, key in _REQUIRED:
        value = header_text(headers.get(key, "")).strip()
        if not value:
            raise UpstreamFormatError(f"The {name} header is missing or empty.", header=name)
        values.append(value)
    hub, category, event, connection_id = values
    claims = headers.get("x-asrs-user-claims")
    return UpstreamRequest(
        hub=hub,
        category=category.lower(),
        event=event,
        connection_id=connection_id,
        user_id=header_text(headers.get("x-asrs-user-id", "")) or None,
        claims=parse_user_claims(header_text(claims) if claims else None),
        query=header_text(headers.get("x-asrs-client-query", "")),
        signature=headers.get("x-asrs-signature"),
    )


def parse_user_claims(header: str | None) -> tuple[tuple[str, str], ...]:
    """Parse ``X-ASRS-User-Claims`` into ``(type, value)`` pairs, keeping repeated types.

    The service writes each claim as ``type: value`` and joins them with ``", "``. A value
    may itself contain a comma, so a segment without ``": "`` is taken as the continuation
    of the previous value rather than a new claim (the Functions extension drops those).

    Args:
        header: the header value, or ``None``.

    Returns:
        The claims in header order; empty when the header is absent or empty.
    """
    if not header:
        return ()
    claims: list[tuple[str, str]] = []
    for segment in header.split(","):
        claim_type, sep, value = segment.partition(": ")
        claim_type = claim_type.strip()
        if sep and claim_type and " " not in claim_type:
            claims.append((claim_type, value))
        elif claims:
            last_type, last_value = claims[-1]
            claims[-1] = (last_type, f"{last_value},{segment}")
    return tuple(claims)


def parse_client_query(query: str | None) -> CaseInsensitiveMapping:
    """Parse ``X-ASRS-Client-Query`` (``?a=1&b=2``) into a case-insensitive mapping.

    Repeated keys are joined with ``","``. ``access_token`` is dropped: it is the client's
    own bearer token, which handlers have no use for and must not log.
    """
    if not query:
        return CaseInsensitiveMapping()
    pairs = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    return CaseInsensitiveMapping(
        (key, value) for key, value in pairs if key.lower() != _HIDDEN_QUERY_KEY
    )
