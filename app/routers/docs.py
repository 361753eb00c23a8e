"""The API reference page ``/docs`` (Swagger UI), working offline.

FastAPI's own page loads Swagger UI from a CDN, so it is blank without internet access. This
serves the same page with its script, style sheet and icon taken from the installed
``fastapi-offline`` package (which ships the Swagger UI 5 distribution files), under
``/static/docs/``. Only the listed file names are served, so no path from a request ever
reaches the file system. :func:`app.main.create_app` turns FastAPI's CDN-backed pages off
(``docs_url=None, redoc_url=None``) and includes this router. ``/redoc`` is not offered: even
with local assets, ReDoc loads its logo from Redocly's CDN.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

__all__ = ["ASSETS", "ASSET_PREFIX", "router"]

ASSET_PREFIX = "/static/docs"
"""URL prefix of the page's assets."""

_ASSET_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
"""The served file names and their media types."""

# The files change only when the package is upgraded: revalidate (cheap, with the ETag).
_NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


def _asset_url(request: Request, name: str) -> str:
    return f"{request.scope.get('root_path', '')}{ASSET_PREFIX}/{name}"


def _openapi_url(request: Request) -> str:
    return f"{request.scope.get('root_path', '')}{request.app.openapi_url}"


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI for the backend's OpenAPI document, with local assets only."""
    return get_swagger_ui_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=_asset_url(request, "swagger-ui-bundle.js"),
        swagger_css_url=_asset_url(request, "swagger-ui.css"),
        swagger_favicon_url=_asset_url(request, "favicon.png"),
        swagger_ui_parameters=request.app.swagger_ui_parameters,
    )


@router.get(ASSET_PREFIX + "/{name}")
async def docs_asset(name: str) -> Response:
    """One of the page's assets, from the installed package."""
    media_type = ASSETS.get(name)
    path = _ASSET_DIR / name
    if media_type is None or not path.is_file():
        return PlainTextResponse("Not found.", status_code=404)
    return FileResponse(path, media_type=media_type, headers=_NO_CACHE)
