"""A real local Entra ID + accessKey server for the keyless tests.

``LocalAzure`` serves the emulator's ``/identity/`` routes (:mod:`emulator.identity`) and the
service's ``GET /api/v1/auth/accessKey``, which checks the Entra bearer with
``LocalEntraId.verify_service_token`` and answers a :class:`TemporaryKeys` key, on a real
uvicorn port. Switches produce the failures the tests need for real: ``refuse_status``
makes the accessKey route answer that status (a missing role assignment is a 403 from the
service), ``counts`` records how often each route was hit.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator

from emulator.errors import AuthenticationError
from emulator.http import Receive, Request, Scope, Send, json_response
from emulator.identity import LocalEntraId, TemporaryKeys, handle_identity_request
from tests.support.servers import serve_asgi

IDENTITY_HEADER = "test-identity-header"

AZURE_IDENTITY_ENV = (
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
)


class LocalAzure:
    """The ASGI app: local Entra ID plus the service's accessKey route."""

    def __init__(self, rotation: float = 3600.0) -> None:
        self.entra = LocalEntraId(identity_header=IDENTITY_HEADER)
        self.keys = TemporaryKeys(rotation)
        self.refuse_status: int | None = None
        self.counts: Counter[str] = Counter()
        self.base_url = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        path: str = scope["path"]
        self.counts[path] += 1
        if path.startswith("/identity/"):
            await handle_identity_request(self.entra, scope, receive, send)
        elif path == "/api/v1/auth/accessKey":
            await self._access_key(Request(scope), send)
        else:
            await json_response(send, 404, {"error": "not found"})

    async def _access_key(self, request: Request, send: Send) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise AuthenticationError("No bearer.")
            self.entra.verify_service_token(token)
        except AuthenticationError as exc:
            await json_response(send, 401, {"message": exc.message})
            return
        if self.refuse_status is not None:
            await json_response(send, self.refuse_status, {"message": "refused"})
            return
        await json_response(send, 200, self.keys.current().as_json())


@contextlib.asynccontextmanager
async def serve_local_azure(azure: LocalAzure) -> AsyncIterator[LocalAzure]:
    """Serve ``azure`` on a free port; its Entra issuer names that port."""
    async with serve_asgi(azure) as base_url:
        azure.base_url = base_url
        azure.entra.public_base = base_url
        yield azure
