"""In-memory DTLS 1.2 client/server pairs for the sans-I/O tests: a gate in front of the
server, datagrams carried by a seeded link that may drop, duplicate and reorder them."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.connection.datagram import DtlsClientConnection, DtlsConnection, DtlsServerConnection
from dtlsgate.crypto import DeterministicProvider
from dtlsgate.crypto.certs import load_certificate_chain, load_private_key, make_self_signed
from dtlsgate.events import ConnectionClosed, DataReceived, HandshakeCompleted
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.gate.datagram import Admit, Gate, Reply
from dtlsgate.wire.enums import ContentType
from dtlsgate.wire.record import split_dtls_records

CLIENT = ("192.0.2.10", 40000)
SERVER = ("192.0.2.1", 4433)
NOW = 1_800_000_000.0
PSK_ID = b"Client_identity"
PSK = bytes(range(16))


@lru_cache(maxsize=8)
def credentials(key_type: str = "ecdsa-p256") -> tuple[bytes, bytes]:
    import datetime

    now = datetime.datetime.fromtimestamp(NOW - 86400, datetime.UTC)
    return make_self_signed("localhost", key_type, days=30, now=now)


def server_config(key_type: str | None = "ecdsa-p256", **kwargs: Any) -> ServerConfig:
    kwargs.setdefault("provider", DeterministicProvider(b"server"))
    kwargs.setdefault("cookie_jar", CookieJar(bytes(32)))
    if key_type is not None:
        cert, key = credentials(key_type)
        kwargs.setdefault("certificate_chain", load_certificate_chain(cert))
        kwargs.setdefault("private_key", load_private_key(key))
    return ServerConfig(**kwargs)


def client_config(key_type: str = "ecdsa-p256", **kwargs: Any) -> ClientConfig:
    kwargs.setdefault("provider", DeterministicProvider(b"client"))
    if kwargs.get("psk") is None and not kwargs.get("insecure"):
        cert, _ = credentials(key_type)
        kwargs.setdefault("cafile", cert.decode())  # PEM text is accepted as the CA file
        kwargs.setdefault("server_name", "localhost")
    return ClientConfig(**kwargs)


@dataclass
class Link:
    """Carries datagrams between the two ends; ``loss``, ``dup`` and ``reorder`` are
    probabilities applied per datagram with a seeded generator."""

    seed: int = 0
    loss: float = 0.0
    dup: float = 0.0
    reorder: float = 0.0
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def carry(self, datagrams: list[bytes]) -> list[bytes]:
        out: list[bytes] = []
        for d in datagrams:
            if self.rng.random() < self.loss:
                continue
            out.append(d)
            if self.rng.random() < self.dup:
                out.append(d)
        if len(out) > 1 and self.rng.random() < self.reorder:
            self.rng.shuffle(out)
        return out


@dataclass
class Pair:
    server_cfg: ServerConfig
    client: DtlsClientConnection
    gate: Gate
    server: DtlsServerConnection | None = None
    now: float = NOW
    client_events: list[Any] = field(default_factory=list)
    server_events: list[Any] = field(default_factory=list)
    tamper: Callable[[bytes], bytes] | None = None

    def to_server(self, datagrams: list[bytes]) -> None:
        for d in datagrams:
            if self.tamper is not None:
                d = self.tamper(d)
            if self.server is None:
                result = self.gate.receive(d, CLIENT, self.now)
                if isinstance(result, Reply):
                    self.client.receive(result.data, SERVER, self.now)
                elif isinstance(result, Admit):
                    self.server = DtlsServerConnection(result, self.server_cfg)
                    self.server.start(self.now)
            else:
                self.server.receive(d, CLIENT, self.now)

    def drain(self) -> None:
        for conn, events in ((self.client, self.client_events), (self.server, self.server_events)):
            while conn is not None and (e := conn.next_event()) is not None:
                events.append(e)

    def run(self, link: Link | None = None, rounds: int = 200) -> bool:
        """Exchange datagrams until both sides are quiet, firing timers as needed; False
        when they were still sending after ``rounds`` exchanges."""
        link = link or Link()
        for _ in range(rounds):
            c_out = [d for d, _ in self.client.datagrams_to_send()]
            self.to_server(link.carry(c_out))
            s_out = [d for d, _ in self.server.datagrams_to_send()] if self.server else []
            for d in link.carry(s_out):
                self.client.receive(d, SERVER, self.now)
            self.drain()
            if not c_out and not s_out:
                timers = [
                    t
                    for t in (
                        self.client.get_timer(),
                        self.server.get_timer() if self.server else None,
                    )
                    if t is not None
                ]
                if not timers:
                    return True
                self.now = max(self.now, min(timers))
                self.client.handle_timer(self.now)
                if self.server is not None:
                    self.server.handle_timer(self.now)
        return False

    def completed(self) -> bool:
        return any(isinstance(e, HandshakeCompleted) for e in self.client_events) and any(
            isinstance(e, HandshakeCompleted) for e in self.server_events
        )


def make_pair(server_cfg: ServerConfig, client_cfg: ClientConfig) -> Pair:
    client = DtlsClientConnection(client_cfg, SERVER)
    pair = Pair(server_cfg, client, Gate(server_cfg))
    client.connect(NOW)
    return pair


def data_events(events: list[Any]) -> list[bytes]:
    return [e.data for e in events if isinstance(e, DataReceived)]


def closed_events(events: list[Any]) -> list[ConnectionClosed]:
    return [e for e in events if isinstance(e, ConnectionClosed)]


def alerts_in(
    datagrams: list[tuple[bytes, object]], conn: DtlsConnection | None = None
) -> list[int]:
    """Alert descriptions in plaintext records (or records ``conn`` can open)."""
    out = []
    for d, _ in datagrams:
        for record in split_dtls_records(d):
            if record.content_type != ContentType.ALERT:
                continue
            if record.epoch == 0:
                out.append(record.fragment[1])
            elif conn is not None:
                plain = conn._records.open(record)
                if plain is not None:
                    out.append(plain[1])
    return out
