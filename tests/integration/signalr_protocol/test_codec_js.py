"""Cross-checks of the codecs with the official JS client's protocol classes (Node).

Our frames are parsed by ``@microsoft/signalr``'s ``JsonHubProtocol`` and
``@microsoft/signalr-protocol-msgpack``'s ``MessagePackHubProtocol``, and frames written by them
are parsed by ours, in one Node run.
"""

from __future__ import annotations

import base64
import json
import pathlib
import shutil
import subprocess
from typing import Any

import pytest

from signalr_protocol.codec import JSON_CODEC, MSGPACK_CODEC
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

pytestmark = pytest.mark.node

ROOT = pathlib.Path(__file__).resolve().parents[3]

SCRIPT = r"""
const fs = require("fs");
const signalr = require("@microsoft/signalr");
const { MessagePackHubProtocol } = require("@microsoft/signalr-protocol-msgpack");
const input = JSON.parse(fs.readFileSync(0, "utf8"));
const logger = signalr.NullLogger.instance;
const json = new signalr.JsonHubProtocol();
const mp = new MessagePackHubProtocol();
const plain = (value) => JSON.parse(JSON.stringify(value, (key, v) =>
  (v && v.type === "Buffer") ? { $bytes: Buffer.from(v.data).toString("base64") } : v));
const fixBytes = (value) => {
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString("base64") };
  if (Array.isArray(value)) return value.map(fixBytes);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fixBytes(v)]));
  }
  return value;
};
const mpBytes = Buffer.from(input.msgpack, "base64");
const out = {
  json: plain(json.parseMessages(Buffer.from(input.json, "base64").toString("utf8"), logger)),
  msgpack: plain(fixBytes(mp.parseMessages(
    mpBytes.buffer.slice(mpBytes.byteOffset, mpBytes.byteOffset + mpBytes.length), logger))),
};
const written = [
  { type: 1, headers: {}, invocationId: "1", target: "echo", arguments: ["hi", 42, 0.5, null] },
  { type: 1, target: "broadcast", arguments: [{ a: [1, 2] }], streamIds: ["s1"] },
  { type: 4, invocationId: "2", target: "counter", arguments: [10] , streamIds: [] },
  { type: 2, invocationId: "s1", item: "x" },
  { type: 3, invocationId: "3", result: 7 },
  { type: 3, invocationId: "4", error: "bad" },
  { type: 3, invocationId: "5" },
  { type: 5, invocationId: "2" },
  { type: 6 },
  { type: 7 },
  { type: 8, sequenceId: 5 },
  { type: 9, sequenceId: 6 },
];
const b64 = (buffer) => buffer.toString("base64");
out.jsJson = b64(Buffer.from(written.map((m) => json.writeMessage(m)).join(""), "utf8"));
out.jsMsgpack = b64(Buffer.concat(written.map((m) => Buffer.from(mp.writeMessage(m)))));
out.jsBytes = Buffer.from(mp.writeMessage(
  { type: 1, target: "blob", arguments: [new Uint8Array([0, 1, 255])] })).toString("base64");
process.stdout.write(JSON.stringify(out));
"""

# Messages a client receives (the JS client parses these types).
TO_CLIENT: list[HubMessage] = [
    InvocationMessage("newMessage", [{"text": "héllo", "n": [1, 2.5]}]),
    InvocationMessage("clientResult", ["q"], invocation_id="9", headers={"h": "v"}),
    StreamItemMessage("1", 42),
    CompletionMessage.void("1"),
    CompletionMessage.with_result("2", {"x": None}),
    CompletionMessage.with_error("3", "Invocation failed, status code 404"),
    PingMessage(),
    CloseMessage(),
    CloseMessage("Closed by the server.", allow_reconnect=True),
    AckMessage(3),
    SequenceMessage(4),
]

