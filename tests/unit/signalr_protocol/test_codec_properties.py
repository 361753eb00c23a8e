"""Property tests (hypothesis) of the hub protocol codecs and the handshake parser."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from signalr_protocol.codec import JSON_CODEC, MSGPACK_CODEC, HubCodec
from signalr_protocol.errors import HubProtocolError
from signalr_protocol.handshake import HandshakeParser
from signalr_protocol.messages import (
    AckMessage,
    CancelInvocationMessage,
    CloseMessage,
    CompletionMessage,
    HubMessage,
    InvocationMessage,
    PingMessage,
    SequenceMessage,
    StreamInvocationMessage,
    StreamItemMessage,
)

CODECS = [JSON_CODEC, MSGPACK_CODEC]
FAST = settings(max_examples=300, deadline=None, database=None)

# Text both formats carry unchanged: no lone surrogates (MessagePack needs valid UTF-8).
text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=20)
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
floats = st.floats(allow_nan=False, allow_infinity=False)
# Values that decode to themselves in both formats: JSON has no bytes, both give lists.
scalars = st.none() | st.booleans() | ints | floats | text
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
headers = st.dictionaries(text, text, max_size=3)
ids = text
sequence_ids = st.integers(min_value=0, max_value=2**63 - 1)


def messages() -> st.SearchStrategy[HubMessage]:
    """Every hub message type with generated contents."""
    return st.one_of(
        st.builds(
            InvocationMessage,
            target=text,
            arguments=st.lists(values, max_size=4),
            invocation_id=st.none() | ids,
            stream_ids=st.lists(text, max_size=2),
            headers=headers,
        ),
        st.builds(StreamItemMessage, invocation_id=ids, item=values, headers=headers),
        st.builds(CompletionMessage.void, ids),
        st.builds(CompletionMessage.with_result, ids, values),
        st.builds(CompletionMessage.with_error, ids, text),
        st.builds(
            StreamInvocationMessage,
            invocation_id=ids,
            target=text,
            arguments=st.lists(values, max_size=4),
            stream_ids=st.lists(text, max_size=2),
            headers=headers,
        ),
        st.builds(CancelInvocationMessage, invocation_id=ids, headers=headers),
        st.just(PingMessage()),
        st.builds(CloseMessage, error=st.none() | text, allow_reconnect=st.booleans()),
        st.builds(AckMessage, sequence_ids),
        st.builds(SequenceMessage, sequence_ids),
    )


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@FAST
@given(batch=st.lists(messages(), min_size=1, max_size=5), data=st.data())
def test_generated_messages_round_trip_in_any_chunking(
    codec: HubCodec, batch: list[HubMessage], data: st.DataObject
) -> None:
    """Any messages, encoded back to back and fed in arbitrary chunks, parse back equal."""
    stream = b"".join(codec.encode(message) for message in batch)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    parser = codec.new_parser()
    parsed: list[HubMessage] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        parsed.extend(parser.feed(stream[start:cut]))
        start = cut
    assert parsed == batch
    assert parser.buffered == 0
    for message in batch:
        assert codec.decode_payload(codec.encode_payload(message)) == message


@FAST
@given(payload=st.binary(max_size=40))
def test_msgpack_bytes_values_round_trip(payload: bytes) -> None:
    """bytes values come back as bytes from MessagePack (bin)."""
    message = InvocationMessage("blob", [payload], invocation_id="1")
    assert MSGPACK_CODEC.decode_payload(MSGPACK_CODEC.encode_payload(message)) == message


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@FAST
@given(chunks=st.lists(st.binary(max_size=64), max_size=8))
def test_arbitrary_bytes_only_ever_raise_protocol_errors(
    codec: HubCodec, chunks: list[bytes]
) -> None:
    """Random bytes fed to a parser return messages or raise HubProtocolError, nothing else."""
    parser = codec.new_parser(max_message_size=1024)
    try:
        for chunk in chunks:
            result = parser.feed(chunk)
            assert all(isinstance(message, HubMessage) for message in result)
    except HubProtocolError:
        pass


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@FAST
@given(body=st.binary(max_size=64))
def test_arbitrary_payloads_only_ever_raise_protocol_errors(codec: HubCodec, body: bytes) -> None:
    """Random bodies given to decode_payload decode or raise HubProtocolError, nothing else."""
    try:
        assert isinstance(codec.decode_payload(body), HubMessage)
    except HubProtocolError:
        pass


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@FAST
@given(message=messages(), noise=st.binary(min_size=1, max_size=16), data=st.data())
def test_corrupted_valid_frames_only_ever_raise_protocol_errors(
    codec: HubCodec, message: HubMessage, noise: bytes, data: st.DataObject
) -> None:
    """A valid frame with bytes overwritten parses or raises HubProtocolError, nothing else."""
    frame = bytearray(codec.encode(message))
    at = data.draw(st.integers(0, len(frame) - 1))
    frame[at : at + len(noise)] = noise
    try:
        codec.new_parser(max_message_size=4096).feed(bytes(frame))
    except HubProtocolError:
        pass


@FAST
@given(chunks=st.lists(st.binary(max_size=64), max_size=6))
def test_handshake_parser_only_ever_raises_protocol_errors(chunks: list[bytes]) -> None:
    """Random bytes fed to the handshake parser yield a request, None, or HubProtocolError."""
    parser = HandshakeParser(max_size=256)
    try:
        for chunk in chunks:
            if parser.feed(chunk) is not None:
                break
    except HubProtocolError:
        pass


@FAST
@given(data=st.dictionaries(text, values, max_size=5))
def test_json_objects_with_extra_properties_decode_or_raise_protocol_error(
    data: dict[str, Any],
) -> None:
    """Arbitrary JSON objects (with or without a type) decode or raise HubProtocolError."""
    body = json.dumps(data).encode()
    try:
        JSON_CODEC.decode_payload(body)
    except HubProtocolError:
        pass
