"""How far a DTLS client handshake got, for the error a user reads when it fails. Its stages
are DTLS 1.2's (HelloVerifyRequest, ServerHello, ServerHelloDone); a client offering DTLS 1.3
too reads the same plaintext headers up to the ServerHello (or HelloRetryRequest).

The adapters (asyncio and blocking) call `HandshakeProgress.sent` for every transmission of
a flight and `received` for every datagram from the server; `timeout_message` turns that
into one line: how long the handshake took (`timeout_message` holds the one rule for which
time that is), how many flights went out, what came back. It reads only the plaintext
record and handshake headers (RFC 6347 §4.1, §4.2.2), so it depends on no handshake
internals; a datagram it cannot parse is simply not counted as progress.

`format_peer` names a peer as these messages do, and so do the io layer's logs and the CLI.
"""

from __future__ import annotations

from dtlsgate.wire.enums import ContentType, HandshakeType

_RECORD_HEADER = 13  # type, version, epoch, sequence number, length (RFC 6347 §4.1)

# What the server sends, in the order a full handshake sends it, with the words a user reads.
_STAGES = {
    HandshakeType.HELLO_VERIFY_REQUEST: "its HelloVerifyRequest",
    HandshakeType.SERVER_HELLO: "its ServerHello",
    HandshakeType.SERVER_HELLO_DONE: "its whole flight (up to ServerHelloDone)",
}
_ORDER = list(_STAGES)


class HandshakeProgress:
    """Flights sent and the furthest server message seen during one client handshake."""

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.flights_sent = 0
        self.datagrams_received = 0
        self.stage: HandshakeType | None = None
        self.encrypted_seen = False
        self.alert: int | None = None
        # Transmissions made after the server's whole flight arrived: our Finished flight.
        self.sent_after_server_flight = 0

    def sent(self) -> None:
        self.flights_sent += 1
        if self.stage is HandshakeType.SERVER_HELLO_DONE:
            self.sent_after_server_flight += 1

    def received(self, datagram: bytes) -> None:
        self.datagrams_received += 1
        pos = 0
        while pos + _RECORD_HEADER <= len(datagram):
            content_type = datagram[pos]
            epoch = int.from_bytes(datagram[pos + 3 : pos + 5], "big")
            length = int.from_bytes(datagram[pos + 11 : pos + 13], "big")
            body = datagram[pos + _RECORD_HEADER : pos + _RECORD_HEADER + length]
            pos += _RECORD_HEADER + length
            if epoch:
                self.encrypted_seen = True
            elif content_type == ContentType.ALERT and len(body) == 2:
                self.alert = body[1]
            elif content_type == ContentType.HANDSHAKE and body:
                self._saw(body[0])

    def _saw(self, msg_type: int) -> None:
        try:
            kind = HandshakeType(msg_type)
        except ValueError:
            return
        if kind in _STAGES and (
            self.stage is None or _ORDER.index(kind) > _ORDER.index(self.stage)
        ):
            self.stage = kind

    def timeout_message(self, limit: float | None, elapsed: float, gave_up: bool) -> str:
        """The line for a handshake that did not finish: ``limit`` is the caller's time
        limit (None: none), ``elapsed`` the seconds the face measured since it started
        waiting, ``gave_up`` whether the connection gave up by itself (it closed: its
        flight's retransmissions ran out, the one way a handshake's connection closes
        without an alert or an error).

        The one rule both faces (asyncio and blocking) follow: a connection that gave up
        by itself took the measured time; otherwise the caller's limit ran out, and the
        line names that limit as the caller wrote it (a measured time says 4.1 s for a
        limit of 4 s on a loaded machine)."""
        seconds = round(elapsed, 1) if gave_up or limit is None else limit
        flights = f"{self.flights_sent} flight{'s' if self.flights_sent != 1 else ''} sent"
        head = f"DTLS handshake with {self.peer} timed out after {seconds:g} s ({flights})"
        if self.datagrams_received == 0:
            return f"{head}: no answer from the server (is a DTLS server listening there?)"
        if self.stage is HandshakeType.SERVER_HELLO_DONE and self.sent_after_server_flight:
            return (
                f"{head}: the server sent {_STAGES[self.stage]} and our Finished went "
                "unanswered: a wrong PSK (or a key the server does not accept) is the likely "
                "cause"
            )
        if self.stage is None:
            return f"{head}: the server answered, but with nothing a DTLS client expects"
        return f"{head}: the server sent {_STAGES[self.stage]}, then nothing more"


def format_peer(peer: object) -> str:
    """A peer as a user reads it, ``host:port``, an IPv6 host in brackets (RFC 3986
    §3.2.2); anything that is not a socket address as its ``str``."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer)


def port_unreachable(peer: str) -> ConnectionRefusedError:
    """What a connected UDP socket's ECONNREFUSED means: the peer's host answered our
    datagram with an ICMP port unreachable."""
    return ConnectionRefusedError(
        f"{peer} refused the datagram (ICMP port unreachable): nothing listens on that port"
    )


__all__ = ["HandshakeProgress", "format_peer", "port_unreachable"]
