"""Tests of the JSON and MessagePack hub protocol codecs (signalr_protocol.codec)."""

from __future__ import annotations

import datetime as dt
import json

import msgpack
import pytest

from signalr_protocol.codec import (
    JSON_CODEC,
    MAX_FRAME_SIZE,
    MSGPACK_CODEC,
    HubCodec,
    encode_varint,
    get_codec,
)
from signalr_protocol.errors import HandshakeError, HubProtocolError, MessageTooLargeError
from signalr_protocol.messages import (
    AckMessage,
    CancelInvocationMessage,
    CloseMessage,
    CompletionMessage,
    HubMessage,
    InvocationBindingFailureMessage,
    InvocationMessage,
    PingMessage,
    SequenceMessage,
    StreamInvocationMessage,
    StreamItemMessage,
)

CODECS = [JSON_CODEC, MSGPACK_CODEC]

EVERY_MESSAGE: list[HubMessage] = [
    InvocationMessage("send", ["hi", 1, None, {"a": [1, 2]}]),
    InvocationMessage("echo", (42,), invocation_id="7", headers={"h": "v"}),
    InvocationMessage("upload", [], invocation_id="8", stream_ids=("s1", "s2")),
    StreamItemMessage("9", {"x": 1}),
    StreamItemMessage("9", None, headers={"a": "b"}),
    CompletionMessage.void("1"),
    CompletionMessage.with_result("2", [1, "two"]),
    CompletionMessage.with_result("3", None),
    CompletionMessage.with_error("4", "boom"),
    CompletionMessage("5", result=False, has_result=True, headers={"k": "v"}),
    StreamInvocationMessage("10", "counter", [3, 0.5], stream_ids=["s"]),
    CancelInvocationMessage("10"),
    CancelInvocationMessage("11", headers={"x": "y"}),
    PingMessage(),
    CloseMessage(),
    CloseMessage("bye"),
    CloseMessage("bye", allow_reconnect=True),
    CloseMessage(None, allow_reconnect=True),
    AckMessage(1394),
    SequenceMessage(0),
    SequenceMessage(2**40),
]


def ids(message: HubMessage) -> str:
    return repr(message)[:60]


def hexbytes(text: str) -> bytes:
    return bytes(int(part, 16) for part in text.split())


# ---------------------------------------------------------------------------------- fixtures


# Payloads from dotnet/aspnetcore src/SignalR/docs/specs/HubProtocol.md (MessagePack section).
MSGPACK_SPEC = [
    (
        "0x96 0x01 0x80 0xa3 0x78 0x79 0x7a 0xa6 0x6d 0x65 0x74 0x68 0x6f 0x64 0x91 0x2a 0x90",
        InvocationMessage("method", [42], invocation_id="xyz"),
    ),
    (
        "0x96 0x01 0x80 0xc0 0xa6 0x6d 0x65 0x74 0x68 0x6f 0x64 0x91 0x2a 0x90",
        InvocationMessage("method", [42]),
    ),
    (
        "0x96 0x04 0x80 0xa3 0x78 0x79 0x7a 0xa6 0x6d 0x65 0x74 0x68 0x6f 0x64 0x91 0x2a 0x90",
        StreamInvocationMessage("xyz", "method", [42]),
    ),
    ("0x94 0x02 0x80 0xa3 0x78 0x79 0x7a 0x2a", StreamItemMessage("xyz", 42)),
    (
        "0x95 0x03 0x80 0xa3 0x78 0x79 0x7a 0x01 0xa5 0x45 0x72 0x72 0x6f 0x72",
        CompletionMessage.with_error("xyz", "Error"),
    ),
    ("0x94 0x03 0x80 0xa3 0x78 0x79 0x7a 0x02", CompletionMessage.void("xyz")),
    ("0x95 0x03 0x80 0xa3 0x78 0x79 0x7a 0x03 0x2a", CompletionMessage.with_result("xyz", 42)),
    ("0x93 0x05 0x80 0xa3 0x78 0x79 0x7a", CancelInvocationMessage("xyz")),
    ("0x91 0x06", PingMessage()),
    ("0x92 0x07 0xa3 0x78 0x79 0x7a", CloseMessage("xyz")),
    ("0x93 0x07 0xa3 0x78 0x79 0x7a 0xc3", CloseMessage("xyz", allow_reconnect=True)),
    ("0x92 0x08 0x24", AckMessage(36)),
    ("0x92 0x09 0x13", SequenceMessage(19)),
    (
        "0x96 0x01 0x82 0xa1 0x78 0xa1 0x79 0xa1 0x7a 0xa1 0x7a 0xa3 0x78 0x79 0x7a 0xa6 0x6d "
        "0x65 0x74 0x68 0x6f 0x64 0x91 0x2a 0x90",
        InvocationMessage("method", [42], invocation_id="xyz", headers={"x": "y", "z": "z"}),
    ),
]


