"""Counting by source address, for the two tables that bound what unauthenticated peers
hold: the gate's `ClientHelloReassembly` (fragments before the cookie) and the admission
table (`connection.admission`, handshakes in progress).

- `address_of`: the address a peer counts under (IPv4: the address; IPv6: its /64 by
  default, since one host or site usually holds a whole /64).
- `PerAddress`: each address's entries, oldest first, bounded per address and in all, and
  the one rule for which entry makes way for a newcomer: from an address at its limit,
  that address's oldest (a flood from one address only ever costs that address); into a
  full table, the oldest of the address holding the most (a spoofed flood from many
  addresses displaces the oldest); never the newcomer.

Sans-I/O and clock-free: "oldest" is the order of `PerAddress.add`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

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


class PerAddress(Generic[K]):
    """Entries (the owning table's keys) by the address they count under, each address's
    oldest first: at most ``per_address`` an address and ``total`` in all, kept by
    `make_way` (module docstring). The owning table keeps its entries' data; this keeps
    only which key counts where, and in what order it came."""

    __slots__ = ("_added", "_by_address", "_size", "per_address", "total")

    def __init__(self, per_address: int, total: int) -> None:
        self.per_address = per_address
        self.total = total
        # Per address its keys, oldest first (dicts keep insertion order), each with the
        # number of adds before it: the order across addresses.
        self._by_address: dict[Hashable | None, dict[K, int]] = {}
        self._added = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def count(self, address: Hashable | None) -> int:
        """Entries counted under ``address`` (an `address_of` result)."""
        return len(self._by_address.get(address, ()))

    def make_way(self, address: Hashable | None) -> tuple[K, bool] | None:
        """The entry that makes way for a newcomer from ``address``, and whether it goes
        because that address is at ``per_address`` (True) or the table at ``total``
        (False); None when there is room. The caller removes it (`remove`) before it
        adds the newcomer."""
        same = self._by_address.get(address)
        if same is not None and len(same) >= self.per_address:
            return next(iter(same)), True
        if self._size >= self.total:
            return self._oldest_of_busiest(), False
        return None

    def _oldest_of_busiest(self) -> K:
        """The oldest entry of the address holding the most; between addresses holding as
        many, the one whose oldest entry is the oldest."""
        most = max(len(keys) for keys in self._by_address.values())
        firsts = (
            next(iter(keys.items())) for keys in self._by_address.values() if len(keys) == most
        )
        return min(firsts, key=lambda first: first[1])[0]

    def add(self, key: K, address: Hashable | None) -> None:
        """Count ``key`` (not counted yet) under ``address``, as the newest entry."""
        self._by_address.setdefault(address, {})[key] = self._added
        self._added += 1
        self._size += 1

    def remove(self, key: K, address: Hashable | None) -> None:
        """Stop counting ``key``, counted under ``address``."""
        same = self._by_address[address]
        del same[key]
        if not same:
            del self._by_address[address]
        self._size -= 1


__all__ = ["PerAddress", "address_of"]
