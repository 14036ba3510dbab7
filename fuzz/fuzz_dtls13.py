"""atheris fuzz target for DTLS 1.3 (RFC 9147): the record layer and the handshake, server
and client side, for long runs outside ``make test``.

    pip install atheris
    python fuzz/fuzz_dtls13.py /tmp/corpus_dtls13 -max_total_time=1200

An input replays one of four deterministic in-memory DTLS 1.3 handshakes (certificates;
through the stateless gate's HelloRetryRequest; certificates at a 300-byte MTU, so flights
are fragmented; external PSK with AES-128-CCM-8) up to a point, then hands one side a
datagram made from the rest of the input, and finally lets the pair run on, data and a
KeyUpdate included once the handshake is done:

    byte 0   which handshake (``CONFIGS``)
    byte 1   after how many delivered datagrams
    byte 2   bit 0: the server (1) or the client (0); bits 1-2: what the payload becomes
             0  the datagram itself (any number of records, plaintext or unified header)
             1  a record of content type byte 3 protected by the peer's record layer in
                its current write epoch (the right keys: epoch 0 plaintext before any)
             2  a handshake fragment (type byte 3, message_seq from byte 4, random
                lengths from bytes 5-6) protected the same way
             3  the datagram that comes next with the payload XORed over it
    byte 3-  as above; the payload follows

Modes 1 and 2 reach the code behind record protection (handshake messages in epochs 2 and
3, ACKs, alerts, application data, KeyUpdate, NewSessionTicket, NewConnectionId and
RequestConnectionId, the first run negotiating connection IDs), which mutated ciphertext
never does. The contract is tests/test_dtls13_fuzz.py's: the datagram is dropped silently
with the reassembly buffer within its bound, or a `ProtocolError` comes out with the
connection closed, or `AlertReceived`; the rest of the run yields nothing else either.
Anything else is a finding. ``tests/test_fuzz_targets.py`` runs ``test_one_input`` over the
seeds and Hypothesis-mutated inputs.
"""

from __future__ import annotations

import contextlib
import sys
from functools import cache
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from atheris_main import fuzz
from helpers import CLIENT, SERVER, DatagramPair, client_config, make_pair13, server_config

from dtlsgate.connection.datagram13 import Dtls13Connection
from dtlsgate.connection.flight import MAX_BUFFERED_BYTES
from dtlsgate.errors import AlertReceived, ProtocolError, UsageError
from dtlsgate.wire.enums import CipherSuite

PSK_ID, PSK_KEY = b"Client_identity", bytes(range(32))
CCM8 = (CipherSuite.TLS_AES_128_CCM_8_SHA256,)
# name: (server key type, server config, client config, through the gate)
CONFIGS: dict[str, tuple[str | None, dict[str, Any], dict[str, Any], bool]] = {
    # With connection IDs, and after the handshake a NewConnectionId and a
    # RequestConnectionId (RFC 9147 §9) in the run.
    "certificates": (
        "ecdsa-p256",
        {"connection_id_length": 4},
        {"connection_id_length": 2},
        False,
    ),
    "gated": ("ecdsa-p256", {}, {}, True),
    "fragmented": ("ecdsa-p256", {"mtu": 300}, {"mtu": 300}, False),
    "psk_ccm8": (
        None,
        {"psk": {PSK_ID: PSK_KEY}, "cipher_suites": CCM8},
        {"psk": PSK_KEY, "psk_identity": PSK_ID, "cipher_suites": CCM8},
        False,
    ),
}
NAMES = sorted(CONFIGS)
RAW, RECORD, HANDSHAKE, XOR = range(4)
ROUNDS = 60  # bound on the run after the injection


class Driver:
    """A pair delivering its datagrams one at a time, in order, without loss."""

    def __init__(self, name: str) -> None:
        key_type, server_kwargs, client_kwargs, gated = CONFIGS[name]
        self.pair: DatagramPair = make_pair13(
            server_config(key_type, **server_kwargs), client_config(**client_kwargs), gated=gated
        )
        self.queue: list[tuple[str, bytes]] = []
        self.updated = False

    def _fill(self) -> None:
        pair = self.pair
        for conn, to in ((pair.client, "server"), (pair.server, "client")):
            if conn is not None:
                self.queue += [(to, d) for d, _ in conn.datagrams_to_send()]
        if not self.queue:
            pair.drain()
            ends = (pair.client, pair.server)
            open_ = all(c is not None and not c.closed for c in ends)
            if pair.completed() and open_ and not self.updated:  # data and a KeyUpdate, once
                self.updated = True
                pair.client.send(b"ping")
                assert pair.server is not None
                pair.server.send(b"pong")
                pair.client.key_update(request_peer=True)
                if pair.client.connection_ids:
                    pair.server.new_connection_ids(1)
                    pair.client.request_connection_ids(2)
                return self._fill()
            conns = [c for c in (pair.client, pair.server) if c is not None and not c.closed]
            timers = [t for c in conns if (t := c.get_timer()) is not None]
            if timers:
                pair.now = max(pair.now, min(timers))
                for conn in conns:
                    conn.handle_timer(pair.now)
                for conn, to in ((pair.client, "server"), (pair.server, "client")):
                    if conn is not None:
                        self.queue += [(to, d) for d, _ in conn.datagrams_to_send()]

    def next(self) -> tuple[str, bytes] | None:
        """The datagram that comes next (and to whom), without delivering it."""
        if not self.queue:
            self._fill()
        return self.queue[0] if self.queue else None

    def step(self) -> bool:
        """Deliver the next datagram; False when there is none."""
        upcoming = self.next()
        if upcoming is None:
            return False
        self.queue.pop(0)
        to, datagram = upcoming
        if to == "server":
            self.pair.to_server([datagram])
        else:
            self.pair.client.receive(datagram, SERVER, self.pair.now)
        return True

    def run(self, count: int) -> Driver:
        for _ in range(count):
            if not self.step():
                break
        return self

    def finish(self) -> None:
        for _ in range(ROUNDS):
            if not self.step():
                return

    def side(self, name: str) -> tuple[Dtls13Connection | None, Dtls13Connection | None]:
        pair = self.pair
        return (pair.server, pair.client) if name == "server" else (pair.client, pair.server)


