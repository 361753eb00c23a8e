"""Negotiate: hand a client the service URL and a signed, user-bound access token.

This is the Functions ``SignalRConnectionInfo`` input binding. :class:`Negotiator` decides
who the user is (trusted App Service headers, or the dev header in local development),
lets the hub class shape the answer (its ``negotiate`` hook), picks a service endpoint,
and mints the token. The router only turns its result into JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from app.hub import NegotiateOptions
from app.settings import Settings
from signalr_protocol.connection_string import ServiceEndpoint
from signalr_protocol.errors import InvalidNameError
from signalr_protocol.names import validate_hub_name, validate_user_id
from signalr_protocol.tokens import mint_client_token
from signalr_protocol.upstream import header_text

from .identity import AccessKeyUnavailableError, TemporaryAccessKey, mint_keyless_client_token
from .principal import Identity, identity_from_headers

__all__ = [
    "DEV_USER_HEADER",
    "ConnectionInfo",
    "HubNotFoundError",
    "NegotiationHooks",
    "Negotiator",
]

DEV_USER_HEADER = "x-ms-signalr-user-id"


class HubNotFoundError(InvalidNameError):
    """Negotiate was asked for a hub no hub class registers."""

    status_code = 404


class NegotiationHooks(Protocol):
    """What negotiate needs from the hub registry (:class:`app.services.registry.HubRegistry`)."""

    def has_hub(self, name: str) -> bool:
        """Whether a hub of this name (case-insensitive) is registered."""
        ...

    async def shape_negotiation(
        self,
        hub: str,
        identity: Identity,
        headers: Mapping[str, str],
        query: Mapping[str, str],
    ) -> NegotiateOptions | None:
        """Run the hub's negotiate hook; ``None`` when it has none (keep the defaults)."""
        ...


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """The negotiate answer: ``{"url": ..., "accessToken": ...}``, and the user it is for
    (not sent; for the trace)."""

    url: str
    access_token: str
    user_id: str | None = None


class Negotiator:
    """Mints connection info for one hub per request. Build once per process."""

    def __init__(
        self,
        settings: Settings,
        hooks: NegotiationHooks,
        pick_endpoint: Callable[[], ServiceEndpoint] | None = None,
        signing_key: Callable[[ServiceEndpoint], Awaitable[TemporaryAccessKey]] | None = None,
    ) -> None:
        self._settings = settings
        self._hooks = hooks
        self._pick_endpoint = pick_endpoint or (lambda: settings.endpoint)
        # A keyless endpoint's temporary key (SignalRService.signing_key).
        self._signing_key = signing_key
        self._lifetime = timedelta(seconds=settings.token_lifetime_seconds)
        self._trusted = settings.principal_trusted
        self._dev_header = settings.dev_user_header_enabled

    def identity(self, headers: Mapping[str, str]) -> Identity:
        """Who the request is for; anonymous unless a trusted source says otherwise.

        Raises:
            PrincipalError: trusted headers carry a malformed principal.
            InvalidNameError: the dev user id header is not a valid user id.
        """
        if self._trusted:
            return identity_from_headers(headers)
        if self._dev_header:
            # Read as the UTF-8 a terminal's curl sends: "José" stays "José".
            user_id = header_text(headers.get(DEV_USER_HEADER, ""))
            if user_id:
                return Identity(user_id=validate_user_id(user_id.strip()))
        return Identity()

    async def negotiate(
        self,
        hub: str,
        headers: Mapping[str, str],
        query: Mapping[str, str],
    ) -> ConnectionInfo:
        """Negotiate a connection to ``hub``.

        Raises:
            InvalidNameError: the hub name breaks the service's rule (400).
            HubNotFoundError: no hub class registers that hub (404).
            PrincipalError: malformed App Service principal (400).
            TokenTooLargeError: the hook added too many claims.
            AccessKeyUnavailableError: the endpoint is keyless and has no usable signing
                key now (503, with the reason).
        """
        validate_hub_name(hub)
        if not self._hooks.has_hub(hub):
            raise HubNotFoundError(
                f"No hub named {hub!r} is registered; add its class to SIGNALR_HUBS."
            )
        identity = self.identity(headers)
        user_id: str | None = identity.user_id
        claims: Sequence[tuple[str, Any]] = identity.claims
        lifetime = self._lifetime
        shaped = await self._hooks.shape_negotiation(hub, identity, headers, query)
        if shaped is not None:
            user_id = shaped.user_id
            claims = shaped.claims
            if shaped.lifetime is not None:
                lifetime = shaped.lifetime
        endpoint = self._pick_endpoint()
        if endpoint.keyless:
            if self._signing_key is None:
                raise AccessKeyUnavailableError(
                    f"SignalR endpoint {endpoint.label} is keyless and no signing key source "
                    "is configured.",
                    endpoint=endpoint.label,
                )
            key = await self._signing_key(endpoint)
            token = mint_keyless_client_token(
                endpoint, key, hub, user_id=user_id, claims=claims, lifetime=lifetime
            )
        else:
            token = mint_client_token(
                endpoint, hub, user_id=user_id, claims=claims, lifetime=lifetime
            )
        return ConnectionInfo(url=endpoint.client_url(hub), access_token=token, user_id=user_id)
