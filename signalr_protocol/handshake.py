"""The SignalR handshake, sans-I/O (``docs/protocol.md`` §3.4).

The client's first message is always JSON + ``0x1E``, whatever hub protocol it then speaks:
``{"protocol": "json"|"messagepack", "version": N}``. The server answers, also JSON + ``0x1E``,
``{}`` on success or ``{"error": "..."}`` and then closes. Hub messages may follow the
handshake in the same read; :attr:`HandshakeParser.remaining` holds them.

API:

- ``HandshakeParser(max_size=MAX_HANDSHAKE_SIZE)`` – ``feed(data) -> HandshakeRequest | None``
  (``None`` until the terminator arrived), ``remaining -> bytes`` (bytes after it),
  ``request -> HandshakeRequest | None``.
- ``select_codec(request) -> HubCodec`` – the codec for an accepted request, or
  :class:`~app.exceptions.HandshakeError` with the error text to send.
- ``encode_handshake_response(error=None) -> bytes`` – ``{}`` or ``{"error": ...}`` + ``0x1E``.
- ``encode_handshake_request(protocol, version=1) -> bytes`` – for test clients.
- ``parse_handshake_response(data) -> tuple[str | None, bytes]`` – for test clients: the error
  (``None`` = accepted) and the bytes after the response.
- ``MAX_HANDSHAKE_SIZE`` – default cap on the bytes before the terminator (16 KiB).

Server driver checklist: feed every chunk until a request comes back; call
:func:`select_codec`; on :class:`~app.exceptions.HandshakeError` write
``encode_handshake_response(exc.close_reason)`` and close; otherwise write
``encode_handshake_response()`` and feed ``remaining`` to the codec's parser.
"""

from __future__ import annotations

import json
from typing import Any, Final

from signalr_protocol.codec import RECORD_SEPARATOR, HubCodec, get_codec
from signalr_protocol.errors import HandshakeError, PayloadError
from signalr_protocol.limits import loads_json
from signalr_protocol.messages import HandshakeRequest

__all__ = [
    "MAX_HANDSHAKE_SIZE",
    "HandshakeParser",
    "encode_handshake_request",
    "encode_handshake_response",
    "parse_handshake_response",
    "select_codec",
]

MAX_HANDSHAKE_SIZE: Final = 16 * 1024
"""Default limit on a handshake request (real ones are about 40 bytes)."""

_SUCCESS: Final = b"{}" + RECORD_SEPARATOR


def _handshake_error(reason: str) -> HandshakeError:
    return HandshakeError(f"Handshake failed: {reason}", close_reason=reason)


def _load_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        obj = loads_json(raw)
    except PayloadError as exc:
        if exc.message.startswith("The body is not valid"):  # not JSON or not UTF-8 at all
            raise _handshake_error(f"The {what} is not valid JSON.") from None
        # Outside a limit (a lone surrogate, a 5,000-digit number...): say which.
        raise _handshake_error(f"The {what} is not valid JSON: {exc.message}") from None
    if type(obj) is not dict:
        raise _handshake_error(f"The {what} must be a JSON object.")
    return obj


def _parse_request(raw: bytes) -> HandshakeRequest:
    obj = _load_object(raw, "handshake request")
    if "protocol" not in obj:
        raise _handshake_error("Missing required property 'protocol'.")
    if "version" not in obj:
        raise _handshake_error("Missing required property 'version'.")
    protocol = obj["protocol"]
    version = obj["version"]
    if type(protocol) is not str:
        raise _handshake_error("Property 'protocol' must be a string.")
    if type(version) is not int:
        raise _handshake_error("Property 'version' must be an integer.")
    return HandshakeRequest(protocol, version)


class HandshakeParser:
    """Collects the handshake request of one connection.

    Args:
        max_size: largest accepted request, in bytes before the terminator.
    """

    __slots__ = ("_buffer", "_max_size", "_remaining", "_request")

    def __init__(self, max_size: int = MAX_HANDSHAKE_SIZE) -> None:
        self._buffer = bytearray()
        self._max_size = max_size
        self._request: HandshakeRequest | None = None
        self._remaining = b""

    @property
    def request(self) -> HandshakeRequest | None:
        """The parsed request, once :meth:`feed` returned it."""
        return self._request

    @property
    def remaining(self) -> bytes:
        """Bytes received after the handshake terminator (the first hub messages)."""
        return self._remaining

    def feed(self, data: bytes) -> HandshakeRequest | None:
        """Add received bytes.

        Args:
            data: the next chunk from the transport.

        Returns:
            The request once its terminator arrived, else ``None``.

        Raises:
            HandshakeError: malformed request, missing/mistyped fields, or over ``max_size``;
                ``close_reason`` is the text for ``encode_handshake_response``.
            RuntimeError: called again after the request was complete.
        """
        if self._request is not None:
            raise RuntimeError("The handshake is already complete; feed the hub parser instead.")
        searched = len(self._buffer)
        self._buffer += data
        end = self._buffer.find(RECORD_SEPARATOR, searched)
        if end < 0:
            if len(self._buffer) > self._max_size:
                raise _handshake_error(
                    f"Handshake request exceeds the maximum size of {self._max_size} bytes."
                )
            return None
        if end > self._max_size:
            raise _handshake_error(
                f"Handshake request exceeds the maximum size of {self._max_size} bytes."
            )
        raw = bytes(self._buffer[:end])
        self._remaining = bytes(self._buffer[end + 1 :])
        self._buffer = bytearray()
        self._request = _parse_request(raw)
        return self._request


def select_codec(request: HandshakeRequest) -> HubCodec:
    """Return the codec a handshake asks for, if this server speaks that protocol and version.

    Raises:
        HandshakeError: unknown protocol or unsupported version; ``close_reason`` is the text
            to send back with :func:`encode_handshake_response`.
    """
    codec = get_codec(request.protocol)
    if not codec.supports_version(request.version):
        raise _handshake_error(
            f"The server does not support version {request.version} "
            f"of the '{request.protocol}' protocol."
        )
    return codec


def encode_handshake_response(error: str | None = None) -> bytes:
    """Return the server's handshake answer: ``{}`` or ``{"error": error}``, then ``0x1E``."""
    if error is None:
        return _SUCCESS
    return json.dumps({"error": error}, separators=(",", ":")).encode() + RECORD_SEPARATOR


def encode_handshake_request(protocol: str, version: int = 1) -> bytes:
    """Return a client handshake request (for test clients)."""
    return (
        json.dumps({"protocol": protocol, "version": version}, separators=(",", ":")).encode()
        + RECORD_SEPARATOR
    )


def parse_handshake_response(data: bytes) -> tuple[str | None, bytes]:
    """Parse a server's handshake answer (for test clients).

    Args:
        data: bytes received so far; must contain the whole response.

    Returns:
        ``(error, rest)``: ``error`` is ``None`` when the handshake succeeded; ``rest`` is
        whatever followed the response (hub messages).

    Raises:
        HandshakeError: incomplete, not a JSON object, a non-string ``error``, or a message with
            a ``type`` (a hub message where the handshake was expected).
    """
    end = data.find(RECORD_SEPARATOR)
    if end < 0:
        raise _handshake_error("Incomplete handshake response: no record separator.")
    obj = _load_object(bytes(data[:end]), "handshake response")
    if "type" in obj:
        raise _handshake_error("Expected a handshake response from the server.")
    error = obj.get("error")
    if error is not None and type(error) is not str:
        raise _handshake_error("The handshake response 'error' must be a string.")
    return error, bytes(data[end + 1 :])
