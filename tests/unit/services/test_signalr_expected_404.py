"""Which 404s each REST operation treats as an answer, as Microsoft's Management SDK does.

The rules are the SDK's ``FilterExpectedResponse`` calls (Azure/azure-signalr
``src/Microsoft.Azure.SignalR.Management/RestHubLifetimeManager.cs``, error codes in
``src/Microsoft.Azure.SignalR.Common/Constants.cs``): a 404 is a normal outcome only when
its ``x-ms-error-code`` is the one the operation expects; any other 404 raises. The one
deliberate difference (removing a *connection* from a group or from all groups) is
documented in ``docs/decisions.md``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from app.exceptions import ServiceNotFoundError
from app.services.signalr import SignalRService
from tests.support.outbound_kit import RecordingServer, Reply, recording_server, settings_for

pytestmark = pytest.mark.anyio

Call = Callable[[SignalRService], Awaitable[object]]

# (operation, the error codes whose 404 is an answer, what the call then returns)
OPERATIONS: list[tuple[str, Call, tuple[str, ...], object]] = [
    (
        "add_connection_to_group",
        lambda s: s.add_connection_to_group("chat", "g", "c"),
        ("Error.Connection.NotExisted",),
        None,
    ),
    (
        "remove_connection_from_group",
        lambda s: s.remove_connection_from_group("chat", "g", "c"),
        ("Warning.Connection.NotExisted", "Info.Connection.NotInGroup"),
        None,
    ),
    (
        "remove_connection_from_all_groups",
        lambda s: s.remove_connection_from_all_groups("chat", "c"),
        ("Warning.Connection.NotExisted", "Info.Connection.NotInGroup"),
        None,
    ),
    ("add_user_to_group", lambda s: s.add_user_to_group("chat", "g", "u"), (), None),
    ("remove_user_from_group", lambda s: s.remove_user_from_group("chat", "g", "u"), (), None),
    ("remove_user_from_all_groups", lambda s: s.remove_user_from_all_groups("chat", "u"), (), None),
    (
        "close_connection",
        lambda s: s.close_connection("chat", "c"),
        ("Warning.Connection.NotExisted",),
        None,
    ),
    (
        "connection_exists",
        lambda s: s.connection_exists("chat", "c"),
        ("Warning.Connection.NotExisted",),
        False,
    ),
    ("user_exists", lambda s: s.user_exists("chat", "u"), ("Warning.User.NotExisted",), False),
    ("group_exists", lambda s: s.group_exists("chat", "g"), ("Warning.Group.NotExisted",), False),
    (
        "user_in_group",
        lambda s: s.user_in_group("chat", "g", "u"),
        ("Info.User.NotInGroup",),
        False,
    ),
    ("send_to_all", lambda s: s.send_to_all("chat", "t", []), (), None),
    ("send_to_group", lambda s: s.send_to_group("chat", "g", "t", []), (), None),
    ("send_to_user", lambda s: s.send_to_user("chat", "u", "t", []), (), None),
    ("send_to_connection", lambda s: s.send_to_connection("chat", "c", "t", []), (), None),
    ("close_all_connections", lambda s: s.close_all_connections("chat"), (), None),
    ("close_group_connections", lambda s: s.close_group_connections("chat", "g"), (), None),
    ("close_user_connections", lambda s: s.close_user_connections("chat", "u"), (), None),
]
EVERY_CODE = sorted({code for _, _, codes, _ in OPERATIONS for code in codes})
IDS = [name for name, _, _, _ in OPERATIONS]


@pytest.fixture
async def server() -> AsyncIterator[RecordingServer]:
    async with recording_server() as server:
        yield server


@pytest.fixture
async def service(server: RecordingServer) -> AsyncIterator[SignalRService]:
    async with SignalRService.open(settings_for(server.base_url)) as service:
        yield service


@pytest.mark.parametrize(("name", "call", "codes", "outcome"), OPERATIONS, ids=IDS)
async def test_a_404_is_an_answer_only_with_the_error_code_the_operation_expects(
    server: RecordingServer,
    service: SignalRService,
    name: str,
    call: Call,
    codes: tuple[str, ...],
    outcome: object,
) -> None:
    """For every operation, a 404 carrying one of its expected x-ms-error-code values (in
    any letter case) is its normal outcome, while a 404 with another code or with none
    raises ServiceNotFoundError, as RestHubLifetimeManager.cs's FilterExpectedResponse
    decides (Azure/azure-signalr src/Microsoft.Azure.SignalR.Management)."""
    for code in codes:
        for spelling in (code, code.upper()):
            server.replies = [Reply(404, headers={"x-ms-error-code": spelling})]
            assert await call(service) == outcome, (name, spelling)
    others: list[str | None] = [c for c in EVERY_CODE if c not in codes]
    for other in [*others, None]:
        headers = {} if other is None else {"x-ms-error-code": other}
        server.replies = [Reply(404, headers=headers)]
        with pytest.raises(ServiceNotFoundError) as caught:
            await call(service)
        assert caught.value.status_code == 404
        assert caught.value.error_code == other
    # A 404 is not retried.
    assert len(server.requests) == 2 * len(codes) + len(EVERY_CODE) - len(codes) + 1


async def test_adding_a_connection_that_has_gone_to_a_group_is_not_an_error(
    server: RecordingServer, service: SignalRService
) -> None:
    """add_connection_to_group returns normally on 404 Error.Connection.NotExisted, as the
    SDK's AddToGroupAsync does (Azure/azure-signalr
    src/Microsoft.Azure.SignalR.Management/RestHubLifetimeManager.cs)."""
    server.replies = [Reply(404, headers={"x-ms-error-code": "Error.Connection.NotExisted"})]
    await service.add_connection_to_group("chat", "g", "gone")  # returns normally
    assert [(r.method, r.raw_path) for r in server.requests] == [
        ("PUT", "/api/hubs/chat/groups/g/connections/gone")
    ]


async def test_existence_checks_raise_on_a_404_without_the_error_code(
    server: RecordingServer, service: SignalRService
) -> None:
    """A bare 404 to an existence check (a wrong path, a proxy) raises instead of answering
    'no', as the SDK's ConnectionExistsAsync/UserExistsAsync/GroupExistsAsync/IsUserInGroup
    do (Azure/azure-signalr src/Microsoft.Azure.SignalR.Management/RestHubLifetimeManager.cs)."""
    checks: list[Call] = [
        lambda s: s.connection_exists("chat", "c"),
        lambda s: s.user_exists("chat", "u"),
        lambda s: s.group_exists("chat", "g"),
        lambda s: s.user_in_group("chat", "g", "u"),
    ]
    for check in checks:
        server.replies = [Reply(404)]
        with pytest.raises(ServiceNotFoundError, match="answered 404"):
            await check(service)
        assert await check(service) is True  # the recording server's default is 200
