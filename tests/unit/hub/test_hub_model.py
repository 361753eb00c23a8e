"""The class-based hub model: names, binding, validation, results, filters, the hub API."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from app.exceptions import BindingError, ConfigurationError, FilterRejectedError, HubError
from app.hub import (
    HubContext,
    InvocationContext,
    NegotiateOptions,
    NegotiateRequest,
    ServerlessHub,
    has_role,
    hub_filter,
    require_role,
    signalr_trigger,
)
from app.hub.binding import normalize_name
from app.services.principal import Identity
from app.services.registry import HubRegistry
from signalr_protocol.upstream import CaseInsensitiveMapping, parse_client_query, parse_user_claims
from tests.support.hubkit import RecordingService, make_registry

pytestmark = pytest.mark.anyio


class Point(BaseModel):
    x: int
    y: int


@dataclass
class Pair:
    left: str
    right: str


class Shop(ServerlessHub):
    """A hub exercising binding, results and filters."""

    filters = ()

    async def add(self, a: int, b: int = 10) -> int:
        return a + b

    async def send_to_user(self, user_id: str, text: str) -> None:
        await self.clients.user(user_id).send("newMessage", text)

    async def move(self, point: Point) -> Point:
        return Point(x=point.x + 1, y=point.y + 1)

    async def pair(self, left: str, right: str) -> Pair:
        return Pair(left, right)

    async def total(self, *values: float) -> float:
        return sum(values)

    async def whoami(self, context: InvocationContext, suffix: str) -> str:
        return f"{context.connection_id}{suffix}"

    async def blob(self, data: bytes) -> int:
        return len(data)

    async def nothing(self) -> None:
        return None

    async def maybe(self) -> str | None:
        return None

    async def untyped(self, value):
        return value

    async def crash(self) -> None:
        raise RuntimeError("secret internals")

    async def refuse(self) -> None:
        raise HubError("Not today.")

    def sync_upper(self, text: str) -> str:
        return text.upper()


def context(event: str, *arguments: Any, **fields: Any) -> InvocationContext:
    fields.setdefault("connection_id", "conn-1")
    fields.setdefault("hub", "shop")
    fields.setdefault("category", "messages")
    return InvocationContext(event=event, arguments=arguments, **fields)


async def run(registry: HubRegistry, ctx: InvocationContext) -> tuple[Any, bool]:
    handler = registry.handler(ctx.hub, ctx.category, ctx.event)
    assert handler is not None, ctx.event
    assert registry.service is not None
    return await handler.run(ctx, registry.service)


@pytest.fixture
def shop(service: RecordingService) -> HubRegistry:
    return make_registry(service, Shop)


async def test_targets_match_case_insensitively_and_camel_to_snake(shop: HubRegistry) -> None:
    """A client target matches a method ignoring case, camelCase matching snake_case."""
    for name in ("sendToUser", "SendToUser", "SENDTOUSER", "send_to_user", "sendtouser"):
        handler = shop.handler("SHOP", "Messages", name)
        assert handler is not None and handler.func is Shop.send_to_user
    assert shop.handler("shop", "messages", "sendTo") is None
    assert normalize_name("joinGroup") == normalize_name("join_group") == "joingroup"


async def test_hub_name_defaults_to_class_name_and_can_be_overridden(
    service: RecordingService,
) -> None:
    """The hub is named after its class unless ``hub_name`` says otherwise."""

    class Named(ServerlessHub):
        hub_name = "lobby"

        async def ping(self) -> str:
            return "pong"

    registry = make_registry(service, Shop, Named)
    assert registry.hub_names == ["Shop", "lobby"]
    assert registry.has_hub("LOBBY") and registry.has_hub("shop")
    assert not registry.has_hub("Named")


async def test_private_and_reserved_methods_are_not_targets(shop: HubRegistry) -> None:
    """Underscore methods and the negotiate hook can't be invoked; connect events map to hooks."""
    assert shop.handler("shop", "messages", "negotiate") is None
    assert shop.handler("shop", "messages", "on_connected") is None
    assert shop.handler("shop", "messages", "_message") is None
    assert shop.handler("shop", "connections", "Connected") is not None


async def test_two_methods_mapping_to_one_target_fail_at_startup(
    service: RecordingService,
) -> None:
    """Methods that differ only by case or underscores are a start-up error."""

    class Clash(ServerlessHub):
        async def send_to_user(self) -> None: ...

        async def sendToUser(self) -> None: ...

    with pytest.raises(ConfigurationError, match="both match target 'sendtouser'"):
        make_registry(service, Clash)


