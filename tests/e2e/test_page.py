"""The sample page's files as the backend serves them (app/routers/web.py), over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from app.routers import web
from app.settings import Settings
from tests.support.servers import serve_asgi

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for a running backend (emulator connection string, nothing listening)."""
    async with (
        serve_asgi(create_app(Settings())) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as http,
    ):
        yield http


async def test_root_serves_the_page(client: httpx.AsyncClient) -> None:
    """GET / answers the chat page as HTML, revalidated on every load."""
    answer = await client.get("/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.text == (ROOT / "web" / "index.html").read_text(encoding="utf-8")
    # Every script and style sheet the page names is served from this backend: no CDN.
    for src in ("/static/vendor/signalr.min.js", "/static/app.js", "/static/style.css"):
        assert src in answer.text
        assert (await client.get(src)).status_code == 200
    assert "https://" not in answer.text


@pytest.mark.parametrize(
    ("path", "media_type"),
    [("/static/app.js", "text/javascript"), ("/static/style.css", "text/css")],
)
async def test_page_assets_have_their_media_types(
    client: httpx.AsyncClient, path: str, media_type: str
) -> None:
    """The script and the style sheet are served with the types browsers require."""
    answer = await client.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].split(";")[0] == media_type
    assert answer.content == (ROOT / "web" / path.rsplit("/", 1)[1]).read_bytes()


@pytest.mark.parametrize(
    ("name", "package"),
    [
        ("signalr.min.js", "@microsoft/signalr"),
        ("signalr-protocol-msgpack.min.js", "@microsoft/signalr-protocol-msgpack"),
    ],
)
async def test_vendor_bundles_come_from_node_modules(
    client: httpx.AsyncClient, name: str, package: str
) -> None:
    """The official browser bundles are served byte for byte from the npm packages."""
    answer = await client.get(f"/static/vendor/{name}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/javascript")
    expected = ROOT / "node_modules" / package / "dist" / "browser" / name
    assert answer.content == expected.read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/static/index.html",
        "/static/../pyproject.toml",
        "/static/%2e%2e%2fpyproject.toml",
        "/static/vendor/signalr.js",
        "/static/vendor/..%2F..%2Fpackage.json",
    ],
)
async def test_only_listed_files_are_served(client: httpx.AsyncClient, path: str) -> None:
    """Names outside the fixed lists answer 404, so no request path reaches the file system."""
    answer = await client.get(path)
    assert answer.status_code == 404
    assert "pyproject" not in answer.text and "dependencies" not in answer.text


def test_vendor_file_prefers_a_vendored_copy(tmp_path: Path) -> None:
    """web/vendor/ (the container image's copy) wins over node_modules; unknown names are None."""
    (tmp_path / "vendor").mkdir()
    vendored = tmp_path / "vendor" / "signalr.min.js"
    vendored.write_text("// vendored", encoding="utf-8")
    assert web.vendor_file("signalr.min.js", tmp_path) == vendored
    assert web.vendor_file("signalr.js", tmp_path) is None
    assert web.vendor_file("../signalr.min.js", tmp_path) is None


async def test_missing_browser_client_says_to_run_make_run(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without node_modules the bundle answers 404 with what to do, not a bare 'Not Found'."""
    # node_modules exists in this checkout: simulate a fresh clone that skipped npm install.
    monkeypatch.setattr(web, "vendor_file", lambda name, web_root=web.WEB_ROOT: None)
    answer = await client.get("/static/vendor/signalr.min.js")
    assert answer.status_code == 404
    assert "make run" in answer.text and "npm install" in answer.text
