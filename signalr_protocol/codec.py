"""The SignalR hub protocol codecs: JSON and MessagePack, sans-I/O.

Bytes in, :mod:`signalr_protocol.messages` out, and back (docs/protocol.md §3.5–3.6). Nothing
here awaits or touches a socket: a driver feeds received data to a :class:`MessageParser`, handles
the messages it returns, and writes whatever :meth:`HubCodec.encode` produced.

API:

- ``JSON_CODEC``, ``MSGPACK_CODEC`` – the two :class:`HubCodec` instances.
- ``get_codec(name) -> HubCodec`` – by handshake protocol name (case-insensitive);
  :class:`~signalr_protocol.errors.HandshakeError` when unknown.
- ``HubCodec`` attributes ``name`` (``"json"`` | ``"messagepack"``), ``binary`` (transfer format:
  ``False`` = Text, ``True`` = Binary), ``content_type`` (of upstream bodies), ``version``
  (highest protocol version supported), and methods:

  - ``encode(message) -> bytes`` – one framed message (JSON + ``0x1E`` / VarInt prefix + msgpack);
  - ``encode_payload(message) -> bytes`` – the body without framing (upstream POST body);
  - ``decode_payload(body) -> HubMessage`` – one unframed body (the webhook side);
  - ``frame(payload) -> bytes`` – add the framing to an already encoded payload;
  - ``supports_version(version) -> bool``;
  - ``new_parser(max_message_size=None) -> MessageParser``.
- ``MessageParser.feed(data) -> list[HubMessage]`` – incremental: partial frames are buffered,
  a frame may hold several messages; ``MessageParser.buffered`` is the count of pending bytes.
- ``encode_varint(n) -> bytes`` – the MessagePack length prefix.

Binding failures: an Invocation or StreamInvocation whose envelope (type, invocation id,
target, headers) is valid but whose arguments break a limit of :mod:`signalr_protocol.limits`
(nesting depth, ``NaN``, ``1e999``, a 5,000-digit integer, a lone surrogate, a MessagePack
extension other than the timestamp), or whose target holds a lone surrogate, is not an error:
the parsers and ``decode_payload`` return an
:class:`~signalr_protocol.messages.InvocationBindingFailureMessage` saying what is wrong, so
the receiver can answer an error Completion and keep the connection (ASP.NET Core's hub
protocols do the same). This costs nothing on the common path: the envelope is read again
only after the whole message was refused.

Errors: every other violation raises :class:`~signalr_protocol.errors.HubProtocolError` whose
``close_reason`` is the text to send in the Close message; a message over
``max_message_size`` raises :class:`~signalr_protocol.errors.MessageTooLargeError` (a
subclass) as soon as its size is known. After a parser raised, its state is undefined: close
the connection. Encoding a value that the format
cannot carry (an object JSON can't serialise, ``NaN``, an int over 64 bits for MessagePack)
raises ``HubProtocolError`` too.

Decoding is lenient where the protocol asks for forward compatibility: unknown JSON properties
and extra MessagePack array items are ignored, and the parsers skip messages of an unknown
(positive integer) type, as the official clients do. ``decode_payload`` refuses unknown types.

Value mapping: arguments and results are converted by :mod:`signalr_protocol.payload`, the
policy the backend's hub and REST client share; ``bytes`` travel as msgpack ``bin`` and as
base64 strings in JSON (decoding gives back the string; the binder knows the parameter
type). JSON arrays and msgpack arrays decode to lists; ``arguments`` and ``stream_ids`` are
tuples (see :mod:`.messages`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

import msgpack

from signalr_protocol.errors import (
    HandshakeError,
    HubProtocolError,
    MessageTooLargeError,
    PayloadError,
)
from signalr_protocol.limits import (
    check_payload,
    check_strings,
    loads_json,
    nesting_error,
)
from signalr_protocol.messages import (
    AckMessage,
    CancelInvocationMessage,
    CloseMessage,
    CompletionMessage,
    HubMessage,
    InvocationBindingFailureMessage,
    InvocationMessage,
    PingMessage,
    SequenceMessage,
    StreamInvocationMessage,
    StreamItemMessage,
)
from signalr_protocol.payload import dumps as dumps_json, to_jsonable

__all__ = [
    "JSON_CODEC",
    "MAX_FRAME_SIZE",
    "MSGPACK_CODEC",
    "RECORD_SEPARATOR",
    "HubCodec",
    "JsonHubCodec",
    "MessagePackHubCodec",
    "MessageParser",
    "encode_varint",
    "get_codec",
]

RECORD_SEPARATOR: Final = b"\x1e"
"""Terminator of every JSON hub message (and of the handshake)."""

MAX_FRAME_SIZE: Final = 2**31 - 1
"""Largest MessagePack body a VarInt length prefix may announce."""

_RS: Final = 0x1E
_MAX_SEQUENCE_ID: Final = 2**63 - 1
_PING_PAYLOAD: Final = b"\x91\x06"
_EMPTY: Final[Mapping[str, str]] = {}


def _protocol_error(reason: str) -> HubProtocolError:
    return HubProtocolError(f"Hub protocol violation: {reason}", close_reason=reason)


def _too_large(size: int, limit: int) -> MessageTooLargeError:
    reason = f"Message of {size} bytes exceeds the maximum message size of {limit} bytes."
    return MessageTooLargeError(reason, close_reason=reason)


def encode_varint(value: int) -> bytes:
    """Encode a MessagePack frame length as a 1–5 byte VarInt (7 bits per byte, low first).

    Args:
        value: 0 to ``MAX_FRAME_SIZE``.

    Returns:
        The prefix bytes.

    Raises:
        HubProtocolError: the value is negative or over ``MAX_FRAME_SIZE``.
    """
    if value < 0 or value > MAX_FRAME_SIZE:
        raise _protocol_error(f"Message of {value} bytes cannot be framed (max {MAX_FRAME_SIZE}).")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# --------------------------------------------------------------------------------------------
# Shared field checks (used by both decoders)


def _check_headers(value: Any) -> Mapping[str, str]:
    if not isinstance(value, dict):
        raise _protocol_error("'headers' must be a map of strings to strings.")
    if not value:
        return _EMPTY
    for key, item in value.items():
        if type(key) is not str or type(item) is not str:
            raise _protocol_error("'headers' must be a map of strings to strings.")
    return value


def _check_str(value: Any, name: str) -> str:
    if type(value) is not str:
        raise _protocol_error(f"'{name}' must be a string.")
    return value


def _check_optional_str(value: Any, name: str) -> str | None:
    if value is None or type(value) is str:
        return value
    raise _protocol_error(f"'{name}' must be a string or null.")


def _check_list(value: Any, name: str) -> list[Any]:
    if type(value) is not list:
        raise _protocol_error(f"'{name}' must be an array.")
    return value


def _check_stream_ids(value: Any) -> list[str]:
    if type(value) is not list or any(type(item) is not str for item in value):
        raise _protocol_error("'streamIds' must be an array of strings.")
    return value


def _check_sequence_id(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= _MAX_SEQUENCE_ID:
        raise _protocol_error("'sequenceId' must be a non-negative integer.")
    return value


def _check_type(value: Any) -> int:
    if type(value) is not int:
        raise _protocol_error("'type' must be an integer.")
    return value


# --------------------------------------------------------------------------------------------
# Codec base


class MessageParser:
    """Incremental parser for one connection's received bytes.

    Get one from :meth:`HubCodec.new_parser`. Call :meth:`feed` with every chunk received,
    in order; it returns the complete messages found so far and keeps partial ones.
    """

    __slots__ = ("_buffer", "_limit")

    def __init__(self, max_message_size: int | None = None) -> None:
        if max_message_size is not None and max_message_size <= 0:
            raise ValueError("max_message_size must be positive or None.")
        self._buffer = bytearray()
        self._limit = max_message_size

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[HubMessage]:
        """Add received bytes; return the messages they complete, in order.

        Args:
            data: the next chunk (any size, may be empty).

        Returns:
            Complete messages (possibly none). Messages of an unknown type are skipped.

        Raises:
            HubProtocolError: malformed framing or message; close with its ``close_reason``.
            MessageTooLargeError: a message is over ``max_message_size``.
        """
        raise NotImplementedError


class HubCodec:
    """One hub protocol (JSON or MessagePack); stateless, shared by all connections.

    Attributes:
        name: the handshake name, ``"json"`` or ``"messagepack"``.
        binary: ``True`` when the transfer format is Binary (WebSocket binary frames).
        content_type: media type of upstream bodies in this protocol.
        version: highest hub protocol version understood (2: stateful reconnect messages).
    """

    name: str
    binary: bool
    content_type: str
    version: int = 2

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    def supports_version(self, version: int) -> bool:
        """Whether a handshake asking for ``version`` of this protocol can be accepted."""
        return 0 <= version <= self.version

    def encode(self, message: HubMessage) -> bytes:
        """Serialise one message with its framing, ready to write to the transport.

        Raises:
            HubProtocolError: a value can't be represented in this format.
        """
        return self.frame(self.encode_payload(message))

    def encode_payload(self, message: HubMessage) -> bytes:
        """Serialise one message without framing (an upstream request body).

        Raises:
            HubProtocolError: a value can't be represented in this format.
        """
        raise NotImplementedError

    def frame(self, payload: bytes) -> bytes:
        """Add this protocol's framing to an unframed payload."""
        raise NotImplementedError

    def decode_payload(self, body: bytes) -> HubMessage:
        """Parse one unframed message (an upstream request body).

        Raises:
            HubProtocolError: the body is not exactly one valid message of a known type.
        """
        raise NotImplementedError

    def new_parser(self, max_message_size: int | None = None) -> MessageParser:
        """Create a parser for one connection's received bytes.

        Args:
            max_message_size: largest accepted message body in bytes, ``None`` for no limit
                (the MessagePack framing still caps it at ``MAX_FRAME_SIZE``).
        """
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# JSON


