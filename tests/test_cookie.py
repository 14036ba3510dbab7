"""CookieJar: layout, keyed BLAKE2s tag, binding, expiry, rotation, fleet keys, misuse."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Hashable

import pytest

from dtlsgate.errors import UsageError
from dtlsgate.gate.cookie import COOKIE_OVERHEAD, CookieJar, peer_bytes

KEY = bytes(range(32))
PEER = ("2001:db8::1", 5684, 0, 0)


def test_layout_and_tag_are_keyed_blake2s() -> None:
    jar = CookieJar(KEY, rotation_interval=300.0)
    now = 1_700_000_123.9
    cookie = jar.mint(PEER, now, b"bound", b"payload")
    assert len(cookie) == COOKIE_OVERHEAD + len(b"payload")
    assert cookie[0] == 2
    assert int.from_bytes(cookie[1:5], "big") == 1_700_000_123
    assert cookie[5:-16] == b"payload"
    epoch = 1_700_000_123 // 300
    secret = hmac.digest(KEY, b"dtlsgate cookie secret v1" + epoch.to_bytes(8, "big"), "sha256")
    message = cookie[:5] + b"payload" + b"2001:db8::1\x005684" + b"bound"
    # RFC 7693 §3.3 keyed mode, a 16-byte digest (a parameter of the hash, not a truncation).
    assert cookie[-16:] == hashlib.blake2s(message, key=secret, digest_size=16).digest()
    assert jar.verify(PEER, now, cookie, b"bound") == b"payload"


def test_binding_to_peer_and_bound_fields() -> None:
    jar = CookieJar(KEY)
    cookie = jar.mint(PEER, 1000.0, b"bound")
    assert jar.verify(PEER, 1000.0, cookie, b"bound") == b""
    assert jar.verify(("2001:db8::2", 5684, 0, 0), 1000.0, cookie, b"bound") is None
    assert jar.verify(PEER, 1000.0, cookie, b"other") is None
    # flowinfo and scope id are not part of who the peer is
    assert jar.verify(("2001:db8::1", 5684, 7, 3), 1000.0, cookie, b"bound") == b""


def test_payload_is_integrity_protected() -> None:
    jar = CookieJar(KEY)
    cookie = bytearray(jar.mint(None, 1000.0, b"", b"suite=1301"))
    cookie[5] ^= 1
    assert jar.verify(None, 1000.0, bytes(cookie)) is None


def test_expiry_and_skew() -> None:
    jar = CookieJar(KEY, max_age=10.0, clock_skew=2.0)
    cookie = jar.mint(PEER, 5000.0)
    assert jar.verify(PEER, 5010.0, cookie) is not None
    assert jar.verify(PEER, 5010.5 + 1, cookie) is None
    assert jar.verify(PEER, 4998.0, cookie) is not None
    assert jar.verify(PEER, 4997.0, cookie) is None


def test_malformed_cookies() -> None:
    jar = CookieJar(KEY)
    good = jar.mint(PEER, 1000.0)
    # b"\x01": a format-1 (HMAC-SHA256) cookie's format byte on a good cookie's rest.
    for bad in (b"", good[:-1], b"\x01" + good[1:], b"\x03" + good[1:], bytes(len(good))):
        assert jar.verify(PEER, 1000.0, bad) is None


def test_fleet_key_and_random_key() -> None:
    a, b = CookieJar(KEY), CookieJar(KEY)
    assert b.verify(PEER, 1.0, a.mint(PEER, 1.0)) is not None
    counter = iter(range(1000))
    r1 = CookieJar(random=lambda n: bytes([next(counter)]) * n)
    r2 = CookieJar(random=lambda n: bytes([next(counter)]) * n)
    assert r2.verify(PEER, 1.0, r1.mint(PEER, 1.0)) is None


def test_misuse_is_a_clear_error() -> None:
    with pytest.raises(UsageError, match="32 bytes"):
        CookieJar(b"short")
    with pytest.raises(UsageError):
        CookieJar()
    with pytest.raises(UsageError):
        CookieJar(KEY, max_age=600.0, rotation_interval=300.0)
    with pytest.raises(UsageError):
        CookieJar(KEY, clock_skew=-1)
    # Each bound at its edge: max_age in (0, rotation_interval], clock_skew >= 0.
    for max_age in (0.0, -0.5):
        with pytest.raises(UsageError):
            CookieJar(KEY, max_age=max_age)
    with pytest.raises(UsageError):
        CookieJar(KEY, clock_skew=-0.5)
    jar = CookieJar(KEY, max_age=0.5, rotation_interval=0.5, clock_skew=0.0)
    assert (jar.max_age, jar.rotation_interval, jar.clock_skew) == (0.5, 0.5, 0.0)
    assert CookieJar(KEY, max_age=1.0, clock_skew=0.5).clock_skew == 0.5


def test_peer_bytes_forms() -> None:
    assert peer_bytes(None) == b""
    assert peer_bytes(("10.0.0.1", 80)) == b"10.0.0.1\x0080"
    assert peer_bytes(b"raw") == b"raw"
    assert peer_bytes("unix:/tmp/s") == b"'unix:/tmp/s'"
    # Tuples too short for (host, port): their repr, as any other hashable.
    assert peer_bytes(("10.0.0.1",)) == b"('10.0.0.1',)"
    assert peer_bytes(()) == b"()"
    assert peer_bytes(("::1", 5684, 0, 0)) == b"::1\x005684"


def reference_cookie(now: float, peer: Hashable | None, bound: bytes, payload: bytes) -> bytes:
    """The cookie layout and tag computed from scratch (module docstring of dtlsgate.gate.cookie)."""
    timestamp = int(now) & 0xFFFFFFFF
    head = b"\x02" + timestamp.to_bytes(4, "big")
    epoch = timestamp // 300
    secret = hmac.digest(KEY, b"dtlsgate cookie secret v1" + epoch.to_bytes(8, "big"), "sha256")
    message = head + payload + peer_bytes(peer) + bound
    return head + payload + hashlib.blake2s(message, key=secret, digest_size=16).digest()


@pytest.mark.parametrize(
    "times",
    [
        # within one second, into the next, back to an earlier one, across a rotation
        [1_700_000_123.0, 1_700_000_123.999, 1_700_000_124.0, 1_700_000_122.5, 1_700_000_400.2],
        # an int clock, a negative time, one past the 32-bit timestamp, beyond exact floats
        [1000, -0.5, -1.5, 2.0**32 + 7.25, 2**53 + 1, 2**53, 2.0**60, 3.0],
    ],
)
def test_mint_reuses_a_second_only_within_it(times: list[float]) -> None:
    """mint() gives the cookie computed from scratch at every time, whatever order the times
    come in (within a second, across seconds and rotations, odd clocks)."""
    jar = CookieJar(KEY, rotation_interval=300.0)
    for now in times:
        for peer, bound, payload in ((PEER, b"bound", b""), (None, b"", b"p"), (b"raw", b"b", b"")):
            assert jar.mint(peer, now, bound, payload) == reference_cookie(
                now, peer, bound, payload
            )


@pytest.mark.parametrize(
    "peer", [("192.0.2.1", 5684), ("2001:db8::1", 5684, 0, 0), None, b"raw", ("only-host",)]
)
def test_gate_cookie_is_the_jars(peer: Hashable | None) -> None:
    """The gate's HelloVerifyRequests carry exactly the cookie computed from scratch over
    the peer and the ClientHello's bound fields, for every kind of peer, within one second,
    in the next, back in an earlier one and across a rotation."""
    from builders import client_hello, datagram

    from dtlsgate.config import ServerConfig
    from dtlsgate.gate.datagram import Gate, Reply

    hello = client_hello(random=bytes(range(32)), session_id=b"\x07" * 5, suites=(0xC02B, 0xA8))
    data = datagram(hello)
    # RFC 6347 §4.2.1's fields that precede the cookie: version, random, session_id.
    bound = b"\xfe\xfd" + bytes(range(32)) + b"\x05" + b"\x07" * 5
    gate = Gate(ServerConfig(cookie_jar=CookieJar(KEY, rotation_interval=300.0)))
    for now in (
        1_700_000_123.0,
        1_700_000_123.5,
        1_700_000_124.0,
        1_700_000_122.5,
        1_700_000_400.2,
    ):
        reply = gate.receive(data, peer, now)
        assert isinstance(reply, Reply)
        cookie = reply.data[-COOKIE_OVERHEAD:]
        assert cookie == reference_cookie(now, peer, bound, b"")
