"""dtlsgate: DTLS 1.2, DTLS 1.3 and TLS 1.3 in Python, built around a stateless listen.

The gate (OpenSSL's ``DTLSv1_listen``) answers a ClientHello without a valid cookie with a
HelloVerifyRequest and keeps nothing; only a ClientHello that returns with a verified
cookie is admitted::

    from dtlsgate import Gate, ServerConfig, Reply, Admit, Drop
    result = Gate(ServerConfig()).receive(datagram, peer, now)
"""

from dtlsgate.config import ClientConfig, ServerConfig, VerifyClient
from dtlsgate.errors import (
    AlertReceived,
    DecodeError,
    DtlsgateError,
    ProtocolError,
    StateError,
    UsageError,
)
from dtlsgate.events import (
    ClientCertificateReceived,
    ConnectionClosed,
    DataReceived,
    Event,
    HandshakeCompleted,
    SessionTicketReceived,
)
from dtlsgate.gate import Gate
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.gate.results import (
    Admit,
    Drop,
    DropReason,
    Dtls13Admit,
    GateResult,
    Refuse,
    Reply,
    StreamAdmit,
    StreamGateResult,
)

# The I/O adapters (``Listener``, ``await dtlsgate.serve(handler, host, port, config)``,
# ``await dtlsgate.connect(host, port, config)``, ...) and the connections load on first use,
# so importing the sans-I/O core never pulls in socket or asyncio.
_LAZY: dict[str, tuple[str, str | None]] = {
    "Listener": ("dtlsgate.io.listener", "Listener"),
    "serve": ("dtlsgate.io.aio", "serve"),
    "connect": ("dtlsgate.io.aio", "connect"),
    "DtlsStream": ("dtlsgate.io.aio", "DtlsStream"),
    "DtlsSocket": ("dtlsgate.io.blocking", "DtlsSocket"),
    "DtlsServerConnection": ("dtlsgate.connection.datagram", "DtlsServerConnection"),
    "DtlsClientConnection": ("dtlsgate.connection.datagram", "DtlsClientConnection"),
    "serve_tls": ("dtlsgate.io.aio_tls", "serve_tls"),
    "connect_tls": ("dtlsgate.io.aio_tls", "connect_tls"),
    "TlsServerConnection": ("dtlsgate.connection.stream", "ServerConnection"),
    "TlsClientConnection": ("dtlsgate.connection.stream", "ClientConnection"),
    "StatelessGate": ("dtlsgate.gate.stream", "StatelessGate"),
    "SessionTicket": ("dtlsgate.handshake.tls13.client", "SessionTicket"),
    "Dtls12Session": ("dtlsgate.handshake.dtls12.resume", "Dtls12Session"),
    "ticket_key_from_master": ("dtlsgate.handshake.tls13.tickets", "ticket_key_from_master"),
    # ``dtlsgate.blocking.connect(...)`` after only ``import dtlsgate``: the blocking
    # sockets module (``dtlsgate.io.blocking``), loaded on first use like the rest.
    "blocking": ("dtlsgate.io.blocking", None),
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
    "ClientCertificateReceived",
    "ClientConfig",
    "ConnectionClosed",
    "CookieJar",
    "DataReceived",
    "DecodeError",
    "Drop",
    "DropReason",
    "Dtls12Session",
    "Dtls13Admit",
    "DtlsClientConnection",
    "DtlsServerConnection",
    "DtlsSocket",
    "DtlsStream",
    "DtlsgateError",
    "Event",
    "Gate",
    "GateResult",
    "HandshakeCompleted",
    "Listener",
    "ProtocolError",
    "Refuse",
    "Reply",
    "ServerConfig",
    "SessionTicket",
    "SessionTicketReceived",
    "StateError",
    "StatelessGate",
    "StreamAdmit",
    "StreamGateResult",
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