def _headers_json(obj: dict[str, Any], headers: Mapping[str, str]) -> None:
    if headers:
        obj["headers"] = headers if type(headers) is dict else dict(headers)


def _to_json_object(message: HubMessage) -> dict[str, Any]:
    obj: dict[str, Any]
    if type(message) is InvocationMessage:
        obj = {"type": 1}
        _headers_json(obj, message.headers)
        if message.invocation_id is not None:
            obj["invocationId"] = message.invocation_id
        obj["target"] = message.target
        obj["arguments"] = message.arguments
        if message.stream_ids:
            obj["streamIds"] = message.stream_ids
    elif type(message) is CompletionMessage:
        obj = {"type": 3}
        _headers_json(obj, message.headers)
        obj["invocationId"] = message.invocation_id
        if message.error is not None:
            obj["error"] = message.error
        elif message.has_result:
            obj["result"] = message.result
    elif type(message) is PingMessage:
        obj = {"type": 6}
    elif type(message) is StreamItemMessage:
        obj = {"type": 2}
        _headers_json(obj, message.headers)
        obj["invocationId"] = message.invocation_id
        obj["item"] = message.item
    elif type(message) is StreamInvocationMessage:
        obj = {"type": 4}
        _headers_json(obj, message.headers)
        obj["invocationId"] = message.invocation_id
        obj["target"] = message.target
        obj["arguments"] = message.arguments
        if message.stream_ids:
            obj["streamIds"] = message.stream_ids
    elif type(message) is CancelInvocationMessage:
        obj = {"type": 5}
        _headers_json(obj, message.headers)
        obj["invocationId"] = message.invocation_id
    elif type(message) is CloseMessage:
        obj = {"type": 7}
        if message.error is not None:
            obj["error"] = message.error
        if message.allow_reconnect:
            obj["allowReconnect"] = True
    elif type(message) is AckMessage:
        obj = {"type": 8, "sequenceId": message.sequence_id}
    elif type(message) is SequenceMessage:
        obj = {"type": 9, "sequenceId": message.sequence_id}
    else:
        raise TypeError(f"Not a hub message: {message!r}")
    return obj


