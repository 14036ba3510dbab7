"""The stateless gate (DTLSv1_listen): replies, admissions and every drop reason."""

from __future__ import annotations

import dataclasses
import gc
import tracemalloc

import pytest
from builders import client_hello, datagram, with_cookie

from dtlsgate.config import ServerConfig
from dtlsgate.errors import UsageError
from dtlsgate.gate import datagram as gate_module
from dtlsgate.gate.cookie import COOKIE_OVERHEAD, CookieJar
from dtlsgate.gate.datagram import Admit, Drop, DropReason, Gate, Reply, is_client_hello
from dtlsgate.wire.buffer import Reader
from dtlsgate.wire.enums import ContentType, ProtocolVersion
from dtlsgate.wire.handshake import (
    DtlsHandshakeHeader,
    encode_dtls_handshake,
    encode_dtls_handshake_fragment,
)
from dtlsgate.wire.messages import HelloVerifyRequest
from dtlsgate.wire.record import DtlsRecordHeader, encode_dtls_record

PEER = ("192.0.2.1", 5684)
KEY = bytes(range(32))
NOW = 1_800_000_000.0


def make_gate(**kwargs: object) -> Gate:
    kwargs.setdefault("cookie_jar", CookieJar(KEY))
    return Gate(ServerConfig(**kwargs))  # type: ignore[arg-type]


def parse_hvr(data: bytes) -> tuple[DtlsRecordHeader, DtlsHandshakeHeader, HelloVerifyRequest]:
    r = Reader(data)
    record = DtlsRecordHeader.decode(r)
    body = r.sub(record.length)
    r.finish()
    hs = DtlsHandshakeHeader.decode(body)
    hvr = HelloVerifyRequest.decode(body.read(hs.fragment_length))
    body.finish()
    return record, hs, hvr


def test_hello_verify_request_matches_openssl_on_the_wire(openssl_client_hello: bytes) -> None:
    gate = make_gate()
    result = gate.receive(openssl_client_hello, PEER, NOW)
    assert isinstance(result, Reply)
    record, hs, hvr = parse_hvr(result.data)
    ch_record = DtlsRecordHeader.decode(Reader(openssl_client_hello))
    assert record.content_type == 22
    assert record.version == ProtocolVersion.DTLS10
    assert (record.epoch, record.sequence_number) == (ch_record.epoch, ch_record.sequence_number)
    assert (hs.msg_type, hs.message_seq, hs.fragment_offset) == (3, 0, 0)
    assert hs.fragment_length == hs.length
    assert hvr.server_version == ProtocolVersion.DTLS10
    assert len(hvr.cookie) == 21
    assert len(result.data) <= len(openssl_client_hello)