async def test_duplicate_hub_event_registration_fails(service: RecordingService) -> None:
    """A trigger function for an event a hub class already handles is a start-up error."""

    @signalr_trigger(hub="shop", category="messages", event="Add")
    async def add(a: int) -> int:
        return a

    with pytest.raises(ConfigurationError, match="Two handlers for hub 'shop'"):
        make_registry(service, Shop, add)


async def test_function_replaces_a_hub_s_default_connect_handler(
    service: RecordingService,
) -> None:
    """A trigger function may handle ``connected`` for a hub class that doesn't override it."""
    seen: list[str] = []

    @signalr_trigger(hub="Shop", category="connections", event="connected")
    def connected(ctx: InvocationContext) -> None:
        seen.append(ctx.connection_id)

    registry = make_registry(service, Shop, connected)
    await run(registry, context("connected", category="connections"))
    assert seen == ["conn-1"]


async def test_arguments_are_validated_and_converted(shop: HubRegistry) -> None:
    """Arguments are converted per type hints (lax pydantic) and defaults fill the rest."""
    assert await run(shop, context("add", "5", 6)) == (11, True)
    assert await run(shop, context("add", 1)) == (11, True)
    assert await run(shop, context("move", {"x": 1, "y": "2"})) == ({"x": 2, "y": 3}, True)
    assert await run(shop, context("pair", "a", "b")) == ({"left": "a", "right": "b"}, True)
    assert await run(shop, context("total", 1, 2.5, "3")) == (6.5, True)
    assert await run(shop, context("total")) == (0, True)
    assert await run(shop, context("untyped", [1, {"a": None}])) == ([1, {"a": None}], True)


async def test_wrong_argument_count_names_the_parameters(shop: HubRegistry) -> None:
    """Too few or too many arguments give a BindingError listing the expected parameters."""
    with pytest.raises(BindingError) as exc_info:
        await run(shop, context("sendToUser", "bob"))
    assert str(exc_info.value) == "'sendToUser' expects 2 arguments (user_id, text) but got 1."
    with pytest.raises(BindingError, match=r"expects 1 to 2 arguments \(a, b\) but got 3"):
        await run(shop, context("add", 1, 2, 3))
    with pytest.raises(BindingError, match=r"expects 0 arguments \(\) but got 1"):
        await run(shop, context("nothing", 1))


async def test_wrong_argument_type_names_the_parameter_and_reason(shop: HubRegistry) -> None:
    """A value that fails validation names its position, parameter and pydantic's reason."""
    with pytest.raises(BindingError) as exc_info:
        await run(shop, context("add", "five"))
    message = str(exc_info.value)
    assert message.startswith("Argument 1 ('a') of 'add' is invalid: ")
    assert "valid integer" in message
    with pytest.raises(BindingError, match=r"Argument 1 \('point'\).*\(at y\)"):
        await run(shop, context("move", {"x": 1, "y": "high"}))
    with pytest.raises(BindingError, match=r"Argument 2 \('text'\) of 'sendToUser'"):
        await run(shop, context("sendToUser", "bob", 42))


async def test_context_parameter_is_injected_not_bound(shop: HubRegistry) -> None:
    """A parameter annotated InvocationContext receives the context and takes no argument."""
    assert await run(shop, context("whoami", "!")) == ("conn-1!", True)


async def test_bytes_arrive_as_base64_from_json_and_raw_from_msgpack(shop: HubRegistry) -> None:
    """A bytes parameter decodes the JSON protocol's base64 text and takes msgpack bin as is."""
    encoded = base64.b64encode(b"\x00\x01\x02").decode()
    assert await run(shop, context("blob", encoded)) == (3, True)
    assert await run(shop, context("blob", b"\x00\x01", protocol="messagepack")) == (2, True)
    with pytest.raises(BindingError, match="base64"):
        await run(shop, context("blob", "not base64!"))


async def test_void_and_optional_methods_both_complete_with_a_null_result(
    shop: HubRegistry,
) -> None:
    """None from a method annotated -> None or -> str | None is carried as a null result."""
    assert await run(shop, context("nothing")) == (None, True)
    assert await run(shop, context("maybe")) == (None, True)


async def test_sync_methods_run(shop: HubRegistry) -> None:
    """A plain (sync) method runs (in a worker thread) and returns its value."""
    assert await run(shop, context("syncUpper", "hi")) == ("HI", True)


async def test_handler_exceptions_propagate_to_the_webhook(shop: HubRegistry) -> None:
    """Handlers' exceptions reach the caller of run (the webhook maps them)."""
    with pytest.raises(RuntimeError, match="secret"):
        await run(shop, context("crash"))
    with pytest.raises(HubError, match="Not today"):
        await run(shop, context("refuse"))