def _json_headers(obj: dict[str, Any]) -> Mapping[str, str]:
    value = obj.get("headers")
    return _EMPTY if value is None else _check_headers(value)


def _json_required(obj: dict[str, Any], name: str) -> Any:
    try:
        return obj[name]
    except KeyError:
        raise _protocol_error(f"Missing required property '{name}'.") from None


def _from_json_object(obj: Any, *, skip_unknown: bool) -> HubMessage | None:
    if type(obj) is not dict:
        raise _protocol_error("A JSON hub message must be an object.")
    kind = _check_type(_json_required(obj, "type"))
    if kind == 1:
        return InvocationMessage(
            target=_check_str(_json_required(obj, "target"), "target"),
            arguments=_check_list(_json_required(obj, "arguments"), "arguments"),
            invocation_id=_check_optional_str(obj.get("invocationId"), "invocationId"),
            stream_ids=_check_stream_ids(obj["streamIds"])
            if obj.get("streamIds") is not None
            else (),
            headers=_json_headers(obj),
        )
    if kind == 6:
        return PingMessage()
    if kind == 3:
        invocation_id = _check_str(_json_required(obj, "invocationId"), "invocationId")
        error = _check_optional_str(obj.get("error"), "error")
        has_result = "result" in obj
        if error is not None and has_result:
            raise _protocol_error("The 'error' and 'result' properties are mutually exclusive.")
        return CompletionMessage(
            invocation_id,
            result=obj.get("result"),
            error=error,
            has_result=has_result,
            headers=_json_headers(obj),
        )
    if kind == 2:
        return StreamItemMessage(
            _check_str(_json_required(obj, "invocationId"), "invocationId"),
            _json_required(obj, "item"),
            headers=_json_headers(obj),
        )
    if kind == 4:
        return StreamInvocationMessage(
            invocation_id=_check_str(_json_required(obj, "invocationId"), "invocationId"),
            target=_check_str(_json_required(obj, "target"), "target"),
            arguments=_check_list(_json_required(obj, "arguments"), "arguments"),
            stream_ids=_check_stream_ids(obj["streamIds"])
            if obj.get("streamIds") is not None
            else (),
            headers=_json_headers(obj),
        )
    if kind == 5:
        return CancelInvocationMessage(
            _check_str(_json_required(obj, "invocationId"), "invocationId"),
            headers=_json_headers(obj),
        )
    if kind == 7:
        allow = obj.get("allowReconnect", False)
        if allow is None:
            allow = False
        if type(allow) is not bool:
            raise _protocol_error("'allowReconnect' must be a boolean.")
        return CloseMessage(_check_optional_str(obj.get("error"), "error"), allow)
    if kind == 8:
        return AckMessage(_check_sequence_id(_json_required(obj, "sequenceId")))
    if kind == 9:
        return SequenceMessage(_check_sequence_id(_json_required(obj, "sequenceId")))
    if skip_unknown and kind > 0:
        return None
    raise _protocol_error(f"Unknown message type {kind}.")


