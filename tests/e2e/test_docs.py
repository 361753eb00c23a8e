"""The API reference page (app/routers/docs.py) over real HTTP: local assets only, no CDN."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import fastapi_offline
import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from tests.support.servers import serve_asgi

pytestmark = pytest.mark.anyio

PACKAGE_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for a running backend (emulator connection string, nothing listening)."""
    async with (
        serve_asgi(create_app(Settings())) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as http,
    ):
        yield http


def referenced_urls(html: str) -> list[str]:
    """Every src/href value and Swagger UI's document url the page names."""
    found = re.finditer(r"""(?:src|href)=["']([^"']+)["']|url: ?'([^']+)'""", html)
    return [match.group(1) or match.group(2) for match in found]


async def test_docs_names_only_local_urls(client: httpx.AsyncClient) -> None:
    """/docs references only this backend's own paths, and every one of them answers."""
    answer = await client.get("/docs")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "cdn.jsdelivr.net" not in answer.text and "https://" not in answer.text
    urls = referenced_urls(answer.text)
    assert "/openapi.json" in urls
    assert {url.rsplit("/", 1)[1] for url in urls if url.startswith("/static/docs/")} == {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "favicon.png",
    }
    for url in urls:
        assert url.startswith("/"), url
        assert (await client.get(url)).status_code == 200, url


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
        ("favicon.png", "image/png"),
    ],
)
async def test_assets_come_from_the_installed_package(
    client: httpx.AsyncClient, name: str, media_type: str
) -> None:
    """Each asset is the package's file byte for byte, with the media type browsers require."""
    answer = await client.get(f"/static/docs/{name}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].split(";")[0] == media_type
    assert answer.content == (PACKAGE_ASSETS / name).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/static/docs/swagger-ui.js",
        "/static/docs/..%2F__init__.py",
        "/static/docs/%2e%2e%2fcore.py",
        "/static/docs/consts.py",
        "/static/docs/redoc.standalone.js",
    ],
)
async def test_only_listed_assets_are_served(client: httpx.AsyncClient, path: str) -> None:
    """Names outside the fixed list answer 404, so no request path reaches the file system."""
    answer = await client.get(path)
    assert answer.status_code == 404
    assert "import" not in answer.text


async def test_docs_stays_out_of_the_openapi_document(client: httpx.AsyncClient) -> None:
    """The page and its assets are not API operations; /redoc (CDN-bound) is not offered."""
    document = (await client.get("/openapi.json")).json()
    assert not [path for path in document["paths"] if "docs" in path or "redoc" in path]
    assert document["openapi"].startswith("3.")
    assert (await client.get("/redoc")).status_code == 404
