"""Stateless cookies: minted for a HelloVerifyRequest or HelloRetryRequest, verified when
the ClientHello comes back, with nothing kept in between.

Layout of a ``CookieJar`` cookie (all of it opaque to the client)::

    format (1) | timestamp (4, whole seconds) | payload (n) | tag (16)

``tag`` is keyed BLAKE2s with a 128-bit output (RFC 7693 §3.3: the key padded to a block
and hashed first; keyed, BLAKE2 is a MAC), keyed by the secret of the rotation epoch the
timestamp falls in, over ``format | timestamp | payload | peer | bound``:

- ``peer`` binds the cookie to the address it was sent to (RFC 6347 §4.2.1: the cookie
  proves the client can receive there); a cookie replayed from elsewhere fails.
- ``bound`` is what the second ClientHello must repeat. For DTLS 1.2 the gate binds
  client_version, random and session_id: the fields before the cookie on the wire. RFC
  6347 §4.2.1 also names cipher_suites and compression_methods, which follow the cookie;
  binding them would drop every client whose first ClientHello fragment ends after the
  cookie but before their end (the stateless gate sees only that fragment), and would buy
  nothing: the server keeps nothing from ClientHello1 and negotiates from ClientHello2
  alone (its transcript starts there, §4.2.6), so a changed suite list cannot mislead it.
  The cookie's job is to prove the address; the random ties it to one client's attempt.
  For TLS 1.3 (whole messages only) ``bound`` is every field ClientHello2 must repeat.
- ``payload`` is carried, integrity-protected, for the server to read back (TLS 1.3: the
  chosen suite and group and the hash of ClientHello1, RFC 8446 §4.2.2).

Secrets rotate every ``rotation_interval`` seconds; a cookie minted under the previous
secret still verifies (within ``max_age``), older ones do not. Each epoch's secret is
HMAC-SHA256(master_key, label | epoch), so every server of a fleet that shares the master
key verifies the others' cookies without talking to them.

Why BLAKE2s for the tag (format 2; format 1 was HMAC-SHA256 truncated to 128 bits): a
cookie is minted per HelloVerifyRequest, the hot path of a listener under a flood. With the
key block already compressed into a kept state, a tag is one copy, an update per part of
its input (not joined first) and one digest, and one compression per 64 bytes of input
(one for an IPv4 peer and a ClientHello without a session_id); HMAC needs two copies, two
digests and two SHA-256 compressions more (three there): bench/RESULTS.md, section
listen7.
The tag is as long (128 bits) and keyed by the same 32-byte epoch secrets; BLAKE2s's digest
length is a parameter of the hash, so a 16-byte tag is not a truncation. CPython's own
``_blake2`` module computes it (``hashlib.blake2s``), as it has since Python 3.6.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable, Hashable
from typing import Protocol

from dtlsgate._frozen import frozen
from dtlsgate.errors import UsageError


class _HashObject(Protocol):
    """A hash state (a class that exists at run time, as a mypyc build evaluates
    ``_Second``'s annotations when the module is imported)."""

    def copy(self) -> _HashObject: ...
    def update(self, data: bytes, /) -> None: ...
    def digest(self) -> bytes: ...


# 2: the tag is keyed BLAKE2s (1 was HMAC-SHA256; such a cookie no longer verifies and its
# client gets a new one).
COOKIE_FORMAT = 2
TAG_LENGTH = 16  # 128-bit tag: forging one is a 2^-128 guess per try.
TIMESTAMP_LENGTH = 4
COOKIE_OVERHEAD = 1 + TIMESTAMP_LENGTH + TAG_LENGTH
MASTER_KEY_LENGTH = 32

# A client answers a HelloVerifyRequest within a round trip; it may repeat ClientHello2
# with the same cookie when its flight is lost, the retransmission timer doubling from
# 1 s (RFC 6347 §4.2.4.1). 60 s covers six such retries and keeps a captured cookie
# useful to nobody for long.
DEFAULT_MAX_AGE = 60.0
# Secrets rotate every 5 minutes; the previous one is still accepted.
DEFAULT_ROTATION_INTERVAL = 300.0
# Servers of a fleet whose clocks differ by a few seconds still accept each other's cookies.
DEFAULT_CLOCK_SKEW = 5.0

_SECRET_LABEL = b"dtlsgate cookie secret v1"
_FORMAT_BYTE = bytes((COOKIE_FORMAT,))
_TIMESTAMP = struct.Struct(">I")  # TIMESTAMP_LENGTH bytes

CookieGenerate = Callable[[Hashable | None], bytes]
CookieVerify = Callable[[Hashable | None, bytes], bool]


def peer_bytes(peer: Hashable | None) -> bytes:
    """A canonical byte form of a transport address for binding a cookie to it.

    ``(host, port, ...)`` tuples from sockets bind host and port (an IPv6 flowinfo or
    scope id is not part of who the peer is); ``None`` (the transport cannot tell, OpenSSL's
    AF_UNSPEC) binds nothing."""
    if type(peer) is tuple:  # what every socket gives: the common case first
        try:
            return f"{peer[0]}\x00{peer[1]}".encode()
        except IndexError:  # fewer than two fields: not a socket address
            pass
    if peer is None:
        return b""
    if isinstance(peer, bytes):
        return peer
    return repr(peer).encode()


@frozen
class _Second:
    """A `CookieJar`'s MAC state for the cookies stamped with one second: its rotation
    epoch's keyed BLAKE2s state with ``head`` (format | timestamp, the MAC's first bytes)
    already in it. A cookie's tag is then a copy, an update with each of the two parts of
    the rest of its MAC input and a digest. ``start`` and ``end`` bound the instants
    stamped ``timestamp`` (``start <= now < end``: ``int(now)`` is ``timestamp``), so that
    a cookie minted in the same second is recognized by two comparisons, without
    converting ``now`` again."""

    timestamp: int
    start: float
    end: float
    head: bytes
    keyed: _HashObject

    def tag(self, before_bound: bytes, bound: bytes) -> bytes:
        """Keyed BLAKE2s over ``head | before_bound | bound``, TAG_LENGTH bytes: the two parts
        fed to the MAC in turn, not joined into a copy first."""
        mac = self.keyed.copy()
        mac.update(before_bound)
        mac.update(bound)
        return mac.digest()


class CookieJar:
    """Mints and verifies stateless cookies (see the module docstring for the layout).

    ``master_key`` is 32 bytes; pass the same key to every server that must accept the
    others' cookies. Without one, a random key is drawn from ``random`` (the crypto
    provider's ``random``), so cookies verify only in this process.
    """

    def __init__(
        self,
        master_key: bytes | None = None,
        *,
        random: Callable[[int], bytes] | None = None,
        max_age: float = DEFAULT_MAX_AGE,
        rotation_interval: float = DEFAULT_ROTATION_INTERVAL,
        clock_skew: float = DEFAULT_CLOCK_SKEW,
    ) -> None:
        if master_key is None:
            if random is None:
                raise UsageError("CookieJar needs a master_key or a random source")
            master_key = random(MASTER_KEY_LENGTH)
        if len(master_key) != MASTER_KEY_LENGTH:
            raise UsageError(f"cookie master key must be {MASTER_KEY_LENGTH} bytes")
        if not 0 < max_age <= rotation_interval:
            raise UsageError("max_age must be positive and at most rotation_interval")
        if clock_skew < 0:
            raise UsageError("clock_skew must not be negative")
        self._master_key = master_key
        self.max_age = max_age
        self.rotation_interval = rotation_interval
        self.clock_skew = clock_skew
        # The keyed BLAKE2s states of at most two epochs (current and previous): state of
        # the jar, not of any peer. A keyed state is copied per cookie instead of keyed
        # again: keying (the parameter block, the key block) costs more than the MAC itself.
        self._keyed: dict[int, _HashObject] = {}
        # The second the jar last minted in, with its cookie head already in the MAC: every
        # cookie minted in that second starts alike (see `_Second`). One, not one per peer.
        self._minting: _Second | None = None

    def _secret(self, epoch: int) -> bytes:
        """The 32-byte secret of a rotation epoch: HMAC-SHA256(master_key, label | epoch)."""
        return hmac.digest(self._master_key, _SECRET_LABEL + epoch.to_bytes(8, "big"), "sha256")

    def derive_key(self, label: bytes, epoch: int) -> bytes:
        """A 32-byte key for another use of the master key, per rotation ``epoch`` of that
        use: HMAC-SHA256(master_key, label | epoch). Each use names its own ``label`` (the
        cookie secrets' is taken), so every server of a fleet sharing the master key derives
        the same keys, and a new master key changes all of them (DTLS 1.2 session tickets
        are sealed under such a key: RFC 5077 §5.5 asks for keys that rotate)."""
        if not label or label == _SECRET_LABEL:
            raise UsageError("derive_key needs a label of its own")
        return hmac.digest(self._master_key, label + epoch.to_bytes(8, "big"), "sha256")

    def _keyed_for(self, epoch: int) -> _HashObject:
        keyed = self._keyed.get(epoch)
        if keyed is None:
            keyed = hashlib.blake2s(key=self._secret(epoch), digest_size=TAG_LENGTH)
            if len(self._keyed) >= 2:
                for old in sorted(self._keyed)[:-1]:
                    del self._keyed[old]
            self._keyed[epoch] = keyed
        return keyed

    def _second(self, timestamp: int) -> _Second:
        """The MAC state of cookies stamped ``timestamp``: the last minted second's, or made
        from its epoch's keyed states."""
        second = self._minting
        if second is not None and second.timestamp == timestamp:
            return second
        keyed = self._keyed_for(int(timestamp // self.rotation_interval)).copy()
        head = _FORMAT_BYTE + timestamp.to_bytes(TIMESTAMP_LENGTH, "big")
        keyed.update(head)
        return _Second(timestamp, float(timestamp), float(timestamp + 1), head, keyed)

    def mint(
        self, peer: Hashable | None, now: float, bound: bytes = b"", payload: bytes = b""
    ) -> bytes:
        """A cookie for ``peer`` at time ``now`` binding ``bound`` and carrying ``payload``."""
        second = self._minting
        if second is None or not second.start <= now < second.end:  # another second
            second = self._minting = self._second(int(now) & 0xFFFFFFFF)  # whole, 4 bytes
        if payload:  # a TLS 1.3 cookie's (a HelloVerifyRequest's cookie carries none)
            return second.head + payload + second.tag(payload + peer_bytes(peer), bound)
        return second.head + second.tag(peer_bytes(peer), bound)

    def verify(
        self, peer: Hashable | None, now: float, cookie: bytes, bound: bytes = b""
    ) -> bytes | None:
        """The payload when ``cookie`` is ours, fresh, for ``peer`` and ``bound``; else None.

        The tag is compared in constant time; the checks before it depend only on public
        values (length, format, timestamp)."""
        if len(cookie) < COOKIE_OVERHEAD or cookie[0] != COOKIE_FORMAT:
            return None
        timestamp = _TIMESTAMP.unpack_from(cookie, 1)[0]
        age = now - timestamp
        if age > self.max_age or age < -self.clock_skew:
            return None
        # Only the current and the previous secret verify (rotation).
        if int(timestamp // self.rotation_interval) < int(now // self.rotation_interval) - 1:
            return None
        payload = cookie[1 + TIMESTAMP_LENGTH : -TAG_LENGTH]
        expected = self._second(timestamp).tag(payload + peer_bytes(peer), bound)
        if not hmac.compare_digest(expected, cookie[-TAG_LENGTH:]):
            return None
        return payload