def _refused_json(raw: bytes | bytearray | memoryview, exc: PayloadError) -> HubMessage:
    """A message outside the limits: its binding failure, or the protocol error to close."""
    failure = _json_binding_failure(raw)
    if failure is None:
        raise _protocol_error(f"Message is not valid JSON: {exc.message}") from None
    return failure


# ---- Binding failures (the refused path only; see the module docs)

_JSON_WS: Final = re.compile(r"[ \t\n\r]*")
_JSON_STRING: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_SCALAR: Final = re.compile(r"[^,}\]\s]+")
_JSON_NESTED: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def _skip_ws(text: str, pos: int) -> int:
    match = _JSON_WS.match(text, pos)
    return pos if match is None else match.end()


def _json_value_end(text: str, start: int) -> int | None:
    """End of the JSON value at ``start``, found without decoding or recursion."""
    if start >= len(text):
        return None
    char = text[start]
    if char == '"':
        string = _JSON_STRING.match(text, start)
        return None if string is None else string.end()
    if char in "[{":
        depth = 0
        for token in _JSON_NESTED.finditer(text, start):
            char = text[token.start()]
            if char in "[{":
                depth += 1
            elif char in "]}":
                depth -= 1
                if depth == 0:
                    return token.end()
        return None
    scalar = _JSON_SCALAR.match(text, start)
    return None if scalar is None else scalar.end()


def _json_arguments_span(text: str) -> tuple[int, int] | None:
    """Where the top-level ``arguments`` value of a JSON object is (the last one wins, as
    in decoding), or ``None`` when the object's outline can't be read."""
    pos = _skip_ws(text, 0)
    if not text.startswith("{", pos):
        return None
    pos = _skip_ws(text, pos + 1)
    span = None
    while True:
        key = _JSON_STRING.match(text, pos)
        if key is None:
            return None
        try:
            name = json.loads(key.group())
        except ValueError:
            return None
        pos = _skip_ws(text, key.end())
        if not text.startswith(":", pos):
            return None
        start = _skip_ws(text, pos + 1)
        end = _json_value_end(text, start)
        if end is None:
            return None
        if name == "arguments":
            span = (start, end)
        pos = _skip_ws(text, end)
        if text.startswith(",", pos):
            pos = _skip_ws(text, pos + 1)
            continue
        if text.startswith("}", pos) and not text[pos + 1 :].strip(" \t\n\r"):
            return span
        return None


