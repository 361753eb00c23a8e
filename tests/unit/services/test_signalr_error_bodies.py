"""A service error body outside the JSON limits still gives the typed error, not a crash."""

from __future__ import annotations

import pytest

from app.exceptions import ServiceBadRequestError
from app.services.signalr import SignalRService
from tests.support.outbound_kit import Reply, recording_server, settings_for

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b'{"message": NaN}', b'{"code": 1e999}', b"\xff\xfe"],
    ids=["100,000 deep", "NaN", "1e999", "not UTF-8"],
)
async def test_an_error_body_outside_the_limits_is_a_plain_service_error(body: bytes) -> None:
    """A 400 whose body nests 100,000 deep (RecursionError in json) or is otherwise not JSON
    the limits accept is the ServiceBadRequestError of a 400, with no detail from the body."""
    async with recording_server() as server:
        server.replies = [Reply(400, headers={"content-type": "application/json"}, body=body)]
        async with SignalRService.open(
            settings_for(server.base_url, retry_max_attempts=1)
        ) as service:
            with pytest.raises(ServiceBadRequestError) as caught:
                await service.send_to_group("chat", "g", "t", [1])
    assert caught.value.status_code == 400
    assert "answered 400" in str(caught.value)
