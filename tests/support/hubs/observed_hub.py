"""A hub for the observability tests: one method that fails."""

from __future__ import annotations

from app.hub import ServerlessHub

__all__ = ["Observed"]


class Observed(ServerlessHub):
    """``crash`` raises an unexpected error (the log line and the span must show it)."""

    hub_name = "observed"

    async def crash(self, value: str) -> None:
        raise RuntimeError(f"crashed on {value!r}")
