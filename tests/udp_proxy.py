"""A seeded, lossy UDP proxy on loopback for tests with real peers.

Each client address gets its own upstream socket, so the server sees one peer per client.
Handshake and ChangeCipherSpec records (content types 22 and 20) are dropped, duplicated and
delayed (reordered) with the given probabilities; application data and alerts pass
untouched, because DTLS does not retransmit them (RFC 6347 §4.2.4 covers flights only).
Loss comes in bursts of at most one datagram per client, direction and kind of record (`kind`:
which message it carries): after a drop, the next datagram of that flow and kind passes, so
no kind of datagram is lost twice running. Independent drops sink a few percent of
handshakes with any server, because the peers' retransmission budgets are finite: a capture
here showed `gnutls-cli` sending its ClientHello at 0, 1, 4, 10 and 22 s, every copy or
answer lost, then giving up at 46 s. Bounding the bursts per datagram alone did not bound
them per message: `openssl s_client` resends its last flight as three datagrams
(ClientKeyExchange, ChangeCipherSpec, Finished) 1, 2, 4, 8, 16 and 32 s apart, and a server
answers only the Finished (ours and OpenSSL's: the others are plaintext, forgeable after the
handshake), so the first two passing left the Finished a fresh 25% chance of loss each time
(lost four times running, one client's handshake took 64 s, its next try due after the loss
test's deadline). With bounded bursts the average loss is still ``loss`` (the drop
probability after a passed datagram is raised to keep it so) and every handshake fits in the
peers' budgets; ``Stats`` counts what really happened.
``dup_downstream=False`` duplicates only what goes to the server: OpenSSL 3.0's s_client
itself stalls after duplicated datagrams (measured here: 0 of 8 `s_client` lines reached an
`openssl s_server` through this proxy at 100% duplication, 3 of 3 without; perhaps the
blocking read that test_interop_dtls12_loss.py avoids with -nbio: with -nbio its s_client
test passed 3 of 3 runs duplicating both ways, too few to drop this).
"""

from __future__ import annotations

import heapq
import random
import select
import socket
import threading
import time
from dataclasses import dataclass, field

# A reordered datagram is held back this long, so datagrams sent after it overtake it.
REORDER_DELAY = 0.03


def is_unified_header(first_byte: int) -> bool:
    """Whether a record starting with this byte has DTLS 1.3's unified header (RFC 9147 §4:
    its first three bits are 001, then C, S, L and the epoch's two low bits)."""
    return first_byte & 0xE0 == 0x20


def kind(datagram: bytes) -> tuple[int, ...]:
    """Which message a datagram carries, as far as the proxy can tell from its first record:
    the content type and epoch, and for a plaintext handshake record the message type (RFC 6347
    §4.1, §4.2.2); for a DTLS 1.3 unified header (RFC 9147 §4) its first byte's epoch bits.
    A datagram sent again has the kind it had the first time."""
    if is_unified_header(datagram[0]):
        return (0x20, datagram[0] & 0x03)
    content_type, epoch = datagram[0], int.from_bytes(datagram[3:5], "big")
    if content_type == 22 and epoch == 0 and len(datagram) > 13:
        return (content_type, epoch, datagram[13])
    return (content_type, epoch)


@dataclass
class Stats:
    impaired: int = 0  # handshake and ChangeCipherSpec datagrams subject to impairment
    forwarded: int = 0
    dropped: int = 0
    dropped_downstream: int = 0  # of ``dropped``, those on their way to a client
    duplicated: int = 0
    reordered: int = 0
    # When each datagram towards the server was forwarded (time.monotonic()).
    upstream_times: list[float] = field(default_factory=list)
    # When each datagram towards a client was forwarded.
    downstream_times: list[float] = field(default_factory=list)
    # Each datagram received from a client, in the order received (one client's datagrams
    # arrive in the order it sent them).
    from_clients: list[bytes] = field(default_factory=list)


