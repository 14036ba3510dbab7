"""The gate's one piece of state: fragmented ClientHellos reassembled before the cookie.

A DTLS 1.3 ClientHello carries its cookie in an extension near the end (RFC 8446 §4.2.2,
RFC 9147 §5.1), and a large one (many suites, or an ML-KEM key share of over 1 KB) is
fragmented at the path MTU (RFC 9147 §5.5): its cookie is then in a later fragment, and a
stateless gate cannot judge it. `ClientHelloReassembly` holds the fragments of such
ClientHellos until the whole message is there, bounded four ways, all named constants:

- per source address (IPv4 address, IPv6 /64: `address_of`, which the
  admission table (`connection.admission`) counts by too): at most
  ``per_address`` messages; a newcomer from an address at its limit displaces that
  address's oldest, so a flood from one address only ever costs that address;
- in all: at most ``total`` messages; when full, a newcomer displaces the oldest message of
  the address holding the most (a spoofed flood from many addresses displaces the oldest);
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

import ipaddress
import re
from collections.abc import Hashable

# The longest ClientHello reassembled: an X25519MLKEM768 share (1,216 bytes) with a
# classical one, the ML-KEM-1024 hybrid's (1,600), a long suite list and a PSK identity fit
# in a quarter of it; longer is refused, so that one entry cannot claim much of the table.
MAX_REASSEMBLED_CLIENT_HELLO = 8192
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


# A dotted-quad IPv4 address exactly as `ipaddress` takes it: four decimal octets of at most
# 255, ASCII digits, no leading zeros (as strict as inet_pton).
_OCTET = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_DOTTED_QUAD = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}", re.ASCII)
# How a dual-stack socket writes an IPv4-mapped IPv6 address (RFC 4291 §2.5.5.2).
_MAPPED_PREFIX = "::ffff:"


def address_of(peer: Hashable | None, ipv6_prefix: int = 64) -> Hashable | None:
    """The address a peer's handshakes are counted under: the IPv4 address (also for an
    IPv4-mapped IPv6 address), the IPv6 network of ``ipv6_prefix`` bits, or the peer
    itself when it is not an IP socket address (None stays None: one shared count). A
    scope id (``%eth0``, RFC 4007 §11) is not part of the address.

    The spellings sockets give for IPv4 peers (a dotted quad, or one after ``::ffff:``) are
    read with one regular expression; any other string is parsed by `ipaddress`, as IPv6
    when it has a colon (an IPv4 address never has one, an IPv6 address always has two)."""
    host = peer[0] if isinstance(peer, tuple) and peer else peer
    if not isinstance(host, str):
        return peer
    host = host.partition("%")[0]
    quad = _DOTTED_QUAD.fullmatch(host.removeprefix(_MAPPED_PREFIX))
    if quad is not None:
        a, b, c, d = quad.groups()
        return ("ipv4", (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d))
    try:
        ip = ipaddress.IPv6Address(host) if ":" in host else ipaddress.IPv4Address(host)
    except ValueError:
        return peer
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped
        if mapped is None:
            return ("ipv6", int(ip) >> (128 - ipv6_prefix), ipv6_prefix)
        ip = mapped
    return ("ipv4", int(ip))


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
        self.per_address = per_address
        self.total = total
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.ipv6_prefix = ipv6_prefix
        self._messages: dict[_Key, _Message] = {}  # oldest first
        self._by_address: dict[Hashable | None, dict[_Key, None]] = {}
        self.bytes = 0
        # Counters: messages displaced (per address, table full, bytes) and expired.
        self.displaced = 0
        self.expired = 0

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
        same = self._by_address.get(address)
        if same is not None and len(same) >= self.per_address:
            self._forget(next(iter(same)))
            self.displaced += 1
        elif len(self._messages) >= self.total:
            self._forget(self._oldest_of_busiest())
            self.displaced += 1
        message = self._messages[key] = _Message(address, now)
        self._by_address.setdefault(address, {})[key] = None
        return message

    def _oldest_of_busiest(self) -> _Key:
        most = max(len(keys) for keys in self._by_address.values())
        return next(
            k for k, m in self._messages.items() if len(self._by_address[m.address]) == most
        )

    def _forget(self, key: _Key) -> None:
        message = self._messages.pop(key)
        self.bytes -= message.cost
        same = self._by_address[message.address]
        del same[key]
        if not same:
            del self._by_address[message.address]

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
