"""In-memory DTLS 1.3 client/server pairs for the sans-I/O tests, over the seeded lossy
`Link` of the DTLS 1.2 pairs (``dtls12_pair``), with the same credentials and configs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dtls12_pair import CLIENT, NOW, SERVER, Link, client_config, data_events, server_config

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.connection.datagram13 import (
    Dtls13ClientConnection,
    Dtls13Connection,
    Dtls13ServerConnection,
)
from dtlsgate.events import HandshakeCompleted
from dtlsgate.gate.datagram import Dtls13Admit, Gate, Reply

__all__ = [
    "CLIENT",
    "NOW",
    "SERVER",
    "Link",
    "Pair13",
    "client_config",
    "data_events",
    "make_pair13",
    "server_config",
]


@dataclass
class Pair13:
    """A client and a server (made by the first datagram that reaches it), the events each
    reported, and how many datagrams each sent (before the link's losses)."""

    server_cfg: ServerConfig
    client: Dtls13Connection
    server: Dtls13Connection | None = None
    now: float = NOW
    send_acks: bool = True
    client_events: list[Any] = field(default_factory=list)
    server_events: list[Any] = field(default_factory=list)
    client_datagrams: int = 0
    server_datagrams: int = 0
    largest_datagram: int = 0
    # With a gate, the server is made from its Dtls13Admit after the stateless
    # HelloRetryRequest (RFC 9147 §5.1); without, from the first ClientHello.
    gate: Gate | None = None
    replies: list[bytes] = field(default_factory=list)

    def to_server(self, datagrams: list[bytes]) -> None:
        for d in datagrams:
            if self.server is None and self.gate is not None:
                result = self.gate.receive(d, CLIENT, self.now)
                if isinstance(result, Reply):
                    self.replies.append(result.data)
                    self.client.receive(result.data, SERVER, self.now)
                elif isinstance(result, Dtls13Admit):
                    self.server = Dtls13ServerConnection.from_admit(result, self.server_cfg)
                    self.server.start(self.now)
                continue
            if self.server is None:
                self.server = Dtls13ServerConnection(
                    self.server_cfg, CLIENT, send_acks=self.send_acks
                )
            self.server.receive(d, CLIENT, self.now)

    def drain(self) -> None:
        for conn, events in ((self.client, self.client_events), (self.server, self.server_events)):
            while conn is not None and (e := conn.next_event()) is not None:
                events.append(e)

    def run(self, link: Link | None = None, rounds: int = 300) -> bool:
        """Exchange datagrams until both sides are quiet, firing timers as needed; False
        when they were still sending after ``rounds`` exchanges."""
        link = link or Link()
        for _ in range(rounds):
            c_out = [d for d, _ in self.client.datagrams_to_send()]
            self.client_datagrams += len(c_out)
            self.largest_datagram = max([self.largest_datagram, *map(len, c_out)])
            self.to_server(link.carry(c_out))
            s_out = [d for d, _ in self.server.datagrams_to_send()] if self.server else []
            self.server_datagrams += len(s_out)
            self.largest_datagram = max([self.largest_datagram, *map(len, s_out)])
            for d in link.carry(s_out):
                self.client.receive(d, SERVER, self.now)
            self.drain()
            if not c_out and not s_out:
                conns = [c for c in (self.client, self.server) if c is not None]
                timers = [t for c in conns if (t := c.get_timer()) is not None]
                if not timers:
                    return True
                self.now = max(self.now, min(timers))
                for conn in conns:
                    conn.handle_timer(self.now)
        return False

    def completed(self) -> bool:
        return any(isinstance(e, HandshakeCompleted) for e in self.client_events) and any(
            isinstance(e, HandshakeCompleted) for e in self.server_events
        )


def make_pair13(
    server_cfg: ServerConfig,
    client_cfg: ClientConfig,
    *,
    send_acks: bool = True,
    gated: bool = False,
) -> Pair13:
    client = Dtls13ClientConnection(client_cfg, SERVER, send_acks=send_acks)
    gate = Gate(server_cfg) if gated else None
    pair = Pair13(server_cfg, client, send_acks=send_acks, gate=gate)
    client.connect(NOW)
    return pair