@pytest.mark.parametrize("fixture", ["openssl_client_hello", "gnutls_client_hello"])
def test_second_client_hello_with_cookie_is_admitted(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    first: bytes = request.getfixturevalue(fixture)
    gate = make_gate()
    reply = gate.receive(first, PEER, NOW)
    assert isinstance(reply, Reply)
    cookie = parse_hvr(reply.data)[2].cookie
    second = with_cookie(first, cookie, message_seq=1, record_seq=7)
    result = gate.receive(second, PEER, NOW + 0.2)
    assert isinstance(result, Admit)
    assert result.peer == PEER
    assert result.cookie == cookie
    assert result.message_seq == 1
    assert result.record_sequence_number == 7
    assert result.client_hello is not None and result.client_hello.cookie == cookie
    assert not result.fragmented
    # The transcript form: unfragmented header, then the body exactly as received.
    assert result.client_hello_message == second[13:]
    assert gate.stats["reply"] == 1 and gate.stats["admit"] == 1


def first_and_cookie(gate: Gate, hello_datagram: bytes, peer: object = PEER) -> bytes:
    reply = gate.receive(hello_datagram, peer, NOW)  # type: ignore[arg-type]
    assert isinstance(reply, Reply)
    return parse_hvr(reply.data)[2].cookie


def test_cookie_from_another_address_is_answered_like_a_missing_one() -> None:
    gate = make_gate()
    first = datagram(client_hello())
    cookie = first_and_cookie(gate, first)
    result = gate.receive(with_cookie(first, cookie), ("192.0.2.2", 5684), NOW)
    assert isinstance(result, Reply)
    assert parse_hvr(result.data)[2].cookie != cookie
    # Another port of the same host is another peer too.
    assert isinstance(gate.receive(with_cookie(first, cookie), ("192.0.2.1", 1), NOW), Reply)


def test_forged_cookies_are_answered_with_a_fresh_reply() -> None:
    gate = make_gate()
    first = datagram(client_hello())
    cookie = first_and_cookie(gate, first)
    for i in range(len(cookie)):
        forged = bytearray(cookie)
        forged[i] ^= 0x01
        assert isinstance(gate.receive(with_cookie(first, bytes(forged)), PEER, NOW), Reply)
    for bogus in (b"\x00", b"x" * 21, b"\x01" * 255, cookie[:-1], cookie + b"\x00"):
        assert isinstance(gate.receive(with_cookie(first, bogus), PEER, NOW), Reply)
    assert gate.stats["admit"] == 0


def test_a_mutable_datagram_is_judged_as_a_copy() -> None:
    """A bytearray or memoryview is judged like the same bytes, and what an Admit keeps is
    bytes of its own: the caller reusing its receive buffer changes nothing in it (the gate
    takes bytes as they are and copies anything else)."""
    gate = make_gate()
    first = datagram(client_hello())
    assert gate.receive(bytearray(first), PEER, NOW) == gate.receive(first, PEER, NOW)
    second = with_cookie(first, first_and_cookie(gate, first))
    for buffer in (bytearray(second), memoryview(bytearray(second))):
        admit = gate.receive(buffer, PEER, NOW)
        assert isinstance(admit, Admit)
        buffer[:] = bytes(len(second))  # the adapter's next receive into the same buffer
        assert type(admit.datagram) is bytes and admit.datagram == second
        assert type(admit.client_hello_message) is bytes
        assert admit.client_hello_message == second[13:]


def test_cookie_expires_after_max_age() -> None:
    gate = make_gate(cookie_jar=CookieJar(KEY, max_age=30.0))
    first = datagram(client_hello())
    cookie = first_and_cookie(gate, first)
    assert isinstance(gate.receive(with_cookie(first, cookie), PEER, NOW + 30.0), Admit)
    assert isinstance(gate.receive(with_cookie(first, cookie), PEER, NOW + 31.0), Reply)
    # A cookie from the future beyond the allowed clock skew is not accepted either.
    assert isinstance(gate.receive(with_cookie(first, cookie), PEER, NOW - 6.0), Reply)


def test_rotation_accepts_previous_secret_only() -> None:
    jar = CookieJar(KEY, max_age=100.0, rotation_interval=100.0)
    gate = make_gate(cookie_jar=jar)
    first = datagram(client_hello())
    t0 = 1_000_099.0  # last second of epoch 10000
    cookie = gate_cookie_at(gate, first, t0)
    # In the next epoch the previous secret still verifies.
    assert isinstance(gate.receive(with_cookie(first, cookie), PEER, t0 + 2), Admit)
    # Secrets really differ between epochs: the same timestamp under another epoch's
    # secret does not verify (checked through the jar directly).
    bound = b"b"
    c1 = jar.mint(PEER, 1_000_050.0, bound)
    c2 = jar.mint(PEER, 1_000_150.0, bound)
    assert c1[5:] != c2[5:]
    assert jar.verify(PEER, 1_000_120.0, c1, bound) is not None
    assert jar.verify(PEER, 1_000_151.0, c1, bound) is None
    # The jar keeps the secrets of two epochs at most, however many it has seen.
    for epoch in range(50):
        jar.mint(PEER, epoch * 100.0, bound)
    assert len(jar._keyed) == 2


def gate_cookie_at(gate: Gate, first: bytes, now: float) -> bytes:
    reply = gate.receive(first, PEER, now)
    assert isinstance(reply, Reply)
    return parse_hvr(reply.data)[2].cookie


def test_fleet_shares_cookies_through_the_master_key() -> None:
    a, b = make_gate(cookie_jar=CookieJar(KEY)), make_gate(cookie_jar=CookieJar(KEY))
    other = make_gate(cookie_jar=CookieJar(bytes(32)))
    first = datagram(client_hello())
    cookie = first_and_cookie(a, first)
    assert isinstance(b.receive(with_cookie(first, cookie), PEER, NOW), Admit)
    assert isinstance(other.receive(with_cookie(first, cookie), PEER, NOW), Reply)


@pytest.mark.parametrize(
    "change",
    [
        {"random": bytes(32)},
        {"session_id": b"\x01" * 32},
        {"version": ProtocolVersion.DTLS10},
    ],
)
def test_second_hello_must_repeat_the_bound_fields(change: dict[str, object]) -> None:
    gate = make_gate()
    first = datagram(client_hello())
    cookie = first_and_cookie(gate, first)
    changed = datagram(client_hello(cookie=cookie, **change), message_seq=1)  # type: ignore[arg-type]
    assert isinstance(gate.receive(changed, PEER, NOW), Reply)
    # Extensions are not bound: a client may change them (e.g. add padding).
    same = datagram(client_hello(cookie=cookie, extensions=()), message_seq=1)
    assert isinstance(gate.receive(same, PEER, NOW), Admit)


def test_fields_after_the_cookie_are_not_bound() -> None:
    """The cookie binds what precedes it on the wire (client_version, random, session_id),
    so a first fragment that ends right after the cookie can be judged (cookie.py says
    why cipher_suites and compression_methods are left out)."""
    gate = make_gate()
    first = datagram(client_hello())
    cookie = first_and_cookie(gate, first)
    changed = datagram(client_hello(cookie=cookie, suites=(0xC02C, 0xC02B)), message_seq=1)
    assert isinstance(gate.receive(changed, PEER, NOW), Admit)


def test_verified_hello_with_message_seq_0_is_admitted() -> None:
    gate = make_gate()
    first = datagram(client_hello())
    cookie = first_and_cookie(gate, first)
    result = gate.receive(with_cookie(first, cookie, message_seq=0), PEER, NOW)
    assert isinstance(result, Admit) and result.message_seq == 0


def test_peer_none_binds_time_and_hello_only() -> None:
    gate = make_gate()
    first = datagram(client_hello())
    cookie = first_and_cookie(gate, first, peer=None)
    assert isinstance(gate.receive(with_cookie(first, cookie), None, NOW), Admit)
    assert isinstance(gate.receive(with_cookie(first, cookie), PEER, NOW), Reply)


def test_custom_callbacks_replace_the_jar() -> None:
    calls: list[tuple[object, bytes]] = []

    def generate(peer: object) -> bytes:
        return b"cookie-for-" + repr(peer).encode()[:8]

    def verify(peer: object, cookie: bytes) -> bool:
        calls.append((peer, cookie))
        return cookie == generate(peer)

    gate = make_gate(cookie_jar=None, cookie_generate=generate, cookie_verify=verify)
    first = datagram(client_hello())
    cookie = first_and_cookie(gate, first)
    assert cookie == generate(PEER)
    assert isinstance(gate.receive(with_cookie(first, cookie), PEER, NOW), Admit)
    assert isinstance(gate.receive(with_cookie(first, b"nope"), PEER, NOW), Reply)
    assert calls == [(PEER, cookie), (PEER, b"nope")]


def test_callback_misuse_is_a_clear_error() -> None:
    with pytest.raises(UsageError):
        ServerConfig(cookie_generate=lambda p: b"x")
    gate = make_gate(cookie_generate=lambda p: b"x" * 256, cookie_verify=lambda p, c: False)
    with pytest.raises(UsageError, match="cookie_generate must return at most 255"):
        gate.receive(datagram(client_hello()), PEER, NOW)
    # Not bytes, however short: refused before a reply is built from it.
    gate = make_gate(cookie_generate=lambda p: "x", cookie_verify=lambda p, c: False)
    with pytest.raises(UsageError, match="cookie_generate"):
        gate.receive(datagram(client_hello()), PEER, NOW)


def test_reply_larger_than_hello_is_dropped_and_counted() -> None:
    gate = make_gate(cookie_generate=lambda p: b"x" * 255, cookie_verify=lambda p, c: False)
    small = datagram(client_hello(extensions=None))
    assert gate.receive(small, PEER, NOW) == Drop(DropReason.REPLY_TOO_LARGE)
    assert gate.stats[DropReason.REPLY_TOO_LARGE] == 1
    padded = datagram(client_hello(extensions=None, session_id=b"s" * 32, suites=(1,) * 120))
    assert isinstance(gate.receive(padded, PEER, NOW), Reply)
    # At the edge: a reply as long as the ClientHello's datagram is sent, one byte longer
    # is not (28 bytes of headers, server_version and the cookie's length byte).
    edge = len(small) - 28
    gate = make_gate(cookie_generate=lambda p: b"x" * edge, cookie_verify=lambda p, c: False)
    reply = gate.receive(small, PEER, NOW)
    assert isinstance(reply, Reply) and len(reply.data) == len(small)
    gate = make_gate(cookie_generate=lambda p: b"y" * (edge + 1), cookie_verify=lambda p, c: False)
    assert gate.receive(small, PEER, NOW) == Drop(DropReason.REPLY_TOO_LARGE)


def test_the_jars_reply_is_never_larger_than_a_hello() -> None:
    """The jar's cookies are COOKIE_OVERHEAD bytes whatever the peer and the clock, and the
    smallest datagram the peek reads (record and handshake headers, client_version, random,
    an empty session_id and cookie: 61 bytes) is no smaller than their reply: the gate's
    never-amplify check (which it makes on every reply) never drops a jar cookie's."""
    gate = make_gate(dtls_versions=(ProtocolVersion.DTLS12,))
    body = _hello_body()
    smallest = _record(_fragment(body, 0, 2 + 32 + 1 + 1))
    assert len(smallest) == 61
    reply = gate.receive(smallest, PEER, NOW)
    assert isinstance(reply, Reply) and len(reply.data) == 28 + COOKIE_OVERHEAD
    assert len(reply.data) <= len(smallest)
    # One byte less (no room for the cookie's length byte) is not read.
    shorter = _record(_fragment(body, 0, 2 + 32 + 1))
    assert gate.receive(shorter, PEER, NOW) == Drop(DropReason.FRAGMENT_TOO_SHORT)
    jar = CookieJar(bytes(32))
    peers = (None, ("10.0.0.1", 1), ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535, 9, 9))
    for peer in peers:
        for now in (0.0, NOW, 2.0**32 + 0.5):
            assert len(jar.mint(peer, now, b"b" * 300)) == COOKIE_OVERHEAD


