"""The sample page in headless Chromium: two users chat through the real backend and emulator.

Chromium is Debian's ``/usr/bin/chromium`` (Playwright's own browser download is not used);
``make test`` installs it when missing. Screenshots go to ``test-output/``; with
``UPDATE_SCREENSHOT=1`` the first one also replaces ``docs/screenshot.png`` (the README's).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from tests.support.runner import run_app
from tests.support.servers import free_port, serve_asgi

pytestmark = [pytest.mark.browser, pytest.mark.anyio]

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_INSTALLED = CHROMIUM.is_file()
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STEP = 10_000  # ms: a message or a state change
RECONNECT = 20_000  # ms: the page's retry policy waits at most ~5 s between attempts


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Any]:
    """Launch Debian's Chromium through Playwright, or skip when it is not installed."""
    if not CHROMIUM_INSTALLED:
        pytest.skip(
            "Chromium is not installed at /usr/bin/chromium: "
            "`apt-get install -y chromium` (make test does this)"
        )
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(browser: Any, url: str) -> Any:
    """A page in its own context (own storage), as a separate user would have."""
    context = await browser.new_context(viewport={"width": 1100, "height": 720})
    page = await context.new_page()
    await page.goto(url)
    return page


async def expect_state(page: Any, state: str, within_ms: int = STEP) -> None:
    """Wait until the page shows the connection state ``state``."""
    from playwright.async_api import expect

    await expect(page.locator("#state")).to_have_attribute("data-state", state, timeout=within_ms)


async def send(page: Any, mode: str, text: str, recipient: str = "") -> None:
    """Use the composer: pick a mode, fill recipient and text, press Send."""
    await page.locator(f"input[name=mode][value={mode}]").check()
    if recipient:
        await page.locator("#recipient").fill(recipient)
    await page.locator("#message-text").fill(text)
    await page.locator("#send").click()


async def join(page: Any, group: str) -> None:
    """Join a group through the Groups card and wait for its chip."""
    from playwright.async_api import expect

    await page.locator("#group-name").fill(group)
    await page.locator("#join").click()
    await expect(page.locator("#groups .chip", has_text=group)).to_have_count(1, timeout=STEP)


def messages(page: Any, kind: str, text: str) -> Any:
    """The page's messages of one kind (received, mine, outgoing, echo) containing ``text``."""
    return page.locator(f"#messages .msg-{kind}", has_text=text)


@contextlib.asynccontextmanager
async def emulator_for(config: Path, port: int = 0) -> AsyncIterator[tuple[int, str]]:
    """The real emulator with the given upstream settings; yields (port, connection string).

    ``port`` rebinds a known port, to restart the emulator where clients expect it (the
    shared ``running_emulator`` always picks a new port).
    """
    from emulator.server import create_app as create_emulator
    from emulator.settings import EmulatorSettings

    settings = EmulatorSettings(host="127.0.0.1", port=port, config=config)
    app = create_emulator(settings)
    async with serve_asgi(
        app, port=port, ws_per_message_deflate=False, ws_ping_interval=None
    ) as base_url:
        bound = int(base_url.rsplit(":", 1)[1])
        yield bound, settings.connection_string(bound)


def upstream_config(tmp_path: Path, backend_port: int) -> Path:
    """An emulator settings file sending every upstream event to a backend on ``backend_port``."""
    config = tmp_path / "settings.json"
    config.write_text(
        json.dumps(
            {
                "UpstreamSettings": {
                    "Templates": [
                        {
                            "UrlTemplate": f"http://127.0.0.1:{backend_port}/runtime/webhooks/signalr",
                            "HubPattern": "*",
                            "CategoryPattern": "*",
                            "EventPattern": "*",
                        }
                    ]
                }
            }
        ),
        encoding="utf-8",
    )
    return config