@pytest.mark.parametrize(("payload", "message"), MSGPACK_SPEC, ids=[m[0] for m in MSGPACK_SPEC])
def test_msgpack_encodes_spec_payloads_byte_exact(payload: str, message: HubMessage) -> None:
    """Each MessagePack example payload of the ASP.NET Core spec is produced byte for byte."""
    assert MSGPACK_CODEC.encode_payload(message) == hexbytes(payload)


@pytest.mark.parametrize(("payload", "message"), MSGPACK_SPEC, ids=[m[0] for m in MSGPACK_SPEC])
def test_msgpack_decodes_spec_payloads(payload: str, message: HubMessage) -> None:
    """Each MessagePack example payload of the ASP.NET Core spec decodes to the right message."""
    assert MSGPACK_CODEC.decode_payload(hexbytes(payload)) == message


def test_msgpack_spec_ack_with_uint8_prefix_decodes() -> None:
    """The spec's Ack example written with a 0xcc uint8 (any int size is fine) decodes."""
    assert MSGPACK_CODEC.decode_payload(hexbytes("0x92 0x08 0xcc 0x24")) == AckMessage(36)
    assert MSGPACK_CODEC.decode_payload(hexbytes("0x92 0x09 0xcc 0x13")) == SequenceMessage(19)


def test_msgpack_ping_frame_is_exactly_0x91_0x06_with_prefix() -> None:
    """A framed MessagePack ping is the length byte 2 followed by 0x91 0x06."""
    assert MSGPACK_CODEC.encode(PingMessage()) == b"\x02\x91\x06"
    assert MSGPACK_CODEC.encode_payload(PingMessage()) == b"\x91\x06"


def test_msgpack_invocation_without_stream_ids_item_decodes() -> None:
    """A 5-item Invocation (what the JS client sends with no streams) decodes."""
    body = msgpack.packb([1, {}, "0", "echo", ["x"]])
    assert MSGPACK_CODEC.decode_payload(body) == InvocationMessage("echo", ["x"], "0")


def test_msgpack_bytes_travel_as_bin() -> None:
    """bytes arguments are msgpack bin (0xc4) and come back as bytes."""
    message = InvocationMessage("blob", [b"\x00\x01\xff"])
    payload = MSGPACK_CODEC.encode_payload(message)
    assert b"\xc4\x03\x00\x01\xff" in payload
    assert MSGPACK_CODEC.decode_payload(payload) == message


def test_msgpack_extra_array_items_are_ignored() -> None:
    """Extra trailing items (a newer protocol) are ignored, not refused."""
    body = msgpack.packb([3, {}, "1", 2, "extra"])
    assert MSGPACK_CODEC.decode_payload(body) == CompletionMessage.void("1")


# JSON examples from the same spec (JSON section), written compactly.
JSON_SPEC = [
    (
        '{"type":1,"invocationId":"123","target":"Send","arguments":[42,"Test Message"]}',
        InvocationMessage("Send", [42, "Test Message"], invocation_id="123"),
    ),
    (
        '{"type":1,"target":"Send","arguments":[42,"Test Message"]}',
        InvocationMessage("Send", [42, "Test Message"]),
    ),
    (
        '{"type":1,"invocationId":"123","target":"Send","arguments":[42],"streamIds":["1"]}',
        InvocationMessage("Send", [42], invocation_id="123", stream_ids=["1"]),
    ),
    (
        '{"type":4,"invocationId":"123","target":"Send","arguments":[42,"Test Message"]}',
        StreamInvocationMessage("123", "Send", [42, "Test Message"]),
    ),
    ('{"type":2,"invocationId":"123","item":42}', StreamItemMessage("123", 42)),
    ('{"type":3,"invocationId":"123","result":42}', CompletionMessage.with_result("123", 42)),
    (
        '{"type":3,"invocationId":"123","error":"It didn\'t work!"}',
        CompletionMessage.with_error("123", "It didn't work!"),
    ),
    ('{"type":3,"invocationId":"123"}', CompletionMessage.void("123")),
    ('{"type":3,"invocationId":"123","result":null}', CompletionMessage.with_result("123", None)),
    ('{"type":5,"invocationId":"123"}', CancelInvocationMessage("123")),
    ('{"type":6}', PingMessage()),
    ('{"type":7}', CloseMessage()),
    (
        '{"type":7,"error":"Connection closed because of an error!"}',
        CloseMessage("Connection closed because of an error!"),
    ),
    (
        '{"type":7,"error":"Server shutting down","allowReconnect":true}',
        CloseMessage("Server shutting down", allow_reconnect=True),
    ),
    ('{"type":8,"sequenceId":1394}', AckMessage(1394)),
    ('{"type":9,"sequenceId":1234}', SequenceMessage(1234)),
    (
        '{"type":1,"headers":{"Foo":"Bar"},"invocationId":"123","target":"Send",'
        '"arguments":[42,"Test Message"]}',
        InvocationMessage(
            "Send", [42, "Test Message"], invocation_id="123", headers={"Foo": "Bar"}
        ),
    ),
]


