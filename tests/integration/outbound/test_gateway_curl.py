"""The gateway reads the form bodies the real curl binary writes (-F, --data-urlencode)."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from app.main import create_app
from tests.support.outbound_kit import recording_server, settings_for
from tests.support.servers import serve_asgi

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(shutil.which("curl") is None, reason="the curl binary is not installed"),
]

KEY = "curl-test-key"


async def _curl(*args: str) -> tuple[int, str]:
    """Run curl; return the HTTP status it saw and the response body."""
    process = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "-w",
        "\n%{http_code}",
        "-H",
        f"x-functions-key: {KEY}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, err.decode()
    body, _, status = out.decode().rpartition("\n")
    return int(status), body


@pytest.mark.parametrize(
    ("curl_args", "path"),
    [
        (
            ["-F", "target=newMessage", "-F", 'arguments=["h\u00e9llo", 1]', "-F", "userId=u1"],
            "/api/hubs/chat/users/u1/:send",
        ),
        (
            [
                "--data-urlencode",
                "target=newMessage",
                "--data-urlencode",
                'arguments=["h\u00e9llo", 1]',
                "--data-urlencode",
                "groupName=g 1",
            ],
            "/api/hubs/chat/groups/g%201/:send",
        ),
    ],
    ids=["curl -F (multipart)", "curl --data-urlencode"],
)
async def test_curl_forms_send_one_message(curl_args: list[str], path: str) -> None:
    """A message given as curl form fields reaches the service as the same JSON send."""
    async with recording_server() as service:
        app = create_app(settings_for(service.base_url, gateway_api_keys=[KEY]))
        async with serve_asgi(app) as base_url:
            status, body = await _curl(*curl_args, f"{base_url}/api/hubs/chat/messages")
    assert status == 202, body
    [request] = service.requests
    assert request.raw_path == path
    assert json.loads(request.body) == {"target": "newMessage", "arguments": ["h\u00e9llo", 1]}


async def test_curl_oversize_form_is_413() -> None:
    """A form over SIGNALR_GATEWAY_MAX_BODY_BYTES is refused with 413 and nothing is sent."""
    async with recording_server() as service:
        settings = settings_for(
            service.base_url, gateway_api_keys=[KEY], gateway_max_body_bytes=1024
        )
        async with serve_asgi(create_app(settings)) as base_url:
            status, body = await _curl(
                "-F",
                "target=t",
                "-F",
                'arguments=["' + "x" * 4000 + '"]',
                f"{base_url}/api/hubs/chat/messages",
            )
    assert status == 413, body
    assert "SIGNALR_GATEWAY_MAX_BODY_BYTES" in json.loads(body)["error"]
    assert service.requests == []
