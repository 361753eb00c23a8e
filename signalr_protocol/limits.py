"""The limits every JSON text and MessagePack value must meet before the project uses it.

JSON enters from callers the project does not control: gateway and REST bodies, webhook
bodies, negotiate principals, hub messages from clients. Python's decoder accepts things
the rest of the pipeline cannot carry, and fails on others with errors that are not the
caller's fault in appearance (``RecursionError``, a bare ``ValueError``). :func:`loads_json`
decodes with these limits and raises :class:`~signalr_protocol.errors.PayloadError`
(status 400) naming what is wrong and the limit:

=========================  ===============================================================
nesting depth              at most :data:`MAX_DEPTH` (64) nested arrays/objects, the outer
                           one counting 1: System.Text.Json's default ``MaxDepth``, which
                           ASP.NET Core's and the service's JSON hub protocol readers use.
                           Checked before decoding, so 10,000 ``[`` cost a byte count and
                           a scan, never a ``RecursionError``.
integers                   at most :data:`MAX_INT_DIGITS` (4,300) digits, Python's own
                           ``int`` conversion limit; a longer one is refused, not a 500.
``NaN``, ``Infinity``      refused (JSON has no spelling for them), and so are numbers
                           such as ``1e999`` that overflow to an infinity: they could not
                           be written back as JSON.
strings                    valid Unicode text: UTF-8 input that decodes, and no lone
                           surrogate (``"\\ud800"``), which UTF-8, HTTP headers and every
                           other client cannot carry. Surrogate pairs are fine.
=========================  ===============================================================

:func:`check_payload` applies the depth limit to a value decoded from MessagePack (whose
decoder allows far deeper nesting than JSON encoders can write back) and converts its
timestamps to aware :class:`datetime.datetime` (UTC); a timestamp out of ``datetime``'s
range or an extension type with no Python form is refused.

Size limits (bytes per message or body) are the edges' business: they know their setting.
This module does no I/O and imports no web framework.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from itertools import accumulate
from typing import Any, Final

import msgpack

from signalr_protocol.errors import PayloadError

__all__ = [
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "check_payload",
    "check_strings",
    "json_depth",
    "loads_json",
    "nesting_error",
]

MAX_DEPTH: Final = 64
"""Deepest accepted nesting of arrays and objects (the outermost counts 1)."""

MAX_INT_DIGITS: Final = 4300
"""Most digits an integer may have (Python's default ``int`` conversion limit)."""

# A JSON string, unrolled so the regex engine runs it without backtracking.
_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# Only the brackets survive the translation; they map to +1 / -1.
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")
_DELTA: Final = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
# A \uD800-\uDFFF escape: only then can a decoded string hold a surrogate.
_SURROGATE_ESCAPE: Final = re.compile(rb"\\u[dD][89a-fA-F]")


def _reject_constant(name: str) -> Any:
    raise PayloadError(f"{name} is not valid JSON: JSON numbers must be finite.")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise PayloadError(
            f"The number {_preview(text)} is too large: it overflows a 64-bit float to infinity."
        )
    return value


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_decode: Final[Callable[[str], Any]] = _DECODER.decode


def _preview(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def json_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (0 for a scalar).

    Brackets inside strings do not count. Runs in C-speed passes (a regex, a byte
    translation, an accumulation): no recursion, whatever the input.
    """
    if b'\\"' in data:
        outside = _STRING.sub(b"", data)
    else:  # no escaped quote: every quote opens or closes a string, split at them
        outside = b"".join(data.split(b'"')[::2])
    outside = outside.translate(None, _NOT_BRACKETS)
    if not outside:
        return 0
    return max(0, max(accumulate(map(_DELTA.__getitem__, outside))))


def loads_json(
    data: bytes | bytearray | memoryview | str,
    *,
    max_depth: int = MAX_DEPTH,
    lone_surrogates: bool = False,
) -> Any:
    """Decode one JSON text within the limits described in the module docs.

    Args:
        data: UTF-8 bytes or text.
        max_depth: deepest accepted nesting of arrays and objects.
        lone_surrogates: leave ``\\ud800``-style lone surrogates in the decoded strings
            instead of refusing them (the caller checks the strings it uses, with
            :func:`check_strings`); every other limit still applies.

    Raises:
        PayloadError: not valid JSON or UTF-8, or outside a limit; the message says which.
    """
    if isinstance(data, str):
        text = data
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:
            raise _lone_surrogate() from None
    else:
        raw = bytes(data)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadError(
                f"The body is not valid UTF-8 (invalid byte at offset {exc.start})."
            ) from None
    # Cheap first: fewer opening brackets than the limit cannot nest deeper than it.
    if raw.count(b"[") + raw.count(b"{") > max_depth:
        depth = json_depth(raw)
        if depth > max_depth:
            raise _too_deep(depth, max_depth)
    try:
        value = _decode(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"The body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    except RecursionError:  # only when max_depth is above the interpreter's own limit
        raise _too_deep(None, max_depth) from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):
            raise PayloadError(
                f"An integer is too long: at most {MAX_INT_DIGITS:,} digits are accepted."
            ) from None
        raise PayloadError(f"The body is not valid JSON: {exc}.") from None
    if not lone_surrogates and _SURROGATE_ESCAPE.search(raw) is not None:
        check_strings(value)
    return value


def check_payload(value: Any, *, max_depth: int = MAX_DEPTH) -> Any:
    """Check a value decoded from MessagePack against the limits, converting timestamps.

    Returns ``value`` with every :class:`msgpack.Timestamp` replaced by an aware UTC
    :class:`datetime.datetime`; lists and dicts are updated in place (the decoder's output
    is fresh), tuples become lists.

    Raises:
        PayloadError: nesting deeper than ``max_depth``, a timestamp out of ``datetime``'s
            range, or an extension type (:class:`msgpack.ExtType`) with no Python form.
    """
    if type(value) in _SCALARS:
        return value
    return _walk(value, 1, max_depth)


_SCALARS: Final = frozenset({str, int, float, bool, bytes, type(None)})


def _walk(value: Any, depth: int, max_depth: int) -> Any:
    # Recursion is bounded by max_depth (checked before descending), not by the input.
    if isinstance(value, list):
        if depth > max_depth:
            raise _too_deep(None, max_depth)
        for index, item in enumerate(value):
            if type(item) not in _SCALARS:
                converted = _walk(item, depth + 1, max_depth)
                if converted is not item:
                    value[index] = converted
        return value
    if isinstance(value, dict):
        if depth > max_depth:
            raise _too_deep(None, max_depth)
        for key, item in value.items():
            if type(item) not in _SCALARS:
                converted = _walk(item, depth + 1, max_depth)
                if converted is not item:
                    value[key] = converted  # same key: no resize during iteration
        return value
    if isinstance(value, msgpack.Timestamp):
        try:
            return value.to_datetime()
        except (OverflowError, ValueError, OSError):
            raise PayloadError(
                "A MessagePack timestamp is out of range: dates from year 1 to 9999 are accepted."
            ) from None
    if isinstance(value, msgpack.ExtType):
        raise PayloadError(
            f"MessagePack extension type {value.code} is not supported: only the timestamp "
            "extension (-1) has a meaning in the hub protocol."
        )
    if isinstance(value, tuple):  # not produced by the decoder, but treat like a list
        return _walk(list(value), depth, max_depth)
    return value


def check_strings(value: Any) -> None:
    """Refuse a lone surrogate in any string of ``value`` (map keys included).

    Raises:
        PayloadError: a string holds a lone UTF-16 surrogate; the message says so.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            # MessagePack map keys need not be strings: walk them like values.
            stack.extend(item)
            stack.extend(item.values())


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _lone_surrogate() from None


def _lone_surrogate() -> PayloadError:
    return PayloadError(
        "A string holds a lone UTF-16 surrogate (such as \\ud800): strings must be valid "
        "Unicode text; a surrogate is accepted only as half of a pair."
    )


def nesting_error(depth: int | None = None, max_depth: int = MAX_DEPTH) -> PayloadError:
    """The error for a value nested deeper than ``max_depth`` (``depth`` levels if known)."""
    return _too_deep(depth, max_depth)


def _too_deep(depth: int | None, max_depth: int) -> PayloadError:
    found = f" ({depth} levels)" if depth is not None else ""
    return PayloadError(
        f"The value is nested too deeply{found}: at most {max_depth} nested arrays and "
        "objects are accepted."
    )
