"""The admission table: which admitted handshakes a server keeps while they are in progress.

A cookie proves only that a client owns its address, not that it will finish its handshake:
a client can pass the gate and then go silent, holding whatever the server keeps for it.
Every server adapter (asyncio DTLS, the blocking Listener, TLS 1.3 over TCP) records its
handshakes in progress here, and the table bounds them three ways:

- per source address (IPv4: the address; IPv6: its /64 by default, since one host or site
  usually holds a whole /64): at most ``per_address``. When that address is at its limit,
  its oldest handshake makes way for the newcomer, so a legitimate client behind the same
  NAT address as an attacker still gets in;
- in all: at most ``total``. When full, a newcomer evicts the oldest handshake of the
  address holding the most (never the newcomer itself). These two are the rule of
  `gate.per_address`, which the gate's ClientHello reassembly follows too;
- in time: a handshake still in progress ``timeout`` seconds after its admission expires.

Sans-I/O: the table holds opaque keys (the adapter's connection objects) and their
addresses; ``now`` is an argument. The adapter closes what `admit` and `expire` return and
calls `finish` when a handshake completes or fails.

`FinishedHellos` remembers the ClientHellos of associations that completed and closed, so
that a late copy of one (its cookie still valid) is not admitted again.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar

from dtlsgate.config import ServerConfig
from dtlsgate.errors import UsageError
from dtlsgate.gate.cookie import DEFAULT_MAX_AGE
from dtlsgate.gate.per_address import PerAddress, address_of

__all__ = ["AdmissionTable", "FinishedHellos", "address_of"]

K = TypeVar("K", bound=Hashable)

# Associations that completed and closed, remembered by `FinishedHellos`: beyond this many,
# the oldest are forgotten first.
MAX_FINISHED_HELLOS = 4096


class AdmissionTable(Generic[K]):
    """Handshakes in progress, bounded per address, in all, and in time (module docstring)."""

    def __init__(
        self, *, per_address: int, total: int, timeout: float | None, ipv6_prefix: int = 64
    ) -> None:
        if not 1 <= per_address <= total:
            raise UsageError("per_address must be between 1 and total")
        if timeout is not None and timeout <= 0:
            raise UsageError("timeout must be positive, or None")
        if not 1 <= ipv6_prefix <= 128:
            raise UsageError("ipv6_prefix must be between 1 and 128")
        self.timeout = timeout
        self.ipv6_prefix = ipv6_prefix
        # Every handshake in progress, oldest admission first: key -> (address, admitted at).
        self._entries: dict[K, tuple[Hashable | None, float]] = {}
        self._by_address = PerAddress[K](per_address, total)
        # Counters for the adapters' statistics.
        self.evicted_per_address = 0
        self.evicted_when_full = 0
        self.expired = 0

    @classmethod
    def for_server(cls, config: ServerConfig, total: int | None = None) -> AdmissionTable[K]:
        """The table a server with ``config`` uses (its ``max_handshakes*``,
        ``handshake_timeout`` and ``ipv6_prefix_length``); ``total`` in place of
        ``config.max_handshakes`` when given (``aio.serve``'s ``max_handshaking``), the
        per-address limit then at most that."""
        per_address = config.max_handshakes_per_address
        if total is None:
            total = config.max_handshakes
        else:
            per_address = min(per_address, total)
        return cls(
            per_address=per_address,
            total=total,
            timeout=config.handshake_timeout,
            ipv6_prefix=config.ipv6_prefix_length,
        )

    @property
    def per_address(self) -> int:
        """At most this many handshakes in progress from one address (read-only: the
        limits live in the `PerAddress` bookkeeping that enforces them; make a new table
        for others)."""
        return self._by_address.per_address

    @property
    def total(self) -> int:
        """At most this many handshakes in progress in all (read-only, as ``per_address``)."""
        return self._by_address.total

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[K]:
        """The handshakes in progress, oldest admission first (a snapshot)."""
        return iter(list(self._entries))

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def count(self, peer: Hashable | None) -> int:
        """Handshakes in progress from ``peer``'s address (its /64 for IPv6)."""
        return self._by_address.count(address_of(peer, self.ipv6_prefix))

    def admit(self, key: K, peer: Hashable | None, now: float) -> list[K]:
        """Record a newly admitted handshake; returns the handshakes it displaced (at most
        one), which the adapter must close. ``key`` must not be in the table already."""
        if key in self._entries:
            raise UsageError(f"{key!r} is already in the admission table")
        address = address_of(peer, self.ipv6_prefix)
        evicted: list[K] = []
        displaced = self._by_address.make_way(address)
        if displaced is not None:
            old, at_address_limit = displaced
            evicted.append(old)
            self.finish(old)
            if at_address_limit:
                self.evicted_per_address += 1
            else:
                self.evicted_when_full += 1
        self._entries[key] = (address, now)
        self._by_address.add(key, address)
        return evicted

    def finish(self, key: K) -> None:
        """The handshake completed, failed or was closed: forget it (absent keys are fine)."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self._by_address.remove(key, entry[0])

    def next_deadline(self) -> float | None:
        """When the oldest handshake expires (None: nothing in progress, or no timeout)."""
        if self.timeout is None or not self._entries:
            return None
        return min(at for _, at in self._entries.values()) + self.timeout

    def expire(self, now: float) -> list[K]:
        """Forget and return the handshakes admitted ``timeout`` seconds or more before
        ``now``, for the adapter to close."""
        if self.timeout is None:
            return []
        limit = now - self.timeout
        gone = [key for key, (_, at) in self._entries.items() if at <= limit]
        for key in gone:
            self.finish(key)
        self.expired += len(gone)
        return gone


class FinishedHellos:
    """The ClientHellos (peer, client random) of associations that completed and closed,
    kept ``max_age`` seconds (the cookie's: a copy older than that no longer passes the
    gate). A copy of such a ClientHello, reordered or duplicated on the way, can arrive after
    its association closed with its cookie still valid; admitted, it started a handshake with
    a client long gone, resent into the void until the handshake deadline (issue 12, seen
    through tests/test_interop_dtls12_loss.py's proxy). Adapters drop such copies. At most
    ``limit`` kept, the oldest forgotten first; sans-I/O (``now`` is an argument)."""

    def __init__(self, max_age: float, limit: int = MAX_FINISHED_HELLOS) -> None:
        self.max_age = max_age
        self.limit = limit
        self._hellos: dict[Hashable | None, tuple[bytes, float]] = {}
        self.dropped = 0  # copies recognised by `is_copy`

    @classmethod
    def for_server(cls, config: ServerConfig) -> FinishedHellos:
        """Kept as long as a cookie of ``config``'s jar verifies."""
        jar = config.cookie_jar
        return cls(jar.max_age if jar is not None else DEFAULT_MAX_AGE)

    def __len__(self) -> int:
        return len(self._hellos)

    def add(self, peer: Hashable | None, client_random: bytes, now: float) -> None:
        """The association of ``peer`` whose ClientHello had ``client_random`` completed
        and closed at ``now``."""
        self._hellos.pop(peer, None)  # the newest last
        self._hellos[peer] = (client_random, now)
        if len(self._hellos) > self.limit:
            del self._hellos[next(iter(self._hellos))]

    def is_copy(self, peer: Hashable | None, client_random: bytes, now: float) -> bool:
        """Whether an admitted ClientHello from ``peer`` with ``client_random`` is a copy
        of a closed association's (counted in ``dropped``)."""
        finished = self._hellos.get(peer)
        if finished is None:
            return False
        if now - finished[1] > self.max_age:
            del self._hellos[peer]
            return False
        if finished[0] != client_random:
            return False
        self.dropped += 1
        return True