def _record(
    fragment: bytes, *, content_type: int = 22, epoch: int = 0, version: int = 0xFEFF
) -> bytes:
    return encode_dtls_record(content_type, version, epoch, 0, fragment)


def _hello_body(**kw: object) -> bytes:
    return client_hello(**kw).encode()  # type: ignore[arg-type]


def _odd_suites_body() -> bytes:
    body = bytearray(_hello_body(extensions=None))
    at = 2 + 32 + 1 + 1
    body[at : at + 2] = b"\x00\x03"  # cipher_suites length must be even
    return bytes(body) + b"\x00"


def _fragment(body: bytes, offset: int, length: int, total: int | None = None) -> bytes:
    return encode_dtls_handshake_fragment(
        1, body[offset : offset + length], 0, offset, total or len(body)
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", DropReason.RECORD_MALFORMED),
        (b"\x16\xfe\xfd" + bytes(9), DropReason.RECORD_MALFORMED),
        (b"\x16\xfe\xfd" + bytes(8) + b"\x00\x05abc", DropReason.RECORD_MALFORMED),
        (
            _record(encode_dtls_handshake(1, _hello_body(), 0), content_type=23),
            DropReason.NOT_HANDSHAKE,
        ),
        (
            _record(encode_dtls_handshake(1, _hello_body(), 0), content_type=21),
            DropReason.NOT_HANDSHAKE,
        ),
        (_record(encode_dtls_handshake(1, _hello_body(), 0), version=0x0303), DropReason.NOT_DTLS),
        (_record(encode_dtls_handshake(1, _hello_body(), 0), epoch=1), DropReason.NONZERO_EPOCH),
        (  # several faults: the first in DTLSv1_listen's order is the reason
            _record(encode_dtls_handshake(1, _hello_body(), 5), version=0x0303, epoch=1),
            DropReason.NOT_DTLS,
        ),
        (
            _record(encode_dtls_handshake(1, _hello_body(version=0x0303), 5), epoch=1),
            DropReason.NONZERO_EPOCH,
        ),
        (_record(b"\x01\x00\x00"), DropReason.HANDSHAKE_MALFORMED),
        (_record(encode_dtls_handshake(2, _hello_body(), 0)), DropReason.NOT_CLIENT_HELLO),
        (_record(encode_dtls_handshake(3, b"\xfe\xff\x00", 0)), DropReason.NOT_CLIENT_HELLO),
        (_record(_fragment(_hello_body(), 10, 50)), DropReason.NOT_FIRST_FRAGMENT),
        (_record(_fragment(_hello_body(), 0, 30)), DropReason.FRAGMENT_TOO_SHORT),
        (_record(_fragment(_hello_body(cookie=b"c" * 40), 0, 60)), DropReason.FRAGMENT_TOO_SHORT),
        (  # whole, and ending before its cookie does
            _record(encode_dtls_handshake(1, _hello_body()[:35], 0)),
            DropReason.CLIENT_HELLO_MALFORMED,
        ),
        (  # a session_id longer than 32 bytes
            _record(encode_dtls_handshake(1, _hello_body()[:34] + b"\x21" + bytes(40), 0)),
            DropReason.CLIENT_HELLO_MALFORMED,
        ),
        (
            _record(encode_dtls_handshake(1, _hello_body(version=0x0303), 0)),
            DropReason.CLIENT_VERSION,
        ),
    ],
)
def test_drop_reasons(data: bytes, reason: DropReason) -> None:
    # A DTLS 1.2-only gate keeps nothing: a fragment it cannot judge is dropped.
    gate = make_gate(dtls_versions=(ProtocolVersion.DTLS12,))
    assert gate.receive(data, PEER, NOW) == Drop(reason)
    assert gate.stats[reason] == 1
    # With DTLS 1.3 on, a fragment of a ClientHello is held for reassembly instead (its
    # cookie may be in a later one, RFC 9147 §5.1); the rest is dropped alike.
    gate = make_gate()
    if reason in (DropReason.NOT_FIRST_FRAGMENT, DropReason.FRAGMENT_TOO_SHORT):
        reason = DropReason.CLIENT_HELLO_INCOMPLETE
    assert gate.receive(data, PEER, NOW) == Drop(reason)
    assert gate.stats[reason] == 1


