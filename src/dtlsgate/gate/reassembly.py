"""The gate's one piece of state: fragmented ClientHellos reassembled before the cookie.

A DTLS 1.3 ClientHello carries its cookie in an extension near the end (RFC 8446 §4.2.2,
RFC 9147 §5.1), and a large one (many suites, or an ML-KEM key share of over 1 KB) is
fragmented at the path MTU (RFC 9147 §5.5): its cookie is then in a later fragment, and a
stateless gate cannot judge it. `ClientHelloReassembly` holds the fragments of such
ClientHellos until the whole message is there, bounded four ways, all named constants:

- per source address (IPv4 address, IPv6 /64: `address_of`): at most ``per_address``
  messages, and in all at most ``total``; which message a newcomer displaces is the rule
  of `gate.per_address`, the admission table's too (`connection.admission`);
- in bytes: the fragments held, plus ``FRAGMENT_OVERHEAD`` each, at most ``max_bytes``
  (oldest messages go first); one message at most ``MAX_REASSEMBLED_CLIENT_HELLO`` bytes;
- in time: a message not complete ``timeout`` seconds after its first fragment is forgotten.

What it costs the gate's promise (DESIGN.md: nothing stored per peer before a cookie
verifies): a spoofed fragment now makes a table entry. The entry is all it makes (no
connection, no timer, no reply), the table's size is fixed by the bounds above whatever
the flood, and what it displaces is only other unfinished fragmented ClientHellos: a
whole ClientHello (the common case, under the MTU) is still judged with nothing stored. A
flood of first fragments that never complete can delay a legitimate fragmented
ClientHello (its entry displaced before its last fragment arrives, so it is retransmitted),
but not one that fits in a datagram.

Sans-I/O: ``now`` is an argument; expiry happens as fragments arrive.
"""

from __future__ import annotations

from collections.abc import Hashable

from dtlsgate.gate.per_address import PerAddress, address_of

# The longest ClientHello reassembled: an X25519MLKEM768 share (1,216 bytes) with a
# classical one, the ML-KEM-1024 hybrid's (1,600), a long suite list and a PSK identity fit
# in a quarter of it; longer is refused, so that one entry cannot claim much of the table.
MAX_REASSEMBLED_CLIENT_HELLO = 8192
# Fragments of one ClientHello taken from one datagram: a client that puts several in a
# datagram sends two or three (OpenSSL's DTLS 1.2 client splits a long ClientHello across
# records of one datagram); more is no client's, and each costs a table update.
MAX_FRAGMENT_RECORDS_PER_DATAGRAM = 8
# A few fragmented hellos from one address at once: a client retransmitting, or a couple
# of clients behind one NAT address.
PER_ADDRESS = 4
# Messages in all: enough for a burst of legitimate clients at once.
TOTAL = 256
# Bytes of fragments in all (about 256 hybrid ClientHellos).
MAX_BYTES = 512 * 1024
# What one held fragment costs beyond its bytes (its dict slot and bytes object), counted
# so that many one-byte fragments cannot hold more memory than ``max_bytes`` says.
FRAGMENT_OVERHEAD = 64
# A client sends all of a flight's fragments at once and retransmits after 1 s, doubling
# (RFC 9147 §5.8.2): a message still incomplete after a few seconds will not complete.
TIMEOUT = 5.0


_Key = tuple[Hashable | None, int, int]  # peer, message_seq, length


class _Message:
    """One ClientHello being reassembled: its fragments by offset and what they cost."""

    __slots__ = ("address", "cost", "fragments", "started")

    def __init__(self, address: Hashable | None, started: float) -> None:
        self.address = address
        self.started = started
        self.fragments: dict[int, bytes] = {}
        self.cost = 0


class ClientHelloReassembly:
    """Fragmented ClientHellos in reassembly, bounded (see the module docstring)."""

    def __init__(
        self,
        *,
        per_address: int = PER_ADDRESS,
        total: int = TOTAL,
        max_bytes: int = MAX_BYTES,
        timeout: float = TIMEOUT,
        ipv6_prefix: int = 64,
    ) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.ipv6_prefix = ipv6_prefix
        self._messages: dict[_Key, _Message] = {}  # oldest first
        self._by_address = PerAddress[_Key](per_address, total)
        self.bytes = 0
        # Counters: messages displaced (per address, table full, bytes) and expired.
        self.displaced = 0
        self.expired = 0

    @property
    def per_address(self) -> int:
        """At most this many messages held per address (read-only: the limits live in the
        `PerAddress` bookkeeping that enforces them)."""
        return self._by_address.per_address

    @property
    def total(self) -> int:
        """At most this many messages held in all (read-only, as ``per_address``)."""
        return self._by_address.total

    def __len__(self) -> int:
        return len(self._messages)

    def add(
        self,
        peer: Hashable | None,
        message_seq: int,
        length: int,
        offset: int,
        fragment: bytes,
        now: float,
    ) -> bytes | None:
        """Hold one fragment (``offset + len(fragment) <= length``, checked by the caller)
        of the ClientHello ``message_seq`` of ``length`` bytes from ``peer``; returns the
        whole body once every byte has arrived (and forgets it), else None."""
        self._expire(now)
        key = (peer, message_seq, length)
        message = self._messages.get(key)
        if message is None:
            message = self._start(key, peer, now)
        held = message.fragments.get(offset)
        if held is not None and len(held) >= len(fragment):
            return None  # a retransmission of what is here already
        added = len(fragment) - (len(held) if held is not None else -FRAGMENT_OVERHEAD)
        message.fragments[offset] = fragment
        message.cost += added
        self.bytes += added
        body = _whole(message.fragments, length)
        if body is not None:
            self._forget(key)
            return body
        while self.bytes > self.max_bytes and self._messages:
            self._forget(next(iter(self._messages)))
            self.displaced += 1
        return None

    def _start(self, key: _Key, peer: Hashable | None, now: float) -> _Message:
        address = address_of(peer, self.ipv6_prefix)
        displaced = self._by_address.make_way(address)
        if displaced is not None:
            self._forget(displaced[0])
            self.displaced += 1
        message = self._messages[key] = _Message(address, now)
        self._by_address.add(key, address)
        return message

    def _forget(self, key: _Key) -> None:
        message = self._messages.pop(key)
        self.bytes -= message.cost
        self._by_address.remove(key, message.address)

    def _expire(self, now: float) -> None:
        limit = now - self.timeout
        while self._messages:
            key, message = next(iter(self._messages.items()))
            if message.started > limit:
                return
            self._forget(key)
            self.expired += 1


def _whole(fragments: dict[int, bytes], length: int) -> bytes | None:
    """The message when ``fragments`` (by offset, possibly overlapping) cover every byte of
    ``length``; else None."""
    covered = 0
    for offset in sorted(fragments):
        if offset > covered:
            return None
        covered = max(covered, offset + len(fragments[offset]))
    if covered < length:
        return None
    body = bytearray(length)
    for offset in sorted(fragments):
        body[offset : offset + len(fragments[offset])] = fragments[offset]
    return bytes(body)