async def test_two_users_chat_and_survive_an_emulator_restart(tmp_path: Path) -> None:
    """Two pages exchange broadcast, direct and group messages, and chat again after a restart."""
    from playwright.async_api import expect

    backend_port = free_port()
    config = upstream_config(tmp_path, backend_port)
    OUTPUT.mkdir(exist_ok=True)
    async with contextlib.AsyncExitStack() as stack:
        emulator_stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(emulator_stack)
        emulator_port, connection_string = await emulator_stack.enter_async_context(
            emulator_for(config)
        )
        settings = Settings(connection_string=connection_string, dev_user_header=True)
        base = await stack.enter_async_context(serve_asgi(create_app(settings), port=backend_port))
        browser = await stack.enter_async_context(chromium())

        alice = await open_page(browser, f"{base}/?user=alice")
        await expect_state(alice, "connected")
        bob = await open_page(browser, f"{base}/?user=bob")
        await expect_state(bob, "connected")
        # Alice was there first: the hub's newConnection message lists Bob on her page.
        await expect(alice.locator("#people .person", has_text="bob")).to_have_count(
            1, timeout=STEP
        )

        await send(alice, "all", "hello everyone")
        await expect(messages(alice, "mine", "hello everyone")).to_have_count(1, timeout=STEP)
        await expect(messages(bob, "received", "hello everyone")).to_have_count(1, timeout=STEP)
        # A broadcast carries no direct-message mark.
        await expect(messages(bob, "received", "hello everyone")).not_to_have_attribute(
            "data-direct", "true"
        )

        await send(bob, "user", "psst, alice", recipient="alice")
        await expect(messages(alice, "received", "psst, alice")).to_have_count(1, timeout=STEP)
        await expect(messages(bob, "outgoing", "psst, alice")).to_have_count(1)
        await expect(messages(bob, "received", "psst, alice")).to_have_count(0)

        await join(alice, "team")
        await join(bob, "team")
        await send(alice, "group", "standup in 5", recipient="team")
        received = messages(bob, "received", "standup in 5")
        await expect(received).to_have_count(1, timeout=STEP)
        await expect(received).to_have_attribute("data-group", "team")

        await send(alice, "echo", "ping 42")
        await expect(messages(alice, "echo", "ping 42")).to_have_count(1, timeout=STEP)

        await alice.screenshot(path=str(OUTPUT / "browser-chat.png"))
        if os.environ.get("UPDATE_SCREENSHOT") == "1":
            shutil.copyfile(OUTPUT / "browser-chat.png", ROOT / "docs" / "screenshot.png")

        # Restart the emulator on the same port: both pages notice, then reconnect by
        # themselves (new connections, groups joined again by the page).
        await emulator_stack.aclose()
        for page in (alice, bob):
            await expect(page.locator("#state")).not_to_have_attribute(
                "data-state", "connected", timeout=STEP
            )
        await stack.enter_async_context(emulator_for(config, port=emulator_port))
        for page in (alice, bob):
            await expect_state(page, "connected", within_ms=RECONNECT)

        await send(bob, "all", "back again")
        await expect(messages(alice, "received", "back again")).to_have_count(1, timeout=STEP)
        await send(bob, "group", "still a team", recipient="team")
        await expect(messages(alice, "received", "still a team")).to_have_count(1, timeout=STEP)
        await send(alice, "user", "welcome back, bob", recipient="bob")
        await expect(messages(bob, "received", "welcome back, bob")).to_have_count(1, timeout=STEP)
        await bob.screenshot(path=str(OUTPUT / "browser-chat-after-restart.png"))


async def test_a_later_page_lists_who_is_here_and_marks_direct_messages(tmp_path: Path) -> None:
    """Bob's page, opened after Alice's, lists her (from whoIsHere, not a newConnection it
    never saw), once each; Alice's direct message is marked direct on Bob's side; when Alice
    closes her page she leaves Bob's list."""
    from playwright.async_api import expect

    backend_port = free_port()
    async with contextlib.AsyncExitStack() as stack:
        _, connection_string = await stack.enter_async_context(
            emulator_for(upstream_config(tmp_path, backend_port))
        )
        settings = Settings(connection_string=connection_string, dev_user_header=True)
        base = await stack.enter_async_context(serve_asgi(create_app(settings), port=backend_port))
        browser = await stack.enter_async_context(chromium())

        alice = await open_page(browser, f"{base}/?user=alice")
        await expect_state(alice, "connected")
        await expect(alice.locator("#people .person.you", has_text="alice")).to_have_count(
            1, timeout=STEP
        )
        bob = await open_page(browser, f"{base}/?user=bob")
        await expect_state(bob, "connected")
        people = bob.locator("#people .person")
        await expect(people.filter(has_text="alice")).to_have_count(1, timeout=STEP)
        await expect(people.filter(has_text="alice")).to_contain_text("before you")
        await expect(bob.locator("#people .person.you", has_text="bob")).to_have_count(1)
        await expect(bob.locator("#people-count")).to_have_text("2")
        await expect(alice.locator("#people .person", has_text="bob")).to_have_count(
            1, timeout=STEP
        )

        await send(alice, "user", "just for you, bob", recipient="bob")
        direct = messages(bob, "received", "just for you, bob")
        await expect(direct).to_have_count(1, timeout=STEP)
        await expect(direct).to_have_attribute("data-direct", "true")
        await expect(direct.locator(".tag")).to_have_text("direct message")
        await expect(direct.locator(".sender")).to_have_text("alice")
        await send(alice, "all", "and hello to all")
        broadcast = messages(bob, "received", "and hello to all")
        await expect(broadcast).to_have_count(1, timeout=STEP)
        await expect(broadcast).not_to_have_attribute("data-direct", "true")
        await bob.screenshot(path=str(OUTPUT / "browser-presence.png"))

        await alice.context.close()
        await expect(people.filter(has_text="alice")).to_have_count(0, timeout=STEP)
        await expect(bob.locator("#people-count")).to_have_text("1")


