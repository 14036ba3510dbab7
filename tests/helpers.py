"""What the sans-I/O tests of every protocol version share: a fixed ``now``, credentials valid
then, configs on the deterministic provider, event helpers, and in-memory pairs.

- `DatagramPair`: a DTLS client (1.2 or 1.3) and the server the gate admits it to (or, for
  DTLS 1.3 without a gate, the server its first datagram makes), over a seeded `Link` that
  may drop, duplicate and reorder datagrams; timers fire in simulated time.
- `pair` / `pump`: a TLS 1.3 client and server over a byte pipe.
- `run_handshake`: one client and server of any of `PROTOCOLS` run to the end, what each
  reported and what each raised (a handshake refused on one side, the alert on the other).
- `seal`: a TLS record a connection could have sent now, for tests that forge input.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import heapq
import os
import random
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from types import CodeType, FrameType
from typing import Any

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.connection.datagram import DtlsClientConnection, DtlsConnection
from dtlsgate.connection.datagram13 import (
    Dtls13ClientConnection,
    Dtls13Connection,
    Dtls13ServerConnection,
    accept,
)
from dtlsgate.connection.stream import ClientConnection, ServerConnection, TlsConnection
from dtlsgate.crypto import DeterministicProvider
from dtlsgate.crypto.certs import (
    certificate_fingerprint,
    load_certificate_chain,
    load_private_key,
    make_self_signed,
)
from dtlsgate.crypto.kex import KeyShare
from dtlsgate.crypto.provider import DefaultProvider
from dtlsgate.errors import AlertReceived, ProtocolError
from dtlsgate.events import ConnectionClosed, DataReceived, HandshakeCompleted
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.gate.datagram import Admit, Dtls13Admit, Gate, Reply
from dtlsgate.wire.enums import ContentType, NamedGroup
from dtlsgate.wire.record import split_dtls_records

CLIENT = ("192.0.2.10", 40000)
SERVER = ("192.0.2.1", 4433)
# Every sans-I/O test runs at this time (2027-01-15): certificates are made valid around it.
NOW = 1_800_000_000.0
PSK_ID = b"Client_identity"
PSK = bytes(range(16))


@lru_cache(maxsize=16)
def credentials(
    key_type: str = "ecdsa-p256", common_name: str = "localhost"
) -> tuple[bytes, bytes]:
    """A self-signed certificate for "localhost" (or ``common_name``: another identity, e.g.
    a client's) in PEM and its key, valid two years either side of ``NOW``: at ``NOW`` for
    the sans-I/O tests, and at the wall clock's time for the tests that run real servers."""
    now = datetime.datetime.fromtimestamp(NOW - 2 * 365 * 86400, datetime.UTC)
    return make_self_signed(common_name, key_type, days=4 * 365, now=now)


def identity_credentials(name: str | None = None) -> tuple[bytes, bytes]:
    """`credentials` of an ECDSA P-256 identity: the server's (None), or ``name``'s (a
    client's)."""
    return credentials("ecdsa-p256") if name is None else credentials("ecdsa-p256", name)


def identity_key(name: str | None = None) -> Any:
    """The private key of `identity_credentials`."""
    return load_private_key(identity_credentials(name)[1])


def identity_fingerprint(name: str | None = None) -> str:
    """The SHA-256 fingerprint (RFC 8122) of `identity_credentials`' self-signed certificate."""
    return certificate_fingerprint(load_certificate_chain(identity_credentials(name)[0])[0])


def server_config(key_type: str | None = "ecdsa-p256", **kwargs: Any) -> ServerConfig:
    """A server on the deterministic provider with a fixed cookie key and, unless
    ``key_type`` is None, the `credentials` of that key type."""
    kwargs.setdefault("provider", DeterministicProvider(b"server"))
    kwargs.setdefault("cookie_jar", CookieJar(bytes(32)))
    if key_type is not None:
        cert, key = credentials(key_type)
        kwargs.setdefault("certificate_chain", load_certificate_chain(cert))
        kwargs.setdefault("private_key", load_private_key(key))
    return ServerConfig(**kwargs)


def client_config(key_type: str = "ecdsa-p256", **kwargs: Any) -> ClientConfig:
    """A client on the deterministic provider that trusts the `credentials` of ``key_type``
    for "localhost" (unless it uses a PSK or is insecure)."""
    kwargs.setdefault("provider", DeterministicProvider(b"client"))
    if not kwargs.get("insecure"):
        cert, _ = credentials(key_type)
        kwargs.setdefault("cafile", cert.decode())  # PEM text is accepted as the CA file
        if kwargs.get("psk") is None:
            kwargs.setdefault("server_name", "localhost")
    return ClientConfig(**kwargs)


# ---- events ------------------------------------------------------------------------------


def events(conn: Any) -> list[Any]:
    """Every event ``conn`` has queued, taken."""
    out = []
    while (e := conn.next_event()) is not None:
        out.append(e)
    return out


def data_events(events: list[Any]) -> list[bytes]:
    return [e.data for e in events if isinstance(e, DataReceived)]


def closed_events(events: list[Any]) -> list[ConnectionClosed]:
    return [e for e in events if isinstance(e, ConnectionClosed)]


def alerts_in(
    datagrams: list[tuple[bytes, object]], conn: DtlsConnection | None = None
) -> list[int]:
    """Alert descriptions in plaintext DTLS 1.2 records (or records ``conn`` can open)."""
    out = []
    for d, _ in datagrams:
        for record in split_dtls_records(d):
            if record.content_type != ContentType.ALERT:
                continue
            if record.epoch == 0:
                out.append(record.fragment[1])
            elif conn is not None:
                plain = conn.record_layer.open(record)
                if plain is not None:
                    out.append(plain[1])
    return out


# ---- datagram pairs (DTLS 1.2 and 1.3) ---------------------------------------------------


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
class DatagramPair:
    """A DTLS client and its server, the events each reported and how many datagrams each
    sent (before the link's losses). With a gate the server is made from the gate's admit
    (`accept`: DTLS 1.2 or 1.3, whichever the client got); without one (DTLS 1.3 only),
    from the first ClientHello. ``tamper`` rewrites every datagram the server gets."""

    server_cfg: ServerConfig
    client: Any
    gate: Gate | None
    server: Any = None
    now: float = NOW
    send_acks: bool = True
    client_events: list[Any] = field(default_factory=list)
    server_events: list[Any] = field(default_factory=list)
    # When not None: what each end ("client", "server") raised from ``receive`` (the fault
    # it answered with an alert, or the alert it got), recorded there instead of raised.
    raised: dict[str, list[Exception]] | None = None
    tamper: Callable[[bytes], bytes] | None = None
    server_keylog: Callable[[str], None] | None = None
    replies: list[bytes] = field(default_factory=list)
    client_datagrams: int = 0
    server_datagrams: int = 0
    largest_datagram: int = 0

    def to_server(self, datagrams: list[bytes]) -> None:
        for d in datagrams:
            if self.tamper is not None:
                d = self.tamper(d)
            if self.server is None and self.gate is not None:
                result = self.gate.receive(d, CLIENT, self.now)
                if isinstance(result, Reply):
                    self.replies.append(result.data)
                    self._receive("client", self.client, result.data, SERVER)
                elif isinstance(result, Admit | Dtls13Admit):
                    self.server = accept(
                        result, self.server_cfg, gate=self.gate, keylog=self.server_keylog
                    )
                    self.server.start(self.now)
                continue
            if self.server is None:
                self.server = Dtls13ServerConnection(
                    self.server_cfg, CLIENT, keylog=self.server_keylog, send_acks=self.send_acks
                )
            self._receive("server", self.server, d, CLIENT)

    def _receive(self, end: str, conn: Any, data: bytes, peer: object) -> None:
        if self.raised is None:
            conn.receive(data, peer, self.now)
            return
        try:
            conn.receive(data, peer, self.now)
        except (ProtocolError, AlertReceived) as exc:
            self.raised.setdefault(end, []).append(exc)

    def drain(self) -> None:
        for conn, got in ((self.client, self.client_events), (self.server, self.server_events)):
            while conn is not None and (e := conn.next_event()) is not None:
                got.append(e)

    def _send(self, conn: Any) -> list[bytes]:
        out = [d for d, _ in conn.datagrams_to_send()] if conn is not None else []
        self.largest_datagram = max([self.largest_datagram, *map(len, out)])
        return out

    def run(self, link: Link | None = None, rounds: int = 300) -> bool:
        """Exchange datagrams until both sides are quiet, firing timers as needed; False
        when they were still sending after ``rounds`` exchanges."""
        link = link or Link()
        for _ in range(rounds):
            c_out = self._send(self.client)
            self.client_datagrams += len(c_out)
            self.to_server(link.carry(c_out))
            s_out = self._send(self.server)
            self.server_datagrams += len(s_out)
            for d in link.carry(s_out):
                self._receive("client", self.client, d, SERVER)
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


def make_pair(
    server_cfg: ServerConfig,
    client_cfg: ClientConfig,
    *,
    gate: Gate | None = None,
    keylogs: tuple[Callable[[str], None] | None, Callable[[str], None] | None] = (None, None),
) -> DatagramPair:
    """A DTLS 1.2 client and the gate in front of its server (``gate``: one of
    ``server_cfg`` shared by several pairs, as a server's is by its connections);
    ``keylogs``: the client's and the server's key log callbacks."""
    client = DtlsClientConnection(client_cfg, SERVER, keylog=keylogs[0])
    pair = DatagramPair(server_cfg, client, gate or Gate(server_cfg), server_keylog=keylogs[1])
    client.connect(NOW)
    return pair


def make_pair13(
    server_cfg: ServerConfig,
    client_cfg: ClientConfig,
    *,
    send_acks: bool = True,
    gated: bool = False,
    gate: Gate | None = None,
    keylogs: tuple[Callable[[str], None] | None, Callable[[str], None] | None] = (None, None),
) -> DatagramPair:
    """A DTLS 1.3 client and its server, behind the gate when ``gated`` (or ``gate``, one
    shared by several pairs); ``keylogs`` as for `make_pair`."""
    client: Dtls13Connection = Dtls13ClientConnection(
        client_cfg, SERVER, keylog=keylogs[0], send_acks=send_acks
    )
    gate = gate or (Gate(server_cfg) if gated else None)
    pair = DatagramPair(server_cfg, client, gate, send_acks=send_acks, server_keylog=keylogs[1])
    client.connect(NOW)
    return pair


# ---- datagram pairs over a link with latency, in simulated time --------------------------


class LatencyLink:
    """Both directions of a link with latency: every datagram is delayed by ``min_delay``
    plus an exponential jitter of mean ``jitter`` seconds (so datagrams overtake one
    another), lost with ``loss``, duplicated (the copy with its own delay) with ``dup``.
    ``sent`` counts the datagrams each end put on the link."""

    def __init__(
        self, seed: int, min_delay: float, jitter: float, loss: float = 0.0, dup: float = 0.0
    ) -> None:
        self.rng = random.Random(seed)
        self.min_delay, self.jitter, self.loss, self.dup = min_delay, jitter, loss, dup
        self.queue: list[tuple[float, int, str, bytes]] = []
        self._order = 0
        self.sent = {"client": 0, "server": 0}

    def send(self, now: float, sender: str, datagrams: list[bytes]) -> None:
        to = "server" if sender == "client" else "client"
        for d in datagrams:
            self.sent[sender] += 1
            copies = 0 if self.rng.random() < self.loss else 1
            copies += copies and self.rng.random() < self.dup
            for _ in range(copies):
                delay = self.min_delay + self.rng.expovariate(1 / self.jitter)
                self._order += 1
                heapq.heappush(self.queue, (now + delay, self._order, to, d))


class StillRunning(Exception):
    """`run_over_link` gave up: the ends were still sending or timing after its event budget."""


def run_over_link(pair: DatagramPair, link: LatencyLink, max_events: int = 5_000) -> float | None:
    """Run ``pair`` (DTLS 1.2 or 1.3) over ``link`` in simulated time, each event the next
    arrival or the next timer, until nothing is in flight and no timer is set; returns the
    simulated time when both ends had completed (None: they never did). Raises
    `StillRunning` after ``max_events`` events."""
    now = pair.now
    completed_at = None
    for _ in range(max_events):
        link.send(now, "client", pair._send(pair.client))
        link.send(now, "server", pair._send(pair.server))
        pair.drain()
        if completed_at is None and pair.completed():
            completed_at = now
        ends = [(pair.client, "client"), (pair.server, "server")]
        timers = [
            (t, name)
            for end, name in ends
            if end is not None and (t := end.get_timer()) is not None
        ]
        arrival = link.queue[0][0] if link.queue else None
        if arrival is None and not timers:
            return completed_at
        timer = min(timers) if timers else None
        if arrival is not None and (timer is None or arrival <= timer[0]):
            now, _, to, d = heapq.heappop(link.queue)
            pair.now = now
            if to == "server":
                pair.to_server([d])
            else:
                pair.client.receive(d, SERVER, now)
        else:
            assert timer is not None
            now = pair.now = timer[0]
            end = pair.client if timer[1] == "client" else pair.server
            end.handle_timer(now)
    raise StillRunning(f"still running after {max_events} events")


# ---- TLS over a byte pipe ----------------------------------------------------------------


def pump(
    a: TlsConnection,
    b: TlsConnection,
    rounds: int = 6,
    raised: dict[str, list[Exception]] | None = None,
) -> None:
    """Move bytes both ways until both are quiet (bounded). With ``raised``: what an end
    raises from ``receive_data`` (the fault it answered with an alert, or the alert it got)
    is recorded there, under "client" for ``a`` and "server" for ``b``, instead of raised."""
    for _ in range(rounds):
        ab = a.data_to_send()
        if ab:
            _receive_data(b, ab, "server", raised)
        ba = b.data_to_send()
        if ba:
            _receive_data(a, ba, "client", raised)
        if not ab and not ba:
            return


def _receive_data(
    conn: TlsConnection, data: bytes, end: str, raised: dict[str, list[Exception]] | None
) -> None:
    if raised is None:
        conn.receive_data(data, NOW)
        return
    try:
        conn.receive_data(data, NOW)
    except (ProtocolError, AlertReceived) as exc:
        raised.setdefault(end, []).append(exc)


def pair(
    server_cfg: ServerConfig | None = None, client_cfg: ClientConfig | None = None
) -> tuple[ClientConnection, ServerConnection]:
    """A TLS 1.3 client and server, their handshake run."""
    client = ClientConnection(client_cfg or client_config())
    server = ServerConnection(server_cfg or server_config())
    client.start()
    pump(client, server)
    return client, server


#: What `run_handshake` runs: DTLS 1.2 and DTLS 1.3 behind the gate, TLS 1.3 over a byte pipe.
PROTOCOLS = ("dtls12", "dtls13", "tls13")


@dataclass
class Ran:
    """What `run_handshake` saw: each end's events, and what each raised (by end)."""

    client_events: list[Any]
    server_events: list[Any]
    raised: dict[str, list[Exception]]

    def completed(self, end: str) -> HandshakeCompleted | None:
        """``end``'s HandshakeCompleted ("client" or "server"), if it reported one."""
        got = self.client_events if end == "client" else self.server_events
        return next((e for e in got if isinstance(e, HandshakeCompleted)), None)

    def alerts_received(self, end: str) -> list[int]:
        """The alerts ``end`` received from its peer (descriptions)."""
        return [e.description for e in self.raised.get(end, []) if isinstance(e, AlertReceived)]

    def refused(self, end: str) -> list[int]:
        """The alerts ``end`` sent for a fault of its peer's (a `ProtocolError` it raised)."""
        return [e.alert for e in self.raised.get(end, []) if isinstance(e, ProtocolError)]


def run_handshake(protocol: str, server_cfg: ServerConfig, client_cfg: ClientConfig) -> Ran:
    """A client and server of ``protocol`` (one of `PROTOCOLS`) run until both are quiet,
    neither raising: a fault an end answers with an alert, and the alert the other end gets,
    are recorded in `Ran.raised`."""
    raised: dict[str, list[Exception]] = {}
    if protocol == "tls13":
        client, server = ClientConnection(client_cfg), ServerConnection(server_cfg)
        client.start()
        pump(client, server, 8, raised)
        return Ran(events(client), events(server), raised)
    if protocol == "dtls12":
        datagrams = make_pair(server_cfg, client_cfg)
    else:
        datagrams = make_pair13(server_cfg, client_cfg, gated=True)
    datagrams.raised = raised
    datagrams.run()
    return Ran(datagrams.client_events, datagrams.server_events, raised)


def seal(sender: TlsConnection, content_type: int, payload: bytes) -> bytes:
    """A TLS record ``sender`` could have sent now (its own write key and sequence number)."""
    protection = sender.record_layer.write
    assert protection is not None
    return protection.seal(content_type, payload)


@contextmanager
def calls_to(*functions: Callable[..., Any]) -> Iterator[dict[CodeType, int]]:
    """How many times each of ``functions`` (Python functions) is called in the block, in
    their order: operations counted, not timed."""
    counts = {f.__code__: 0 for f in functions}

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code in counts:
            counts[frame.f_code] += 1

    sys.setprofile(profile)
    try:
        yield counts
    finally:
        sys.setprofile(None)


@contextmanager
def cycle_collector_off() -> Iterator[None]:
    """Python's cyclic garbage collector disabled in the block (after one collection), so
    that what a test sees freed was freed by reference counting alone."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class BadShareClient(DefaultProvider):
    """A client provider whose key share (TLS 1.3) or ECDHE public value (the DTLS 1.2
    ClientKeyExchange) in any group is replaced by ``value``: what a peer sending a bad
    point or share looks like to a server."""

    def __init__(self, value: bytes) -> None:
        self.value = value

    def generate_key_share(self, group: NamedGroup) -> KeyShare:
        share = KeyShare.generate(group)
        share.public_bytes = self.value
        return share


async def eventually(predicate: Callable[[], object], seconds: float = 30) -> None:
    """Poll ``predicate`` every 10 ms on the running loop until it is true: state another
    task or thread changes a few loop turns later (a handler's task ending, an association
    closed by the peer's close_notify). AssertionError after ``seconds`` of the loop's
    clock, a bound only: a fixed count of turns (100 of 10 ms) was the wait before, and a
    loaded machine can take longer than that over a few turns."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        assert loop.time() < deadline, f"not within {seconds} s"
        await asyncio.sleep(0.01)


# A datagram sent last on loopback, to know that every earlier one from the same CPU has
# arrived (`one_cpu`).
FENCE = b"fence"


@contextmanager
def one_cpu() -> Iterator[None]:
    """The calling thread on one CPU meanwhile (its affinity restored afterwards), and so
    what it sends and any child process it starts (a child inherits the affinity). Loopback
    queues a datagram on the sending CPU's backlog and delivers that backlog in order, in a
    softirq that a loaded machine may defer to ksoftirqd: a `FENCE` sent after the others
    arrives after them, where a fixed wait before reading is a guess at that delay."""
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cpus)