# --------------------------------------------------------------------------------- filters


async def test_filters_run_in_order_before_binding(service: RecordingService) -> None:
    """Hub-wide filters run first, then method filters top-down, all before argument binding."""
    order: list[str] = []

    def hub_wide(ctx: InvocationContext) -> None:
        order.append("hub")

    async def first(ctx: InvocationContext) -> None:
        order.append("first")

    def second(ctx: InvocationContext) -> bool:
        order.append("second")
        return False

    class Guarded(ServerlessHub):
        filters = (hub_wide,)

        @hub_filter(first)
        @hub_filter(second)
        async def act(self, n: int) -> int:
            return n

    registry = make_registry(service, Guarded)
    with pytest.raises(FilterRejectedError, match="The call was rejected."):
        # "x" would fail binding: the filter's rejection must come first.
        await run(registry, context("act", "x", hub="Guarded"))
    assert order == ["hub", "first", "second"]


async def test_require_role_reads_multi_valued_role_claims(service: RecordingService) -> None:
    """require_role passes when any role claim (short or long type) matches, else rejects."""

    class Admin(ServerlessHub):
        @require_role("admin")
        async def act(self) -> str:
            return "done"

    registry = make_registry(service, Admin)
    long_role = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
    allowed = [
        (("role", "user"), ("role", "admin")),
        ((long_role, "admin"),),
        (("roles", "admin"),),
    ]
    for claims in allowed:
        assert await run(registry, context("act", hub="admin", claims=claims)) == ("done", True)
    for claims in [(), (("role", "user"),), (("role", "Admin"),), (("scope", "admin"),)]:
        with pytest.raises(FilterRejectedError, match="role 'admin' is required"):
            await run(registry, context("act", hub="admin", claims=claims))


async def test_hub_wide_filter_applies_to_connect_events(service: RecordingService) -> None:
    """A hub's ``filters`` run for connects even when on_connected isn't overridden."""

    class Members(ServerlessHub):
        filters = (has_role("member"),)

        async def hello(self) -> str:
            return "hi"

    registry = make_registry(service, Members)
    with pytest.raises(FilterRejectedError):
        await run(registry, context("connected", hub="members", category="connections"))
    ok = context("connected", hub="members", category="connections", claims=(("role", "member"),))
    assert await run(registry, ok) == (None, True)


async def test_has_role_needs_a_role() -> None:
    """has_role() without roles is a programming error."""
    with pytest.raises(ValueError, match="at least one role"):
        has_role()


# --------------------------------------------------------------------------------- triggers


async def test_trigger_function_binds_parameter_names(service: RecordingService) -> None:
    """parameter_names bind arguments by position to named parameters; the count must match."""

    @signalr_trigger(
        hub="chat", category="messages", event="shout", parameter_names=["text", "times"]
    )
    async def shout(api: HubContext, times: int, text: str, ctx: InvocationContext) -> str:
        await api.clients.caller.send("shouted", text * times)
        return f"{ctx.connection_id}:{text * times}"

    registry = make_registry(service, shout)
    result = await run(registry, context("Shout", "ab", "2", hub="CHAT"))
    assert result == ("conn-1:abab", True)
    assert service.calls == [("send_to_connection", ("chat", "conn-1", "shouted", ["abab"]), {})]
    with pytest.raises(BindingError, match=r"expects 2 arguments \(text, times\) but got 1"):
        await run(registry, context("shout", "ab", hub="chat"))


async def test_trigger_registration_errors(service: RecordingService) -> None:
    """Bad categories, events, names and signatures are refused when declared or loaded."""
    with pytest.raises(ValueError, match="Category 'other'"):
        signalr_trigger(hub="chat", category="other", event="x")
    with pytest.raises(ValueError, match="not a connections event"):
        signalr_trigger(hub="chat", category="connections", event="opened")
    with pytest.raises(ValueError, match="repeats a name"):
        signalr_trigger(hub="chat", category="messages", event="x", parameter_names=["a", "A"])
    with pytest.raises(Exception, match="Invalid hub name"):
        signalr_trigger(hub="1chat", category="messages", event="x")

    @signalr_trigger(hub="chat", category="messages", event="x", parameter_names=["missing"])
    async def no_such(a: int) -> None: ...

    with pytest.raises(ConfigurationError, match="no such parameter"):
        make_registry(service, no_such)

    @signalr_trigger(hub="chat", category="messages", event="y", parameter_names=["a"])
    async def unbound(a: int, b: int) -> None: ...

    with pytest.raises(ConfigurationError, match="'b'.*not in parameter_names"):
        make_registry(service, unbound)