def _json_binding_failure(
    raw: bytes | bytearray | memoryview,
) -> InvocationBindingFailureMessage | None:
    """The binding failure of a refused JSON message whose envelope is valid, else ``None``.

    The ``arguments`` value is cut out and decoded on its own; the rest (the envelope) must
    decode within the limits, a lone surrogate in the target excepted.
    """
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return None
    span = _json_arguments_span(text)
    if span is None:
        return None
    start, end = span
    try:
        envelope = loads_json(text[:start] + "[]" + text[end:], lone_surrogates=True)
        if type(envelope) is not dict or envelope.get("type") not in (1, 4):
            return None
        message = _from_json_object(envelope, skip_unknown=False)
    except (PayloadError, HubProtocolError):
        return None
    if message is None:  # not reached: skip_unknown=False
        return None
    problem: str | None = None
    try:
        loads_json(text[start:end])
    except PayloadError as exc:
        problem = exc.message
    return _binding_failure(message, problem)


_MAX_TARGET_SHOWN: Final = 100


def _binding_failure(
    message: HubMessage, problem: str | None
) -> InvocationBindingFailureMessage | None:
    """Build the failure from a decoded envelope and the arguments' problem, if any."""
    assert isinstance(message, InvocationMessage | StreamInvocationMessage)
    try:  # the envelope's other strings must be valid text: they are answered or logged
        check_strings([message.invocation_id, message.headers, list(message.stream_ids)])
    except PayloadError:
        return None
    target = message.target
    try:
        check_strings(target)
    except PayloadError as exc:
        problem = problem or exc.message
        target = target.encode("utf-8", "backslashreplace").decode("utf-8")
    if problem is None:  # the refusal was about something else
        return None
    # The target is the client's: quoted in full it could fill a log line with a megabyte.
    shown = target if len(target) <= _MAX_TARGET_SHOWN else target[:_MAX_TARGET_SHOWN] + "..."
    return InvocationBindingFailureMessage(
        invocation_id=message.invocation_id,
        target=target,
        error=f"Invocation '{shown}' refused: {_sentence_tail(problem)}",
        stream=type(message) is StreamInvocationMessage,
    )


def _sentence_tail(text: str) -> str:
    """``text`` to follow a colon: "The value..." becomes "the value...", "NaN" stays."""
    word = text.split(" ", 1)[0]
    if word[1:] == word[1:].lower():
        return text[:1].lower() + text[1:]
    return text


def _msgpack_binding_failure(
    body: bytes | bytearray | memoryview,
) -> InvocationBindingFailureMessage | None:
    """The binding failure of a refused MessagePack message whose envelope is valid.

    The envelope is read item by item (strings with ``surrogatepass``, so a lone surrogate
    in the target is readable); then the arguments alone, under the usual limits.
    """
    unpacker = msgpack.Unpacker(
        raw=False,
        unicode_errors="surrogatepass",
        strict_map_key=False,
        timestamp=0,
        max_buffer_size=max(len(body), 1),
    )
    unpacker.feed(body)
    try:
        count = unpacker.read_array_header()
        items = [unpacker.unpack() for _ in range(min(count, 4))]
        if count < 5 or type(items[0]) is not int or items[0] not in (1, 4):
            return None
        message = _from_msgpack_array([*items, []], skip_unknown=False)
        assert message is not None
    except Exception:  # any decoding failure: the envelope is not readable
        return None
    problem: str | None = None
    try:
        arguments = unpacker.unpack()
    except msgpack.StackError:  # deeper than the decoder's own stack (1,024 levels)
        problem = nesting_error().message
    except UnicodeDecodeError:
        problem = "A string is not valid UTF-8 text."
    except Exception:  # cut off or malformed: not a binding problem
        return None
    else:
        try:
            check_strings(check_payload(arguments))
        except PayloadError as exc:
            problem = exc.message
    return _binding_failure(message, problem)