@pytest.mark.parametrize(("text", "message"), JSON_SPEC, ids=[t for t, _ in JSON_SPEC])
def test_json_encodes_spec_examples_byte_exact(text: str, message: HubMessage) -> None:
    """Each JSON example of the spec is produced exactly (compact, same key order) plus 0x1E."""
    assert JSON_CODEC.encode(message) == text.encode() + b"\x1e"
    assert JSON_CODEC.encode_payload(message) == text.encode()


@pytest.mark.parametrize(("text", "message"), JSON_SPEC, ids=[t for t, _ in JSON_SPEC])
def test_json_decodes_spec_examples(text: str, message: HubMessage) -> None:
    """Each JSON example of the spec, pretty-printed as there, decodes to the right message."""
    pretty = json.dumps(json.loads(text), indent=4).encode()
    assert JSON_CODEC.decode_payload(pretty) == message
    assert JSON_CODEC.new_parser().feed(pretty + b"\x1e") == [message]


def test_json_omits_empty_headers_and_keeps_non_empty() -> None:
    """JSON ``headers`` is left out when empty and written when set."""
    assert b"headers" not in JSON_CODEC.encode(CancelInvocationMessage("1"))
    assert JSON_CODEC.encode_payload(CancelInvocationMessage("1", headers={"a": "b"})) == (
        b'{"type":5,"headers":{"a":"b"},"invocationId":"1"}'
    )


def test_json_bytes_are_base64() -> None:
    """bytes arguments are written as base64 strings in JSON."""
    payload = JSON_CODEC.encode_payload(InvocationMessage("blob", [b"\x00\x01\xff"]))
    assert json.loads(payload)["arguments"] == ["AAH/"]


def test_json_non_ascii_is_utf8_and_lone_surrogates_are_escaped() -> None:
    """Text is UTF-8 on the wire; a lone surrogate is written as a \\u escape, refused on read.

    Decoding refuses it as System.Text.Json does (its reader cannot unescape invalid UTF-16
    into a string), so no handler, header or log line ever holds one
    (signalr_protocol.limits): an invocation's arguments give a binding failure.
    """
    assert JSON_CODEC.encode_payload(InvocationMessage("t", ["é😀"])) == (
        '{"type":1,"target":"t","arguments":["é😀"]}'.encode()
    )
    payload = JSON_CODEC.encode_payload(InvocationMessage("t", ["\ud800"]))
    assert b"\\ud800" in payload
    refused = JSON_CODEC.decode_payload(payload)
    assert isinstance(refused, InvocationBindingFailureMessage)
    assert "lone UTF-16 surrogate" in refused.error
    pair = JSON_CODEC.encode_payload(InvocationMessage("t", ["\U0001f600"]))
    assert JSON_CODEC.decode_payload(pair) == InvocationMessage("t", ["\U0001f600"])


def test_json_accepts_unknown_properties() -> None:
    """Unknown extra properties are ignored (forward compatibility)."""
    body = b'{"type":1,"target":"x","arguments":[],"future":{"a":1},"invocationId":null}'
    assert JSON_CODEC.decode_payload(body) == InvocationMessage("x", [])


def test_json_decode_payload_tolerates_one_trailing_separator() -> None:
    """An upstream body that still carries its 0x1E decodes."""
    assert JSON_CODEC.decode_payload(b'{"type":6}\x1e') == PingMessage()


