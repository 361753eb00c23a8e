"""Walk every operation of Microsoft's REST OpenAPI files against the emulator.

For each path and method of ``tests/data/signalr-rest/*.json`` (Microsoft's files, MIT): a
valid call must be routed (never the unknown-route 404 or a 405) and answer a success status
the spec declares, or a documented "no" (a 404 with an ``x-ms-error-code``), or 501 for the
few operations the emulator does not implement; hostile path segments, query values and
bodies must never produce a 5xx other than that 501.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.support.emulator_kit import Rest

pytestmark = pytest.mark.anyio

SPEC_DIR = Path(__file__).resolve().parents[2] / "data" / "signalr-rest"


UNSUPPORTED = (":execute", "/streams/")


def is_unsupported(path: str) -> bool:
    """Operations the emulator answers with 501."""
    return any(marker in path for marker in UNSUPPORTED)


VALID = {
    "hub": "chat",
    "group": "g",
    "user": "u",
    "id": "u",
    "userId": "u",
    "connectionId": "c",
    "streamId": "s",
    "permission": "p",
}
HOSTILE_SEGMENTS = [
    "%20%20",
    "%FF%FE",
    "a%2Fb%3F%23",
    "x" * 1100,
    "%00",
    "..",
    "%F0%9F%98%80",
    "%25",
]
HOSTILE_QUERIES = [
    "ttl=-1",
    "ttl=abc",
    "ttl=99999999999999",
    "maxpagesize=0",
    "top=-5",
    "continuationToken=%%%",
    "continuationToken=LTE=",
    "minutesToExpire=0",
    "minutesToExpire=1e9",
    "userId=" + "u" * 2000,
    "excluded=" + "e" * 5000,
    "application=1bad",
    "reason=" + "r" * 5000,
]
HOSTILE_BODIES = [
    (b"\x00\xff" * 100, "application/json"),
    (b"[" * 100_000 + b"]" * 100_000, "application/json"),
    (b'{"target": "x", "arguments": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "application/json"),
    (b"\x91" * 100_000, "application/x-msgpack"),
    (b"\x81\xa4json\xc4\x05hello", "application/octet-stream"),
    (b'{"target": 1e999, "arguments": [NaN]}', "application/json"),
]


def operations() -> list[tuple[str, str, str, dict[str, Any]]]:
    found = []
    for spec_file in sorted(SPEC_DIR.glob("*.json")):
        spec = json.loads(spec_file.read_text(encoding="utf-8"))
        version = spec["info"]["version"]
        for path, methods in spec["paths"].items():
            for method, operation in methods.items():
                if method == "parameters":
                    continue
                operation = {**operation, "_version": version}
                found.append((spec_file.name, method.upper(), path, operation))
    return found


OPERATIONS = operations()


def fill(path: str, values: dict[str, str]) -> str:
    out = path
    for name, value in values.items():
        out = out.replace("{" + name + "}", value)
    assert "{" not in out, out
    return out


def body_for(path: str, method: str) -> dict[str, Any]:
    if method != "POST":
        return {}
    if path.endswith(":execute"):
        return {"json": []}
    return {"json": {"target": "x", "arguments": []}}


def test_the_specs_were_found() -> None:
    """The walk covers all four spec files (a missing folder must not pass silently)."""
    assert {name for name, *_ in OPERATIONS} == {
        "V20220601.json",
        "V20230701.json",
        "v1.json",
        "v20241201.json",
    }
    assert len(OPERATIONS) > 80


@pytest.mark.parametrize(
    ("spec", "method", "path", "operation"),
    OPERATIONS,
    ids=[f"{s}-{m}-{p}" for s, m, p, _ in OPERATIONS],
)
async def test_valid_call_is_routed_and_answers_as_specified(
    rest: Rest, spec: str, method: str, path: str, operation: dict[str, Any]
) -> None:
    """A valid call reaches its operation and answers a declared status."""
    url_path = fill(path, {k: quote(v, safe="") for k, v in VALID.items()})
    query = f"api-version={operation['_version']}" if not spec.startswith("v1") else ""
    response = await rest(method, url_path, query=query, **body_for(path, method))
    status = response.status_code
    code = response.headers.get("x-ms-error-code")
    assert status != 405, response.text
    assert not (status == 404 and code in (None, "Error.NotFound")), f"unrouted: {method} {path}"
    declared = {int(k) for k in operation["responses"] if k.isdigit()}
    if is_unsupported(path):
        assert status == 501
    elif 200 <= status < 300:
        assert status in declared, f"{method} {path}: {status} not in {declared}"
    else:
        assert status == 404 and code is not None, f"{method} {path}: {status} {response.text}"


@pytest.mark.parametrize(
    ("spec", "method", "path", "operation"),
    OPERATIONS,
    ids=[f"{s}-{m}-{p}" for s, m, p, _ in OPERATIONS],
)
async def test_hostile_inputs_never_cause_server_errors(
    rest: Rest, spec: str, method: str, path: str, operation: dict[str, Any]
) -> None:
    """Odd path segments, query values and bodies give 2xx/4xx (or the 501), never 500."""
    unsupported = is_unsupported(path)
    names = [n for n in VALID if "{" + n + "}" in path]
    calls: list[tuple[str, str, dict[str, Any]]] = []
    for name in names:
        for segment in HOSTILE_SEGMENTS:
            values = {k: quote(v, safe="") for k, v in VALID.items()}
            values[name] = segment
            calls.append((fill(path, values), "", body_for(path, method)))
    valid_path = fill(path, {k: quote(v, safe="") for k, v in VALID.items()})
    for query in HOSTILE_QUERIES:
        calls.append((valid_path, query, body_for(path, method)))
    if method == "POST":
        for content, content_type in HOSTILE_BODIES:
            calls.append(
                (valid_path, "", {"content": content, "headers": {"Content-Type": content_type}})
            )
    for url_path, query, kwargs in calls:
        response = await rest(method, url_path, query=query, token_path=url_path, **kwargs)
        status = response.status_code
        assert status < 500 or (unsupported and status == 501), (
            f"{method} {url_path[:80]}?{query[:40]}: {status} {response.text[:200]}"
        )
        if status >= 400 and method != "HEAD":
            assert response.json()["message"]