@cache
def points(name: str) -> int:
    """How many datagrams the unperturbed run ``name`` delivers in all (at most ROUNDS)."""
    driver = Driver(name)
    count = 0
    while count < ROUNDS and driver.step():
        count += 1
    return count


def _fragment(data: bytes) -> bytes:
    """A handshake fragment header (RFC 9147 §5.2) from ``data``'s first bytes, then the rest."""
    kind, seq, lengths, body = data[0], data[1], data[2:4], data[4:]
    length = int.from_bytes(lengths, "big") * 3 % (1 << 17)
    offset = lengths[0] % 64
    return (
        bytes((kind,))
        + length.to_bytes(3, "big")
        + (seq % 8).to_bytes(2, "big")
        + offset.to_bytes(3, "big")
        + min(len(body), length).to_bytes(3, "big")
        + body
    )


def _datagram(mode: int, peer: Dtls13Connection | None, upcoming: bytes, data: bytes) -> bytes:
    if mode == RAW or peer is None:
        return data[1:]
    if mode == XOR:
        return bytes(
            a ^ b for a, b in zip(upcoming, data[1:].ljust(len(upcoming), b"\0"), strict=False)
        )
    content_type, payload = data[0], data[1:]
    if mode == HANDSHAKE:
        content_type, payload = 22, _fragment(payload.ljust(4, b"\0"))
    try:
        return peer.records.protect(content_type, payload[:0x3FFF])
    except UsageError:  # a content type or epoch this side cannot send now
        return payload


def test_one_input(data: bytes) -> str | None:
    """Run one input; return what happened to the injected datagram (None: not injected)."""
    if len(data) < 4:
        return None
    name = NAMES[data[0] % len(NAMES)]
    driver = Driver(name).run(data[1] % (points(name) + 1))
    side = "server" if data[2] & 1 else "client"
    conn, peer = driver.side(side)
    if conn is None or conn.closed:
        return None
    upcoming = driver.next()
    datagram = _datagram((data[2] >> 1) % 4, peer, upcoming[1] if upcoming else b"", data[3:])
    address = CLIENT if side == "server" else SERVER
    try:
        conn.receive(datagram, address, driver.pair.now)
    except AlertReceived:
        outcome = "alert received"
    except ProtocolError:
        assert conn.closed, "a ProtocolError left the connection open"
        outcome = "alert"
    else:
        assert conn.reassembler.buffered_bytes() <= MAX_BUFFERED_BYTES
        outcome = "taken or dropped"
    # The injected datagram may have spoiled the run: an alert then, never a crash.
    for _ in range(ROUNDS):
        with contextlib.suppress(ProtocolError, AlertReceived):
            driver.finish()
            break
    return outcome


def seeds() -> list[bytes]:
    """Inputs that inject, at every point of every run, the datagram that comes next as it
    is (mode 0) and XORed with nothing (mode 3), and its first record's content again in
    modes 1 and 2: real records for the fuzzer to mutate."""
    out = []
    for index, name in enumerate(NAMES):
        driver = Driver(name)
        for point in range(points(name)):
            upcoming = driver.next()
            if upcoming is None:
                break
            to, datagram = upcoming
            side = 1 if to == "server" else 0
            out.append(bytes((index, point, side | RAW << 1, 0)) + datagram)
            out.append(bytes((index, point, side | XOR << 1, 0)))
            out.append(bytes((index, point, side | RECORD << 1, 23)) + b"data")
            out.append(bytes((index, point, side | HANDSHAKE << 1, 24, 0, 1, 0, 0)))
            out += _connection_id_seeds(driver, index, point, to)
            driver.step()
    return out


def _connection_id_seeds(driver: Driver, index: int, point: int, to: str) -> list[bytes]:
    """After a handshake with connection IDs: a NewConnectionId and a RequestConnectionId
    (RFC 9147 §9) to the side the next datagram goes to, numbered as it expects next."""
    conn, _ = driver.side(to)
    if conn is None or not conn.handshake_complete or not conn.connection_ids:
        return []
    side = 1 if to == "server" else 0
    seq = conn.reassembler.next_seq % 8
    head = bytes((index, point, side | HANDSHAKE << 1, 0))
    new_cids = b"\x00\x06\x05abcde\x01"  # one 5-byte spare CID; length 9 = 3 * 3
    return [
        head + bytes((10, seq, 0, 3)) + new_cids,
        # Lengths are multiples of 3 here: num_cids 2 and two stray bytes (decode_error;
        # the run itself carries a well-formed one).
        head + bytes((9, seq, 0, 1)) + b"\x02\x00\x00",
    ]


def main() -> None:
    fuzz(test_one_input, seeds, warm_up=lambda: [points(name) for name in NAMES])


if __name__ == "__main__":
    main()
