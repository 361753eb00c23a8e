"""Fixtures of the keyless tests: azure-identity's environment and a running LocalAzure."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.keyless_kit import (
    AZURE_IDENTITY_ENV,
    IDENTITY_HEADER,
    LocalAzure,
    serve_local_azure,
)


@pytest.fixture
def managed_identity_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """azure-identity's environment without anything the machine may have set."""
    for name in AZURE_IDENTITY_ENV:
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


@pytest.fixture
async def local_azure(managed_identity_env: pytest.MonkeyPatch) -> AsyncIterator[LocalAzure]:
    """A running LocalAzure, with IDENTITY_ENDPOINT / IDENTITY_HEADER pointing at it."""
    async with serve_local_azure(LocalAzure()) as azure:
        managed_identity_env.setenv("IDENTITY_ENDPOINT", azure.entra.msi_endpoint)
        managed_identity_env.setenv("IDENTITY_HEADER", IDENTITY_HEADER)
        yield azure
