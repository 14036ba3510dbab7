"""DTLS 1.2 after the gate: record protection, flights, the handshake state machines and
the sans-I/O connection (``DtlsServerConnection``, ``DtlsClientConnection``)."""

from dtlsgate.dtls.connection import (
    ConnectionClosed,
    DataReceived,
    DtlsClientConnection,
    DtlsConnection,
    DtlsServerConnection,
    Event,
)
from dtlsgate.handshake.dtls12.common import HandshakeComplete

__all__ = [
    "ConnectionClosed",
    "DataReceived",
    "DtlsClientConnection",
    "DtlsConnection",
    "DtlsServerConnection",
    "Event",
    "HandshakeComplete",
]
