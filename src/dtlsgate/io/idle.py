"""The asyncio servers' ``idle_timeout``: one loop timer per server, not one per association.

Every association of a server has the same ``idle_timeout``, so the one whose deadline comes
first is the one that received least recently. `IdleOrder` keeps the established
associations in a heap by the time they last received as it was when they were put there
(``last_received`` moves on with each datagram; the heap is not told, so that a datagram
costs nothing here), and one loop timer at the earliest of those times plus the timeout.
Each key is at most its association's ``last_received``, so that timer comes at or before
every association's deadline. When it fires, each association whose key is due is looked at:
closed if its ``last_received`` is due too, otherwise put back under its ``last_received``;
then the timer waits for the next key. An association is looked at again only after a whole
``idle_timeout`` went by since the datagram it was put back for.

So an association is closed at the first run of the loop's timers at or after its
``last_received + idle_timeout``: as exactly as a timer of its own would close it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Hashable
from typing import Any, Generic, Protocol, TypeVar


class Heard(Hashable, Protocol):
    """An association as `IdleOrder` sees it."""

    # The loop's time (``loop.time()``) of the last datagram from the peer.
    last_received: float


A = TypeVar("A", bound=Heard)

# Entries of an association that ended are dropped from the heap when they outnumber the
# live ones (and this many): a server whose associations come and go does not keep each for
# a whole idle_timeout.
MIN_ENDED_KEPT = 64


class IdleOrder(Generic[A]):
    """Established associations, and the one timer that closes them (``close(association)``)
    once they received nothing for ``timeout`` seconds (None: never; they are only counted,
    ``len()``)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float | None,
        close: Callable[[A], None],
    ) -> None:
        self._loop = loop
        self._timeout = timeout
        self._close = close
        # [key, tie-breaker, association or None once it ended] per association, smallest
        # key first; key <= the association's last_received.
        self._heap: list[list[Any]] = []
        self._entries: dict[A, list[Any]] = {}
        self._ended = 0  # entries in the heap whose association ended
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._when = 0.0  # the timer's time, when there is one

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, association: object) -> bool:
        return association in self._entries

    def add(self, association: A) -> None:
        """``association`` is established: watched from its ``last_received`` on."""
        entry = [association.last_received, next(self._order), association]
        self._entries[association] = entry
        heapq.heappush(self._heap, entry)
        if self._timeout is not None:
            # Its last datagram may be older than the one the timer waits for (the timer's
            # association was heard while this one's task waited for its turn to run).
            deadline = association.last_received + self._timeout
            if self._timer is None or deadline < self._when:
                self._arm(deadline)

    def discard(self, association: A) -> None:
        """``association`` ended: forgotten (its entry holds nothing until it is dropped;
        with the last one, the heap and the timer go)."""
        entry = self._entries.pop(association, None)
        if entry is None:
            return
        entry[2] = None
        if not self._entries:  # none left: no timer holding this order (and its server)
            self.stop()
            self._heap.clear()
            self._ended = 0
            return
        self._ended += 1
        if self._ended > MIN_ENDED_KEPT and self._ended > len(self._entries):
            self._heap[:] = [entry for entry in self._heap if entry[2] is not None]
            heapq.heapify(self._heap)
            self._ended = 0

    def stop(self) -> None:
        """No more timer (the server closes)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._when = when
        self._timer = self._loop.call_at(when, self._passed)

    def _passed(self) -> None:
        self._timer = None
        assert self._timeout is not None
        heap, now, timeout = self._heap, self._loop.time(), self._timeout
        try:
            while heap and heap[0][0] + timeout <= now:
                entry = heap[0]
                association = entry[2]
                if association is None:
                    heapq.heappop(heap)
                    self._ended -= 1
                elif association.last_received + timeout <= now:
                    heapq.heappop(heap)
                    del self._entries[association]
                    self._close(association)
                else:  # heard since it was put here
                    entry[0] = association.last_received
                    heapq.heapreplace(heap, entry)
        finally:  # a close that raised (the loop reports it) leaves the others watched
            if self._entries:
                self._arm(heap[0][0] + timeout)