def test_completion_result_sets_has_result_and_refuses_error_with_result() -> None:
    """A non-None result implies has_result; a result together with an error is refused."""
    assert CompletionMessage("1", result=0).has_result
    with pytest.raises(ValueError, match="either a result or an error"):
        CompletionMessage("1", result=1, error="e")


def test_arguments_are_normalised_to_tuples() -> None:
    """Lists and tuples of arguments give equal messages."""
    assert InvocationMessage("a", [1, 2], stream_ids=["s"]) == InvocationMessage(
        "a", (1, 2), stream_ids=("s",)
    )


# -------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@pytest.mark.parametrize("message", EVERY_MESSAGE, ids=ids)
def test_every_message_round_trips(codec: HubCodec, message: HubMessage) -> None:
    """Every message type survives encode → parse and encode_payload → decode_payload."""
    assert codec.new_parser().feed(codec.encode(message)) == [message]
    assert codec.decode_payload(codec.encode_payload(message)) == message


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_byte_by_byte_feeding_yields_every_message_once(codec: HubCodec) -> None:
    """Feeding a stream one byte at a time gives each message exactly when it completes."""
    big = InvocationMessage("big", ["x" * 70_000])  # a 3-byte VarInt for msgpack
    stream = b"".join(codec.encode(m) for m in [*EVERY_MESSAGE, big])
    parser = codec.new_parser()
    seen: list[HubMessage] = []
    for i in range(len(stream)):
        seen.extend(parser.feed(stream[i : i + 1]))
    assert seen == [*EVERY_MESSAGE, big]
    assert parser.buffered == 0


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_several_messages_per_frame_and_split_across_frames(codec: HubCodec) -> None:
    """One chunk may carry several messages, and a message may be split over chunks."""
    stream = b"".join(codec.encode(m) for m in EVERY_MESSAGE)
    parser = codec.new_parser()
    assert parser.feed(stream) == EVERY_MESSAGE
    cut = len(stream) // 2 + 1
    first = parser.feed(stream[:cut])
    assert parser.buffered > 0
    assert first + parser.feed(stream[cut:]) == EVERY_MESSAGE
    assert parser.feed(b"") == []


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_unknown_message_types_are_skipped_by_parser_refused_by_decode(codec: HubCodec) -> None:
    """A message of an unknown type is skipped by the parser but refused by decode_payload."""
    unknown = b'{"type":99,"x":1}' if codec is JSON_CODEC else msgpack.packb([99, {}])
    parser = codec.new_parser()
    assert parser.feed(codec.frame(unknown) + codec.encode(PingMessage())) == [PingMessage()]
    with pytest.raises(HubProtocolError, match="Unknown message type 99"):
        codec.decode_payload(unknown)


# ------------------------------------------------------------------------------ size limits


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_size_limit_allows_exact_size_and_refuses_larger(codec: HubCodec) -> None:
    """A message of exactly the limit parses; one byte more raises MessageTooLargeError."""
    payload = codec.encode_payload(InvocationMessage("t", ["a" * 100]))
    assert codec.new_parser(len(payload)).feed(codec.frame(payload)) != []
    with pytest.raises(MessageTooLargeError) as info:
        codec.new_parser(len(payload) - 1).feed(codec.frame(payload))
    assert "exceeds the maximum message size" in info.value.close_reason
    assert isinstance(info.value, HubProtocolError)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_size_limit_trips_before_the_whole_message_arrived(codec: HubCodec) -> None:
    """An oversized message is refused from its first bytes, so it is never buffered whole."""
    frame = codec.encode(InvocationMessage("t", ["a" * 10_000]))
    parser = codec.new_parser(1_000)
    with pytest.raises(MessageTooLargeError):
        parser.feed(frame[:1_500])


def test_json_size_limit_counts_buffered_bytes_across_chunks() -> None:
    """A JSON message growing over several feeds trips the limit once its bytes pass it."""
    parser = JSON_CODEC.new_parser(50)
    parser.feed(b'{"type":1,"target":"t","arguments":["')
    with pytest.raises(MessageTooLargeError):
        parser.feed(b"x" * 40)


def test_parser_limit_must_be_positive() -> None:
    """A zero or negative max_message_size is a programming error."""
    with pytest.raises(ValueError, match="positive"):
        JSON_CODEC.new_parser(0)


# ------------------------------------------------------------------------------- bad input

