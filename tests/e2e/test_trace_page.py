"""The emulator's live trace page in headless Chromium, driven by real clients and REST calls.

Chromium is Debian's ``/usr/bin/chromium`` through Playwright, as in ``test_browser.py``. The
screenshot goes to ``test-output/trace-page.png``; with ``UPDATE_SCREENSHOT=1`` (or when the
docs have none yet) it also replaces ``docs/trace-page.png``, the one README shows.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_browser import OUTPUT, ROOT, STEP, chromium
from tests.support.emulator import RunningEmulator, running_emulator
from tests.support.node import NODE, node_process

pytestmark = [
    pytest.mark.browser,
    pytest.mark.anyio,
    pytest.mark.node,
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
]

DOCS_SCREENSHOT = ROOT / "docs" / "trace-page.png"


@pytest.fixture
def anyio_backend() -> str:
    """asyncio only: uvicorn, Playwright and the Node bridge run on it."""
    return "asyncio"


async def rest(emu: RunningEmulator, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A signed REST call to the emulator."""
    async with httpx.AsyncClient() as client:
        return await client.request(
            method, emu.base_url + path, headers=emu.rest_headers(path), **kwargs
        )


async def test_trace_page_follows_connections_messages_and_closes(tmp_path: Path) -> None:
    """A connecting user appears in the hubs panel, a broadcast and a disconnect (with its
    reason) appear as rows; filter, pause, CSV export and clear work; nothing is loaded from
    another origin and the page raises no error."""
    from playwright.async_api import expect

    async with (
        running_emulator(upstream_url="") as emu,
        node_process() as node,
        chromium() as browser,
    ):
        context = await browser.new_context(
            viewport={"width": 1280, "height": 800}, accept_downloads=True
        )
        page = await context.new_page()
        requests: list[str] = []
        errors: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(emu.base_url + "/")
        await expect(page.locator("#status")).to_have_attribute("data-state", "live", timeout=STEP)

        url = emu.client_url("chat")
        alice_token = emu.client_token("chat", user_id="alice")
        bob_token = emu.client_token("chat", user_id="bob")
        async with (
            node.connect(url, access_token=alice_token) as alice,
            node.connect(
                url, access_token=bob_token, transport="LongPolling", protocol="messagepack"
            ) as bob,
        ):
            row = page.locator(f'tr[data-connection-id="{alice.connection_id}"]')
            await expect(row).to_contain_text("alice", timeout=STEP)
            await expect(row).to_contain_text("WebSockets")
            await expect(row).to_contain_text("json")
            bob_row = page.locator(f'tr[data-connection-id="{bob.connection_id}"]')
            await expect(bob_row).to_contain_text("LongPolling", timeout=STEP)
            await expect(bob_row).to_contain_text("messagepack")

            sent = await rest(
                emu,
                "POST",
                "/api/hubs/chat/:send",
                json={"target": "newMessage", "arguments": ["hi"]},
            )
            assert sent.status_code == 202
            out = page.locator('tr[data-type="message.out"]')
            await expect(out.first).to_contain_text("newMessage", timeout=STEP)
            await expect(out.first).to_contain_text("→ 2 receivers")
            assert await alice.next_message("newMessage") == ["hi"]

            joined = await rest(
                emu, "PUT", f"/api/hubs/chat/groups/room/connections/{alice.connection_id}"
            )
            assert joined.status_code == 200
            await expect(row.locator(".chip")).to_have_text("room", timeout=STEP)

            OUTPUT.mkdir(exist_ok=True)
            shot = OUTPUT / "trace-page.png"
            await page.screenshot(path=str(shot), full_page=True)
            if os.environ.get("UPDATE_SCREENSHOT") == "1" or not DOCS_SCREENSHOT.exists():
                shutil.copyfile(shot, DOCS_SCREENSHOT)

            await alice.stop()
            closed = page.locator('tr[data-type="connection.closed"]')
            await expect(closed.first).to_contain_text(alice.connection_id, timeout=STEP)
            await expect(closed.first).to_contain_text("Normal")
            await expect(row).to_have_count(0, timeout=STEP)

            await page.locator("#filter").fill("Normal")
            await expect(page.locator("#events tbody tr")).to_have_count(1)
            await page.locator("#filter").fill("")

            await page.locator("#pause").click()
            shown = await out.count()
            again = await rest(
                emu, "POST", "/api/hubs/chat/:send", json={"target": "later", "arguments": []}
            )
            assert again.status_code == 202
            await expect(page.locator("#paused-note")).to_contain_text("new event", timeout=STEP)
            assert await out.count() == shown
            await page.locator("#pause").click()
            await expect(out).to_have_count(shown + 1, timeout=STEP)
            await expect(out.first).to_contain_text("later")

            async with page.expect_download() as download_info:
                await page.locator("#export").click()
            download = await download_info.value
            saved = tmp_path / "trace.csv"
            await download.save_as(saved)
            text = saved.read_bytes().decode("utf-8")
            lines = text.splitlines()
            assert lines[0].startswith("seq,time,type,hub,connectionId,userId,")
            rows = await page.locator("#events tbody tr").count()
            assert len(lines) == rows + 1
            assert any(",connection.closed," in line and "Normal" in line for line in lines)
            assert any(",message.out," in line and ",newMessage," in line for line in lines)
            assert text == await page.evaluate("window.signalrTrace.csv()")

            await page.locator("#clear").click()
            await expect(page.locator("#events tbody tr")).to_have_count(0)

        await context.close()
        assert errors == []
        assert requests and all(r.startswith(emu.base_url + "/") for r in requests), requests
