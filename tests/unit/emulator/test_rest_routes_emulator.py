"""REST route matching on the raw, percent-encoded path, straight to the handler functions."""

from __future__ import annotations

import pytest

from emulator import rest
from emulator.errors import BadRequestError
from emulator.rest_routes import RouteMatch, match_route


def match(path: str, method: str) -> RouteMatch[rest.Handler] | None:
    return match_route(rest.ROUTES, path, method)


@pytest.mark.parametrize(
    ("path", "method", "operation", "params"),
    [
        ("/api/hubs/chat/:send", "POST", "send_all", {"hub": "chat"}),
        ("/api/v1/hubs/chat", "POST", "send_all", {"hub": "chat"}),
        (
            "/api/hubs/chat/groups/a%2Fb/:send",
            "POST",
            "send_group",
            {"hub": "chat", "group": "a/b"},
        ),
        ("/api/hubs/chat/users/%F0%9F%98%80", "HEAD", "user_exists", {"hub": "chat", "user": "😀"}),
        (
            "/api/hubs/chat/users/u%3F%23/groups/g%20%25",
            "PUT",
            "add_user_group",
            {"hub": "chat", "user": "u?#", "group": "g %"},
        ),
        (
            "/api/v1/hubs/chat/groups/g/users/u",
            "DELETE",
            "remove_user_group",
            {"hub": "chat", "group": "g", "user": "u"},
        ),
        ("/api/health", "HEAD", "health", {}),
        ("/api/hubs/chat/groups/g/connections", "GET", "list_group", {"hub": "chat", "group": "g"}),
    ],
)
def test_routes_match_and_decode(
    path: str, method: str, operation: str, params: dict[str, str]
) -> None:
    """Each path shape maps to its handler function with placeholders decoded after splitting."""
    found = match(path, method)
    assert found is not None
    assert found.handler is getattr(rest, operation)
    assert found.params == params
    assert found.v1 == path.startswith("/api/v1/")


def test_wrong_method_reports_allowed_methods() -> None:
    """A known path with an unsupported method matches without a handler."""
    found = match("/api/hubs/chat/:send", "GET")
    assert found is not None and found.handler is None and found.allowed == ("POST",)


def test_unknown_paths_do_not_match() -> None:
    """Unknown shapes and non-API paths give no match."""
    assert match("/api/hubs/chat/:nope", "POST") is None
    assert match("/client/negotiate", "POST") is None
    assert match("/api/hubs/chat/groups/a/b/:send", "POST") is None


def test_invalid_utf8_escape_is_a_bad_request() -> None:
    """A percent-escape that is not UTF-8 is refused with 400."""
    with pytest.raises(BadRequestError):
        match("/api/hubs/chat/users/%FF", "HEAD")