JSON_BAD = [
    (b"not json", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[1,2]", "must be an object"),
    (b'"str"', "must be an object"),
    (b"{}", "Missing required property 'type'"),
    (b'{"type":"1"}', "'type' must be an integer"),
    (b'{"type":true}', "'type' must be an integer"),
    (b'{"type":1.0}', "'type' must be an integer"),
    (b'{"type":1,"arguments":[]}', "Missing required property 'target'"),
    (b'{"type":1,"target":"t"}', "Missing required property 'arguments'"),
    (b'{"type":1,"target":5,"arguments":[]}', "'target' must be a string"),
    (b'{"type":1,"target":"t","arguments":{}}', "'arguments' must be an array"),
    (b'{"type":1,"target":"t","arguments":[],"invocationId":1}', "'invocationId'"),
    (b'{"type":1,"target":"t","arguments":[],"streamIds":[1]}', "'streamIds'"),
    (b'{"type":1,"target":"t","arguments":[],"headers":{"a":1}}', "'headers'"),
    (b'{"type":1,"target":"t","arguments":[],"headers":[]}', "'headers'"),
    (b'{"type":2,"invocationId":"1"}', "Missing required property 'item'"),
    (b'{"type":3}', "Missing required property 'invocationId'"),
    (b'{"type":3,"invocationId":"1","result":1,"error":"e"}', "mutually exclusive"),
    (b'{"type":3,"invocationId":"1","error":5}', "'error'"),
    (b'{"type":4,"invocationId":"1","target":"t"}', "'arguments'"),
    (b'{"type":5}', "'invocationId'"),
    (b'{"type":7,"allowReconnect":"yes"}', "'allowReconnect'"),
    (b'{"type":8}', "'sequenceId'"),
    (b'{"type":9,"sequenceId":-1}', "'sequenceId'"),
    (b'{"type":8,"sequenceId":1.5}', "'sequenceId'"),
    (b'{"type":0}', "Unknown message type 0"),
    (b'{"type":1,"target":"t","headers":{"h":NaN},"arguments":[]}', "not valid JSON"),
    (b"[" * 100_000, "not valid JSON"),
]


@pytest.mark.parametrize(
    ("body", "reason"), JSON_BAD, ids=[b[:40].decode("latin-1") for b, _ in JSON_BAD]
)
def test_json_bad_messages_raise_protocol_error(body: bytes, reason: str) -> None:
    """Malformed or mistyped JSON messages raise HubProtocolError naming the problem."""
    with pytest.raises(HubProtocolError) as info:
        JSON_CODEC.new_parser().feed(body + b"\x1e")
    assert reason in info.value.close_reason
    with pytest.raises(HubProtocolError):
        JSON_CODEC.decode_payload(body)


def test_json_empty_record_is_refused() -> None:
    """Two separators in a row (an empty message) are a protocol error."""
    with pytest.raises(HubProtocolError, match="Empty message"):
        JSON_CODEC.new_parser().feed(b'{"type":6}\x1e\x1e')


MSGPACK_BAD = [
    (b"\xc1", "not valid MessagePack"),
    (msgpack.packb({"type": 1}), "non-empty array"),
    (msgpack.packb([]), "non-empty array"),
    (msgpack.packb(["1"]), "'type' must be an integer"),
    (msgpack.packb([True]), "'type' must be an integer"),
    (msgpack.packb([1, {}, None, "t"]), "Invocation"),
    (msgpack.packb([1, [], None, "t", []]), "'headers'"),
    (msgpack.packb([1, {"a": 1}, None, "t", []]), "'headers'"),
    (msgpack.packb([1, {}, 5, "t", []]), "'invocationId'"),
    (msgpack.packb([1, {}, None, b"t", []]), "'target'"),
    (msgpack.packb([1, {}, None, "t", {}]), "'arguments'"),
    (msgpack.packb([1, {}, None, "t", [], [1]]), "'streamIds'"),
    (msgpack.packb([2, {}, "1"]), "StreamItem"),
    (msgpack.packb([3, {}, "1"]), "Completion"),
    (msgpack.packb([3, {}, "1", 1]), "Completion"),
    (msgpack.packb([3, {}, "1", 1, 5]), "'error'"),
    (msgpack.packb([3, {}, "1", 3]), "Completion"),
    (msgpack.packb([3, {}, "1", 4, 1]), "result kind 4"),
    (msgpack.packb([3, {}, "1", "3", 1]), "resultKind"),
    (msgpack.packb([4, {}, "1", "t"]), "StreamInvocation"),
    (msgpack.packb([5, {}]), "CancelInvocation"),
    (msgpack.packb([7]), "Close"),
    (msgpack.packb([7, None, 1]), "allowReconnect"),
    (msgpack.packb([8]), "Ack"),
    (msgpack.packb([9, -1]), "'sequenceId'"),
    (msgpack.packb([-3]), "Unknown message type -3"),
    (msgpack.packb([6]) + b"\x00", "not valid MessagePack"),
    (b"\xa2\xff\xfe", "not valid MessagePack"),
    (b"\x91" * 5_000 + b"\x06", "not valid MessagePack"),
]


@pytest.mark.parametrize(
    ("body", "reason"), MSGPACK_BAD, ids=[b[:20].hex() for b, _ in MSGPACK_BAD]
)
def test_msgpack_bad_messages_raise_protocol_error(body: bytes, reason: str) -> None:
    """Malformed or mistyped MessagePack messages raise HubProtocolError naming the problem."""
    with pytest.raises(HubProtocolError) as info:
        MSGPACK_CODEC.decode_payload(body)
    assert reason in info.value.close_reason
    with pytest.raises(HubProtocolError):
        MSGPACK_CODEC.new_parser().feed(MSGPACK_CODEC.frame(body))


@pytest.mark.parametrize(
    "prefix",
    [b"\x80\x80\x80\x80\x80\x01", b"\xff\xff\xff\xff\x08", b"\xff\xff\xff\xff\x7f"],
    ids=["six-bytes", "2^31", "2^35-1"],
)
def test_msgpack_length_prefix_over_2gb_is_refused(prefix: bytes) -> None:
    """A VarInt longer than 5 bytes or over 2^31-1 is a protocol error."""
    with pytest.raises(HubProtocolError, match="2GB"):
        MSGPACK_CODEC.new_parser().feed(prefix)


def test_msgpack_zero_length_frame_is_refused() -> None:
    """A zero length prefix (an empty message) is a protocol error."""
    with pytest.raises(HubProtocolError, match="Empty message"):
        MSGPACK_CODEC.new_parser().feed(b"\x00")


def test_msgpack_partial_prefix_waits_for_more() -> None:
    """A length prefix split over chunks is buffered until complete."""
    frame = MSGPACK_CODEC.encode(InvocationMessage("t", ["x" * 300]))
    assert frame[0] & 0x80
    parser = MSGPACK_CODEC.new_parser()
    assert parser.feed(frame[:1]) == []
    assert parser.feed(frame[1:]) == [InvocationMessage("t", ["x" * 300])]


# --------------------------------------------------------------------------------- varints


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (0x35, b"\x35"),
        (0x7F, b"\x7f"),
        (0x80, b"\x80\x01"),
        (0x1480, b"\x80\x29"),
        (MAX_FRAME_SIZE, b"\xff\xff\xff\xff\x07"),
    ],
)
def test_varint_encoding_matches_spec(value: int, encoded: bytes) -> None:
    """VarInt lengths use 7 bits per byte, low bits first (spec examples 0x35, 0x80 0x29)."""
    assert encode_varint(value) == encoded


