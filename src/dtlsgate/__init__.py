"""dtlsgate: DTLS 1.2, DTLS 1.3 and TLS 1.3 in Python, built around a stateless listen.

The gate (OpenSSL's ``DTLSv1_listen``) answers a ClientHello without a valid cookie with a
HelloVerifyRequest and keeps nothing; only a ClientHello that returns with a verified
cookie is admitted::

    from dtlsgate import Gate, ServerConfig, Reply, Admit, Drop
    result = Gate(ServerConfig()).receive(datagram, peer, now)
"""

from dtlsgate.config import ClientConfig, ServerConfig
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

__all__ = [
    "Admit",
    "AlertReceived",
    "ClientConfig",
    "CookieJar",
    "DecodeError",
    "Drop",
    "DropReason",
    "DtlsgateError",
    "Gate",
    "GateResult",
    "Listener",
    "ProtocolError",
    "Reply",
    "ServerConfig",
    "StateError",
    "UsageError",
]
__version__ = "0.1.0"