class JsonHubCodec(HubCodec):
    """The JSON hub protocol: UTF-8 JSON objects, each terminated by ``0x1E``."""

    name = "json"
    binary = False
    content_type = "application/json"

    def encode_payload(self, message: HubMessage) -> bytes:
        """Serialise one message as compact JSON, without the terminator.

        Raises:
            HubProtocolError: a value can't be represented in JSON.
        """
        obj = _to_json_object(message)
        try:
            text = dumps_json(obj)
        except (TypeError, ValueError, RecursionError) as exc:
            raise HubProtocolError(
                f"Cannot encode {type(message).__name__} as JSON: {exc}",
                close_reason="Server failed to serialise a message.",
            ) from exc
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates can't be UTF-8; \u escapes carry them as JSON allows.
            return dumps_json(obj, ensure_ascii=True).encode("ascii")

    def encode(self, message: HubMessage) -> bytes:
        """Serialise one message as JSON followed by ``0x1E``."""
        return self.encode_payload(message) + RECORD_SEPARATOR

    def frame(self, payload: bytes) -> bytes:
        """Append the ``0x1E`` terminator."""
        return payload + RECORD_SEPARATOR

    def decode_payload(self, body: bytes) -> HubMessage:
        """Parse one JSON message; one trailing ``0x1E`` is tolerated.

        Raises:
            HubProtocolError: invalid JSON, not an object, missing or mistyped fields, unknown
                type.
        """
        if body.endswith(RECORD_SEPARATOR):
            body = body[:-1]
        # The payload limits (depth, finite numbers, integer size, valid Unicode) apply to
        # every message: signalr_protocol.limits.
        try:
            obj = loads_json(body)
        except PayloadError as exc:
            return _refused_json(body, exc)
        message = _from_json_object(obj, skip_unknown=False)
        assert message is not None  # skip_unknown=False never yields None
        return message

    def new_parser(self, max_message_size: int | None = None) -> MessageParser:
        """Create a parser for ``0x1E``-terminated JSON messages."""
        return JsonMessageParser(max_message_size)


class JsonMessageParser(MessageParser):
    """Splits received bytes on ``0x1E`` and decodes each JSON message."""

    # Invariant: _buffer never holds a separator, so only new data is ever searched.
    __slots__ = ()

    def feed(self, data: bytes) -> list[HubMessage]:
        """Add received bytes; return the messages they complete (see :class:`MessageParser`)."""
        buffer = self._buffer
        limit = self._limit
        messages: list[HubMessage] = []
        if buffer:
            end = data.find(_RS)
            if end < 0:
                buffer += data
                if limit is not None and len(buffer) > limit:
                    raise _too_large(len(buffer), limit)
                return messages
            # Complete the buffered message with the head of data.
            size = len(buffer) + end
            if limit is not None and size > limit:
                raise _too_large(size, limit)
            buffer += data[:end]
            self._append(messages, buffer)
            buffer.clear()
            start = end + 1
        else:
            start = 0
        find = data.find
        length = len(data)
        while start < length:
            end = find(_RS, start)
            if end < 0:
                rest = length - start
                if limit is not None and rest > limit:
                    raise _too_large(rest, limit)
                buffer += data[start:]
                break
            if limit is not None and end - start > limit:
                raise _too_large(end - start, limit)
            self._append(messages, memoryview(data)[start:end])
            start = end + 1
        return messages

    @staticmethod
    def _append(messages: list[HubMessage], raw: bytes | bytearray | memoryview) -> None:
        if not raw:
            raise _protocol_error("Empty message: two record separators in a row.")
        try:
            obj = loads_json(raw)
        except PayloadError as exc:
            messages.append(_refused_json(raw, exc))
            return
        message = _from_json_object(obj, skip_unknown=True)
        if message is not None:
            messages.append(message)


# --------------------------------------------------------------------------------------------
# MessagePack


def _mp_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    return headers if type(headers) is dict else dict(headers)


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, datetime=False, default=to_jsonable)


def _to_msgpack_array(message: HubMessage) -> list[Any]:
    if type(message) is InvocationMessage:
        return [
            1,
            _mp_headers(message.headers),
            message.invocation_id,
            message.target,
            message.arguments,
            message.stream_ids,
        ]
    if type(message) is CompletionMessage:
        if message.error is not None:
            return [3, _mp_headers(message.headers), message.invocation_id, 1, message.error]
        if message.has_result:
            return [3, _mp_headers(message.headers), message.invocation_id, 3, message.result]
        return [3, _mp_headers(message.headers), message.invocation_id, 2]
    if type(message) is StreamItemMessage:
        return [2, _mp_headers(message.headers), message.invocation_id, message.item]
    if type(message) is StreamInvocationMessage:
        return [
            4,
            _mp_headers(message.headers),
            message.invocation_id,
            message.target,
            message.arguments,
            message.stream_ids,
        ]
    if type(message) is CancelInvocationMessage:
        return [5, _mp_headers(message.headers), message.invocation_id]
    if type(message) is CloseMessage:
        if message.allow_reconnect:
            return [7, message.error, True]
        return [7, message.error]
    if type(message) is AckMessage:
        return [8, message.sequence_id]
    if type(message) is SequenceMessage:
        return [9, message.sequence_id]
    raise TypeError(f"Not a hub message: {message!r}")