@pytest.mark.parametrize(
    "body",
    [_odd_suites_body(), _hello_body() + b"\x00", _hello_body()[:-3]],
    ids=["odd-suites", "trailing-byte", "extension-cut"],
)
def test_malformed_after_the_cookie_is_answered_then_dropped_whole(body: bytes) -> None:
    """A whole ClientHello is read up to its cookie before it is answered, as a first
    fragment is and as DTLSv1_listen reads it: its framing after the cookie is found when
    ClientHello2 is decoded whole, which is dropped then, before anything is admitted."""
    gate = make_gate(dtls_versions=(ProtocolVersion.DTLS12,))
    whole = _record(encode_dtls_handshake(1, body, 0))
    # The same answer as for its first fragment ending right after the (empty) cookie.
    cookie_at = 2 + 32 + 1 + body[2 + 32]
    first_fragment = _record(_fragment(body, 0, cookie_at + 1))
    reply = gate.receive(whole, PEER, NOW)
    assert reply == gate.receive(first_fragment, PEER, NOW)
    assert isinstance(reply, Reply)
    cookie = parse_hvr(reply.data)[2].cookie
    second = body[:cookie_at] + bytes((len(cookie),)) + cookie + body[cookie_at + 1 :]
    result = gate.receive(_record(encode_dtls_handshake(1, second, 1)), PEER, NOW)
    assert result == Drop(DropReason.CLIENT_HELLO_MALFORMED)
    assert gate.stats["admit"] == 0 and gate.stats[DropReason.CLIENT_HELLO_MALFORMED] == 1


