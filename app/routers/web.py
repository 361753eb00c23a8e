"""The sample chat page: ``web/`` at ``/`` and the official browser client at ``/static/vendor/``.

The page's own files come from ``web/`` in the source tree (or ``./web`` of the working
directory, as in the container image). The SignalR browser bundle is never fetched from a CDN:
it is served from ``web/vendor/`` when the container build copied it there, else straight from
``node_modules/@microsoft/signalr/dist/browser/`` (installed by ``make run``). Only the listed
file names are served, so no path from a request ever reaches the file system.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, PlainTextResponse, Response

__all__ = ["WEB_ROOT", "router", "vendor_file"]

logger = logging.getLogger("app.routers.web")


def _find_web_root() -> Path:
    source_tree = Path(__file__).resolve().parents[2] / "web"
    for candidate in (source_tree, Path.cwd() / "web"):
        if (candidate / "index.html").is_file():
            return candidate
    return source_tree


WEB_ROOT = _find_web_root()
"""Directory holding ``index.html``, ``app.js`` and ``style.css``."""

_JS = "text/javascript; charset=utf-8"
_PAGE_FILES = {
    "app.js": _JS,
    "style.css": "text/css; charset=utf-8",
}
_NPM_DIST = {
    "signalr.min.js": Path("@microsoft/signalr/dist/browser"),
    "signalr.min.js.map": Path("@microsoft/signalr/dist/browser"),
    "signalr-protocol-msgpack.min.js": Path("@microsoft/signalr-protocol-msgpack/dist/browser"),
    "signalr-protocol-msgpack.min.js.map": Path("@microsoft/signalr-protocol-msgpack/dist/browser"),
}
_MISSING_CLIENT = (
    "The SignalR browser client ({name}) is not installed. Run `make run` (it runs "
    "`npm install` for you), or `npm install` in the repository, then reload the page."
)
# The page changes with the code during development: always revalidate (ETag makes it cheap).
_NO_CACHE = {"Cache-Control": "no-cache"}

router = APIRouter(tags=["sample page"], include_in_schema=False)


def vendor_file(name: str, web_root: Path = WEB_ROOT) -> Path | None:
    """Locate a vendored browser bundle.

    Args:
        name: one of the served bundle names, e.g. ``signalr.min.js``.
        web_root: the page directory; ``vendor/`` under it is looked at first.

    Returns:
        The file's path, or ``None`` when the name is unknown or the file is absent.
    """
    if name not in _NPM_DIST:
        return None
    for candidate in (
        web_root / "vendor" / name,
        web_root.parent / "node_modules" / _NPM_DIST[name] / name,
        Path.cwd() / "node_modules" / _NPM_DIST[name] / name,
    ):
        if candidate.is_file():
            return candidate
    return None


def _missing_page(name: str) -> Response:
    return PlainTextResponse(
        f"The sample page file {name} is missing from {WEB_ROOT}. Run the backend from the "
        "repository (or the container image), where web/ exists.",
        status_code=404,
    )


@router.get("/")
async def get_page() -> Response:
    """The sample chat page."""
    path = WEB_ROOT / "index.html"
    if not path.is_file():
        return _missing_page("index.html")
    return FileResponse(path, media_type="text/html; charset=utf-8", headers=_NO_CACHE)


@router.get("/static/{name}")
async def get_page_asset(name: str) -> Response:
    """The page's script and style sheet."""
    media_type = _PAGE_FILES.get(name)
    if media_type is None:
        return PlainTextResponse("Not found.", status_code=404)
    path = WEB_ROOT / name
    if not path.is_file():
        return _missing_page(name)
    return FileResponse(path, media_type=media_type, headers=_NO_CACHE)


@router.get("/static/vendor/{name}")
async def get_vendor_script(name: str) -> Response:
    """The official ``@microsoft/signalr`` browser bundle (and the MessagePack protocol)."""
    if name not in _NPM_DIST:
        return PlainTextResponse("Not found.", status_code=404)
    path = vendor_file(name)
    if path is None:
        logger.warning("browser bundle %s not found; run `make run` or `npm install`", name)
        return PlainTextResponse(_MISSING_CLIENT.format(name=name), status_code=404)
    media_type = "application/json" if name.endswith(".map") else _JS
    return FileResponse(path, media_type=media_type, headers=_NO_CACHE)
