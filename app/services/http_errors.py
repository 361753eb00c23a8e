"""One error shape for every HTTP answer of the backend: ``{"error": ..., "type": ...}``.

The package's own errors already answer in that shape (:func:`app.exceptions.error_body`).
FastAPI answers its request validation errors and Starlette's HTTP exceptions (404 for an
unknown path, 405 for a wrong method) as ``{"detail": ...}``; :func:`install` replaces
those answers with the same shape, so a caller parses one format whatever went wrong:

- validation (422): ``error`` is one readable line (``body.target: Field required; ...``),
  ``type`` is ``"RequestValidationError"`` and ``errors`` lists each problem as
  ``{"loc", "msg", "type"}``. The input is never echoed: it may hold a secret, or text
  that cannot be written as UTF-8.
- an HTTP exception: ``error`` is its detail, ``type`` the status phrase in one word
  (``"NotFound"``, ``"MethodNotAllowed"``); its headers (``Allow``) are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["install", "validation_body"]

_MAX_LISTED = 5
"""Problems spelled out in the one-line ``error``; ``errors`` has them all."""


def _location(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def validation_body(errors: Sequence[Any]) -> dict[str, Any]:
    """The ``{"error", "type", "errors"}`` body of a 422 from FastAPI's error list."""
    items = [
        {
            "loc": list(error.get("loc", ())),
            "msg": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in errors
        if isinstance(error, dict)
    ]
    listed = "; ".join(f"{_location(item['loc'])}: {item['msg']}" for item in items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    if more > 0:
        listed += f"; and {more} more"
    return {
        "error": f"The request does not match the schema: {listed}.",
        "type": "RequestValidationError",
        "errors": items,
    }


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(validation_body(exc.errors()), status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "HTTPError"
    kind = "".join(word[:1].upper() + word[1:] for word in phrase.replace("-", " ").split())
    detail = exc.detail if isinstance(exc.detail, str) else phrase
    return JSONResponse(
        {"error": detail, "type": kind}, status_code=exc.status_code, headers=exc.headers
    )


def install(app: FastAPI) -> None:
    """Answer validation errors and HTTP exceptions of ``app`` in the one shape."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