def test_varint_refuses_out_of_range() -> None:
    """Lengths over 2^31-1 (or negative) cannot be framed."""
    with pytest.raises(HubProtocolError):
        encode_varint(MAX_FRAME_SIZE + 1)
    with pytest.raises(HubProtocolError):
        encode_varint(-1)


# --------------------------------------------------------------------------------- encoding


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_unencodable_values_raise_protocol_error(codec: HubCodec) -> None:
    """A value the format can't carry raises HubProtocolError, not a bare TypeError."""
    with pytest.raises(HubProtocolError, match="Cannot encode"):
        codec.encode(InvocationMessage("t", [object()]))


def test_json_refuses_nan_and_msgpack_refuses_huge_ints() -> None:
    """NaN is not JSON; ints over 64 bits are not MessagePack."""
    with pytest.raises(HubProtocolError):
        JSON_CODEC.encode(CompletionMessage.with_result("1", float("nan")))
    with pytest.raises(HubProtocolError):
        MSGPACK_CODEC.encode(CompletionMessage.with_result("1", 2**70))


def test_codec_attributes_and_lookup() -> None:
    """get_codec finds both codecs case-insensitively and refuses others with HandshakeError."""
    assert get_codec("json") is JSON_CODEC
    assert get_codec("MessagePack") is MSGPACK_CODEC
    assert (JSON_CODEC.binary, JSON_CODEC.content_type) == (False, "application/json")
    assert (MSGPACK_CODEC.binary, MSGPACK_CODEC.content_type) == (True, "application/x-msgpack")
    assert JSON_CODEC.supports_version(1) and JSON_CODEC.supports_version(2)
    assert not MSGPACK_CODEC.supports_version(3)
    with pytest.raises(HandshakeError, match="The protocol 'xml' is not supported."):
        get_codec("xml")


