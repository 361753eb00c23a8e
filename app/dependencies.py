"""FastAPI dependencies, each declared once as an ``Annotated`` alias.

They are ``async def`` on purpose: FastAPI runs plain ``def`` dependencies in a thread
pool, which costs a thread switch per request for what is an attribute read.

Handlers read ``settings: SettingsDep``, ``signalr: SignalRDep``, ``hubs: HubRegistryDep``,
``negotiator: NegotiatorDep``. The objects live on ``app.state``, created by the lifespan
in :mod:`app.main`; tests build ``create_app(Settings(...))`` instead of patching globals.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.services.negotiation import Negotiator
from app.services.registry import HubRegistry
from app.services.signalr import SignalRService
from app.settings import Settings

__all__ = [
    "HubRegistryDep",
    "NegotiatorDep",
    "SettingsDep",
    "SignalRDep",
    "get_hub_registry",
    "get_negotiator",
    "get_settings_from_app",
    "get_signalr",
]


async def get_settings_from_app(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_signalr(request: Request) -> SignalRService:
    """The process's one SignalR Service REST client."""
    service: SignalRService = request.app.state.signalr
    return service


async def get_hub_registry(request: Request) -> HubRegistry:
    """The registry of hub classes and trigger functions."""
    registry: HubRegistry = request.app.state.hubs
    return registry


async def get_negotiator(request: Request) -> Negotiator:
    """The negotiate service."""
    negotiator: Negotiator = request.app.state.negotiator
    return negotiator


SettingsDep = Annotated[Settings, Depends(get_settings_from_app)]
SignalRDep = Annotated[SignalRService, Depends(get_signalr)]
HubRegistryDep = Annotated[HubRegistry, Depends(get_hub_registry)]
NegotiatorDep = Annotated[Negotiator, Depends(get_negotiator)]
