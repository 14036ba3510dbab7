"""What a connection reports, in one vocabulary for every protocol version.

A sans-I/O connection (DTLS 1.2 over datagrams, TLS 1.3 over a stream) queues these; the
application takes them with ``connection.next_event()``. Each is an immutable value:

- `HandshakeCompleted`: the handshake finished; what was negotiated. The same object is the
  connection's ``info`` afterwards.
- `DataReceived`: application data (one record's worth in DTLS, a chunk of the stream in TLS).
- `ConnectionClosed`: the connection ended, cleanly (close_notify) or not.
- `SessionTicketReceived`: a client got a session it can resume: a TLS 1.3 NewSessionTicket,
  or a DTLS 1.2 session (a ticket, RFC 5077, or a session ID the server caches).
"""

from __future__ import annotations

from typing import Any

from dtlsgate._frozen import frozen
from dtlsgate.wire.enums import (
    AlertDescription,
    CipherSuite,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
)


class Event:
    """Base of every event a connection reports."""

    __slots__ = ()


@frozen
class HandshakeCompleted(Event):
    """The handshake finished. Fields a protocol version does not have keep their default:
    ``group`` and ``signature_scheme`` are reported by TLS 1.3, ``psk_identity`` by a DTLS 1.2
    PSK suite; ``extended_master_secret`` is always true in TLS 1.3, whose key schedule binds
    the whole transcript (RFC 8446 §7.1)."""

    version: ProtocolVersion
    cipher_suite: CipherSuite
    alpn_protocol: bytes | None = None
    server_name: str | None = None
    peer_certificates: tuple[bytes, ...] = ()
    psk_identity: bytes | None = None
    group: NamedGroup | None = None
    signature_scheme: SignatureScheme | None = None
    extended_master_secret: bool = True
    hello_retry: bool = False
    resumed: bool = False
    # RFC 7250: the peer's raw public key (DER SubjectPublicKeyInfo) when its Certificate
    # carried one instead of X.509 certificates; it was one of the configured pinned_keys.
    peer_raw_public_key: bytes | None = None
    # RFC 5764 §4.1.1 (DTLS 1.2 and 1.3): the SRTP protection profile use_srtp agreed on
    # (`SrtpProtectionProfile`), when both sides configured srtp_profiles; its keys come from
    # ``export_keying_material(b"EXTRACTOR-dtls_srtp", ...)`` (§4.2).
    srtp_profile: int | None = None


@frozen
class DataReceived(Event):
    """Application data from the peer."""

    data: bytes


@frozen
class ConnectionClosed(Event):
    """The connection ended. ``alert`` is close_notify (0) when the peer closed cleanly, the
    fatal alert that ended it otherwise, and None when nothing was received (the handshake
    timed out); ``reason`` says what happened in words."""

    alert: int | None = AlertDescription.close_notify
    reason: str = "close_notify"


@frozen
class ClientCertificateReceived(Event):
    """TLS 1.3 post-handshake authentication (RFC 8446 §4.6.2) finished: the client answered
    ``ServerConnection.request_client_certificate()`` with ``certificates`` (DER, leaf
    first; verified against the server's CA file and proven by its CertificateVerify and
    Finished), or with none (an empty tuple) when it had no certificate to give."""

    certificates: tuple[bytes, ...]


@frozen
class SessionTicketReceived(Event):
    """A client received a session it can resume: pass ``ticket`` as
    ``ClientConfig(session_ticket=...)`` to resume. TLS 1.3: a ``SessionTicket`` from a
    NewSessionTicket (RFC 8446 §4.6.1). DTLS 1.2: a ``Dtls12Session`` (RFC 5246 §7.3), by
    ticket (RFC 5077) or session ID, which ``encode``/``to_pem`` save."""

    ticket: Any


__all__ = [
    "ConnectionClosed",
    "DataReceived",
    "Event",
    "HandshakeCompleted",
    "SessionTicketReceived",
]
