"""The exception tree of the backend (``app``).

The backend's errors hang from the core's root, :class:`signalr_protocol.errors.SignalRError`,
so an edge catches the core's errors (names, tokens, the hub protocol, the upstream format)
and the backend's with one ``except SignalRError``. Errors become HTTP responses or error
completions only at the edges (``app.main`` exception handlers, the webhook, the gateway),
never inside services.

::

    SignalRError (signalr_protocol.errors)
    ├── ConfigurationError                 bad settings; raised at start-up
    ├── PrincipalError                     malformed X-MS-CLIENT-PRINCIPAL header (400)
    ├── ServiceError                       the SignalR Service REST API answered an error
    │   ├── ServiceBadRequestError         400: an argument was refused
    │   ├── ServiceUnauthorizedError       401 / 403: the key or token was refused
    │   ├── ServiceNotFoundError           404: the target does not exist
    │   ├── ServiceThrottledError          429: too many requests
    │   └── ServiceUnavailableError        5xx, 408, timeouts, refused connections
    ├── HubError                           raised while running a hub handler
    │   ├── BindingError                   invocation arguments don't fit the signature
    │   └── FilterRejectedError            a filter refused the call (403 / error completion)
    └── GatewayAuthError                   missing or wrong gateway key (401)

Each class carries the HTTP status the edge should answer with in ``status_code``.
Messages say what to fix and never contain secrets (access keys, tokens).
"""

from __future__ import annotations

from typing import Any

from signalr_protocol.errors import SignalRError

__all__ = [
    "BindingError",
    "ConfigurationError",
    "FilterRejectedError",
    "GatewayAuthError",
    "HubError",
    "PrincipalError",
    "ServiceBadRequestError",
    "ServiceError",
    "ServiceNotFoundError",
    "ServiceThrottledError",
    "ServiceUnauthorizedError",
    "ServiceUnavailableError",
    "edge_status",
    "error_body",
]


class ConfigurationError(SignalRError):
    """A setting is missing or invalid; the process should refuse to start."""


class PrincipalError(SignalRError):
    """The ``X-MS-CLIENT-PRINCIPAL`` header is not base64-encoded JSON of a known shape."""

    status_code = 400


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
