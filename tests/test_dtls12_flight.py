"""Flights: fragmentation to the MTU, reassembly with its limits, the retransmission timer,
and whole handshakes over a seeded lossy link (drop, duplicate, reorder)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from helpers import Link, client_config, data_events, make_pair, server_config

from dtlsgate.connection.flight import (
    INITIAL_RETRANSMIT_TIMEOUT,
    MAX_FLIGHT_TRANSMISSIONS,
    MAX_HANDSHAKE_MESSAGE_LENGTH,
    MAX_MESSAGES_AHEAD,
    MAX_RETRANSMIT_TIMEOUT,
    FlightItem,
    OutgoingChangeCipherSpec,
    OutgoingHandshake,
    Reassembler,
    RetransmitTimer,
    pack_flight,
)
from dtlsgate.crypto import DefaultProvider, suite_info
from dtlsgate.record.dtls12 import CipherState, RecordLayer
from dtlsgate.wire.enums import CipherSuite
from dtlsgate.wire.handshake import (
    DtlsHandshakeHeader,
    decode_dtls_handshake_fragments,
    encode_dtls_handshake,
    encode_dtls_handshake_fragment,
)
from dtlsgate.wire.record import encode_dtls_record, split_dtls_records


def fragments_of(datagrams: list[bytes]) -> list[tuple[DtlsHandshakeHeader, bytes]]:
    out = []
    for d in datagrams:
        for record in split_dtls_records(d):
            if record.content_type == 22:
                out.extend(decode_dtls_handshake_fragments(record.fragment))
    return out


@pytest.mark.parametrize("mtu", [256, 300, 576, 1200])
def test_flight_is_fragmented_to_the_mtu_and_reassembles(mtu: int) -> None:
    bodies = [bytes([i]) * n for i, n in enumerate((70, 2500, 300, 0, 1))]
    items = [OutgoingHandshake.of(10 + i, i, b, 0) for i, b in enumerate(bodies)]
    datagrams = pack_flight([*items, OutgoingChangeCipherSpec(0)], RecordLayer(), mtu)
    assert all(len(d) <= mtu for d in datagrams)
    frags = fragments_of(datagrams)
    assert len(frags) > len(bodies) if mtu < 2500 else len(frags) >= len(bodies)
    rng = random.Random(mtu)
    shuffled = frags + frags[: len(frags) // 2]  # duplicates too
    rng.shuffle(shuffled)
    r = Reassembler()
    for header, fragment in shuffled:
        assert not r.add(header, fragment, 0)
    got = [r.pop() for _ in bodies]
    assert [m.body for m in got if m is not None] == bodies
    assert [m.transcript_bytes for m in got if m is not None] == [i.message for i in items]
    assert r.pop() is None
    # The same fragments again belong to messages already processed: a retransmission.
    assert r.add(*frags[0], 0)


def add(r: Reassembler, header: DtlsHandshakeHeader, body: bytes, epoch: int = 0) -> bool:
    """Add a fragment as it is received: its header, then its bytes."""
    return r.add(header, header.encode() + body, epoch)


def test_reassembly_limits() -> None:
    r = Reassembler()
    add(r, DtlsHandshakeHeader(1, 4, MAX_MESSAGES_AHEAD, 0, 4), b"abcd")
    add(r, DtlsHandshakeHeader(1, MAX_HANDSHAKE_MESSAGE_LENGTH + 1, 1, 0, 4), b"abcd")
    assert r.buffered_bytes() == 0
    add(r, DtlsHandshakeHeader(11, 8, 0, 0, 4), b"abcd")
    add(r, DtlsHandshakeHeader(12, 8, 0, 4, 4), b"efgh")  # another type: dropped
    add(r, DtlsHandshakeHeader(11, 9, 0, 4, 4), b"efgh")  # another length: dropped
    assert r.buffered_bytes() == 8
    assert r.pop() is None
    add(r, DtlsHandshakeHeader(11, 8, 0, 4, 4), b"efgh")
    message = r.pop()
    assert message is not None and message.body == b"abcdefgh"
    # Reassembled from fragments: the transcript form is the message as one fragment.
    assert message.transcript_bytes == encode_dtls_handshake(11, b"abcdefgh", 0)


def test_whole_message_is_hashed_as_received() -> None:
    """RFC 6347 §4.2.6 (STYLE.md 9): a message that came in one fragment enters the
    transcript as it was received; a duplicate of it changes nothing."""
    r = Reassembler(3)
    fragment = encode_dtls_handshake(16, b"key exchange", 3)
    assert not r.add(DtlsHandshakeHeader(16, 12, 3, 0, 12), fragment, 0)
    assert r.buffered_bytes() == 12
    assert not add(r, DtlsHandshakeHeader(16, 12, 3, 0, 12), b"KEY EXCHANGE")
    assert not add(r, DtlsHandshakeHeader(16, 12, 3, 4, 4), b"XXXX")
    message = r.pop()
    assert message is not None
    assert (message.msg_type, message.message_seq, message.epoch) == (16, 3, 0)
    assert (message.body, message.transcript_bytes) == (b"key exchange", fragment)
    assert r.pop() is None
    assert add(r, DtlsHandshakeHeader(16, 12, 3, 0, 12), b"key exchange")


def test_whole_next_message_is_taken_without_buffering() -> None:
    """``take_whole``: the whole next message, with nothing buffered, is taken at once;
    anything else (ahead, a fragment, a repeat, something buffered) is left to ``add``."""
    r = Reassembler(3)
    ahead = encode_dtls_handshake(20, b"finished", 4)
    assert r.take_whole(DtlsHandshakeHeader(20, 8, 4, 0, 8), ahead, 1) is None
    part = encode_dtls_handshake_fragment(16, b"key", 3, 0, 12)
    assert r.take_whole(DtlsHandshakeHeader(16, 12, 3, 0, 3), part, 0) is None
    whole = encode_dtls_handshake(16, b"key exchange", 3)
    header = DtlsHandshakeHeader(16, 12, 3, 0, 12)
    assert not r.add(DtlsHandshakeHeader(20, 8, 4, 0, 8), ahead, 1)
    assert r.take_whole(header, whole, 0) is None  # message 4 is buffered
    r.restart(3)
    message = r.take_whole(header, whole, 0)
    assert message is not None
    assert (message.msg_type, message.message_seq, message.epoch) == (16, 3, 0)
    assert (message.body, message.transcript_bytes) == (b"key exchange", whole)
    assert r.next_seq == 4 and r.messages_held() == 0
    assert r.take_whole(header, whole, 0) is None  # a repeat: add says retransmission
    assert r.add(header, whole, 0)


def test_flight_of_messages_as_bytes_changes_epoch_after_change_cipher_spec() -> None:
    """A flight's messages given as bytes go in epoch 0, then in the epoch after the
    ChangeCipherSpec; fragmented, they keep their type and message_seq."""
    info = suite_info(CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
    primitive = DefaultProvider().aead_primitive(info.aead, bytes(info.key_length))
    records = RecordLayer()
    records.install_write(1, CipherState(info, primitive, bytes(info.fixed_iv_length)))
    big = encode_dtls_handshake(11, bytes(range(256)) * 4, 1)
    flight: list[FlightItem] = [encode_dtls_handshake(2, b"hello", 0), big]
    flight.append(OutgoingChangeCipherSpec(0))
    flight.append(encode_dtls_handshake(20, b"f" * 12, 2))
    datagrams = pack_flight(flight, records, 400)
    epochs = [(r.content_type, r.epoch) for d in datagrams for r in split_dtls_records(d)]
    assert epochs[-2:] == [(20, 0), (22, 1)]
    assert {e for t, e in epochs[:-2]} == {0}
    plain = [r.fragment for d in datagrams for r in split_dtls_records(d) if r.epoch == 0]
    frags = [f for p in plain[:-1] for f in decode_dtls_handshake_fragments(p)]
    assert {(h.msg_type, h.message_seq) for h, _ in frags} == {(2, 0), (11, 1)}
    assert len(frags) > 2


def test_retransmission_timer_doubles_up_to_60_seconds() -> None:
    t = RetransmitTimer()
    t.start(100.0)
    assert t.deadline == 100.0 + INITIAL_RETRANSMIT_TIMEOUT
    timeouts = []
    for _ in range(MAX_FLIGHT_TRANSMISSIONS - 1):
        t.backoff(0.0)
        timeouts.append(t.timeout)
    assert timeouts[:5] == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert max(timeouts) == MAX_RETRANSMIT_TIMEOUT
    assert t.exhausted


def test_server_datagrams_respect_a_small_mtu() -> None:
    pair = make_pair(server_config("rsa-2048", mtu=300), client_config("rsa-2048", mtu=300))
    sizes: list[int] = []
    original = pair.to_server

    def record_sizes(datagrams: list[bytes]) -> None:
        original(datagrams)
        if pair.server is not None:
            out = pair.server.datagrams_to_send()
            sizes.extend(len(d) for d, _ in out)
            for d, _ in out:
                pair.client.receive(d, None, pair.now)

    pair.to_server = record_sizes  # type: ignore[method-assign]
    pair.run()
    assert pair.completed()
    assert sizes and max(sizes) <= 300 and len(sizes) >= 4


@pytest.mark.parametrize("seed", range(100))
def test_handshake_over_a_lossy_link(seed: int) -> None:
    """20% loss, 10% duplication, 30% reordering, seeded: every handshake completes."""
    mtu = 300 if seed % 2 else 1200
    pair = make_pair(server_config(mtu=mtu), client_config(mtu=mtu))
    # Quiet at the end: retransmissions stop once the handshake is done on both sides.
    assert pair.run(Link(seed, loss=0.2, dup=0.1, reorder=0.3), rounds=500)
    assert pair.completed(), f"seed {seed}"
    pair.client.send(b"after loss")
    assert pair.run()
    assert data_events(pair.server_events) == [b"after loss"]


def _server_last_flight_delayed() -> tuple[Any, list[bytes]]:
    """A handshake up to the server's last flight (ChangeCipherSpec, Finished), which is
    returned undelivered: delayed on the way to the client."""
    pair = make_pair(server_config(), client_config())
    for _ in range(10):
        pair.to_server([d for d, _ in pair.client.datagrams_to_send()])
        s_out = [d for d, _ in pair.server.datagrams_to_send()] if pair.server else []
        if pair.server is not None and pair.server.handshake_complete:
            pair.drain()
            return pair, s_out
        for d in s_out:
            pair.client.receive(d, None, pair.now)
    raise AssertionError("the server did not finish")


def test_only_the_side_that_sent_the_last_flight_answers_its_retransmission() -> None:
    """RFC 6347 §4.2.4: in FINISHED, the node that sent the last flight (the server of a
    full handshake) answers a retransmission of its peer's last flight by resending its
    own; the other node (the client) must not answer a retransmission of the server's last
    flight, or the two would answer each other for ever.

    The server's last flight is delayed past the client's retransmission timer: the client
    resends its flight, then gets the delayed one and completes; the server answers the
    resent flight with its last flight again, which the client takes in silence."""
    pair, delayed = _server_last_flight_delayed()
    client = pair.client
    deadline = client.get_timer()
    assert deadline is not None
    client.handle_timer(deadline)
    client_resent = [d for d, _ in client.datagrams_to_send()]
    assert client_resent
    for d in delayed:
        client.receive(d, None, pair.now)
    pair.drain()
    assert pair.completed() and client.get_timer() is None
    pair.to_server(client_resent)
    server_resent = [d for d, _ in pair.server.datagrams_to_send()]
    assert server_resent and server_resent != delayed  # new records, same messages
    for d in server_resent:
        client.receive(d, None, pair.now)
    assert client.datagrams_to_send() == []


@pytest.mark.parametrize("seed", range(20))
def test_a_late_last_flight_does_not_start_a_storm(seed: int) -> None:
    """The same late flight over a link that also duplicates and reorders: whatever it
    does, the two ends stop sending after a few datagrams."""
    pair, delayed = _server_last_flight_delayed()
    deadline = pair.client.get_timer()
    assert deadline is not None
    pair.client.handle_timer(deadline)
    for d in delayed:
        pair.client.receive(d, None, pair.now)
    link = Link(seed, dup=0.5, reorder=0.5)
    sent = 0
    for _ in range(50):
        c_out = link.carry([d for d, _ in pair.client.datagrams_to_send()])
        pair.to_server(c_out)
        s_out = link.carry([d for d, _ in pair.server.datagrams_to_send()])  # type: ignore[union-attr]
        for d in s_out:
            pair.client.receive(d, None, pair.now)
        sent += len(c_out) + len(s_out)
        if not c_out and not s_out:
            break
    else:
        pytest.fail("the two ends kept answering each other")
    assert sent <= 8
    pair.drain()
    assert pair.completed()


def test_a_client_hello_in_two_fragments_is_admitted_and_reassembled() -> None:
    """A ClientHello with a cookie that another implementation fragmented (a small path
    MTU, long extensions): the gate admits its first fragment, which holds the cookie
    (RFC 6347 §4.2.1), and the server connection reassembles the rest from the next
    datagram and goes on with the handshake."""
    pair = make_pair(server_config(), client_config())
    (hello1,) = [d for d, _ in pair.client.datagrams_to_send()]
    pair.to_server([hello1])  # the gate answers; the client sends its second hello
    (hello2,) = [d for d, _ in pair.client.datagrams_to_send()]
    ((header, fragment),) = decode_dtls_handshake_fragments(hello2[13:])
    body = fragment[12:]
    cut = len(body) - 30  # well after the cookie
    sequence = int.from_bytes(hello2[5:11], "big")

    def record(seq: int, offset: int, part: bytes) -> bytes:
        message = encode_dtls_handshake_fragment(1, part, header.message_seq, offset, len(body))
        return encode_dtls_record(22, 0xFEFD, 0, seq, message)

    pair.to_server([record(sequence, 0, body[:cut])])
    assert pair.server is not None and pair.server.datagrams_to_send() == []
    pair.to_server([record(sequence + 1, cut, body[cut:])])
    assert pair.run() and pair.completed()


def _callbacks() -> dict[str, Any]:
    """OpenSSL-style cookie callbacks (SSL_CTX_set_cookie_generate_cb / _verify_cb)."""
    return {
        "cookie_generate": lambda peer: b"app-cookie",
        "cookie_verify": lambda peer, cookie: cookie == b"app-cookie",
    }


@pytest.mark.parametrize("cookies", ["jar", "callbacks"])
def test_a_client_hello_fragmented_right_after_the_cookie_is_admitted(cookies: str) -> None:
    """A ClientHello2 whose first fragment ends right after the cookie (before
    cipher_suites): the gate judges it from that fragment, as DTLSv1_listen does, with the
    default jar (which binds only the fields before the cookie) and with the application's
    callbacks; the server connection reassembles the rest and the handshake completes."""
    pair = make_pair(
        server_config(**(_callbacks() if cookies == "callbacks" else {})), client_config()
    )
    (hello1,) = [d for d, _ in pair.client.datagrams_to_send()]
    pair.to_server([hello1])  # the gate answers; the client sends its second hello
    (hello2,) = [d for d, _ in pair.client.datagrams_to_send()]
    ((header, fragment),) = decode_dtls_handshake_fragments(hello2[13:])
    body = fragment[12:]
    cookie_at = 2 + 32 + 1 + body[34]
    cut = cookie_at + 1 + body[cookie_at]  # the cookie's last byte ends the fragment
    assert body[cookie_at] > 0
    sequence = int.from_bytes(hello2[5:11], "big")

    def record(seq: int, offset: int, part: bytes) -> bytes:
        message = encode_dtls_handshake_fragment(1, part, header.message_seq, offset, len(body))
        return encode_dtls_record(22, 0xFEFD, 0, seq, message)

    pair.to_server([record(sequence, 0, body[:cut])])
    assert pair.server is not None and pair.server.datagrams_to_send() == []
    assert pair.gate.admits == 1
    pair.to_server([record(sequence + 1, cut, body[cut:])])
    assert pair.run() and pair.completed()
