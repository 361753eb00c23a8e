"""Pydantic models of the HTTP edge (request and response bodies)."""

from __future__ import annotations
