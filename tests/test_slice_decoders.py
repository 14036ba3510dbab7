"""Decoders written with slices and unpacks (no `Reader`) on the DTLS 1.3 server's path,
pinned against the Reader-based decoders they replaced: the same value for every input the
old one took, and the same exception class (so the same alert or drop) for every input it
refused, on valid encodings and on many mutated ones."""

from __future__ import annotations

import random
from collections.abc import Callable

from dtlsgate.errors import DecodeError, IllegalParameter, ProtocolError
from dtlsgate.gate.stream import PAYLOAD_FORMAT, CookieState, encode_cookie_state
from dtlsgate.wire.buffer import Reader
from dtlsgate.wire.extensions import KeyShareEntry, decode_key_share_ch, encode_key_share_ch
from dtlsgate.wire.messages13 import RECORD_NUMBER_LENGTH, decode_ack, encode_ack


def _cookie_state_by_reader(data: bytes) -> CookieState:
    r = Reader(data)
    if r.u8() != PAYLOAD_FORMAT:
        raise IllegalParameter("cookie format")
    suite, group, requested = r.u16(), r.u16(), r.u8()
    digest = r.vector(1, 1, 64)
    app = r.vector(2)
    r.finish()
    return CookieState(suite, group, bool(requested), digest, app)


def _key_shares_by_reader(data: bytes) -> tuple[KeyShareEntry, ...]:
    r = Reader(data)
    body = r.prefixed(2)
    out: list[KeyShareEntry] = []
    groups: set[int] = set()
    while not body.at_end():
        group = body.u16()
        key = body.vector(2, 1)
        if group in groups:
            raise IllegalParameter(f"two key shares for group {group}")
        groups.add(group)
        out.append(KeyShareEntry(group, key))
    r.finish()
    return tuple(out)


def _ack_by_reader(body: bytes) -> tuple[tuple[int, int], ...]:
    r = Reader(body)
    numbers = r.prefixed(2)
    if numbers.remaining() % RECORD_NUMBER_LENGTH:
        raise DecodeError("ACK record_numbers is not a whole number of RecordNumbers")
    pairs = tuple(
        (numbers.u64(), numbers.u64()) for _ in range(numbers.remaining() // RECORD_NUMBER_LENGTH)
    )
    r.finish()
    return pairs


def _outcome(decode: Callable[[bytes], object], data: bytes) -> object:
    try:
        return decode(data)
    except ProtocolError as exc:
        return type(exc)


def _mutations(valid: list[bytes], rng: random.Random, count: int) -> list[bytes]:
    out = [b"", b"\x00", b"\x01"]
    for _ in range(count):
        data = bytearray(rng.choice(valid))
        kind = rng.randrange(4)
        if kind == 0 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 1:
            del data[rng.randrange(len(data) + 1) :]
        elif kind == 2:
            data += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4)))
        elif data:
            # A length byte near the front, where every length of these layouts lies.
            at = rng.randrange(min(len(data), 12))
            data[at] = (data[at] + rng.choice((-1, 1))) % 256
        out.append(bytes(data))
    return out


def test_cookie_state_decoded_as_the_reader_decoded_it() -> None:
    valid = [
        encode_cookie_state(0x1301, 23, requested, bytes(range(n)), app)
        for requested in (False, True)
        for n in (1, 32, 64)
        for app in (b"", b"x", bytes(300))
    ]
    # A digest longer than 64 bytes (beyond what the encoder writes) and a format byte of 2.
    valid.append(bytes((1, 0x13, 1, 0, 23, 0, 65)) + bytes(65) + b"\x00\x00")
    valid.append(bytes((2,)) + valid[0][1:])
    rng = random.Random(1)
    seen = set()
    for data in valid + _mutations(valid, rng, 3000):
        expected = _outcome(_cookie_state_by_reader, data)
        assert _outcome(CookieState.decode, data) == expected, data.hex()
        seen.add(expected if isinstance(expected, type) else CookieState)
    # The mutations reach every outcome: a value, a truncation and a wrong format.
    assert seen == {CookieState, DecodeError, IllegalParameter}


def test_key_share_list_decoded_as_the_reader_decoded_it() -> None:
    p256 = KeyShareEntry(23, bytes(range(65)))
    x25519 = KeyShareEntry(29, bytes(32))
    small = KeyShareEntry(0x1234, b"\x01")
    valid = [
        encode_key_share_ch(entries)
        for entries in ((), (p256,), (x25519, p256), (small, x25519), (small, small))
    ]
    # An empty key_exchange (not something the encoder writes).
    valid.append(b"\x00\x04\x00\x17\x00\x00")
    rng = random.Random(2)
    seen = set()
    for data in valid + _mutations(valid, rng, 3000):
        expected = _outcome(_key_shares_by_reader, data)
        assert _outcome(decode_key_share_ch, data) == expected, data.hex()
        seen.add(expected if isinstance(expected, type) else tuple)
    assert seen == {tuple, DecodeError, IllegalParameter}


def test_ack_decoded_as_the_reader_decoded_it() -> None:
    valid = [
        encode_ack(numbers)
        for numbers in ([], [(0, 0)], [(2, 5), (2, 6)], [(3, 2**64 - 1), (2**16, 1), (1, 0)])
    ]
    rng = random.Random(3)
    seen = set()
    for data in valid + _mutations(valid, rng, 3000):
        expected = _outcome(_ack_by_reader, data)
        assert _outcome(decode_ack, data) == expected, data.hex()
        seen.add(expected if isinstance(expected, type) else tuple)
    assert seen == {tuple, DecodeError}