def test_fragment_length_beyond_record_is_malformed() -> None:
    message = bytearray(encode_dtls_handshake(1, _hello_body(), 0))
    message[9:12] = (len(message)).to_bytes(3, "big")  # fragment_length past the record
    assert make_gate().receive(_record(bytes(message)), PEER, NOW) == Drop(
        DropReason.HANDSHAKE_MALFORMED
    )


def test_fragment_cut_short_by_its_record_is_malformed() -> None:
    """A ClientHello fragment whose fragment_length (within the message) runs past the
    end of its record: HANDSHAKE_MALFORMED, for a gate that reassembles (DTLS 1.3 on) and
    for one that does not."""
    cut = _record(encode_dtls_handshake(1, _hello_body(), 0)[:-10])
    for gate in (make_gate(), make_gate(dtls_versions=(ProtocolVersion.DTLS12,))):
        assert gate.receive(cut, PEER, NOW) == Drop(DropReason.HANDSHAKE_MALFORMED)


def test_malformed_extensions_in_verified_hello_are_dropped() -> None:
    gate = make_gate()
    first = datagram(client_hello())
    cookie = first_and_cookie(gate, first)
    from dtlsgate.wire.extensions import Extension

    dup = client_hello(cookie=cookie, extensions=(Extension(23, b""), Extension(23, b"")))
    assert gate.receive(datagram(dup, message_seq=1), PEER, NOW) == Drop(
        DropReason.CLIENT_HELLO_MALFORMED
    )


def test_first_fragment_holding_the_cookie_is_judged() -> None:
    gate = make_gate(dtls_versions=(ProtocolVersion.DTLS12,))
    body = _hello_body()
    cut = len(body) - 5  # everything through compression_methods, extensions cut short
    reply = gate.receive(_record(_fragment(body, 0, cut)), PEER, NOW)
    assert isinstance(reply, Reply)
    cookie = parse_hvr(reply.data)[2].cookie
    body2 = _hello_body(cookie=cookie)
    result = gate.receive(_record(_fragment(body2, 0, len(body2) - 5)), PEER, NOW)
    assert isinstance(result, Admit)
    assert result.fragmented and result.client_hello is None
    assert result.client_hello_message == _fragment(body2, 0, len(body2) - 5)


