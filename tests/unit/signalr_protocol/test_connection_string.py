"""Connection strings are parsed as the service SDK parses them (docs/protocol.md §1)."""

from __future__ import annotations

import pytest

from signalr_protocol.connection_string import (
    EMULATOR_ACCESS_KEY,
    AuthType,
    emulator_connection_string,
    parse_connection_string,
)
from signalr_protocol.errors import ConnectionStringError

KEY = "c2VjcmV0LWtleS13aXRoLWVxdWFscz0="


def test_minimal_https_string() -> None:
    """Endpoint and AccessKey alone give default version, port-less URLs and audience."""
    ep = parse_connection_string(f"Endpoint=https://x.service.signalr.net;AccessKey={KEY};")
    assert ep.endpoint == "https://x.service.signalr.net"
    assert ep.access_key == KEY
    assert ep.version == "1.0"
    assert ep.client_endpoint == ep.server_endpoint == ep.endpoint
    assert ep.audience_base == "https://x.service.signalr.net/"
    assert ep.auth_type is AuthType.ACCESS_KEY


def test_keys_are_case_insensitive_and_values_trimmed() -> None:
    """Keys match in any case; whitespace around keys and values is ignored."""
    ep = parse_connection_string(
        f" ENDPOINT = https://X.service.signalr.net/ ; accesskey= {KEY} ;VERSION=1.0"
    )
    assert ep.endpoint == "https://x.service.signalr.net"
    assert ep.access_key == KEY


def test_value_split_on_first_equals_only() -> None:
    """Base64 keys that end in '=' survive because only the first '=' splits."""
    ep = parse_connection_string("Endpoint=http://h;AccessKey=abc==;")
    assert ep.access_key == "abc=="


def test_port_overrides_endpoint_port_but_not_audience() -> None:
    """Port replaces the URL's port in endpoints; the audience never carries a port."""
    ep = parse_connection_string(f"Endpoint=http://localhost:1234;Port=8888;AccessKey={KEY}")
    assert ep.endpoint == "http://localhost:8888"
    assert ep.audience_base == "http://localhost/"
    assert ep.client_url("Chat") == "http://localhost:8888/client/?hub=chat"
    assert ep.client_audience("Chat") == "http://localhost/client/?hub=chat"


def test_default_port_is_not_written() -> None:
    """Port=443 on https is the default and is not repeated in URLs."""
    ep = parse_connection_string(f"Endpoint=https://h;Port=443;AccessKey={KEY}")
    assert ep.endpoint == "https://h"


def test_client_and_server_endpoints() -> None:
    """ClientEndpoint changes the negotiate url, ServerEndpoint the REST base, not the aud."""
    ep = parse_connection_string(
        f"Endpoint=https://x.service.signalr.net;AccessKey={KEY};"
        "ClientEndpoint=https://gw.example.com/;ServerEndpoint=https://internal.example.com:8443"
    )
    assert ep.client_url("chat") == "https://gw.example.com/client/?hub=chat"
    assert ep.server_endpoint == "https://internal.example.com:8443"
    assert ep.client_audience("chat") == "https://x.service.signalr.net/client/?hub=chat"


def test_version_variants() -> None:
    """Versions 1.x with suffixes are accepted."""
    assert parse_connection_string(f"Endpoint=http://h;AccessKey={KEY};Version=1.1-preview").version


def test_unknown_keys_are_ignored() -> None:
    """Keys the SDK does not know are ignored rather than breaking start-up."""
    ep = parse_connection_string(f"Endpoint=http://h;AccessKey={KEY};Foo=bar")
    assert ep.endpoint == "http://h"


def test_repr_hides_secrets() -> None:
    """repr() of an endpoint never shows the access key or client secret."""
    ep = parse_connection_string(f"Endpoint=http://h;AccessKey={KEY}")
    assert KEY not in repr(ep)


def test_emulator_string_round_trip() -> None:
    """The emulator's well-known string parses to localhost:8888 with the fixed key."""
    ep = parse_connection_string(emulator_connection_string())
    assert ep.endpoint == "http://localhost:8888"
    assert ep.access_key == EMULATOR_ACCESS_KEY


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("justtext", "missing"),
        (f"AccessKey={KEY};Version=1.0", "missing the 'Endpoint'"),
        ("Endpoint=http://h;Version=1.0", "missing the 'AccessKey'"),
        (f"Endpoint=http://h;endpoint=http://g;AccessKey={KEY}", "twice"),
        (f"Endpoint=ftp://h;AccessKey={KEY}", "absolute http"),
        (f"Endpoint=h.example.com;AccessKey={KEY}", "absolute http"),
        (f"Endpoint=http://h;AccessKey={KEY};Port=0", "Port"),
        (f"Endpoint=http://h;AccessKey={KEY};Port=70000", "Port"),
        (f"Endpoint=http://h;AccessKey={KEY};Port=abc", "Port"),
        (f"Endpoint=http://h:99999;AccessKey={KEY}", "invalid port"),
        (f"Endpoint=http://h;AccessKey={KEY};Version=2.0", "Version"),
        (f"Endpoint=http://h;AccessKey={KEY};ClientEndpoint=nope", "ClientEndpoint"),
        (f"Endpoint=http://h;AccessKey={KEY};ServerEndpoint=ws://x", "ServerEndpoint"),
    ],
)
def test_bad_strings_are_refused_without_echoing_the_key(text: str, message: str) -> None:
    """Every malformed form is refused with a message naming the problem, never the key."""
    with pytest.raises(ConnectionStringError, match=message) as info:
        parse_connection_string(text)
    assert KEY not in str(info.value)
