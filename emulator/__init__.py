"""A local Azure SignalR Service (serverless mode) for development and tests."""

from __future__ import annotations
