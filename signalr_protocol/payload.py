"""The one conversion policy for the values hub messages carry (arguments and results).

A handler may return, and a sender may pass, any of the usual Python values; the hub
protocols carry JSON values plus binary (docs/protocol.md §3.5–3.6). Every place that turns
one into the other uses this module, so a value is converted the same way whether it travels
in a webhook completion, a REST call or a frame the emulator writes:

=================================  ======================================================
``None``, ``str``, ``int``,         unchanged
``float``, ``bool``
``bytes``, ``bytearray``,           ``bytes`` (:func:`to_jsonable`); standard base64 text
``memoryview``                      when written as JSON (:func:`json_default`)
``list``, ``tuple``, ``set``,       a list, items converted
``frozenset``
any mapping                         a ``dict`` with ``str`` keys, values converted
dataclass instance                  a ``dict`` of its fields, values converted
``datetime``, ``date``, ``time``    ISO 8601 text (``isoformat()``, ``+00:00`` for UTC)
pydantic model                      what the model's own JSON serialisation gives
``UUID``, ``Enum``, ``Decimal``,    what pydantic's :func:`~pydantic_core.to_jsonable_python`
``timedelta`` and the like          gives (text, the member's value, ISO 8601 durations …)
anything else                       :class:`TypeError`
=================================  ======================================================

``NaN`` and the infinities are floats here; JSON has no spelling for them, so every JSON
encoder of the project (:func:`dumps`, the codec's) refuses them with :class:`ValueError`,
while MessagePack carries them.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, Final

from pydantic_core import PydanticSerializationError, to_jsonable_python

__all__ = ["dumps", "json_default", "to_jsonable"]

_PLAIN: Final = (str, int, float, bool, bytes)


def to_jsonable(value: Any) -> Any:
    """Convert ``value`` to what the hub protocols carry: JSON values, plus ``bytes``.

    ``bytes`` stay binary so MessagePack can send them as ``bin``; JSON writers turn them
    into base64 text through :func:`json_default`. See the module docs for the table.

    Raises:
        TypeError: the value (or one inside it) has no JSON form.
    """
    if value is None or isinstance(value, _PLAIN):
        return value
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: to_jsonable(getattr(value, field.name))
            for field in dataclasses.fields(value)
        }
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    try:
        return to_jsonable_python(value)
    except PydanticSerializationError:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable") from None


def json_default(value: Any) -> Any:
    """The ``default`` hook of a :class:`json.JSONEncoder`: binary as base64, the rest per policy.

    Raises:
        TypeError: the value has no JSON form.
    """
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    return to_jsonable(value)


_ENCODER: Final = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=json_default
)
_ENCODER_ASCII: Final = json.JSONEncoder(
    ensure_ascii=True, allow_nan=False, separators=(",", ":"), default=json_default
)


def dumps(value: Any, *, ensure_ascii: bool = False) -> str:
    """Write ``value`` as compact JSON under the policy.

    Args:
        value: what to write.
        ensure_ascii: escape every non-ASCII character (``\\u`` escapes also carry lone
            surrogates, which UTF-8 cannot).

    Raises:
        TypeError: a value has no JSON form.
        ValueError: a float is ``NaN`` or infinite.
    """
    return (_ENCODER_ASCII if ensure_ascii else _ENCODER).encode(value)