def test_fragmented_cookieless_hello_is_answered_once_whole_when_dtls13_is_on() -> None:
    # Its first fragment may be a DTLS 1.3 ClientHello's, whose cookie comes later: held,
    # and the HelloVerifyRequest sent once the whole DTLS 1.2 ClientHello is in.
    gate = make_gate()
    body = _hello_body()
    cut = len(body) - 5
    first = gate.receive(_record(_fragment(body, 0, cut)), PEER, NOW)
    assert first == Drop(DropReason.CLIENT_HELLO_INCOMPLETE)
    reply = gate.receive(_record(_fragment(body, cut, 5)), PEER, NOW)
    assert isinstance(reply, Reply)
    cookie = parse_hvr(reply.data)[2].cookie
    body2 = _hello_body(cookie=cookie)  # its cookie in the first fragment: judged at once
    result = gate.receive(_record(_fragment(body2, 0, len(body2) - 5)), PEER, NOW)
    assert isinstance(result, Admit)
    assert gate.reassembly is not None and len(gate.reassembly) == 0


def test_trailing_records_do_not_change_the_verdict() -> None:
    gate = make_gate()
    first = datagram(client_hello())
    assert isinstance(gate.receive(first + b"\x17garbage", PEER, NOW), Reply)
    # A record length above 255 (both of its bytes count): the admitted ClientHello is the
    # first record's, whatever follows it in the datagram.
    first = datagram(client_hello(session_id=b"s" * 32, suites=(0xC02B,) * 120))
    second = with_cookie(first, first_and_cookie(gate, first))
    assert (second[11] << 8 | second[12]) > 255
    result = gate.receive(second + b"\x17garbage", PEER, NOW)
    assert isinstance(result, Admit)
    assert result.client_hello_message == second[13:]
    assert result.datagram == second + b"\x17garbage"


def test_flood_of_spoofed_hellos_keeps_memory_flat() -> None:
    """200,000 distinct ClientHellos from distinct spoofed addresses: the gate's memory
    does not grow (nothing is stored per peer)."""
    gate = make_gate()
    template = bytearray(datagram(client_hello()))
    random_at = 13 + 12 + 2  # the ClientHello random inside the datagram

    def flood(start: int, count: int) -> None:
        for i in range(start, start + count):
            template[random_at : random_at + 4] = i.to_bytes(4, "big")
            peer = (f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}", 1024 + i % 60000)
            result = gate.receive(bytes(template), peer, NOW + i / 100_000)
            assert type(result) is Reply

    flood(0, 10_000)  # warm up: the jar's secret cache, interned strings, counters
    # and the DTLS 1.3 path's imports, made at the first hello holding the bytes of DTLS
    # 1.3's version (0xFEFC), here in the random (i = 0xFEFC, 0x1FEFC, 0x2FEFC are below).
    flood(0xFEFC, 1)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        flood(10_000, 200_000)
        gc.collect()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 16_384, f"gate grew by {after - before} bytes"
    assert peak - before < 262_144, f"peak grew by {peak - before} bytes"
    assert gate.stats["reply"] == 210_001


def test_admit_carries_all_the_fields_an_accept_needs() -> None:
    gate = make_gate()
    first = datagram(client_hello(session_id=b"\x07" * 8))
    cookie = first_and_cookie(gate, first)
    result = gate.receive(with_cookie(first, cookie, record_seq=3), PEER, NOW)
    assert isinstance(result, Admit)
    assert result.client_version == ProtocolVersion.DTLS12
    assert result.cookie == cookie  # read after a session_id of 8 bytes
    assert result.client_hello == dataclasses.replace(
        client_hello(session_id=b"\x07" * 8), cookie=cookie
    )


@pytest.mark.parametrize("version", [ProtocolVersion.DTLS10, ProtocolVersion.DTLS12])
@pytest.mark.parametrize("whole", [True, False])
def test_admit_carries_the_client_hellos_version(version: int, whole: bool) -> None:
    """``Admit.client_version`` is the ClientHello's, whether the gate decoded it (a whole
    one: read from the decoded message) or only peeked at its first fragment."""
    gate = make_gate(dtls_versions=(ProtocolVersion.DTLS12,))
    body = _hello_body(version=version)
    length = len(body) if whole else len(body) - 5
    cookie = first_and_cookie(gate, _record(_fragment(body, 0, length)))
    body2 = _hello_body(version=version, cookie=cookie)
    length2 = len(body2) if whole else len(body2) - 5
    result = gate.receive(_record(_fragment(body2, 0, length2)), PEER, NOW)
    assert isinstance(result, Admit) and result.fragmented is not whole
    assert result.client_version == version
    assert result.cookie == cookie
    # Read from the message, not stored: the repr still shows them where the fields stood.
    assert f"client_version={int(version)}, cookie={cookie!r}," in repr(result)
    if whole:
        assert result.client_hello is not None
        assert result.client_hello.legacy_version == version


