"""Parse the body of a REST ``:send`` into a message ready for fan-out (docs/protocol.md §5.3).

Three forms are accepted:

* JSON (``application/json``, ``text/plain`` or no Content-Type): ``{"target": ...,
  "arguments": [...]}``, keys matched case-insensitively (the .NET SDK writes
  ``Target``/``Arguments``);
* MessagePack (``application/x-msgpack``): a map with the same keys;
* the SDK's binary form (``application/octet-stream``): a MessagePack map from protocol
  name (``json``, ``messagepack``) to framed hub Invocation bytes, delivered as given; a
  protocol missing from the map is converted from another.

JSON is read by :func:`signalr_protocol.limits.loads_json` and MessagePack values are
checked by :func:`~signalr_protocol.limits.check_payload` (nesting, numbers, strings,
extensions): a body outside those limits is a 400 whose message names the limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack

from signalr_protocol.codec import JSON_CODEC, MSGPACK_CODEC, get_codec
from signalr_protocol.errors import HubProtocolError, PayloadError
from signalr_protocol.limits import check_payload, loads_json
from signalr_protocol.messages import InvocationMessage

from .errors import BadRequestError, UnsupportedMediaTypeError
from .fanout import Encoded

__all__ = ["parse_send_body"]

_JSON_TYPES = ("application/json", "text/plain", "text/json", "")


def _field(body: Mapping[Any, Any], name: str) -> Any:
    for key, value in body.items():
        if isinstance(key, str) and key.lower() == name:
            return value
    return None


def _invocation(body: Any) -> InvocationMessage:
    if not isinstance(body, Mapping):
        raise BadRequestError("The body must be an object with 'target' and 'arguments'.")
    target = _field(body, "target")
    if not isinstance(target, str) or not target:
        raise BadRequestError("The body's 'target' must be a non-empty string.")
    arguments = _field(body, "arguments")
    if arguments is None:
        arguments = []
    if not isinstance(arguments, list):
        raise BadRequestError("The body's 'arguments' must be an array.")
    return InvocationMessage(target=target, arguments=tuple(arguments))


def _binary(body: bytes) -> Encoded:
    try:
        payloads = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types
        raise BadRequestError(f"The body is not a MessagePack map: {exc}.") from exc
    if not isinstance(payloads, dict) or not payloads:
        raise BadRequestError("The body must map protocol names to hub messages.")
    encoded: dict[str, bytes] = {}
    message: InvocationMessage | None = None
    for name, data in payloads.items():
        if not isinstance(name, str) or not isinstance(data, bytes):
            raise BadRequestError("The body must map protocol names to hub message bytes.")
        try:
            codec = get_codec(name)
            messages = codec.new_parser().feed(data)
        except (HubProtocolError, PayloadError) as exc:
            raise BadRequestError(f"Invalid '{name}' payload: {exc}.") from exc
        if len(messages) != 1 or not isinstance(messages[0], InvocationMessage):
            raise BadRequestError(f"The '{name}' payload must be exactly one Invocation.")
        message = messages[0]
        encoded[codec.name] = data
    return _prepared(Encoded(message, encoded))


def _prepared(message: Encoded) -> Encoded:
    """Encode for every protocol now, so a value one protocol can't carry is a 400 before
    anything is queued (instead of a half-done fan-out)."""
    try:
        for codec in (JSON_CODEC, MSGPACK_CODEC):
            message.for_codec(codec)
    except HubProtocolError as exc:
        raise BadRequestError(f"The arguments can't be sent: {exc}.") from exc
    except RecursionError as exc:
        raise BadRequestError("The arguments are nested too deeply.") from exc
    return message


def parse_send_body(content_type: str | None, body: bytes) -> Encoded:
    """Turn a ``:send`` body into a message for :func:`emulator.fanout.deliver`.

    Raises:
        BadRequestError: the body is malformed.
        UnsupportedMediaTypeError: an unknown Content-Type.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == "application/octet-stream":
        return _binary(body)
    if media == "application/x-msgpack":
        try:
            data = check_payload(msgpack.unpackb(body, raw=False, strict_map_key=False))
        except PayloadError as exc:
            raise BadRequestError(exc.message) from exc
        except Exception as exc:  # msgpack raises several unrelated types
            raise BadRequestError(f"The body is not valid MessagePack: {exc}.") from exc
        return _prepared(Encoded(_invocation(data)))
    if media in _JSON_TYPES or media.endswith("+json"):
        if not body.strip():
            raise BadRequestError("The body must be an object with 'target' and 'arguments'.")
        try:
            data = loads_json(body)
        except PayloadError as exc:
            raise BadRequestError(exc.message) from exc
        return _prepared(Encoded(_invocation(data)))
    raise UnsupportedMediaTypeError(
        f"Content-Type {media!r} is not supported; use application/json, "
        "application/x-msgpack or application/octet-stream."
    )