@dataclass
class LossyProxy:
    upstream: tuple[str, int]
    seed: int = 0
    loss: float = 0.2
    dup: float = 0.1
    reorder: float = 0.3
    dup_downstream: bool = True
    # Seconds every datagram (of any content type) spends on the way, each direction.
    latency: float = 0.0
    # DTLS 1.3 (RFC 9147 §4): also impair plaintext ACKs and every unified-header record
    # (001xxxxx), whose content type is encrypted: application data too, so a test must
    # retry its own data.
    impair_dtls13: bool = False
    stats: Stats = field(default_factory=Stats)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self._up: dict[tuple[str, int], socket.socket] = {}
        self._down: dict[socket.socket, tuple[str, int]] = {}
        self._held: list[tuple[float, int, socket.socket, bytes, tuple[str, int]]] = []
        self._count = 0
        # Flows (client address, direction, `kind`) whose last impaired datagram was dropped.
        self._just_dropped: set[tuple[object, bool, tuple[int, ...]]] = set()
        # P(drop | previous passed) = q gives a stationary drop rate q / (1 + q); solve for
        # q so that the rate is ``loss``.
        self._drop_after_pass = self.loss / (1 - self.loss) if self.loss < 1 else 1.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        # Turns of the proxy's loop (`wait_quiet`), and the last turn that received, sent or
        # held a datagram, by direction (towards the server: False; towards a client: True).
        self.passes = 0
        self._last_active = [0, 0]

    def __enter__(self) -> LossyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        for s in [self.sock, *self._up.values()]:
            s.close()

    def wait_quiet(self, passes: int = 20, *, upstream_only: bool = False) -> None:
        """Return once the proxy holds nothing and has received and sent nothing (towards
        the server only, with ``upstream_only``) for ``passes`` turns of its loop in a row,
        all after this call. Each turn waits up to 50 ms for a datagram, so 20 turns are
        1 s on an idle machine; counted in the proxy's turns, the window stretches with
        the load, as the senders' own progress does, where a fixed sleep would not (a
        datagram handled late by a loaded sender or proxy landed after it). AssertionError
        after 300 s of wall clock (a backstop: a sender that never stops)."""
        start, deadline = self.passes, time.monotonic() + 300
        watched = (0,) if upstream_only else (0, 1)
        # The turn under way counts once it is over: hence the last one is not counted.
        while self.passes - max(start, *(self._last_active[d] for d in watched)) <= passes:
            if time.monotonic() > deadline:
                raise AssertionError(f"the proxy was not quiet for {passes} turns in 300 s")
            time.sleep(0.01)

    def _impair(
        self, out: socket.socket, data: bytes, to: tuple[str, int], downstream: bool = False
    ) -> None:
        dtls13 = self.impair_dtls13 and bool(data) and (data[0] == 26 or is_unified_header(data[0]))
        if data[:1] not in (b"\x14", b"\x16") and not dtls13:
            self._forward(out, data, to, 0.0)
            return
        rng = self.rng
        self.stats.impaired += 1
        flow = (to if downstream else self._down[out], downstream, kind(data))
        if flow in self._just_dropped:
            self._just_dropped.discard(flow)
        elif rng.random() < self._drop_after_pass:
            self._just_dropped.add(flow)
            self.stats.dropped += 1
            self.stats.dropped_downstream += downstream
            return
        duplicate = rng.random() < self.dup and (self.dup_downstream or not downstream)
        copies = 2 if duplicate else 1
        self.stats.duplicated += copies - 1
        for _ in range(copies):
            if rng.random() < self.reorder:
                self.stats.reordered += 1
                self._forward(out, data, to, REORDER_DELAY)
            else:
                self._forward(out, data, to, 0.0)

    def _forward(self, out: socket.socket, data: bytes, to: tuple[str, int], delay: float) -> None:
        """Send now, or after ``delay`` plus the link's latency."""
        delay += self.latency
        if not delay:
            self._send(out, data, to)
            return
        self._count += 1
        heapq.heappush(self._held, (time.monotonic() + delay, self._count, out, data, to))

    def _send(self, out: socket.socket, data: bytes, to: tuple[str, int]) -> None:
        out.sendto(data, to)
        self.stats.forwarded += 1
        self._last_active[to != self.upstream] = self.passes
        if to == self.upstream:
            self.stats.upstream_times.append(time.monotonic())
        else:
            self.stats.downstream_times.append(time.monotonic())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.passes += 1
            now = time.monotonic()
            while self._held and self._held[0][0] <= now:
                _, _, out, data, to = heapq.heappop(self._held)
                self._send(out, data, to)
            wait = min(0.05, max(0.0, self._held[0][0] - now)) if self._held else 0.05
            ready, _, _ = select.select([self.sock, *self._down], [], [], wait)
            for _, _, _, _, to in self._held:
                self._last_active[to != self.upstream] = self.passes
            for s in ready:
                self._last_active[s is not self.sock] = self.passes
                try:
                    data, addr = s.recvfrom(65535)
                except OSError:
                    continue
                if s is self.sock:
                    self.stats.from_clients.append(data)
                    up = self._up.get(addr)
                    if up is None:
                        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        up.bind(("127.0.0.1", 0))
                        self._up[addr] = up
                        self._down[up] = addr
                    self._impair(up, data, self.upstream)
                else:
                    self._impair(self.sock, data, self._down[s], downstream=True)