def test_judge_returns_the_reply_datagram_itself() -> None:
    """Gate.judge() (the adapters' hot loop) answers like receive(), a reply as bytes."""
    gate = make_gate()
    first = datagram(client_hello())
    reply = gate.receive(first, PEER, NOW)
    assert isinstance(reply, Reply)
    judged = gate.judge(first, PEER, NOW)
    assert type(judged) is bytes and judged == reply.data
    _, _, hvr = parse_hvr(judged)
    assert isinstance(gate.judge(with_cookie(first, hvr.cookie), PEER, NOW), Admit)
    assert gate.judge(b"\x17" + first[1:], PEER, NOW) == Drop(DropReason.NOT_HANDSHAKE)
    assert gate.stats["reply"] == 2 and gate.stats["admit"] == 1


def _cut_after_cookie(body: bytes) -> int:
    """Where the cookie ends in a ClientHello body: a first fragment cut there."""
    cookie_at = 2 + 32 + 1 + body[34]
    return cookie_at + 1 + body[cookie_at]


@pytest.mark.parametrize("cookies", ["jar", "callbacks"])
def test_first_fragment_ending_with_the_cookie_is_answered_or_admitted(cookies: str) -> None:
    """DTLSv1_listen judges a ClientHello whose first fragment holds the whole cookie: no
    cookie or a bad one is answered, a good one admitted, with callbacks and the jar."""
    kwargs: dict[str, object] = {}
    if cookies == "callbacks":
        kwargs = {
            "cookie_generate": lambda peer: b"app-cookie",
            "cookie_verify": lambda peer, cookie: cookie == b"app-cookie",
        }
    gate = make_gate(dtls_versions=(ProtocolVersion.DTLS12,), **kwargs)
    body = _hello_body()
    reply = gate.receive(_record(_fragment(body, 0, _cut_after_cookie(body))), PEER, NOW)
    assert isinstance(reply, Reply)
    cookie = parse_hvr(reply.data)[2].cookie
    bad = _hello_body(cookie=bytes(len(cookie)))
    result = gate.receive(_record(_fragment(bad, 0, _cut_after_cookie(bad))), PEER, NOW)
    assert isinstance(result, Reply)
    good = _hello_body(cookie=cookie)
    first = _fragment(good, 0, _cut_after_cookie(good))
    result = gate.receive(_record(first), PEER, NOW)
    assert isinstance(result, Admit) and result.fragmented and result.cookie == cookie
    assert result.client_hello_message == first
    # One byte short of the cookie's end: not judged.
    short = _fragment(good, 0, _cut_after_cookie(good) - 1)
    assert gate.receive(_record(short), PEER, NOW) == Drop(DropReason.FRAGMENT_TOO_SHORT)
    assert (gate.replies, gate.admits) == (2, 1)


@pytest.mark.parametrize("message_seq", [3, 4, 0x100, 0xFFFF])
def test_client_hello_message_seq_above_2_is_dropped(message_seq: int) -> None:
    """DTLSv1_listen: "invalid sequence number" for a ClientHello message_seq above 2
    (a client's are 0 and 1, RFC 6347 §4.2.2); with a valid cookie too."""
    gate = make_gate()
    first = datagram(client_hello())
    cookie = first_and_cookie(gate, first)
    for data in (
        datagram(client_hello(), message_seq=message_seq),
        with_cookie(first, cookie, message_seq=message_seq),
    ):
        assert gate.receive(data, PEER, NOW) == Drop(DropReason.MESSAGE_SEQ)
    assert gate.drops[DropReason.MESSAGE_SEQ] == 2
    assert isinstance(gate.receive(with_cookie(first, cookie, message_seq=2), PEER, NOW), Admit)


