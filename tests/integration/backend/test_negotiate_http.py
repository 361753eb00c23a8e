"""The backend's negotiate, CORS and health routes, served for real by uvicorn."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest

from app.hub import NegotiateOptions, NegotiateRequest, ServerlessHub
from app.main import create_app
from app.settings import Settings
from tests.support.servers import free_port, serve_asgi

KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
CS = f"Endpoint=https://x.service.signalr.net;AccessKey={KEY};Version=1.0;"
ORIGIN = "https://app.example.com"
PREFLIGHT_HEADERS = "x-requested-with,x-signalr-user-agent,authorization"


@pytest.fixture
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    settings = getattr(request, "param", None) or Settings(
        connection_string=CS, cors_origins=[ORIGIN]
    )
    async with serve_asgi(create_app(settings)) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as http:
            yield http


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize(
    ("path", "hub"), [("/api/negotiate", "chat"), ("/api/Chat/negotiate", "chat")]
)
async def test_negotiate_returns_url_and_verifiable_token(
    client: httpx.AsyncClient, method: str, path: str, hub: str
) -> None:
    """POST and GET negotiate answer {url, accessToken}; the token verifies with aud = url."""
    response = await client.request(method, path)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"url", "accessToken"}
    assert body["url"] == f"https://x.service.signalr.net/client/?hub={hub}"
    claims = jwt.decode(
        body["accessToken"], KEY.encode(), algorithms=["HS256"], audience=body["url"]
    )
    assert claims["exp"] > claims["iat"]


@pytest.mark.anyio
async def test_negotiate_errors_are_json_with_messages(client: httpx.AsyncClient) -> None:
    """A bad hub name is a 400 and an unregistered hub a 404, each with a message."""
    bad = await client.post("/api/1bad/negotiate")
    assert bad.status_code == 400
    assert "hub name" in bad.json()["error"]
    missing = await client.post("/api/nothere/negotiate")
    assert missing.status_code == 404
    assert "SIGNALR_HUBS" in missing.json()["error"]


class LookupHub(ServerlessHub):
    """A hub whose negotiate hook asks the SignalR Service something."""

    hub_name = "lookup"

    async def negotiate(self, request: NegotiateRequest) -> NegotiateOptions:
        """Refuse nobody, but only after asking whether the user is connected."""
        await self.client_manager.user_exists("someone")
        return await super().negotiate(request)


@pytest.mark.anyio
async def test_negotiate_hook_service_failure_is_503() -> None:
    """A service call failing inside a negotiate hook answers 503 with the error, not status 0."""
    unreachable = f"Endpoint=http://127.0.0.1;Port={free_port()};AccessKey={KEY};Version=1.0;"
    settings = Settings(
        connection_string=unreachable, hubs=[f"{__name__}:LookupHub"], retry_max_attempts=1
    )
    async with serve_asgi(create_app(settings)) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as http:
            response = await http.post("/api/lookup/negotiate")
    assert response.status_code == 503
    assert response.json()["type"] == "ServiceUnavailableError"
    assert response.json()["serviceStatus"] == 0  # no answer from the service at all


@pytest.mark.anyio
async def test_forged_principal_headers_are_ignored_when_untrusted(
    client: httpx.AsyncClient,
) -> None:
    """Without App Service auth, X-MS-CLIENT-PRINCIPAL* headers give an anonymous token."""
    principal = base64.b64encode(json.dumps({"userId": "x", "userRoles": ["admin"]}).encode())
    response = await client.post(
        "/api/negotiate",
        headers={"x-ms-client-principal-id": "admin", "x-ms-client-principal": principal.decode()},
    )
    claims = jwt.decode(response.json()["accessToken"], options={"verify_signature": False})
    assert "asrs.s.uid" not in claims and "role" not in claims


@pytest.mark.anyio
@pytest.mark.parametrize(
    "client",
    [Settings(connection_string=CS, website_auth_enabled=True)],
    indirect=True,
)
async def test_trusted_principal_and_malformed_principal(client: httpx.AsyncClient) -> None:
    """With WEBSITE_AUTH_ENABLED the principal sets user and roles; a bad one is a 400."""
    principal = base64.b64encode(
        json.dumps(
            {
                "auth_typ": "aad",
                "role_typ": "roles",
                "claims": [{"typ": "roles", "val": "admin"}, {"typ": "roles", "val": "ops"}],
            }
        ).encode()
    ).decode()
    response = await client.post(
        "/api/negotiate",
        headers={"x-ms-client-principal-id": "u1", "x-ms-client-principal": principal},
    )
    claims = jwt.decode(response.json()["accessToken"], options={"verify_signature": False})
    assert claims["asrs.s.uid"] == "u1"
    assert claims["role"] == ["admin", "ops"]
    bad = await client.post("/api/negotiate", headers={"x-ms-client-principal": "e30"})
    assert bad.status_code == 400
    worse = await client.post("/api/negotiate", headers={"x-ms-client-principal": "!!!"})
    assert worse.status_code == 400
    assert "base64" in worse.json()["error"]


@pytest.mark.anyio
async def test_cors_preflight_for_listed_origin(client: httpx.AsyncClient) -> None:
    """The JS client's negotiate preflight succeeds for a listed origin, with credentials."""
    response = await client.options(
        "/api/negotiate",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": PREFLIGHT_HEADERS,
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    allowed = response.headers["access-control-allow-headers"].lower()
    for header in PREFLIGHT_HEADERS.split(","):
        assert header in allowed
    actual = await client.post("/api/negotiate", headers={"Origin": ORIGIN})
    assert actual.headers["access-control-allow-origin"] == ORIGIN


@pytest.mark.anyio
async def test_cors_preflight_for_other_origin_fails(client: httpx.AsyncClient) -> None:
    """An unlisted origin gets no CORS grant."""
    response = await client.options(
        "/api/negotiate",
        headers={
            "Origin": "https://evil.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": PREFLIGHT_HEADERS,
        },
    )
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    actual = await client.post("/api/negotiate", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in actual.headers


def test_wildcard_origin_with_credentials_refuses_to_start() -> None:
    """'*' plus credentials is a start-up error with a message; without credentials it's ok."""
    with pytest.raises(ValueError, match="List the origins explicitly"):
        Settings(cors_origins="*")
    assert Settings(cors_origins="*", cors_credentials=False).cors_origins == ["*"]


CLOSED = f"Endpoint=http://127.0.0.1;Port={free_port()};AccessKey={KEY};Version=1.0;"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "client", [Settings(connection_string=CLOSED, retry_max_attempts=1)], indirect=True
)
async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    """/healthz answers while alive; /readyz is 503 when the service can't be reached."""
    live = (await client.get("/healthz")).json()
    assert live["status"] == "ok"
    assert live["webhook"]["fire_and_forget_failures"] == 0
    ready = await client.get("/readyz")
    assert ready.status_code == 503


@pytest.mark.anyio
async def test_openapi_documents_negotiate(client: httpx.AsyncClient) -> None:
    """The OpenAPI document lists both negotiate routes with their answer model."""
    spec = (await client.get("/openapi.json")).json()
    assert "/api/negotiate" in spec["paths"]
    assert "/api/{hub}/negotiate" in spec["paths"]
    assert "ConnectionInfoPublic" in json.dumps(spec)