def _need(items: list[Any], count: int, what: str) -> None:
    if len(items) < count:
        raise _protocol_error(f"Invalid payload for {what} message: expected {count} items.")


def _from_msgpack_array(items: Any, *, skip_unknown: bool) -> HubMessage | None:
    if type(items) is not list or not items:
        raise _protocol_error("A MessagePack hub message must be a non-empty array.")
    kind = _check_type(items[0])
    if kind == 1:
        _need(items, 5, "Invocation")
        return InvocationMessage(
            target=_check_str(items[3], "target"),
            arguments=_check_list(items[4], "arguments"),
            invocation_id=_check_optional_str(items[2], "invocationId"),
            stream_ids=_check_stream_ids(items[5]) if len(items) > 5 else (),
            headers=_check_headers(items[1]),
        )
    if kind == 6:
        return PingMessage()
    if kind == 3:
        _need(items, 4, "Completion")
        headers = _check_headers(items[1])
        invocation_id = _check_str(items[2], "invocationId")
        result_kind = items[3]
        if type(result_kind) is not int:
            raise _protocol_error("Completion 'resultKind' must be an integer.")
        if result_kind == 1:
            _need(items, 5, "Completion")
            error = _check_str(items[4], "error")
            return CompletionMessage(invocation_id, error=error, headers=headers)
        if result_kind == 2:
            return CompletionMessage(invocation_id, headers=headers)
        if result_kind == 3:
            _need(items, 5, "Completion")
            return CompletionMessage(
                invocation_id, result=items[4], has_result=True, headers=headers
            )
        raise _protocol_error(f"Invalid Completion result kind {result_kind}.")
    if kind == 2:
        _need(items, 4, "StreamItem")
        return StreamItemMessage(
            _check_str(items[2], "invocationId"), items[3], headers=_check_headers(items[1])
        )
    if kind == 4:
        _need(items, 5, "StreamInvocation")
        return StreamInvocationMessage(
            invocation_id=_check_str(items[2], "invocationId"),
            target=_check_str(items[3], "target"),
            arguments=_check_list(items[4], "arguments"),
            stream_ids=_check_stream_ids(items[5]) if len(items) > 5 else (),
            headers=_check_headers(items[1]),
        )
    if kind == 5:
        _need(items, 3, "CancelInvocation")
        return CancelInvocationMessage(
            _check_str(items[2], "invocationId"), headers=_check_headers(items[1])
        )
    if kind == 7:
        _need(items, 2, "Close")
        allow = items[2] if len(items) > 2 else False
        if type(allow) is not bool:
            raise _protocol_error("Close 'allowReconnect' must be a boolean.")
        return CloseMessage(_check_optional_str(items[1], "error"), allow)
    if kind == 8:
        _need(items, 2, "Ack")
        return AckMessage(_check_sequence_id(items[1]))
    if kind == 9:
        _need(items, 2, "Sequence")
        return SequenceMessage(_check_sequence_id(items[1]))
    if skip_unknown and kind > 0:
        return None
    raise _protocol_error(f"Unknown message type {kind}.")


def _unpack(body: bytes | bytearray | memoryview) -> Any:
    try:
        value = msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=False, timestamp=0)
    except Exception as exc:
        # msgpack raises ValueError subclasses, OutOfData, StackError, TypeError (unhashable
        # map keys) and UnicodeDecodeError; all mean "not a valid message".
        raise _protocol_error(f"Message is not valid MessagePack ({type(exc).__name__}).") from exc
    try:  # depth limit, timestamps as UTC datetimes: signalr_protocol.limits
        return check_payload(value)
    except PayloadError as exc:
        raise _protocol_error(f"Message is not valid MessagePack: {exc.message}") from None


