"""Upstream signatures are computed and checked as the service and Functions do."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from signalr_protocol.signature import compute_signature, signature_header, verify_signature

KEY1, KEY2 = "primary-key", "secondary-key"


def hexsig(key: str, cid: str) -> str:
    return hmac.new(key.encode(), cid.encode(), hashlib.sha256).hexdigest()


def test_signature_is_hmac_sha256_of_connection_id_upper_hex() -> None:
    """The value is sha256= + upper-case hex HMAC of the connection id."""
    assert compute_signature("conn", KEY1) == "sha256=" + hexsig(KEY1, "conn").upper()


def test_header_lists_every_key() -> None:
    """One entry per key, joined with ', '."""
    header = signature_header("c", [KEY1, KEY2])
    assert header.split(", ") == [compute_signature("c", KEY1), compute_signature("c", KEY2)]


@pytest.mark.parametrize(
    "header",
    [
        f"sha256={hexsig(KEY1, 'c')}",
        f"sha256={hexsig(KEY1, 'c').upper()}",
        f"SHA256={hexsig(KEY1, 'c')}",
        f"sha256=00, sha256={hexsig(KEY2, 'c')}",
        f"  sha256={hexsig(KEY2, 'c')}  ,sha256=ff",
        f"garbage,sha256=zz,sha256={hexsig(KEY1, 'c')}",
    ],
)
def test_valid_headers_in_any_case_order_and_spacing(header: str) -> None:
    """Hex case, entry order, whitespace and junk entries don't matter if one key matches."""
    assert verify_signature(header, "c", [KEY1, KEY2])


@pytest.mark.parametrize(
    "header",
    [None, "", "sha256=", "sha256=zz", f"sha256={hexsig('other', 'c')}", hexsig(KEY1, "c")],
)
def test_invalid_headers(header: str | None) -> None:
    """Missing, empty, non-hex, wrong-key and unprefixed signatures are refused."""
    assert not verify_signature(header, "c", [KEY1, KEY2])


def test_signature_is_bound_to_the_connection_id() -> None:
    """A signature for one connection id does not verify another."""
    assert not verify_signature(compute_signature("a", KEY1), "b", [KEY1])


def test_no_keys_means_nothing_verifies() -> None:
    """With no configured keys, no signature is accepted."""
    assert not verify_signature(compute_signature("a", KEY1), "a", [])