def test_message_seq_2_is_in_range_for_a_fragment_that_is_not_judged_too() -> None:
    """A fragment the gate cannot judge is dropped for its first fault, and message_seq 2
    is none (the bound is the same as for a whole ClientHello's)."""
    gate = make_gate(dtls_versions=(ProtocolVersion.DTLS12,))
    body = _hello_body()
    for message_seq, reason in ((2, DropReason.FRAGMENT_TOO_SHORT), (3, DropReason.MESSAGE_SEQ)):
        short = _record(encode_dtls_handshake_fragment(1, body[:30], message_seq, 0, len(body)))
        assert gate.receive(short, PEER, NOW) == Drop(reason)


@pytest.mark.parametrize("extra", [b"\x00", b"\x16" * 30, encode_dtls_handshake(1, b"", 1)])
def test_bytes_after_the_fragment_in_its_record_drop_the_datagram(extra: bytes) -> None:
    """DTLSv1_listen: "length mismatch" when the record holds more than the ClientHello
    fragment; bytes after the record in the same datagram stay allowed."""
    gate = make_gate()
    first = datagram(client_hello())
    cookie = first_and_cookie(gate, first)
    for data in (first, with_cookie(first, cookie)):
        inside = _record(data[13:] + extra, version=0xFEFD)
        assert gate.receive(inside, PEER, NOW) == Drop(DropReason.RECORD_TRAILING_DATA)
    assert isinstance(gate.receive(first + extra, PEER, NOW), Reply)
    assert isinstance(gate.receive(with_cookie(first, cookie) + extra, PEER, NOW), Admit)


def test_hello_verify_request_record_refuses_out_of_range_numbers() -> None:
    """The HelloVerifyRequest record filled in per reply (epoch 0, as every ClientHello the
    gate answers) refuses what encode_dtls_record refuses: a sequence number past 48 bits
    (or negative)."""
    from dtlsgate.gate.datagram import HelloVerifyRequests

    replies = HelloVerifyRequests()
    record = replies.build(2**48 - 1, b"c")
    assert record == encode_dtls_record(22, 0xFEFF, 0, 2**48 - 1, record[13:])
    for sequence_number in (2**48, -1):
        with pytest.raises(UsageError):
            replies.build(sequence_number, b"c")
    # Cookies of several lengths in turn (each length's parts made once): each reply the
    # codec's.
    for n, cookie in enumerate((b"c" * 21, b"", b"d" * 255, b"c" * 21, b"e" * 3, b"")):
        hvr = HelloVerifyRequest(ProtocolVersion.DTLS10, cookie).encode()
        message = encode_dtls_handshake(3, hvr, 0)
        assert replies.build(n, cookie) == encode_dtls_record(22, 0xFEFF, 0, n, message)
    with pytest.raises(UsageError):  # a cookie<0..2^8-1> (RFC 6347 §4.2.1)
        replies.build(0, bytes(256))


def test_is_client_hello_reads_the_epoch_before_the_types(
    monkeypatch: pytest.MonkeyPatch, openssl_client_hello: bytes
) -> None:
    """`is_client_hello` (the adapters' routing look at every datagram of an established
    association, RFC 6347 §4.2.8) says yes to an epoch-0 handshake record holding a
    ClientHello and no to the rest; a record of a later epoch or a DTLS 1.3 unified header
    is refused by its epoch bytes, before the content type's enum member is read."""
    reads: list[str] = []

    class CountedContentType:
        @property
        def HANDSHAKE(self) -> int:
            reads.append("HANDSHAKE")
            return ContentType.HANDSHAKE

    monkeypatch.setattr(gate_module, "ContentType", CountedContentType())
    application_data = encode_dtls_record(
        ContentType.APPLICATION_DATA, ProtocolVersion.DTLS12, 1, 7, bytes(40)
    )
    unified_header = bytes((0x2D, 0x00, 0x07, 0x00, 0x28)) + bytes(40)  # seq, length
    later_epoch_hello = bytearray(openssl_client_hello)
    later_epoch_hello[4] = 1
    epoch_256_hello = bytearray(openssl_client_hello)
    epoch_256_hello[3] = 1  # the epoch's high byte: epoch 256
    for record in (application_data, unified_header, later_epoch_hello, epoch_256_hello):
        assert not is_client_hello(record)
    assert reads == []  # none read: the epoch bytes answered
    assert is_client_hello(openssl_client_hello)
    assert reads == ["HANDSHAKE"]
    alert = encode_dtls_record(ContentType.ALERT, ProtocolVersion.DTLS12, 0, 0, b"\x02\x28")
    not_a_hello = bytearray(openssl_client_hello)
    not_a_hello[13] = 2  # msg_type: ServerHello
    for record in (alert + bytes(20), bytes(not_a_hello), openssl_client_hello[:25]):
        assert not is_client_hello(record)
