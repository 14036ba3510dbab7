"""dtlsgate: DTLS 1.2, DTLS 1.3 and TLS 1.3 in Python, built around a stateless listen.

The gate (OpenSSL's ``DTLSv1_listen``) answers a ClientHello without a valid cookie with a
HelloVerifyRequest and keeps nothing; only a ClientHello that returns with a verified
cookie is admitted::

    from dtlsgate import Gate, ServerConfig, Reply, Admit, Drop
    result = Gate(ServerConfig()).receive(datagram, peer, now)
"""

from dtlsgate.config import ClientConfig, ServerConfig, VerifyClient
from dtlsgate.cookie import CookieJar
from dtlsgate.errors import (
    AlertReceived,
    DecodeError,
    DtlsgateError,
    ProtocolError,
    StateError,
    UsageError,
)
from dtlsgate.gate import Admit, Drop, DropReason, Gate, GateResult, Reply
from dtlsgate.listener import Listener

# The asyncio adapter (``await dtlsgate.serve(handler, host, port, config)``,
# ``await dtlsgate.connect(host, port, config)``) and the DTLS 1.2 connections load on first
# use, so importing the sans-I/O core never pulls in asyncio.
_LAZY: dict[str, tuple[str, str | None]] = {
    "serve": ("dtlsgate.aio", "serve"),
    "connect": ("dtlsgate.aio", "connect"),
    "DtlsStream": ("dtlsgate.aio", "DtlsStream"),
    "DtlsSocket": ("dtlsgate.blocking", "DtlsSocket"),
    "DtlsServerConnection": ("dtlsgate.dtls", "DtlsServerConnection"),
    "DtlsClientConnection": ("dtlsgate.dtls", "DtlsClientConnection"),
    "serve_tls": ("dtlsgate.aio_tls", "serve_tls"),
    "connect_tls": ("dtlsgate.aio_tls", "connect_tls"),
    "TlsServerConnection": ("dtlsgate.tls13.connection", "ServerConnection"),
    "TlsClientConnection": ("dtlsgate.tls13.connection", "ClientConnection"),
    "StatelessGate": ("dtlsgate.tls13.stateless", "StatelessGate"),
    "SessionTicket": ("dtlsgate.tls13.client", "SessionTicket"),
    "ticket_key_from_master": ("dtlsgate.tls13.tickets", "ticket_key_from_master"),
    # ``dtlsgate.blocking.connect(...)`` after only ``import dtlsgate``: the blocking
    # sockets module, loaded on first use like the rest.
    "blocking": ("dtlsgate.blocking", None),
}


def __getattr__(name: str) -> object:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'dtlsgate' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(target[0])
    return module if target[1] is None else getattr(module, target[1])


__all__ = [
    "Admit",
    "AlertReceived",
    "ClientConfig",
    "CookieJar",
    "DecodeError",
    "Drop",
    "DropReason",
    "DtlsClientConnection",
    "DtlsServerConnection",
    "DtlsSocket",
    "DtlsStream",
    "DtlsgateError",
    "Gate",
    "GateResult",
    "Listener",
    "ProtocolError",
    "Reply",
    "ServerConfig",
    "SessionTicket",
    "StateError",
    "StatelessGate",
    "TlsClientConnection",
    "TlsServerConnection",
    "UsageError",
    "VerifyClient",
    "blocking",
    "connect",
    "connect_tls",
    "serve",
    "serve_tls",
    "ticket_key_from_master",
]
__version__ = "0.1.0"
