"""Bodies of the gateway endpoints.

``POST /api/hubs/{hub}/messages`` takes one :class:`GatewayMessage` or a JSON array of
them; ``POST /api/hubs/{hub}/groupActions`` one :class:`GatewayGroupAction` or an array.
Field names are the Functions output binding's (``connectionId``, ``userId``,
``groupName``) and, as with the binding's JSON reader, match case-insensitively
(``Target`` works too). Unknown fields are refused, so a misspelt receiver such as
``"group"`` is a 422 instead of a broadcast to everyone.

A form body carries one item as fields named like these keys (read by
:func:`app.services.gateway.parse_form`) and is validated by the same models.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from signalr_protocol.errors import InvalidNameError
from signalr_protocol.names import validate_connection_id, validate_group_name, validate_user_id

__all__ = [
    "MAX_BATCH_ITEMS",
    "GatewayGroupAction",
    "GatewayItemResult",
    "GatewayMessage",
    "GatewayResult",
]

MAX_BATCH_ITEMS = 1000
"""Most items one request may carry."""


@functools.cache
def _aliases(model: type[BaseModel]) -> dict[str, str]:
    """Each field's alias (its name when it has none), keyed by the lower-case alias."""
    names = [field.alias or name for name, field in model.model_fields.items()]
    return {alias.lower(): alias for alias in names}


def _canonical_keys(data: Any, model: type[BaseModel]) -> Any:
    """Rename keys that match a field of ``model`` case-insensitively to the field's alias."""
    if not isinstance(data, dict):
        return data
    fields = _aliases(model)
    renamed: dict[str, Any] = {}
    for key, value in data.items():
        name = fields.get(key.lower(), key) if isinstance(key, str) else key
        if name in renamed:
            raise ValueError(f"the field {name!r} is given twice (names are case-insensitive)")
        renamed[name] = value
    return renamed


def _as_value_error(validator: Callable[[str], str]) -> Callable[[str], str]:
    """``validator`` raising ``ValueError`` (which pydantic reports as a 422 item)."""

    def check(value: str) -> str:
        try:
            return validator(value)
        except InvalidNameError as exc:
            raise ValueError(exc.message) from exc

    return check


_check_connection_id = _as_value_error(validate_connection_id)
_ConnectionId = Annotated[str, AfterValidator(_check_connection_id)]
_UserId = Annotated[str, AfterValidator(_as_value_error(validate_user_id))]
_GroupName = Annotated[str, AfterValidator(_as_value_error(validate_group_name))]


class GatewayMessage(BaseModel):
    """One message to send: the Functions ``SignalRMessage``.

    The receivers are the first of ``connectionId``, ``userId``, ``groupName`` that is set;
    none means every connection of the hub. ``excluded`` (connection ids) applies to a hub
    or group send only.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    target: str = Field(min_length=1, description="The client method to call.")
    arguments: list[Any] = Field(
        default_factory=list, description="The client method's arguments, in order."
    )
    connection_id: _ConnectionId | None = Field(default=None, alias="connectionId")
    user_id: _UserId | None = Field(default=None, alias="userId")
    group_name: _GroupName | None = Field(default=None, alias="groupName")
    excluded: list[str] = Field(
        default_factory=list, description="Connection ids left out of a hub or group send."
    )

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        return _canonical_keys(data, cls)

    @field_validator("excluded")
    @classmethod
    def _excluded(cls, value: list[str]) -> list[str]:
        for connection_id in value:
            _check_connection_id(connection_id)
        return value

    @model_validator(mode="after")
    def _receivers(self) -> GatewayMessage:
        if self.excluded and (self.connection_id is not None or self.user_id is not None):
            raise ValueError(
                "excluded applies to a send to everyone or to a group; remove it, or "
                "connectionId/userId (which pick a single connection or user)"
            )
        return self


class GatewayGroupAction(BaseModel):
    """One group change: the Functions ``SignalRGroupAction``.

    * ``add`` / ``remove``: ``groupName`` and either ``connectionId`` (that connection)
      or ``userId`` (all the user's connections); ``connectionId`` wins when both are set.
    * ``removeAll``: ``connectionId`` or ``userId`` leaves every group.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    action: Literal["add", "remove", "removeAll"]
    group_name: _GroupName | None = Field(default=None, alias="groupName")
    user_id: _UserId | None = Field(default=None, alias="userId")
    connection_id: _ConnectionId | None = Field(default=None, alias="connectionId")

    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        data = _canonical_keys(data, cls)
        if isinstance(data, dict) and isinstance(data.get("action"), str):
            actions = {"add": "add", "remove": "remove", "removeall": "removeAll"}
            data["action"] = actions.get(data["action"].lower(), data["action"])
        return data

    @model_validator(mode="after")
    def _complete(self) -> GatewayGroupAction:
        if self.connection_id is None and self.user_id is None:
            raise ValueError(f"action {self.action!r} needs connectionId or userId")
        if self.action != "removeAll" and self.group_name is None:
            raise ValueError(f"action {self.action!r} needs groupName")
        return self


class GatewayItemResult(BaseModel):
    """What happened to one item of the request.

    ``status`` is the HTTP status the item alone would have got: 202 (message sent) or
    200 (group action applied) on success, else the error's status (e.g. 400, 502, 503).
    """

    index: int
    status: int
    error: str | None = None
    type: str | None = Field(default=None, description="The error's class name.")
    service_status: int | None = Field(default=None, alias="serviceStatus")
    service_error_code: str | None = Field(default=None, alias="serviceErrorCode")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class GatewayResult(BaseModel):
    """The answer to a gateway request: one result per item, in request order.

    The response status is 202 (messages) / 200 (group actions) when every item
    succeeded, and 207 (Multi-Status) when any failed; the failed items carry ``error``.
    """

    succeeded: int
    failed: int
    results: list[GatewayItemResult]