# --------------------------------------------------------------------------------- context


async def test_user_claims_header_keeps_repeated_types_and_commas() -> None:
    """X-ASRS-User-Claims parsing keeps every value of a type and commas inside values."""
    header = "role: admin, role: user, name: Doe, Jane, email: j@d.example"
    claims = parse_user_claims(header)
    assert claims == (
        ("role", "admin"),
        ("role", "user"),
        ("name", "Doe, Jane"),
        ("email", "j@d.example"),
    )
    ctx = context("x", claims=claims)
    assert ctx.roles == ["admin", "user"]
    assert ctx.claim("ROLE") == "admin"
    assert ctx.claims_of("role") == ["admin", "user"]
    assert ctx.claim("missing") is None
    assert ctx.is_in_role("user") and not ctx.is_in_role("Admin")
    assert parse_user_claims(None) == () == parse_user_claims("")


async def test_client_query_is_parsed_without_the_access_token() -> None:
    """X-ASRS-Client-Query is parsed case-insensitively, repeated keys joined, token dropped."""
    query = parse_client_query("?hub=chat&id=abc&access_token=secret&Tag=a&tag=b&empty=")
    assert dict(query) == {"hub": "chat", "id": "abc", "tag": "a,b", "empty": ""}
    assert query["TAG"] == "a,b" and "access_token" not in query
    assert len(parse_client_query(None)) == 0


async def test_case_insensitive_get_matches_any_case_and_falls_back() -> None:
    """CaseInsensitiveMapping.get finds a key in any case and gives the default on a miss."""
    headers = CaseInsensitiveMapping([("X-ASRS-Hub", "chat"), ("x-asrs-hub", "lobby")])
    assert headers.get("x-Asrs-HUB") == "chat,lobby"
    assert headers.get("x-asrs-user-id") is None
    assert headers.get("x-asrs-user-id", "") == ""
    assert headers.get("x-asrs-user-id", default="anon") == "anon"


# --------------------------------------------------------------------------------- hub API


async def test_hub_api_calls_the_outbound_service(service: RecordingService) -> None:
    """Every hub API call maps onto the outbound service with the hub's name."""

    class Api(ServerlessHub):
        hub_name = "api"

        async def go(self) -> list[bool]:
            c = self.clients
            await c.all.send("t", 1, Point(x=1, y=2))
            await c.all_except(["x"]).send("t")
            await c.caller.send("t")
            await c.others.send("t")
            await c.user("u").send("t", "a")
            await c.users(["u", "v"]).send("t")
            await c.group("g").send("t")
            await c.group_except("g", ["x"]).send("t")
            await c.groups(["g", "h"], excluded=["x"]).send("t")
            await c.client("c2").send("t")
            await c.clients(["c2", "c3"]).send("t")
            await self.groups.add_to_group("c2", "g")
            await self.groups.remove_from_group("c2", "g")
            await self.groups.remove_from_all_groups("c2")
            await self.user_groups.add_to_group("u", "g", ttl=timedelta(minutes=1))
            await self.user_groups.add_to_group("u", "h")
            await self.user_groups.remove_from_group("u", "g")
            await self.user_groups.remove_from_all_groups("u")
            await self.client_manager.close_connection("c2", reason="bye")
            return [
                await self.user_groups.is_user_in_group("u", "g"),
                await self.client_manager.connection_exists("c2"),
                await self.client_manager.user_exists("u"),
                await self.client_manager.group_exists("g"),
            ]

    service.answers.update(
        user_in_group=True, connection_exists=False, user_exists=True, group_exists=False
    )
    registry = make_registry(service, Api)
    assert await run(registry, context("go", hub="api")) == ([True, False, True, False], True)
    assert service.calls == [
        ("send_to_all", ("api", "t", [1, {"x": 1, "y": 2}]), {"excluded": []}),
        ("send_to_all", ("api", "t", []), {"excluded": ["x"]}),
        ("send_to_connection", ("api", "conn-1", "t", []), {}),
        ("send_to_all", ("api", "t", []), {"excluded": ["conn-1"]}),
        ("send_to_user", ("api", "u", "t", ["a"]), {}),
        ("send_to_users", ("api", ["u", "v"], "t", []), {}),
        ("send_to_group", ("api", "g", "t", []), {"excluded": []}),
        ("send_to_group", ("api", "g", "t", []), {"excluded": ["x"]}),
        ("send_to_groups", ("api", ["g", "h"], "t", []), {"excluded": ["x"]}),
        ("send_to_connection", ("api", "c2", "t", []), {}),
        ("send_to_connections", ("api", ["c2", "c3"], "t", []), {}),
        ("add_connection_to_group", ("api", "g", "c2"), {}),
        ("remove_connection_from_group", ("api", "g", "c2"), {}),
        ("remove_connection_from_all_groups", ("api", "c2"), {}),
        ("add_user_to_group", ("api", "g", "u"), {"ttl": 60.0}),
        ("add_user_to_group", ("api", "h", "u"), {"ttl": None}),
        ("remove_user_from_group", ("api", "g", "u"), {}),
        ("remove_user_from_all_groups", ("api", "u"), {}),
        ("close_connection", ("api", "c2"), {"reason": "bye"}),
        ("user_in_group", ("api", "g", "u"), {}),
        ("connection_exists", ("api", "c2"), {}),
        ("user_exists", ("api", "u"), {}),
        ("group_exists", ("api", "g"), {}),
    ]
    json.dumps(service.calls[0][1][2])  # the converted arguments are JSON-ready


