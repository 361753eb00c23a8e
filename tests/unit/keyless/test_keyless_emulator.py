"""The emulator's keyless settings and upstream auth: settings.json's ``Auth`` block, the
keyless connection string, and upstream calls with a bearer and no signature.

The ``Auth`` block has the shape of the service's upstream template settings, whose
authentication is ``None`` or ``ManagedIdentity`` with a resource (MicrosoftDocs/azure-docs
``articles/azure-signalr/concept-upstream.md``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from emulator.errors import EmulatorConfigError
from emulator.http import read_body
from emulator.identity import LocalEntraId
from emulator.settings import EmulatorSettings
from emulator.upstream import (
    UpstreamContext,
    UpstreamDispatcher,
    UpstreamTemplate,
    parse_upstream_settings,
)
from signalr_protocol.codec import JSON_CODEC
from signalr_protocol.connection_string import parse_connection_string
from tests.support.servers import serve_asgi

pytestmark = pytest.mark.anyio


def _settings(auth: Any) -> dict[str, Any]:
    template: dict[str, Any] = {"UrlTemplate": "http://127.0.0.1:7071/hook"}
    if auth is not None:
        template["auth"] = auth
    return {"UpstreamSettings": {"Templates": [template]}}


@pytest.mark.parametrize(
    ("auth", "resource"),
    [
        (None, None),
        ({"Type": "None"}, None),
        ({"type": "managedidentity", "managedIdentity": {"resource": " api://x "}}, "api://x"),
        ({"Type": "ManagedIdentity", "ManagedIdentity": {"Resource": "api://y"}}, "api://y"),
    ],
)
def test_auth_block_gives_the_resource(auth: Any, resource: str | None) -> None:
    """A template's Auth block (keys in any case) gives its ManagedIdentity resource."""
    [template] = parse_upstream_settings(_settings(auth))
    assert template.auth_resource == resource


@pytest.mark.parametrize(
    ("auth", "named"),
    [
        ("ManagedIdentity", "Auth must be an object"),
        ({"Type": "Basic"}, "Auth.Type"),
        ({"Type": "ManagedIdentity"}, "Auth.ManagedIdentity.Resource"),
        ({"Type": "ManagedIdentity", "ManagedIdentity": {"Resource": " "}}, "Resource"),
    ],
)
def test_bad_auth_blocks_name_the_field(auth: Any, named: str) -> None:
    """A malformed Auth block is refused with the field named."""
    with pytest.raises(EmulatorConfigError, match=named):
        parse_upstream_settings(_settings(auth))


def test_keyless_connection_string_has_no_key() -> None:
    """Keyless, the printed connection string is AuthType=azure.msi and names no key."""
    text = EmulatorSettings(keyless=True).connection_string(9999)
    endpoint = parse_connection_string(text)
    assert endpoint.keyless and endpoint.access_key is None
    assert "AccessKey" not in text and "Port=9999" in text


def test_public_base_follows_the_bound_port_or_public_url() -> None:
    """The issuer base is EMULATOR_PUBLIC_URL when set, else the address as bound."""
    assert EmulatorSettings(port=1234).public_base == "http://127.0.0.1:1234"
    assert EmulatorSettings(host="0.0.0.0", port=1).public_base == "http://localhost:1"
    assert EmulatorSettings(public_url="https://emu.example/").public_base == "https://emu.example"


class _Recorder:
    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await read_body(receive, 1 << 20)
        self.headers.append({k.decode().lower(): v.decode() for k, v in scope["headers"]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[_Recorder, str]]:
    rec = _Recorder()
    async with serve_asgi(rec, lifespan="off") as base_url:
        yield rec, base_url


async def test_keyless_upstream_sends_a_bearer_and_no_signature(
    recorder: tuple[_Recorder, str],
) -> None:
    """With no keys (local auth disabled) and a ManagedIdentity template, the upstream call
    carries ``Authorization: Bearer`` (aud = the resource, the emulator's issuer) and no
    ``X-ASRS-Signature``; a template without auth carries neither bearer nor signature."""
    rec, base_url = recorder
    entra = LocalEntraId("http://127.0.0.1:1")
    templates = [
        UpstreamTemplate(f"{base_url}/a", hub_pattern="chat", auth_resource="api://app"),
        UpstreamTemplate(f"{base_url}/b"),
    ]
    async with httpx.AsyncClient() as client:
        dispatcher = UpstreamDispatcher(
            lambda: templates, (), client, 5.0, bearer=entra.upstream_bearer
        )
        for hub in ("chat", "other"):
            context = UpstreamContext(hub, "c1", None, (), "", JSON_CODEC)
            await dispatcher.connected(context)
    with_auth, without = rec.headers
    assert "x-asrs-signature" not in with_auth and "x-asrs-signature" not in without
    scheme, _, token = with_auth["authorization"].partition(" ")
    assert scheme == "Bearer"
    assert entra.verify(token, ["api://app"])["iss"] == entra.issuer
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert "authorization" not in without
