"""Tests of the SignalR handshake (signalr_protocol.handshake)."""

from __future__ import annotations

import pytest

from signalr_protocol.codec import JSON_CODEC, MSGPACK_CODEC
from signalr_protocol.errors import HandshakeError, HubProtocolError
from signalr_protocol.handshake import (
    MAX_HANDSHAKE_SIZE,
    HandshakeParser,
    encode_handshake_request,
    encode_handshake_response,
    parse_handshake_response,
    select_codec,
)
from signalr_protocol.messages import HandshakeRequest, PingMessage


def test_parses_the_js_client_request_in_one_chunk() -> None:
    """The official client's request parses to protocol and version with nothing remaining."""
    parser = HandshakeParser()
    request = parser.feed(b'{"protocol":"json","version":1}\x1e')
    assert request == HandshakeRequest("json", 1)
    assert parser.request == request
    assert parser.remaining == b""


def test_request_fed_byte_by_byte_completes_on_the_terminator() -> None:
    """A request split into single bytes yields None until the 0x1E arrives."""
    data = encode_handshake_request("messagepack", 1)
    parser = HandshakeParser()
    results = [parser.feed(data[i : i + 1]) for i in range(len(data))]
    assert results[:-1] == [None] * (len(data) - 1)
    assert results[-1] == HandshakeRequest("messagepack", 1)


def test_bytes_after_the_terminator_are_kept_for_the_hub_parser() -> None:
    """Hub messages sent in the same chunk as the handshake end up in ``remaining``."""
    ping = MSGPACK_CODEC.encode(PingMessage())
    parser = HandshakeParser()
    parser.feed(b'{"protocol":"messagepack",')
    assert parser.feed(b'"version":1}\x1e' + ping + ping) is not None
    assert parser.remaining == ping + ping
    assert MSGPACK_CODEC.new_parser().feed(parser.remaining) == [PingMessage(), PingMessage()]


def test_unknown_properties_are_ignored() -> None:
    """Extra properties in the request do not matter."""
    parser = HandshakeParser()
    assert parser.feed(b'{"protocol":"json","version":2,"x":[1]}\x1e') == HandshakeRequest(
        "json", 2
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"nope\x1e", "not valid JSON"),
        (b"\xff\x1e", "not valid JSON"),
        (b"[]\x1e", "must be a JSON object"),
        (b'{"version":1}\x1e', "Missing required property 'protocol'"),
        (b'{"protocol":"json"}\x1e', "Missing required property 'version'"),
        (b'{"protocol":1,"version":1}\x1e', "'protocol' must be a string"),
        (b'{"protocol":"json","version":"1"}\x1e', "'version' must be an integer"),
        (b'{"protocol":"json","version":true}\x1e', "'version' must be an integer"),
    ],
)
def test_bad_requests_raise_handshake_error(data: bytes, reason: str) -> None:
    """Malformed requests raise HandshakeError (a HubProtocolError) with a clear close reason."""
    with pytest.raises(HandshakeError) as info:
        HandshakeParser().feed(data)
    assert reason in info.value.close_reason
    assert isinstance(info.value, HubProtocolError)


def test_request_over_the_size_limit_is_refused_without_terminator() -> None:
    """A request growing past max_size without a terminator is refused at once."""
    parser = HandshakeParser(max_size=64)
    assert parser.feed(b"{" + b" " * 60) is None
    with pytest.raises(HandshakeError, match="maximum size of 64 bytes"):
        parser.feed(b" " * 10)


def test_request_over_the_size_limit_is_refused_with_terminator() -> None:
    """A terminated request longer than max_size is refused too."""
    with pytest.raises(HandshakeError, match="maximum size"):
        HandshakeParser(max_size=10).feed(b'{"protocol":"json","version":1}\x1e')
    assert MAX_HANDSHAKE_SIZE == 16 * 1024


def test_feeding_after_completion_is_a_programming_error() -> None:
    """Once the request is parsed, the driver must switch to the hub parser."""
    parser = HandshakeParser()
    parser.feed(encode_handshake_request("json"))
    with pytest.raises(RuntimeError, match="already complete"):
        parser.feed(b"{}")


def test_select_codec_accepts_supported_protocols_and_versions() -> None:
    """json and messagepack, versions 1 and 2, select their codecs."""
    assert select_codec(HandshakeRequest("json", 1)) is JSON_CODEC
    assert select_codec(HandshakeRequest("messagepack", 2)) is MSGPACK_CODEC


def test_select_codec_refuses_unknown_protocol_and_version() -> None:
    """An unknown protocol or a too-new version raises HandshakeError with the reply text."""
    with pytest.raises(HandshakeError) as info:
        select_codec(HandshakeRequest("xml", 1))
    assert info.value.close_reason == "The protocol 'xml' is not supported."
    with pytest.raises(HandshakeError) as info:
        select_codec(HandshakeRequest("json", 3))
    assert (
        info.value.close_reason == "The server does not support version 3 of the 'json' protocol."
    )


def test_response_encoding_is_byte_exact() -> None:
    """Success is ``{}`` + 0x1E; failure is ``{"error": ...}`` + 0x1E."""
    assert encode_handshake_response() == b"{}\x1e"
    assert encode_handshake_response('bad "x"') == b'{"error":"bad \\"x\\""}\x1e'


def test_request_encoding_is_what_the_js_client_sends() -> None:
    """The test-client request is compact JSON plus 0x1E."""
    assert encode_handshake_request("json") == b'{"protocol":"json","version":1}\x1e'


def test_parse_response_splits_error_and_rest() -> None:
    """A response parses to its error (None on success) and the bytes that followed it."""
    ping = JSON_CODEC.encode(PingMessage())
    assert parse_handshake_response(b"{}\x1e" + ping) == (None, ping)
    assert parse_handshake_response(encode_handshake_response("no")) == ("no", b"")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{}", "Incomplete"),
        (b"x\x1e", "not valid JSON"),
        (b'{"type":6}\x1e', "Expected a handshake response"),
        (b'{"error":1}\x1e', "must be a string"),
    ],
)
def test_parse_response_refuses_bad_responses(data: bytes, reason: str) -> None:
    """Incomplete, non-JSON, hub-message or mistyped responses raise HandshakeError."""
    with pytest.raises(HandshakeError, match=reason):
        parse_handshake_response(data)