EXPECTED_JS = [
    {"type": 1, "target": "newMessage", "arguments": [{"text": "héllo", "n": [1, 2.5]}]},
    {
        "type": 1,
        "headers": {"h": "v"},
        "invocationId": "9",
        "target": "clientResult",
        "arguments": ["q"],
    },
    {"type": 2, "invocationId": "1", "item": 42},
    {"type": 3, "invocationId": "1"},
    {"type": 3, "invocationId": "2", "result": {"x": None}},
    {"type": 3, "invocationId": "3", "error": "Invocation failed, status code 404"},
    {"type": 6},
    {"type": 7},
    {"type": 7, "error": "Closed by the server.", "allowReconnect": True},
    {"type": 8, "sequenceId": 3},
    {"type": 9, "sequenceId": 4},
]

FROM_JS: list[HubMessage] = [
    InvocationMessage("echo", ["hi", 42, 0.5, None], invocation_id="1"),
    InvocationMessage("broadcast", [{"a": [1, 2]}], stream_ids=["s1"]),
    StreamInvocationMessage("2", "counter", [10]),
    StreamItemMessage("s1", "x"),
    CompletionMessage.with_result("3", 7),
    CompletionMessage.with_error("4", "bad"),
    CompletionMessage.void("5"),
    CancelInvocationMessage("2"),
    PingMessage(),
    CloseMessage(),
    AckMessage(5),
    SequenceMessage(6),
]


def normalise(js: dict[str, Any]) -> dict[str, Any]:
    """Drop what the JS protocols add as defaults (empty headers/streamIds, undefined fields)."""
    out = {k: v for k, v in js.items() if v is not None or k in ("result", "item")}
    if out.get("headers") == {}:
        del out["headers"]
    if out.get("streamIds") == []:
        del out["streamIds"]
    if out.get("type") == 7 and out.get("allowReconnect") is False:
        del out["allowReconnect"]
    return out


@pytest.fixture(scope="module")
def node_run() -> dict[str, Any]:
    if shutil.which("node") is None:
        pytest.skip("Node is not installed")
    stdin = json.dumps(
        {
            "json": base64.b64encode(b"".join(JSON_CODEC.encode(m) for m in TO_CLIENT)).decode(),
            "msgpack": base64.b64encode(
                b"".join(MSGPACK_CODEC.encode(m) for m in TO_CLIENT)
            ).decode(),
        }
    )
    done = subprocess.run(
        ["node", "-e", SCRIPT],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_js_json_protocol_parses_our_frames(node_run: dict[str, Any]) -> None:
    """The official JsonHubProtocol reads every message type we send to clients."""
    assert [normalise(m) for m in node_run["json"]] == EXPECTED_JS


def test_js_msgpack_protocol_parses_our_frames(node_run: dict[str, Any]) -> None:
    """The official MessagePackHubProtocol reads every message type we send to clients."""
    assert [normalise(m) for m in node_run["msgpack"]] == EXPECTED_JS


def test_we_parse_frames_written_by_the_js_json_protocol(node_run: dict[str, Any]) -> None:
    """Every message type the JS JsonHubProtocol writes parses to the expected message."""
    data = base64.b64decode(node_run["jsJson"])
    assert JSON_CODEC.new_parser().feed(data) == FROM_JS


def test_we_parse_frames_written_by_the_js_msgpack_protocol(node_run: dict[str, Any]) -> None:
    """Every message type the JS MessagePackHubProtocol writes parses to the expected message."""
    data = base64.b64decode(node_run["jsMsgpack"])
    assert MSGPACK_CODEC.new_parser().feed(data) == FROM_JS


def test_js_binary_arguments_arrive_as_bytes(node_run: dict[str, Any]) -> None:
    """A Uint8Array argument from the JS msgpack client decodes to Python bytes."""
    data = base64.b64decode(node_run["jsBytes"])
    assert MSGPACK_CODEC.new_parser().feed(data) == [InvocationMessage("blob", [b"\x00\x01\xff"])]