async def test_messages_sent_by_a_backend_read_well(tmp_path: Path) -> None:
    """Gateway messages show their text from "server", never an empty bubble or "anonymous ?"."""
    from playwright.async_api import expect

    backend_port = free_port()
    async with contextlib.AsyncExitStack() as stack:
        _, connection_string = await stack.enter_async_context(
            emulator_for(upstream_config(tmp_path, backend_port))
        )
        settings = Settings(
            connection_string=connection_string, dev_user_header=True, gateway_api_keys=["k"]
        )
        base = await stack.enter_async_context(serve_asgi(create_app(settings), port=backend_port))
        browser = await stack.enter_async_context(chromium())
        alice = await open_page(browser, f"{base}/?user=alice")
        await expect_state(alice, "connected")

        async def gateway(body: object) -> None:
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                answer = await http.post(
                    "/api/hubs/chat/messages", json=body, headers={"x-functions-key": "k"}
                )
            assert answer.status_code == 202, answer.text

        # README's curl example: an object with a text and no sender or connection.
        await gateway({"target": "newMessage", "arguments": [{"text": "hi from curl"}]})
        from_curl = messages(alice, "received", "hi from curl")
        await expect(from_curl).to_have_count(1, timeout=STEP)
        await expect(from_curl.locator(".sender")).to_have_text("server")
        await expect(from_curl).to_have_attribute("data-origin", "server")
        # A plain string argument is the message's text.
        await gateway({"target": "newMessage", "arguments": ["plain hello"]})
        plain = messages(alice, "received", "plain hello")
        await expect(plain).to_have_count(1, timeout=STEP)
        await expect(plain.locator(".text")).to_have_text("plain hello")
        # Anything else is shown as JSON rather than dropped.
        await gateway({"target": "newMessage", "arguments": [{"level": 3}, 7]})
        await expect(messages(alice, "received", '{"level":3} 7')).to_have_count(1, timeout=STEP)
        # The hub's direct-message shape (`to` names the recipient) is marked as direct.
        await gateway(
            {
                "target": "newMessage",
                "userId": "alice",
                "arguments": [
                    {"sender": "bob", "connectionId": "c-bob", "text": "psst", "to": "alice"}
                ],
            }
        )
        direct = messages(alice, "received", "psst")
        await expect(direct).to_have_count(1, timeout=STEP)
        await expect(direct).to_have_attribute("data-direct", "true")
        await expect(direct.locator(".tag")).to_have_text("direct message")
        await expect(direct.locator(".sender")).to_have_text("bob")
        await expect(alice.locator("#messages")).not_to_contain_text("anonymous ?")
        await expect(alice.locator("#messages .msg .text:empty")).to_have_count(0)
        await alice.screenshot(path=str(OUTPUT / "browser-backend-messages.png"))


async def test_make_run_gives_a_working_chat(tmp_path: Path) -> None:
    """The page served by `python -m app` chats through the embedded emulator (JSON and msgpack)."""
    from playwright.async_api import expect

    async with run_app({}, cwd=tmp_path) as running, chromium() as browser:
        page = await open_page(browser, f"{running.base_url}/?user=carol")
        await expect_state(page, "connected")
        await expect(page.locator("#people .person.you", has_text="carol")).to_have_count(
            1, timeout=STEP
        )
        await send(page, "echo", "round trip")
        await expect(messages(page, "echo", "round trip")).to_have_count(1, timeout=STEP)
        # The page's options: MessagePack over long polling gets the same messages.
        other = await open_page(
            browser,
            f"{running.base_url}/?user=erin&protocol=messagepack&transport=longpolling",
        )
        await expect_state(other, "connected")
        await send(page, "all", "hello from make run")
        await expect(messages(page, "mine", "hello from make run")).to_have_count(1, timeout=STEP)
        await expect(messages(other, "received", "hello from make run")).to_have_count(
            1, timeout=STEP
        )
        await send(other, "echo", "binary round trip")
        await expect(messages(other, "echo", "binary round trip")).to_have_count(1, timeout=STEP)
        for opened in (page, other):
            await opened.context.close()
        assert await running.stop() == 0


async def test_swagger_ui_renders_with_the_network_blocked() -> None:
    """/docs renders the API's operations in Chromium when every non-local request is refused."""
    from playwright.async_api import expect

    async with serve_asgi(create_app(Settings())) as base, chromium() as browser:
        context = await browser.new_context(viewport={"width": 1100, "height": 720})
        outside: list[str] = []

        async def only_local(route: Any) -> None:
            if route.request.url.startswith(base + "/"):
                await route.continue_()
            else:
                outside.append(route.request.url)
                await route.abort("internetdisconnected")

        await context.route("**/*", only_local)
        page = await context.new_page()
        await page.goto(f"{base}/docs")
        await expect(page.locator(".swagger-ui .info .title")).to_contain_text(
            "serverless-signalr", timeout=STEP
        )
        await expect(
            page.locator(".opblock-summary-path", has_text="/api/negotiate").first
        ).to_be_visible(timeout=STEP)
        await page.screenshot(path=str(OUTPUT / "browser-docs-offline.png"))
        await context.close()
        assert outside == []
