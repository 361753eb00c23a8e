"""Upstream request signatures (docs/protocol.md §4.2).

The service signs each upstream request with every access key it has:
``X-ASRS-Signature: sha256=<hex HMAC-SHA256(key=UTF-8 key, msg=UTF-8 connection id)>``,
entries joined with ``", "``. A receiver accepts the request when any entry matches any
of its keys. Comparisons are constant-time and hex case-insensitive; entries are trimmed
(the Functions extension once failed with a secondary key because it did not trim).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

__all__ = ["compute_signature", "signature_header", "verify_signature"]

_PREFIX = "sha256="


def _digest(connection_id: str, key: str) -> bytes:
    return hmac.new(key.encode("utf-8"), connection_id.encode("utf-8"), hashlib.sha256).digest()


def compute_signature(connection_id: str, key: str) -> str:
    """Return ``sha256=<UPPER HEX>`` for one key, as the service and emulator write it."""
    return _PREFIX + _digest(connection_id, key).hex().upper()


def signature_header(connection_id: str, keys: Sequence[str]) -> str:
    """Return the ``X-ASRS-Signature`` value: one entry per key, joined with ``", "``."""
    return ", ".join(compute_signature(connection_id, key) for key in keys)


def verify_signature(header: str | None, connection_id: str, keys: Sequence[str]) -> bool:
    """Check an ``X-ASRS-Signature`` header against every configured key.

    Args:
        header: the header value (``None`` when absent).
        connection_id: the ``X-ASRS-Connection-Id`` value that was signed.
        keys: the access keys we accept (primary, secondary, other endpoints').

    Returns:
        ``True`` when an entry matches a key. Every entry is compared with every key
        in constant time, so the time taken does not depend on which one matched.
    """
    if not header or not keys:
        return False
    expected = [_digest(connection_id, key) for key in keys]
    matched = False
    for entry in header.split(","):
        entry = entry.strip()
        if entry[: len(_PREFIX)].lower() != _PREFIX:
            continue
        try:
            given = bytes.fromhex(entry[len(_PREFIX) :])
        except ValueError:
            continue
        for digest in expected:
            # Non-short-circuiting OR keeps the loop's timing independent of the match.
            matched |= hmac.compare_digest(given, digest)
    return matched
