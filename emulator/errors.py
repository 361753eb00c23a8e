"""The one exception tree of the ``emulator`` package.

Every error the emulator raises on purpose derives from :class:`EmulatorError`. REST errors
become an ``ErrorDetail`` JSON answer (with ``x-ms-error-code`` when set) at the edge in
:mod:`emulator.rest`; client-endpoint errors become plain-text HTTP answers.

::

    EmulatorError
    ├── EmulatorConfigError        bad settings or settings.json; raised at start-up / reload
    └── RequestError               a request is refused; carries the HTTP status to answer
        ├── BadRequestError        400: a malformed argument or body
        ├── AuthenticationError    401: missing or invalid access token
        ├── NotFoundError          404: the thing does not exist (with an error code)
        ├── MethodNotAllowedError  405: the path exists, the method does not
        ├── RequestTimeoutError    408: a client did not answer an invocation in time
        ├── ConflictError          409: e.g. a second transport on one connection
        │   └── ConnectionStateError   a connection asked to move to a state it can't reach
        ├── PayloadTooLargeError   413: body over the limit
        ├── UnsupportedMediaTypeError  415: a Content-Type the operation does not take
        └── NotSupportedError      501: an operation the emulator does not implement

Messages say what to fix and never contain secrets (access keys, tokens).
"""

from __future__ import annotations

import jwt

__all__ = [
    "AUDIENCE_INVALID",
    "SIGNING_KEY_NOT_FOUND",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "ConnectionStateError",
    "EmulatorConfigError",
    "EmulatorError",
    "MethodNotAllowedError",
    "NotFoundError",
    "NotSupportedError",
    "PayloadTooLargeError",
    "RequestError",
    "RequestTimeoutError",
    "UnsupportedMediaTypeError",
]


class EmulatorError(Exception):
    """Root of every error the emulator raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class EmulatorConfigError(EmulatorError):
    """A setting or the ``settings.json`` file is invalid; the message names what and where."""


class RequestError(EmulatorError):
    """A request is refused.

    Attributes:
        status_code: the HTTP status to answer with.
        error_code: the service error code (``ErrorDetail.code`` and ``x-ms-error-code``).
    """

    status_code: int = 400
    default_code: str = "Error.BadRequest"

    def __init__(self, message: str, *, error_code: str | None = None) -> None:
        super().__init__(message)
        self.error_code = error_code or self.default_code


class BadRequestError(RequestError):
    """A malformed argument, query parameter or body (400)."""


class AuthenticationError(RequestError):
    """The access token is missing or did not validate (401).

    The answer carries :attr:`challenge` as ``WWW-Authenticate``, as ASP.NET Core's JwtBearer
    handler writes it (dotnet/aspnetcore
    ``src/Security/Authentication/JwtBearer/src/JwtBearerHandler.cs``, ``HandleChallengeAsync``
    and ``CreateErrorDescription``): plain ``Bearer`` when no token was sent;
    ``Bearer error="invalid_token"`` when one failed, with ``error_description`` when the
    failure is one the handler names (expired, not valid yet, no expiration, bad signature,
    unknown signing key, audience, issuer).

    Attributes:
        token_sent: whether the request carried a token at all.
        description: the handler's ``error_description``; ``None`` derives it from the
            PyJWT error this one was raised from (``raise ... from exc``), if any.
    """

    status_code = 401
    default_code = "Error.Unauthorized"

    def __init__(
        self,
        message: str,
        *,
        error_code: str | None = None,
        token_sent: bool = True,
        description: str | None = None,
    ) -> None:
        super().__init__(message, error_code=error_code)
        self.token_sent = token_sent
        self.description = description

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value of this refusal."""
        if not self.token_sent:
            return "Bearer"
        description = self.description if self.description is not None else _describe(self)
        if description:
            return f'Bearer error="invalid_token", error_description="{description}"'
        return 'Bearer error="invalid_token"'


# JwtBearerHandler.CreateErrorDescription's wording, keyed by the PyJWT error that means the
# same thing; order matters (most specific first, as the handler checks them).
AUDIENCE_INVALID = "The audience is invalid"
SIGNING_KEY_NOT_FOUND = "The signature key was not found"
_DESCRIPTIONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.InvalidAudienceError, AUDIENCE_INVALID),
    (jwt.InvalidIssuerError, "The issuer is invalid"),
    (jwt.ImmatureSignatureError, "The token is not valid yet"),
    (jwt.ExpiredSignatureError, "The token is expired"),
    (jwt.InvalidSignatureError, "The signature is invalid"),
)


def _describe(exc: BaseException) -> str:
    """The handler's description of the PyJWT error behind ``exc`` (``""``: none it names)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, jwt.MissingRequiredClaimError) and cause.claim == "exp":
            return "The token has no expiration"
        for kind, text in _DESCRIPTIONS:
            if isinstance(cause, kind):
                return text
        cause = cause.__cause__
    return ""


class NotFoundError(RequestError):
    """The connection, user or group does not exist (404).

    The error code is one the .NET SDK recognises as a normal "no", e.g.
    ``Warning.Connection.NotExisted``.
    """

    status_code = 404
    default_code = "Error.NotFound"


class MethodNotAllowedError(RequestError):
    """The path exists but not with this HTTP method (405).

    Attributes:
        allowed: the methods the path takes (the ``Allow`` header).
    """

    status_code = 405
    default_code = "Error.MethodNotAllowed"

    def __init__(
        self, message: str, *, allowed: tuple[str, ...] = (), error_code: str | None = None
    ) -> None:
        super().__init__(message, error_code=error_code)
        self.allowed = allowed


class RequestTimeoutError(RequestError):
    """Waiting for a client's answer took too long (408)."""

    status_code = 408
    default_code = "Error.Timeout"


class ConflictError(RequestError):
    """The request conflicts with the connection's state (409)."""

    status_code = 409
    default_code = "Error.Conflict"


class ConnectionStateError(ConflictError):
    """A connection was asked for a state change its lifecycle does not allow (409).

    Raised by :func:`emulator.lifecycle.check_transition`; the message names the state the
    connection was in, the state asked for and the states it could have moved to. A
    request that meets it (e.g. a transport request racing another) is answered 409.

    Attributes:
        current: the name of the state the connection was in.
        requested: the name of the state asked for.
    """

    def __init__(self, message: str, *, current: str, requested: str) -> None:
        super().__init__(message)
        self.current = current
        self.requested = requested


class PayloadTooLargeError(RequestError):
    """The request body is over the limit (413)."""

    status_code = 413
    default_code = "Error.PayloadTooLarge"


class UnsupportedMediaTypeError(RequestError):
    """The body's Content-Type is not one the operation accepts (415)."""

    status_code = 415
    default_code = "Error.UnsupportedMediaType"


class NotSupportedError(RequestError):
    """A known operation the emulator does not implement (501)."""

    status_code = 501
    default_code = "Error.NotImplemented"
