"""The exception tree of the protocol core (:mod:`signalr_protocol`).

Every error the core raises on purpose derives from :class:`SignalRError`, which is also
the root the backend's own tree (:mod:`app.exceptions`) and the emulator's hang from, so
one ``except SignalRError`` at an edge catches all of them. The core never turns an error
into an HTTP answer: each class carries the status an edge should answer with.

::

    SignalRError                           root of every error raised on purpose
    ├── ConnectionStringError              a malformed connection string
    │   └── UnsupportedAuthTypeError       an AuthType this version cannot use
    ├── InvalidNameError                   hub / group / user / connection name refused (400)
    ├── TokenError                         minting or validating an access token failed
    │   ├── TokenTooLargeError             the minted token is over 4 KB (400)
    │   └── InvalidTokenError              signature, expiry or audience check failed (401)
    ├── HubProtocolError                   the SignalR hub protocol was violated (400)
    │   ├── HandshakeError                 bad or unsupported handshake request
    │   └── MessageTooLargeError           a frame over the configured size limit (413)
    ├── PayloadError                       JSON / MessagePack value outside the limits (400)
    └── UpstreamFormatError                an X-ASRS-* upstream request is malformed (400)

Messages say what to fix and never contain secrets (access keys, tokens).
"""

from __future__ import annotations

__all__ = [
    "ConnectionStringError",
    "HandshakeError",
    "HubProtocolError",
    "InvalidNameError",
    "InvalidTokenError",
    "MessageTooLargeError",
    "PayloadError",
    "SignalRError",
    "TokenError",
    "TokenTooLargeError",
    "UnsupportedAuthTypeError",
    "UpstreamFormatError",
]


class SignalRError(Exception):
    """Root of every error this project raises on purpose.

    Attributes:
        message: what went wrong and what to fix; never a secret.
        status_code: the HTTP status an edge should answer with when this error escapes.
    """

    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConnectionStringError(SignalRError):
    """A connection string is malformed.

    The message names the offending segment by key and never echoes the access key.
    """


class UnsupportedAuthTypeError(ConnectionStringError):
    """The connection string asks for an ``AuthType`` this version cannot use."""


class InvalidNameError(SignalRError):
    """A hub, group, user or connection name does not meet the service's rules."""

    status_code = 400


class TokenError(SignalRError):
    """An access token could not be minted or did not validate."""


class TokenTooLargeError(TokenError):
    """The minted token is longer than the service accepts (4,096 characters).

    Fewer or shorter claims fix it; the caller's input made it, so an edge answers 400.
    """

    status_code = 400


class InvalidTokenError(TokenError):
    """A bearer token failed validation (signature, expiry, not-before or audience)."""

    status_code = 401


class HubProtocolError(SignalRError):
    """The peer broke the SignalR hub protocol.

    Attributes:
        close_reason: the text to put in the Close message (or handshake error) sent back.
    """

    status_code = 400

    def __init__(self, message: str, *, close_reason: str | None = None) -> None:
        super().__init__(message)
        self.close_reason = close_reason if close_reason is not None else message


class HandshakeError(HubProtocolError):
    """The handshake request was malformed or asked for an unsupported protocol."""


class MessageTooLargeError(HubProtocolError):
    """A single hub message is larger than the configured maximum."""

    status_code = 413


class PayloadError(SignalRError):
    """A JSON text or decoded MessagePack value is outside the payload limits.

    Not valid JSON, ``NaN``/``Infinity``, a number too large, a lone surrogate, nesting
    deeper than allowed or a MessagePack extension with no Python form
    (:mod:`signalr_protocol.limits`). The message says which, and the limit.
    """

    status_code = 400


class UpstreamFormatError(SignalRError):
    """An upstream request's ``X-ASRS-*`` headers are missing, empty or malformed.

    Attributes:
        header: the header at fault (as the service spells it).
    """

    status_code = 400

    def __init__(self, message: str, *, header: str) -> None:
        super().__init__(message)
        self.header = header
