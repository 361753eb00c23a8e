"""The protocol core of serverless SignalR: sans-I/O, no web framework, no I/O.

It owns the connection string, access tokens, upstream signatures, the hub protocol codec
and handshake, name rules and the ``X-ASRS-*`` upstream request format, with one exception
tree (:mod:`signalr_protocol.errors`). The backend (``app``) and the emulator both import it;
it imports neither.
"""

from __future__ import annotations
