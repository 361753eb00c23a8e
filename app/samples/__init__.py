"""app/samples."""

from __future__ import annotations
