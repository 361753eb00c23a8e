"""The one exception tree of the ``app`` package.

Every error raised on purpose by ``app`` (and by ``app.protocol``, which the emulator
imports too) derives from :class:`SignalRError`. Errors become HTTP responses or error
completions only at the edges (``app.main`` exception handlers, the webhook router), never
inside services.

::

    SignalRError
    ├── ConfigurationError                 bad settings; raised at start-up
    │   └── ConnectionStringError          a malformed AzureSignalRConnectionString
    ├── UnsupportedAuthTypeError           AuthType=azure* parsed but not usable yet
    ├── InvalidNameError                   hub / group / user / connection name refused
    ├── TokenError                         minting or validating an access token failed
    │   ├── TokenTooLargeError             the minted token is over 4 KB
    │   └── InvalidTokenError              signature, expiry or audience check failed
    ├── PrincipalError                     malformed X-MS-CLIENT-PRINCIPAL header
    ├── HubProtocolError                   the SignalR hub protocol was violated
    │   ├── HandshakeError                 bad or unsupported handshake request
    │   └── MessageTooLargeError           a frame over the configured size limit
    ├── ServiceError                       the SignalR Service REST API answered an error
    │   ├── ServiceBadRequestError         400: an argument was refused
    │   ├── ServiceUnauthorizedError       401 / 403: the key or token was refused
    │   ├── ServiceNotFoundError           404: the target does not exist
    │   ├── ServiceThrottledError          429: too many requests
    │   └── ServiceUnavailableError        5xx, 408, timeouts, refused connections
    ├── WebhookError                       an upstream request can't be dispatched
    │   ├── SignatureError                 X-ASRS-Signature missing or wrong (401)
    │   └── HandlerNotFoundError           no handler for (hub, category, event) (404)
    ├── HubError                           raised while running a hub handler
    │   ├── BindingError                   invocation arguments don't fit the signature
    │   └── FilterRejectedError            a filter refused the call (403 / error completion)
    └── GatewayAuthError                   missing or wrong gateway key (401)

Each class carries the HTTP status the edge should answer with in ``status_code``.
Messages say what to fix and never contain secrets (access keys, tokens).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BindingError",
    "ConfigurationError",
    "ConnectionStringError",
    "FilterRejectedError",
    "GatewayAuthError",
    "HandlerNotFoundError",
    "HandshakeError",
    "HubError",
    "HubProtocolError",
    "InvalidNameError",
    "InvalidTokenError",
    "MessageTooLargeError",
    "PrincipalError",
    "ServiceBadRequestError",
    "ServiceError",
    "ServiceNotFoundError",
    "ServiceThrottledError",
    "ServiceUnauthorizedError",
    "ServiceUnavailableError",
    "SignalRError",
    "SignatureError",
    "TokenError",
    "TokenTooLargeError",
    "UnsupportedAuthTypeError",
    "WebhookError",
    "edge_status",
    "error_body",
]


class SignalRError(Exception):
    """Root of every error this package raises on purpose.

    Attributes:
        status_code: the HTTP status an edge should answer with when this error escapes.
    """

    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigurationError(SignalRError):
    """A setting is missing or invalid; the process should refuse to start."""


class ConnectionStringError(ConfigurationError):
    """A connection string is malformed.

    The message names the offending segment by key and never echoes the access key.
    """


class UnsupportedAuthTypeError(ConfigurationError):
    """The connection string asks for identity-based auth (``AuthType=azure*``).

    It parses, but minting tokens needs a signing key fetched with an Entra ID token,
    which this version does not do yet. Use an ``AccessKey`` connection string.
    """


class InvalidNameError(SignalRError):
    """A hub, group, user or connection name does not meet the service's rules."""

    status_code = 400


class TokenError(SignalRError):
    """An access token could not be minted or did not validate."""


class TokenTooLargeError(TokenError):
    """The minted token is longer than the service accepts (4,096 characters).

    Fewer or shorter claims fix it.
    """


class InvalidTokenError(TokenError):
    """A bearer token failed validation (signature, expiry, not-before or audience)."""

    status_code = 401


class PrincipalError(SignalRError):
    """The ``X-MS-CLIENT-PRINCIPAL`` header is not base64-encoded JSON of a known shape."""

    status_code = 400


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


class ServiceError(SignalRError):
    """The SignalR Service REST API answered with an error, or could not be reached.

    Attributes:
        status_code: the HTTP status the service answered (0 when no answer arrived).
        error_code: the service's ``x-ms-error-code`` header or body ``code``, if any.
    """

    def __init__(
        self, message: str, *, status_code: int = 0, error_code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code


class ServiceBadRequestError(ServiceError):
    """The service refused an argument (400)."""


class ServiceUnauthorizedError(ServiceError):
    """The service refused the access key or token (401 or 403)."""


class ServiceNotFoundError(ServiceError):
    """The service answered 404 for something that should exist."""


class ServiceThrottledError(ServiceError):
    """The service answered 429 and retries ran out.

    Attributes:
        retry_after: seconds the service asked us to wait, if it said.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 429,
        error_code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, error_code=error_code)
        self.retry_after = retry_after


class ServiceUnavailableError(ServiceError):
    """A 5xx or 408 answer, a timeout or a refused connection, after retries ran out."""


class WebhookError(SignalRError):
    """An upstream (webhook) request from the service can't be dispatched."""

    status_code = 400


class SignatureError(WebhookError):
    """``X-ASRS-Signature`` is missing or matches none of the configured access keys."""

    status_code = 401


class HandlerNotFoundError(WebhookError):
    """No hub handler is registered for the request's (hub, category, event)."""

    status_code = 404


class HubError(SignalRError):
    """Raised while running a hub handler; becomes an error completion for invocations."""


class BindingError(HubError):
    """Invocation arguments do not fit the handler's parameters (count or type)."""

    status_code = 400


class FilterRejectedError(HubError):
    """A hub filter refused the call: 403 for a connect, an error completion otherwise."""

    status_code = 403


class GatewayAuthError(SignalRError):
    """The gateway key is missing or wrong, or no keys are configured."""

    status_code = 401


def edge_status(exc: SignalRError) -> int:
    """The HTTP status to answer a request with when ``exc`` ends it.

    A :class:`ServiceError`'s ``status_code`` is the *service's* answer; the caller's
    request is answered 429 (throttled), 503 (unavailable: 5xx, 408, timeouts,
    unreachable) or 502 (any other refusal), saying the failure was upstream. Every
    other error answers its own ``status_code``.
    """
    if isinstance(exc, ServiceThrottledError):
        return 429
    if isinstance(exc, ServiceUnavailableError):
        return 503
    if isinstance(exc, ServiceError):
        return 502
    return exc.status_code


def error_body(exc: SignalRError) -> dict[str, Any]:
    """The JSON body an edge answers ``exc`` with (status: :func:`edge_status`).

    ``{"error": message, "type": class name}``, plus for a :class:`ServiceError` the
    service's own ``serviceStatus`` and, when it sent one, ``serviceErrorCode``.
    """
    body: dict[str, Any] = {"error": exc.message, "type": type(exc).__name__}
    if isinstance(exc, ServiceError):
        body["serviceStatus"] = exc.status_code
        if exc.error_code:
            body["serviceErrorCode"] = exc.error_code
    return body
