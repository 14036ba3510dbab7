"""DTLS 1.2 under hostile input: at every point of real in-memory handshakes, on both the
server and the client, inject random bytes, mutated captured records and every handshake
message type, and check that only a silent drop, a `ProtocolError` whose alert was sent, or
`AlertReceived` come out, never another exception; then flood the reassembly and early
record buffers and check that they stay within their limits.

A handshake is driven one datagram at a time (``Driver``), so "a point" is "after k
datagrams were delivered"; flights are split over many datagrams (a 256-byte MTU) so that
points fall inside flights too. Message types are injected one record at a time
(``RecordDriver``), which stops between two messages of one datagram as well. The
configurations (``CONFIGS``) are checked to negotiate what they are named for, and together
to pass through every state of both machines. Everything is seeded: a failure reproduces.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from dtls12_hostile import (
    CONFIGS,
    DTLS12,
    INJECTED_TYPES,
    SRTP_PROFILES,
    Driver,
    RecordDriver,
    as_datagram,
    check_bounds,
    deliver,
    full_run,
    legal_types,
    plaintext_bodies,
    states_passed,
)
from helpers import PSK_ID

from dtlsgate.connection.datagram import MAX_EARLY_RECORDS
from dtlsgate.connection.flight import (
    MAX_BUFFERED_BYTES,
    MAX_HANDSHAKE_MESSAGE_LENGTH,
    MAX_MESSAGES_AHEAD,
)
from dtlsgate.events import HandshakeCompleted
from dtlsgate.handshake.dtls12 import client as dtls12_client
from dtlsgate.handshake.dtls12 import server as dtls12_server
from dtlsgate.wire.enums import CipherSuite
from dtlsgate.wire.handshake import encode_dtls_handshake_fragment
from dtlsgate.wire.record import encode_dtls_record

# --- input generators ---------------------------------------------------------------------


def random_datagrams(rng: random.Random, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        if rng.random() < 0.3:
            out.append(rng.randbytes(rng.randrange(0, 80)))
            continue
        # A plausible record header (so the fuzz gets past the framing), random content.
        body = rng.randbytes(rng.randrange(0, 120))
        kind = rng.choice((20, 21, 22, 23, 24, 0, 255))
        epoch = rng.choice((0, 0, 1, 2, 0xFFFF))
        seq = rng.choice((0, 1, rng.randrange(1 << 48), (1 << 48) - 1))
        out.append(encode_dtls_record(kind, DTLS12, epoch, seq, body))
    return out


def mutate(rng: random.Random, d: bytes) -> bytes:
    """One of: bit flips, truncation, record length, epoch or sequence number changed,
    handshake header fields changed, trailing garbage."""
    b = bytearray(d)
    op = rng.randrange(8)
    if op == 0:
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif op == 1:
        del b[rng.randrange(len(b)) :]
    elif op == 2:
        b[11:13] = rng.choice((0, 1, len(b) - 12, len(b), 0xFFFF, rng.randrange(1 << 16))).to_bytes(
            2, "big"
        )
    elif op == 3:
        b[3:5] = rng.choice((0, 1, 2, 0xFFFF)).to_bytes(2, "big")
    elif op == 4:
        b[5:11] = rng.choice((0, 1, (1 << 48) - 1, rng.randrange(1 << 48))).to_bytes(6, "big")
    elif op == 5 and len(b) >= 25:
        # The first record's handshake header: type, length, message_seq, offset, length.
        field = rng.choice(((13, 14), (14, 17), (17, 19), (19, 22), (22, 25)))
        width = field[1] - field[0]
        value = rng.choice((0, 1, (1 << (8 * width)) - 1, rng.randrange(1 << (8 * width))))
        b[field[0] : field[1]] = value.to_bytes(width, "big")
    elif op == 6:
        b += rng.randbytes(rng.randrange(1, 30))
    else:
        b[1:3] = rng.choice((0xFEFF, 0x0303, 0xFEFC, 0)).to_bytes(2, "big")
    return bytes(b)


def handshake_injections(
    rng: random.Random, bodies: dict[int, list[bytes]], epoch_one: bool
) -> list[tuple[int, bytes, int]]:
    """(msg_type, body, epoch): every type with an empty body, random bytes and captured
    bodies of that type; in epoch 0, and in epoch 1 when the peer can protect records of
    it (``epoch_one``)."""
    out = []
    for msg_type in INJECTED_TYPES:
        candidates = [b"", rng.randbytes(rng.randrange(1, 60)), *bodies.get(msg_type, [])[:2]]
        for body in candidates:
            for epoch in (0, 1) if epoch_one else (0,):
                out.append((msg_type, body, epoch))
    return out


# --- the configurations -------------------------------------------------------------------

ECDHE_PSK_SUITES = (
    CipherSuite.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite.TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256,
)
# What each configuration is there for, as both ends' HandshakeCompleted (client, server)
# report it: one that quietly fell back (a full handshake, no use_srtp, a certificate for a
# raw key) would fuzz nothing new.
NEGOTIATED: dict[str, Callable[[HandshakeCompleted, HandshakeCompleted], bool]] = {
    "ecdsa": lambda c, s: bool(c.peer_certificates) and not s.peer_certificates,
    "ecdsa-client-auth": lambda c, s: bool(c.peer_certificates and s.peer_certificates),
    "psk": lambda c, s: (
        c.psk_identity == s.psk_identity == PSK_ID and c.cipher_suite in ECDHE_PSK_SUITES
    ),
    "psk-ccm8": lambda c, s: (
        c.psk_identity == s.psk_identity == PSK_ID
        and c.cipher_suite == CipherSuite.TLS_PSK_WITH_AES_128_CCM_8
    ),
    "resumed": lambda c, s: c.resumed and s.resumed,
    "resumed-session-id": lambda c, s: c.resumed and s.resumed,
    "raw-public-keys": lambda c, s: (
        c.peer_raw_public_key is not None
        and s.peer_raw_public_key is not None
        and not (c.peer_certificates or s.peer_certificates)
    ),
    "fingerprint-client-auth": lambda c, s: bool(c.peer_certificates and s.peer_certificates),
    "srtp": lambda c, s: c.srtp_profile == s.srtp_profile == SRTP_PROFILES[0],
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_each_configuration_negotiates_what_it_is_named_for(name: str) -> None:
    pair = full_run(CONFIGS[name]).pair
    (client,) = [e for e in pair.client_events if isinstance(e, HandshakeCompleted)]
    (server,) = [e for e in pair.server_events if isinstance(e, HandshakeCompleted)]
    assert NEGOTIATED[name](client, server), (client, server)
    assert set(NEGOTIATED) == set(CONFIGS)


# --- the fuzz -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_random_and_mutated_datagrams_at_every_point(name: str) -> None:
    config = CONFIGS[name]
    reference = full_run(config)
    steps = len(reference.captured["server"]) + len(reference.captured["client"])
    rng = random.Random(f"mutate-{name}")
    outcomes: dict[str, int] = {}
    for point in range(steps + 1):
        for side, source in (("server", "server"), ("client", "client")):
            driver = Driver(config).run(point)
            for d in random_datagrams(rng, 12) + [
                mutate(rng, rng.choice(reference.captured[source])) for _ in range(24)
            ]:
                conn, peer = driver.side(side)
                if conn is None:
                    break
                if conn.closed:
                    driver = Driver(config).run(point)
                    conn, peer = driver.side(side)
                    assert conn is not None
                outcome = deliver(conn, peer, d)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes.get("dropped", 0) > 0


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_handshake_message_type_in_every_state(name: str) -> None:
    """Delivered one record at a time (`RecordDriver`), so that the states between two
    messages of one datagram (a PSK client's after the ServerHello, before the
    ServerKeyExchange) are injected into too."""
    config = CONFIGS[name]
    reference = full_run(config, RecordDriver)
    steps = len(reference.captured["server"]) + len(reference.captured["client"])
    bodies = {
        "server": plaintext_bodies(reference.captured["server"]),
        "client": plaintext_bodies(reference.captured["client"]),
    }
    # Each side also gets the messages it sends itself (a reflected message).
    for t, b in plaintext_bodies(reference.captured["client"]).items():
        bodies["server"].setdefault(t, []).extend(b)
    for t, b in plaintext_bodies(reference.captured["server"]).items():
        bodies["client"].setdefault(t, []).extend(b)
    rng = random.Random(f"types-{name}")
    states_seen: set[tuple[str, str]] = set()
    # A step delivers to one side: the other is where it was at the point before, unless
    # its peer has since got the keys to protect epoch 1 records; such points are skipped.
    injected_at: set[tuple[str, int, bool]] = set()
    for point in range(steps + 1):
        for side in ("server", "client"):
            driver = RecordDriver(config).run(point)
            conn, peer = driver.side(side)
            if conn is None or conn.closed:
                continue
            epoch_one = peer is not None and peer.record_layer.can_write(1)
            if (side, len(driver.captured[side]), epoch_one) in injected_at:
                continue
            injected_at.add((side, len(driver.captured[side]), epoch_one))
            for msg_type, body, epoch in handshake_injections(rng, bodies[side], epoch_one):
                conn, peer = driver.side(side)
                assert conn is not None
                if conn.closed:
                    driver = RecordDriver(config).run(point)
                    conn, peer = driver.side(side)
                    assert conn is not None
                states_seen.add((side, conn.state_name))
                d = as_datagram(conn, peer, msg_type, body, epoch)
                # Not in the state table: unexpected_message. After the handshake, only
                # protected records reach the state machine.
                illegal = msg_type not in legal_types(conn) and (
                    not conn.handshake_complete or epoch == 1
                )
                outcome = deliver(conn, peer, d, illegal_type=illegal)
                if conn.handshake_complete and epoch == 0:
                    assert outcome == "dropped"
    # Every state each side passes through in this handshake was fuzzed.
    assert states_seen >= set(states_passed(config))


def test_the_configurations_pass_through_every_state() -> None:
    """Together the configurations take both machines through every state of their
    tables: each gets every message type above."""
    passed = {p for config in CONFIGS.values() for p in states_passed(config)}
    for side, machine in (("server", dtls12_server.SERVER), ("client", dtls12_client.CLIENT)):
        missing = {s.__name__ for s in machine.states()} - {n for d, n in passed if d == side}
        assert not missing, (side, missing)


def test_alerts_in_every_state() -> None:
    config = CONFIGS["ecdsa"]
    reference = full_run(config)
    steps = len(reference.captured["server"]) + len(reference.captured["client"])
    bodies = [
        bytes((level, description))
        for level in (1, 2, 0, 255)
        for description in (0, 10, 40, 90, 100, 255)
    ] + [b"", b"\x02", b"\x02\x28\x00"]
    for point in range(steps + 1):
        for side in ("server", "client"):
            for body in bodies:
                driver = Driver(config).run(point)
                conn, peer = driver.side(side)
                if conn is None:
                    continue
                d = encode_dtls_record(21, DTLS12, 0, 5000, body)
                outcome = deliver(conn, peer, d)
                if conn.handshake_complete and outcome != "dropped":
                    pytest.fail("a plaintext alert after the handshake must be dropped")


# --- bounded buffers ----------------------------------------------------------------------


def _fragment(msg_type: int, seq: int, length: int, offset: int, data: bytes) -> bytes:
    return encode_dtls_handshake_fragment(msg_type, data, seq, offset, length)


@pytest.mark.parametrize("side", ["server", "client"])
def test_fragment_flood_keeps_reassembly_bounded(side: str) -> None:
    config = CONFIGS["ecdsa"]
    rng = random.Random(f"flood-{side}")
    # Server: admitted, waiting for the client's flight. Client: waiting for ServerHello.
    driver = Driver(config).run(3 if side == "server" else 2)
    conn, peer = driver.side(side)
    assert conn is not None and not conn.closed
    base = conn.reassembler.next_seq
    record_seq = 10_000
    for _ in range(40):
        records = []
        for _ in range(60):
            kind = rng.randrange(4)
            if kind == 0:  # far-future messages
                seq = base + MAX_MESSAGES_AHEAD + rng.randrange(0xFFFF - base - MAX_MESSAGES_AHEAD)
                length = rng.randrange(1, 1 << 16)
            elif kind == 1:  # huge declared lengths
                seq = base + rng.randrange(MAX_MESSAGES_AHEAD)
                length = rng.choice((MAX_HANDSHAKE_MESSAGE_LENGTH + 1, 0xFFFFFF))
            else:  # 1-byte fragments with gaps, inside the window, of messages not yet due
                seq = base + 1 + rng.randrange(MAX_MESSAGES_AHEAD - 1)
                length = MAX_HANDSHAKE_MESSAGE_LENGTH
            offset = rng.randrange(0, length, 2) if kind else rng.randrange(length)
            records.append(_fragment(11, seq, length, offset, b"x"))
        d = encode_dtls_record(22, DTLS12, 0, record_seq, b"".join(records))
        record_seq += 1
        assert deliver(conn, peer, d) == "dropped"
    # Early epoch-1 records, far more than are kept.
    for i in range(5 * MAX_EARLY_RECORDS):
        d = encode_dtls_record(22, DTLS12, 1, i, rng.randbytes(40))
        assert deliver(conn, peer, d) == "dropped"
    check_bounds(conn)
    assert conn.reassembler.buffered_bytes() <= MAX_BUFFERED_BYTES
    assert conn.early_records == MAX_EARLY_RECORDS


@pytest.mark.parametrize("side", ["server", "client"])
def test_out_of_window_flood_does_not_stop_the_handshake(side: str) -> None:
    """Fragments that are dropped (too far ahead, too long, past the message) leave no trace:
    the handshake then completes."""
    config = CONFIGS["ecdsa"]
    driver = Driver(config).run(3 if side == "server" else 2)
    conn, peer = driver.side(side)
    assert conn is not None
    base = conn.reassembler.next_seq
    junk = [_fragment(11, base + MAX_MESSAGES_AHEAD + i, 100, 0, b"x" * 10) for i in range(50)] + [
        _fragment(16, base + i, MAX_HANDSHAKE_MESSAGE_LENGTH + 1, 0, b"y") for i in range(6)
    ]
    for i in range(0, len(junk), 8):
        d = encode_dtls_record(22, DTLS12, 0, 20_000 + i, b"".join(junk[i : i + 8]))
        assert deliver(conn, peer, d) == "dropped"
    assert conn.reassembler.buffered_bytes() == 0
    assert driver.finish()
