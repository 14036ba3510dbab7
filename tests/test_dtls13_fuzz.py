"""Bad input to DTLS 1.3 connections (RFC 9147 §4.5.2: invalid records are dropped): random
and mutated datagrams, and records protected with the right keys but carrying random
content, fed to either side at every point of a handshake. The contract: a silent drop, or
a `ProtocolError` (the alert queued) or `AlertReceived`; never another exception, a hang or
an unbounded buffer."""

from __future__ import annotations

import random

import pytest
from helpers import CLIENT, SERVER, Link, client_config, make_pair13, server_config

from dtlsgate.connection.datagram13 import Dtls13Connection
from dtlsgate.connection.flight import MAX_BUFFERED_BYTES
from dtlsgate.errors import AlertReceived, ProtocolError
from dtlsgate.wire.enums import ContentType

CONTENT_TYPES = [ContentType.HANDSHAKE, ContentType.ACK, ContentType.ALERT, 23, 26, 99]


def hostile(rng: random.Random, genuine: list[bytes], sender: Dtls13Connection) -> bytes:
    """A datagram: random bytes, a genuine datagram with bytes flipped or cut, or a record
    the peer's record layer protected (the right keys) around random content."""
    kind = rng.randrange(4)
    if kind == 0 or not genuine:
        return rng.randbytes(rng.randrange(0, 200))
    if kind == 1:
        d = bytearray(rng.choice(genuine))
        for _ in range(rng.randrange(1, 4)):
            d[rng.randrange(len(d))] ^= 1 << rng.randrange(8)
        return bytes(d)
    if kind == 2:
        d = rng.choice(genuine)
        return d[: rng.randrange(len(d))]
    content_type = rng.choice(CONTENT_TYPES)
    body = rng.randbytes(rng.randrange(1, 120))
    if content_type == ContentType.HANDSHAKE and rng.random() < 0.7:
        # A handshake fragment header with random fields, then random bytes.
        length = rng.randrange(0, 1 << rng.choice([4, 8, 17, 24]))
        body = (
            bytes([rng.randrange(256)])
            + length.to_bytes(3, "big")
            + rng.randrange(8).to_bytes(2, "big")
            + rng.randrange(64).to_bytes(3, "big")
            + min(len(body), length).to_bytes(3, "big")
            + body
        )
    try:
        return sender.records.protect(content_type, body)
    except Exception:  # a content type the layer refuses to send in this epoch
        return rng.randbytes(40)


@pytest.mark.parametrize("seed", range(32))
def test_hostile_datagrams_at_every_point(seed: int) -> None:
    rng = random.Random(seed)
    pair = make_pair13(server_config(mtu=300), client_config(mtu=300))
    genuine: list[bytes] = []
    link = Link(seed=seed)
    rounds = 0
    for _ in range(80):
        c_out = [d for d, _ in pair.client.datagrams_to_send()]
        genuine += c_out
        try:
            pair.to_server(link.carry(c_out))
        except (ProtocolError, AlertReceived):
            return
        s_out = [d for d, _ in pair.server.datagrams_to_send()] if pair.server else []
        genuine += s_out
        for d in s_out:
            try:
                pair.client.receive(d, SERVER, pair.now)
            except (ProtocolError, AlertReceived):
                return
        # A few hostile datagrams to either side.
        for _ in range(rng.randrange(1, 6)):
            target = pair.server if pair.server is not None and rng.random() < 0.5 else pair.client
            peer = pair.client if target is pair.server else pair.server
            datagram = hostile(rng, genuine, peer or pair.client)
            try:
                target.receive(datagram, CLIENT if target is pair.server else SERVER, pair.now)
            except (ProtocolError, AlertReceived):
                assert target.closed
                return
            assert target.reassembler.buffered_bytes() <= MAX_BUFFERED_BYTES
        pair.drain()
        if pair.completed() and rounds < 20:
            # After the handshake: data and KeyUpdates, so later epochs are reached too.
            rounds += 1
            conn = rng.choice([pair.client, pair.server])
            if conn is not None and not conn.closed:
                if rng.random() < 0.3:
                    conn.key_update(request_peer=rng.random() < 0.5)
                else:
                    conn.send(rng.randbytes(rng.randrange(1, 50)))
            continue
        if not c_out and not s_out:
            timers = [t for c in (pair.client, pair.server) if c and (t := c.get_timer())]
            if not timers and pair.completed():
                return
            if timers:
                pair.now = max(pair.now, min(timers))
                for conn in (pair.client, pair.server):
                    if conn is not None:
                        conn.handle_timer(pair.now)
    assert pair.completed() or pair.client.closed or (pair.server and pair.server.closed)
