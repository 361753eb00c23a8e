"""The JSON and MessagePack payload limits (signalr_protocol.limits)."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from signalr_protocol.errors import PayloadError, SignalRError
from signalr_protocol.limits import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    check_payload,
    json_depth,
    loads_json,
)

FAST = settings(max_examples=300, deadline=None, database=None)


def nested(depth: int, inner: str = "1") -> str:
    """A JSON text of ``depth`` nested arrays around ``inner``."""
    return "[" * depth + inner + "]" * depth


def test_default_depth_is_system_text_json_default() -> None:
    """The default depth limit is 64, System.Text.Json's default MaxDepth.

    ASP.NET Core's JSON hub protocol reads each message with ``new Utf8JsonReader(input,
    isFinalBlock: true, state: default)``, i.e. default reader options, whose MaxDepth is 64
    (dotnet/aspnetcore src/SignalR/common/Protocols.Json/src/Protocol/JsonHubProtocol.cs).
    """
    assert MAX_DEPTH == 64
    assert loads_json(nested(64)) is not None
    with pytest.raises(PayloadError, match="at most 64"):
        loads_json(nested(65))


def test_deep_nesting_refused_without_recursion_error() -> None:
    """Nesting 10,000 and 1,000,000 deep is a PayloadError naming the depth and the limit."""
    for depth in (10_000, 1_000_000):
        with pytest.raises(PayloadError) as info:
            loads_json(nested(depth).encode())
        assert f"({depth} levels)" in info.value.message
        assert "at most 64 nested arrays and objects" in info.value.message
    objects = '{"a":' * 10_000 + "1" + "}" * 10_000
    with pytest.raises(PayloadError, match="nested too deeply"):
        loads_json(objects)


def test_brackets_inside_strings_do_not_count() -> None:
    """Brackets inside strings (with or without escaped quotes) are text, not nesting."""
    text = json.dumps({"a": ["[" * 500, '\\"[[[' * 100, "]" * 500]})
    assert loads_json(text) == json.loads(text)
    assert json_depth(b'["]]]]",[[[1]]]]') == 4
    assert json_depth(b'["\\"]]", [[1]]]') == 3
    assert json_depth(b"1") == 0


def test_custom_max_depth() -> None:
    """The depth limit is a parameter."""
    assert loads_json(nested(3), max_depth=3) == [[[1]]]
    with pytest.raises(PayloadError, match="at most 2 nested"):
        loads_json(nested(3), max_depth=2)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_constants_refused(constant: str) -> None:
    """NaN and the infinities are not JSON: refused with a message saying numbers must be finite."""
    with pytest.raises(PayloadError, match=f"{constant} is not valid JSON"):
        loads_json(f'{{"target":"t","arguments":[{constant}]}}')


def test_overflowing_number_refused() -> None:
    """1e999 would decode to an infinity that cannot be written back: refused as too large."""
    with pytest.raises(PayloadError, match="1e999 is too large"):
        loads_json("[1e999]")
    assert loads_json("[1e308, -1.5e-300]") == [1e308, -1.5e-300]


def test_integer_digits_limit() -> None:
    """An integer of more than 4,300 digits is a PayloadError naming the limit, not a ValueError."""
    assert MAX_INT_DIGITS == 4300
    assert loads_json("9" * 4300) == int("9" * 4300)
    with pytest.raises(PayloadError, match="at most 4,300 digits"):
        loads_json("[" + "1" * 5000 + "]")


def test_lone_surrogates_refused() -> None:
    """A lone surrogate, escaped or raw, in a value or a key, is refused; a pair is fine."""
    for text in ['"\\ud800"', '["x", "\\udfff"]', '{"\\uDC00": 1}', '"a\\ud83d"', '"\ud800"']:
        with pytest.raises(PayloadError, match="lone UTF-16 surrogate"):
            loads_json(text)
    assert loads_json('"\\ud83d\\ude00"') == "\U0001f600"
    assert loads_json('"\\\\ud800"') == "\\ud800"  # an escaped backslash, not an escape


def test_invalid_utf8_and_invalid_json() -> None:
    """Bytes that are not UTF-8, or text that is not JSON, say so with a position."""
    with pytest.raises(PayloadError, match="not valid UTF-8"):
        loads_json(b'["\xff"]')
    with pytest.raises(PayloadError, match=r"not valid JSON: .*line 1, column"):
        loads_json("{")
    with pytest.raises(PayloadError, match="not valid JSON"):
        loads_json("")


def test_payload_error_is_a_400_signalr_error() -> None:
    """PayloadError hangs from the core root and tells an edge to answer 400."""
    assert issubclass(PayloadError, SignalRError)
    assert PayloadError.status_code == 400


def test_common_case_stays_fast() -> None:
    """A large ordinary body decodes within a small factor of json.loads (best of five runs
    each, alternating, so a busy machine slows both alike)."""
    body = json.dumps([{"a": i, "b": [1, 2, {"c": "x[y"}]} for i in range(20_000)]).encode()
    plain = json.loads(body)
    assert loads_json(body) == plain
    baseline = checked = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        json.loads(body)
        baseline = min(baseline, time.perf_counter() - start)
        start = time.perf_counter()
        loads_json(body)
        checked = min(checked, time.perf_counter() - start)
    assert checked < baseline * 6 + 0.05


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@FAST
@given(json_values, st.booleans())
def test_valid_json_roundtrips(value: Any, ascii_only: bool) -> None:
    """Any JSON value within the limits decodes as json.loads does, from bytes or text."""
    try:
        text = json.dumps(value, ensure_ascii=ascii_only)
        text.encode("utf-8")
    except UnicodeEncodeError:
        # st.text() may produce lone surrogates: they must be refused.
        with pytest.raises(PayloadError, match="surrogate"):
            loads_json(json.dumps(value))
        return
    assert loads_json(text) == json.loads(text)
    assert loads_json(text.encode()) == json.loads(text)


@FAST
@given(st.text(alphabet='[]{}"\\,:1a ', max_size=200))
def test_arbitrary_text_is_a_value_or_payload_error(text: str) -> None:
    """Arbitrary bracket soup either decodes or raises PayloadError, never anything else."""
    try:
        loads_json(text, max_depth=3)
    except PayloadError:
        pass


def test_check_payload_depth() -> None:
    """A MessagePack value nested deeper than the limit (e.g. ~990) is refused, 64 is fine."""
    decoded = msgpack.unpackb(b"\x91" * 990 + b"\x01")  # 990 one-item arrays around 1
    with pytest.raises(PayloadError, match="at most 64 nested"):
        check_payload(decoded)
    ok = msgpack.unpackb(msgpack.packb(json.loads(nested(64))))
    assert check_payload(ok) is ok
    assert check_payload({"a": [{"b": 1}]}, max_depth=3) == {"a": [{"b": 1}]}
    with pytest.raises(PayloadError):
        check_payload({"a": [{"b": [1]}]}, max_depth=3)
    assert sys.getrecursionlimit() > MAX_DEPTH


def test_check_payload_timestamps_and_ext_types() -> None:
    """Timestamps become aware UTC datetimes; unknown ext types and out-of-range ones: refused."""
    when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
    packed = msgpack.packb([{"at": msgpack.Timestamp.from_datetime(when)}, "x"])
    decoded = msgpack.unpackb(packed, timestamp=0)
    assert check_payload(decoded) == [{"at": when}, "x"]
    with pytest.raises(PayloadError, match="extension type 5 is not supported"):
        check_payload([msgpack.ExtType(5, b"zz")])
    far = msgpack.Timestamp(seconds=2**40)
    with pytest.raises(PayloadError, match="timestamp is out of range"):
        check_payload([far])
    plain = ["a", 1, {"b": None}]
    assert check_payload(plain) is plain