# Binding failures: as ASP.NET Core's JSON and MessagePack hub protocols return an
# InvocationBindingFailureMessage for an invocation whose arguments can't be bound
# (dotnet/aspnetcore src/SignalR/common/Protocols.Json/src/Protocol/JsonHubProtocol.cs,
# src/SignalR/common/Protocols.MessagePack/src/Protocol/MessagePackHubProtocolWorker.cs,
# src/SignalR/common/SignalR.Common/src/Protocol/InvocationBindingFailureMessage.cs).


def _decoded_both_ways(codec: HubCodec, body: bytes) -> HubMessage:
    """``decode_payload`` and a parser agree on ``body``; the message they return."""
    message = codec.decode_payload(body)
    assert codec.new_parser().feed(codec.frame(body)) == [message]
    return message


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            b'{"type":1,"invocationId":"1","target":"t","arguments":[NaN]}',
            "Invocation 't' refused: NaN is not valid JSON: JSON numbers must be finite.",
        ),
        (
            b'{"type":1,"invocationId":"1","target":"t","arguments":[1e999]}',
            "Invocation 't' refused: the number 1e999 is too large: it overflows a 64-bit "
            "float to infinity.",
        ),
        (
            b'{"type":1,"invocationId":"1","target":"a\\udc00","arguments":[]}',
            "Invocation 'a\\udc00' refused: a string holds a lone UTF-16 surrogate",
        ),
        (
            b'{"type":1,"invocationId":"1","target":"t","arguments":[' + b"9" * 5000 + b"]}",
            "Invocation 't' refused: an integer is too long: at most 4,300 digits",
        ),
        (
            b'{"arguments":' + b"[" * 10_000 + b"]" * 10_000 + b',"type":1,"target":"t",'
            b'"invocationId":"1"}',
            "Invocation 't' refused: the value is nested too deeply (10000 levels): at most 64",
        ),
    ],
    ids=["nan", "overflow", "surrogate target", "long int", "deep, arguments first"],
)
def test_json_arguments_outside_the_payload_limits_are_binding_failures(
    body: bytes, error: str
) -> None:
    """A JSON invocation whose envelope reads but whose arguments (or target text) break a
    limit decodes to a binding failure saying which limit, with its id and a target any
    encoder can carry."""
    message = _decoded_both_ways(JSON_CODEC, body)
    assert isinstance(message, InvocationBindingFailureMessage)
    assert message.error.startswith(error)
    assert message.invocation_id == "1" and not message.stream
    message.target.encode("utf-8")  # no lone surrogate left
    assert JSON_CODEC.encode(CompletionMessage.with_error("1", message.error))


def test_a_long_target_is_shortened_in_the_refusal_text() -> None:
    """The refusal quotes at most 100 characters of a client's target, so one message can't
    write a megabyte into the log; the message keeps the whole target."""
    target = "x" * 50_000
    body = b'{"type":1,"invocationId":"1","target":"' + target.encode() + b'","arguments":[NaN]}'
    message = JSON_CODEC.decode_payload(body)
    assert isinstance(message, InvocationBindingFailureMessage)
    assert message.target == target
    assert message.error.startswith("Invocation '" + "x" * 100 + "...' refused: ")
    assert len(message.error) < 300