# --------------------------------------------------------------------------------- negotiate


async def test_negotiate_hook_shapes_the_token(service: RecordingService) -> None:
    """A hub's negotiate hook decides user id, claims and lifetime; others keep the request's."""

    class Shaped(ServerlessHub):
        async def negotiate(self, request: NegotiateRequest) -> NegotiateOptions:
            if request.query.get("deny"):
                raise FilterRejectedError("No.")
            role = request.headers.get("x-role", "user")
            return NegotiateOptions(
                user_id=f"u-{request.user_id}",
                claims=[*request.claims, ("role", role)],
                lifetime=timedelta(minutes=5),
            )

    registry = make_registry(service, Shaped, Shop)
    request = NegotiateRequest(user_id="bob", claims=[("a", "1")], headers={"x-role": "admin"})
    options = await registry.negotiate_options("shaped", request)
    assert options == NegotiateOptions(
        user_id="u-bob", claims=[("a", "1"), ("role", "admin")], lifetime=timedelta(minutes=5)
    )
    assert await registry.negotiate_options("shop", request) == NegotiateOptions(
        user_id="bob", claims=(("a", "1"),)
    )

    shaped = await registry.shape_negotiation("SHAPED", Identity("ann", []), {"X-Role": "x"}, {})
    assert shaped is not None and shaped.user_id == "u-ann" and shaped.claims == [("role", "x")]
    assert await registry.shape_negotiation("shop", Identity("ann", []), {}, {}) is None
    assert await registry.shape_negotiation("nope", Identity("ann", []), {}, {}) is None
    with pytest.raises(FilterRejectedError):
        await registry.shape_negotiation("shaped", Identity(None, []), {}, {"deny": "1"})


# --------------------------------------------------------------------------------- loading


async def test_registry_loads_import_strings(service: RecordingService) -> None:
    """Hubs load from "module:Class", "module:function" and bare "module" strings."""
    registry = HubRegistry(service=service)
    registry.load_all(["app.samples.chat:ChatHub"])
    assert registry.hub_names == ["chat"]
    assert registry.handler("chat", "messages", "adminBroadcast") is not None
    module = HubRegistry(service=service)
    module.load("app.samples.chat")
    assert module.hub_names == ["chat"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz:Hub", "Cannot import hub module"),
        ("app.samples.chat:Missing", "has no attribute 'Missing'"),
        ("app.samples.chat:Any", "neither a ServerlessHub subclass"),
        ("app.exceptions", "defines no ServerlessHub subclass"),
    ],
)
async def test_registry_refuses_bad_import_strings(
    service: RecordingService, spec: str, message: str
) -> None:
    """A bad hub import string is a start-up error that says what is wrong."""
    with pytest.raises(ConfigurationError, match=message):
        HubRegistry(service=service).load(spec)


async def test_unresolvable_type_hint_is_a_startup_error(service: RecordingService) -> None:
    """A hint naming an undefined type fails when the hub is registered, not per call."""

    class Broken(ServerlessHub):
        async def act(self, thing: Undefined) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(ConfigurationError, match="Cannot resolve the type hints"):
        make_registry(service, Broken)


def test_public_surface_is_pinned() -> None:
    """app.hub exports exactly what hub authors write, each of them defined."""
    import app.hub

    assert sorted(app.hub.__all__) == sorted(
        [
            "Filter",
            "FilterRejectedError",
            "GroupMember",
            "HubContext",
            "HubError",
            "InvocationContext",
            "NegotiateOptions",
            "NegotiateRequest",
            "ServerlessHub",
            "has_role",
            "hub_filter",
            "require_role",
            "signalr_trigger",
        ]
    )
    for name in app.hub.__all__:
        assert hasattr(app.hub, name), name
