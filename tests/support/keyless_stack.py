"""A keyless local stack for tests: the emulator with local auth disabled, and the backend
signing in with a managed identity the emulator provides, on free ports.

Use::

    async with keyless_stack(tmp_dir, monkeypatch) as stack:
        stack.emulator   # RunningEmulator (keyless: its connection string has AuthType=azure.msi)
        stack.backend    # the backend's base URL
        stack.app        # the backend's FastAPI app (app.state.signalr once started)

The emulator's upstream ``settings.json`` template carries the ``ManagedIdentity`` auth block
(resource :data:`RESOURCE`), so upstream calls have a bearer the backend's webhook checks;
``IDENTITY_ENDPOINT`` / ``IDENTITY_HEADER`` point azure-identity at the emulator.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings
from emulator.identity import DEFAULT_TENANT_ID
from tests.support.emulator import RunningEmulator, running_emulator
from tests.support.keyless_kit import AZURE_IDENTITY_ENV, IDENTITY_HEADER
from tests.support.servers import serve_asgi

__all__ = ["HUBS", "RESOURCE", "WEBHOOK", "KeylessStack", "keyless_stack", "write_keyless_upstream"]

HUBS = ["app.samples.chat:ChatHub", "tests.support.hubs.probe_hub:Probe"]
RESOURCE = "api://serverless-signalr-tests"
WEBHOOK = "/runtime/webhooks/signalr"


def write_keyless_upstream(path: Path, url: str, resource: str = RESOURCE) -> Path:
    """An asrs-emulator ``settings.json`` sending every event to ``url`` with a bearer."""
    template = {
        "UrlTemplate": url,
        "HubPattern": "*",
        "CategoryPattern": "*",
        "EventPattern": "*",
        "Auth": {"Type": "ManagedIdentity", "ManagedIdentity": {"Resource": resource}},
    }
    path.write_text(json.dumps({"UpstreamSettings": {"Templates": [template]}}), "utf-8")
    return path


@dataclass
class KeylessStack:
    """A running keyless emulator and backend, wired together."""

    emulator: RunningEmulator
    backend: str
    settings: Settings
    app: FastAPI


def keyless_settings(emu: RunningEmulator, **overrides: Any) -> Settings:
    """Backend settings for a keyless emulator (its identity endpoint, tenant and issuer)."""
    values: dict[str, Any] = {
        "connection_string": emu.connection_string,
        "hubs": list(HUBS),
        "upstream_audience": RESOURCE,
        "upstream_tenant_id": DEFAULT_TENANT_ID,
        "upstream_authority": f"{emu.base_url}/identity",
        "access_key_retry_interval": 0.3,
        **overrides,
    }
    return Settings(**values)


def use_emulator_identity(monkeypatch: pytest.MonkeyPatch, emu: RunningEmulator) -> None:
    """azure-identity's App Service managed identity = the emulator's identity endpoint."""
    for name in AZURE_IDENTITY_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{emu.base_url}/identity/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", IDENTITY_HEADER)


@contextlib.asynccontextmanager
async def keyless_stack(
    directory: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    backend: dict[str, Any] | None = None,
    **emulator_settings: Any,
) -> AsyncIterator[KeylessStack]:
    """Start the keyless emulator and the backend; stop both on exit."""
    config = write_keyless_upstream(directory / "settings.json", "http://127.0.0.1:9" + WEBHOOK)
    async with running_emulator(
        config=config, keyless=True, identity_header=IDENTITY_HEADER, **emulator_settings
    ) as emu:
        use_emulator_identity(monkeypatch, emu)
        settings = keyless_settings(emu, **(backend or {}))
        app = create_app(settings)
        async with serve_asgi(app) as base_url:
            write_keyless_upstream(config, base_url + WEBHOOK)
            emu.app.templates.reload()  # type: ignore[attr-defined]
            yield KeylessStack(emulator=emu, backend=base_url, settings=settings, app=app)