class MessagePackHubCodec(HubCodec):
    """The MessagePack hub protocol: arrays, each prefixed by its VarInt length."""

    name = "messagepack"
    binary = True
    content_type = "application/x-msgpack"

    def encode_payload(self, message: HubMessage) -> bytes:
        """Serialise one message as a msgpack array, without the length prefix.

        Raises:
            HubProtocolError: a value can't be represented in MessagePack.
        """
        if type(message) is PingMessage:
            return _PING_PAYLOAD
        array = _to_msgpack_array(message)
        try:
            return _pack(array)
        except (TypeError, ValueError, OverflowError) as exc:
            raise HubProtocolError(
                f"Cannot encode {type(message).__name__} as MessagePack: {exc}",
                close_reason="Server failed to serialise a message.",
            ) from exc

    def frame(self, payload: bytes) -> bytes:
        """Prefix the VarInt length."""
        size = len(payload)
        if size < 0x80:
            return bytes((size,)) + payload
        return encode_varint(size) + payload

    def decode_payload(self, body: bytes) -> HubMessage:
        """Parse one msgpack message without length prefix.

        Raises:
            HubProtocolError: invalid MessagePack, trailing bytes, bad fields, unknown type.
        """
        try:
            items = _unpack(body)
        except HubProtocolError:
            failure = _msgpack_binding_failure(body)
            if failure is None:
                raise
            return failure
        message = _from_msgpack_array(items, skip_unknown=False)
        assert message is not None  # skip_unknown=False never yields None
        return message

    def new_parser(self, max_message_size: int | None = None) -> MessageParser:
        """Create a parser for VarInt-prefixed MessagePack messages."""
        return MessagePackMessageParser(max_message_size)


class MessagePackMessageParser(MessageParser):
    """Reads VarInt length prefixes and decodes each MessagePack body."""

    __slots__ = ("_needed",)

    def __init__(self, max_message_size: int | None = None) -> None:
        super().__init__(max_message_size)
        self._needed = 0  # bytes the buffered partial frame needs in all, 0 = not known yet

    def feed(self, data: bytes) -> list[HubMessage]:
        """Add received bytes; return the messages they complete (see :class:`MessageParser`)."""
        buffer = self._buffer
        if buffer:
            if len(buffer) + len(data) < self._needed:
                # Still inside a large frame: append without re-parsing (linear, not quadratic).
                buffer += data
                return []
            buffer += data
            view = memoryview(bytes(buffer))
            buffer.clear()
        else:
            view = memoryview(data)
        messages: list[HubMessage] = []
        limit = self._limit
        length = len(view)
        pos = 0
        while pos < length:
            # VarInt: at most 5 bytes, 7 bits each, low bits first.
            size = 0
            shift = 0
            index = pos
            while True:
                if index >= length:
                    buffer += view[pos:]
                    self._needed = 0
                    return messages
                byte = view[index]
                index += 1
                size |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
                if shift >= 35:
                    raise _protocol_error("Messages over 2GB in size are not supported.")
            if size > MAX_FRAME_SIZE:
                raise _protocol_error("Messages over 2GB in size are not supported.")
            if limit is not None and size > limit:
                raise _too_large(size, limit)
            if size == 0:
                raise _protocol_error("Empty message: a zero length prefix.")
            end = index + size
            if end > length:
                buffer += view[pos:]
                self._needed = end - pos
                return messages
            try:
                items = _unpack(view[index:end])
            except HubProtocolError:
                failure = _msgpack_binding_failure(view[index:end])
                if failure is None:
                    raise
                messages.append(failure)
            else:
                message = _from_msgpack_array(items, skip_unknown=True)
                if message is not None:
                    messages.append(message)
            pos = end
        return messages


# --------------------------------------------------------------------------------------------

JSON_CODEC: Final = JsonHubCodec()
MSGPACK_CODEC: Final = MessagePackHubCodec()

_CODECS: Final[dict[str, HubCodec]] = {"json": JSON_CODEC, "messagepack": MSGPACK_CODEC}


def get_codec(name: str) -> HubCodec:
    """Return the codec for a handshake protocol name (compared case-insensitively).

    Raises:
        HandshakeError: no such protocol; its text is the handshake error to send back.
    """
    codec = _CODECS.get(name.lower())
    if codec is None:
        reason = f"The protocol '{name}' is not supported."
        raise HandshakeError(reason, close_reason=reason)
    return codec