def test_json_binding_failures_of_sends_and_stream_invocations() -> None:
    """A send's failure has no id; a StreamInvocation's is marked ``stream``; brackets and
    escaped quotes inside strings do not confuse where the arguments end."""
    send = JSON_CODEC.decode_payload(b'{"type":1,"target":"t","arguments":["]}\\"[",1e999]}')
    assert isinstance(send, InvocationBindingFailureMessage)
    assert send.invocation_id is None and "1e999" in send.error
    stream = JSON_CODEC.decode_payload(
        b'{"type":4,"invocationId":"s","target":"t","arguments":[NaN],"streamIds":[]}'
    )
    assert isinstance(stream, InvocationBindingFailureMessage)
    assert stream.stream and stream.invocation_id == "s"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"type":1,"target":"t","arguments":[' + b"[" * 10_000, "nested too deeply"),
        (b'{"type":1,"invocationId":"\\ud800","target":"t","arguments":[NaN]}', "NaN"),
        (b'{"type":1,"target":"t","arguments":[],"headers":{"h":1e999}}', "1e999"),
        (b'{"type":3,"invocationId":"1","result":1e999}', "1e999"),
        (b'{"type":1,"arguments":[NaN]}', "NaN"),
        (b'{"type":1,"target":"t","arguments":[NaN]} x', "NaN"),
    ],
    ids=["cut off", "surrogate id", "bad header", "completion", "no target", "trailing"],
)
def test_json_envelopes_outside_the_payload_limits_are_protocol_errors(
    body: bytes, reason: str
) -> None:
    """A JSON message whose envelope can't be read within the limits (or that is no
    invocation) stays a HubProtocolError saying which limit: the connection closes."""
    with pytest.raises(HubProtocolError, match=reason):
        JSON_CODEC.decode_payload(body)
    with pytest.raises(HubProtocolError, match=reason):
        JSON_CODEC.new_parser().feed(body + b"\x1e")


_MP_HEAD = b"\x95\x01\x80\xa11\xa1t"  # [1, {}, "1", "t", <arguments>]


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (b"\x91" * 990 + b"\x01", "the value is nested too deeply: at most 64"),
        (b"\x91" * 5000 + b"\x01", "the value is nested too deeply: at most 64"),
        (b"\x91\xa3\xed\xa0\x80", "a string holds a lone UTF-16 surrogate"),
        (b"\x91\xa2\xff\xfe", "a string is not valid UTF-8 text."),
        (b"\x91\xd4\x05\x00", "MessagePack extension type 5 is not supported"),
    ],
    ids=["990 deep", "deeper than the decoder", "surrogate", "bad utf-8", "ext 5"],
)
def test_msgpack_arguments_outside_the_payload_limits_are_binding_failures(
    arguments: bytes, error: str
) -> None:
    """MessagePack arguments nested too deep (even past the decoder's own stack), holding a
    lone surrogate or invalid UTF-8, or an extension other than the timestamp: a binding
    failure saying which."""
    message = _decoded_both_ways(MSGPACK_CODEC, _MP_HEAD + arguments)
    assert isinstance(message, InvocationBindingFailureMessage)
    assert message.error.startswith(f"Invocation 't' refused: {error}")
    assert message.invocation_id == "1"
    assert MSGPACK_CODEC.encode(CompletionMessage.with_error("1", message.error))


@pytest.mark.parametrize(
    "body",
    [
        b"\x95\x01\x80\xa3\xed\xa0\x80\xa1t\x91\xc0",  # invocation id with a surrogate
        b"\x95\x01\x81\xa1h\x01\xa11\xa1t\x91\xd4\x05\x00",  # header value not a string
        b"\x95\x01\x80\xa11\xa1t\x91\xc1",  # reserved byte in the arguments
        b"\x95\x01\x80\xa11\xa1t\x92\x01",  # arguments cut off
        b"\x94\x01\x80\xa11\xa1t",  # no arguments
    ],
    ids=["surrogate id", "bad header", "malformed", "cut off", "too short"],
)
def test_msgpack_unreadable_invocations_are_protocol_errors(body: bytes) -> None:
    """A MessagePack invocation whose envelope is bad, or whose arguments are malformed
    rather than outside a limit, stays a HubProtocolError."""
    with pytest.raises(HubProtocolError):
        MSGPACK_CODEC.decode_payload(body)


def test_msgpack_messages_are_checked_and_timestamps_become_datetimes() -> None:
    """A timestamp argument is a datetime (the one extension with a meaning)."""
    when = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    body = msgpack.packb([1, {}, None, "t", [msgpack.Timestamp.from_datetime(when)]])
    assert MSGPACK_CODEC.decode_payload(body) == InvocationMessage("t", [when])


def test_messagepack_map_keys_that_are_not_strings_do_not_break_the_refusal() -> None:
    """MessagePack map keys may be integers: checking the strings of a frame that failed to
    read walks them like values, so the frame is refused as a protocol error instead of an
    AttributeError (a hypothesis run of the corrupted-frames property found it)."""
    body = msgpack.packb([1, {}, "1", "t", [{0: "x", 1.5: ["y"]}]]) + b"\x00"  # extra byte
    with pytest.raises(HubProtocolError, match="not valid MessagePack"):
        MSGPACK_CODEC.new_parser().feed(bytes([len(body)]) + body)
