"""One payload policy: the codec, the hub and the REST client convert values the same way."""

from __future__ import annotations

import datetime as dt
import enum
import json
import math
import types
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgpack
import pytest
from pydantic import BaseModel

from app.hub import ServerlessHub
from app.services.signalr import _payload as rest_body
from app.services.webhook import GENERIC_ERROR, Webhook
from signalr_protocol.codec import JSON_CODEC, MSGPACK_CODEC
from signalr_protocol.errors import HubProtocolError
from signalr_protocol.messages import CompletionMessage, InvocationMessage
from signalr_protocol.payload import dumps, json_default, to_jsonable
from tests.support.hubkit import (
    RecordingService,
    invocation_body,
    make_webhook,
    signed_headers,
    webhook_request,
)

pytestmark = pytest.mark.anyio


class Colour(enum.Enum):
    RED = "red"


class Point(BaseModel):
    x: int
    at: dt.datetime


@dataclass
class Stamp:
    when: dt.datetime
    raw: bytes
    tags: frozenset[str]


UTC_NOON = dt.datetime(2024, 1, 2, 12, 0, tzinfo=dt.UTC)

# (value, its JSON form under the policy)
CASES: list[tuple[Any, Any]] = [
    (UTC_NOON, "2024-01-02T12:00:00+00:00"),
    (dt.date(2024, 1, 2), "2024-01-02"),
    (dt.time(1, 2, 3), "01:02:03"),
    (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
    (Colour.RED, "red"),
    (b"\xff\x00", "/wA="),
    (bytearray(b"\x01"), "AQ=="),
    ({3}, [3]),
    ((1, "a"), [1, "a"]),
    (types.MappingProxyType({"k": 1}), {"k": 1}),
    (Decimal("1.5"), "1.5"),
    (dt.timedelta(seconds=90), "PT1M30S"),
    (
        Stamp(UTC_NOON, b"\x00\x01", frozenset({"t"})),
        {
            "when": "2024-01-02T12:00:00+00:00",
            "raw": "AAE=",
            "tags": ["t"],
        },
    ),
    (Point(x=1, at=UTC_NOON), {"x": 1, "at": "2024-01-02T12:00:00Z"}),
    ([{"nested": Colour.RED}], [{"nested": "red"}]),
]
IDS = [type(value).__name__ for value, _ in CASES]


class Values(ServerlessHub):
    """Returns the value the test put in ``value`` (one hub, many cases)."""

    hub_name = "values"
    value: Any = None

    async def give(self) -> Any:
        return type(self).value


def codec_form(value: Any) -> Any:
    """What the JSON hub protocol codec writes for an argument."""
    body = JSON_CODEC.encode_payload(InvocationMessage("t", [value]))
    return json.loads(body)["arguments"][0]


def rest_form(value: Any) -> Any:
    """What the REST client writes for an argument."""
    return json.loads(rest_body("t", [value]))["arguments"][0]


async def hub_result(webhook: Webhook, value: Any) -> CompletionMessage:
    """The completion the webhook answers when a hub method returns ``value``."""
    Values.value = value
    headers = signed_headers(hub="values", event="give")
    result = await webhook.dispatch(webhook_request(headers, invocation_body("give")))
    (message,) = JSON_CODEC.new_parser().feed(result.body)
    assert isinstance(message, CompletionMessage)
    return message


async def hub_sent(service: RecordingService, value: Any) -> Any:
    """The JSON the REST client writes for an argument a hub method sends."""

    class Sender(ServerlessHub):
        async def go(self) -> None:
            await self.clients.all.send("t", value)

    await make_webhook(service, Sender).dispatch(
        webhook_request(signed_headers(hub="Sender", event="go"), invocation_body("go"))
    )
    (call,) = [c for c in service.calls if c[0] == "send_to_all"]
    _, (_hub, target, arguments), _ = call
    return json.loads(rest_body(target, arguments))["arguments"][0]


@pytest.mark.parametrize(("value", "expected"), CASES, ids=IDS)
async def test_codec_hub_and_rest_write_the_same_json(
    value: Any, expected: Any, service: RecordingService
) -> None:
    """A value is written the same way as a codec argument, a hub result and a REST argument."""
    webhook = make_webhook(service, Values)
    assert codec_form(value) == expected
    assert rest_form(value) == expected
    assert (await hub_result(webhook, value)).result == expected
    assert await hub_sent(service, value) == expected


@pytest.mark.parametrize("bad", [math.nan, math.inf, [1.0, -math.inf], {"x": math.nan}])
async def test_nan_and_infinity_are_refused_the_same_way(
    bad: Any, service: RecordingService
) -> None:
    """NaN and the infinities are refused by the one JSON encoder every writer uses."""
    with pytest.raises(ValueError, match="Out of range float") as direct:
        dumps(bad)
    with pytest.raises(HubProtocolError) as codec_error:
        JSON_CODEC.encode(CompletionMessage.with_result("1", bad))
    with pytest.raises(TypeError, match="not JSON serializable") as rest_error:
        rest_body("t", [bad])
    reason = str(direct.value)
    assert str(codec_error.value.__cause__) == reason == str(rest_error.value.__cause__)
    completion = await hub_result(make_webhook(service, Values), bad)
    assert completion.error == "The method's result cannot be sent as json."


async def test_unknown_objects_are_refused_the_same_way(service: RecordingService) -> None:
    """An object with no JSON form is a TypeError naming its type, in every writer."""
    thing = object()
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        to_jsonable(thing)
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        json_default(thing)
    with pytest.raises(HubProtocolError, match="Object of type object"):
        JSON_CODEC.encode_payload(InvocationMessage("t", [thing]))
    with pytest.raises(HubProtocolError, match="Object of type object"):
        MSGPACK_CODEC.encode_payload(InvocationMessage("t", [thing]))
    with pytest.raises(TypeError, match="Object of type object"):
        rest_body("t", [thing])
    assert (await hub_result(make_webhook(service, Values), thing)).error == GENERIC_ERROR


def test_bytes_stay_binary_for_messagepack() -> None:
    """to_jsonable keeps bytes, so MessagePack sends bin while JSON sends base64 text."""
    stamp = Stamp(UTC_NOON, b"\x00\x01", frozenset())
    converted = to_jsonable(stamp)
    assert converted == {"when": "2024-01-02T12:00:00+00:00", "raw": b"\x00\x01", "tags": []}
    packed = MSGPACK_CODEC.encode_payload(InvocationMessage("t", [stamp]))
    assert msgpack.unpackb(packed)[4] == [converted]


def test_plain_values_pass_through_unchanged() -> None:
    """JSON values come back as they are (the hot path converts nothing)."""
    value = {"a": [1, 2.5, True, None, "x"]}
    assert to_jsonable(value) == value
    assert to_jsonable("x") == "x" and to_jsonable(None) is None
