"""app/routers."""

from __future__ import annotations
