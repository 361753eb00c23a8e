"""Fixtures of the hub unit tests."""

from __future__ import annotations

import pytest

from tests.support.hubkit import RecordingService


@pytest.fixture
def service() -> RecordingService:
    """A fresh recording outbound service."""
    return RecordingService()
