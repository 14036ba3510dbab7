"""The asyncio servers' ``idle_timeout``: one loop timer per server, not one per association.

Every association of a server has the same ``idle_timeout``, so the one whose deadline comes
first is the one that received least recently. `IdleOrder` keeps the established associations
in the order in which they last received (the server moves an association to the end on each
datagram from its peer: O(1), in C) and one timer at the first one's deadline; when it fires
it closes every association whose deadline passed and re-arms at the next one's.

An association is closed at the first run of the loop's timers at or after its
``last_received + idle_timeout``: as exactly as a timer of its own would close it.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar


class Heard(Hashable, Protocol):
    """An association as `IdleOrder` sees it."""

    # The loop's time (``loop.time()``) of the last datagram from the peer.
    last_received: float


A = TypeVar("A", bound=Heard)


class IdleOrder(Generic[A]):
    """Established associations, least recently heard first, and the one timer that closes
    them (``close(association)``) once they received nothing for ``timeout`` seconds (None:
    never; they are only kept in order, for ``len()``)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float | None,
        close: Callable[[A], None],
    ) -> None:
        self._loop = loop
        self._timeout = timeout
        self._close = close
        # The associations by their last_received, oldest first (a value of None each: an
        # ordered set).
        self._order: OrderedDict[A, None] = OrderedDict()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, association: object) -> bool:
        return association in self._order

    def add(self, association: A) -> None:
        """``association`` is established: watched from its ``last_received`` on. Put in its
        place, which is among the last: its last datagram (its handshake's) may be older
        than theirs, heard while its task waited for its turn to run."""
        order = self._order
        later = []
        for other in reversed(order):
            if other.last_received <= association.last_received:
                break
            later.append(other)
        else:  # the first now: a timer set for a later deadline is set again
            timer, timeout = self._timer, self._timeout
            if timer and timeout and timer.when() > association.last_received + timeout:
                self.stop()
        order[association] = None
        for other in reversed(later):
            order.move_to_end(other)
        self._arm()

    def heard(self, association: A) -> None:
        """A datagram from ``association``'s peer (its ``last_received`` now): to the end."""
        if association in self._order:
            self._order.move_to_end(association)

    def discard(self, association: A) -> None:
        """``association`` ended: forgotten (the timer, at most, fires once for nothing)."""
        self._order.pop(association, None)

    def stop(self) -> None:
        """The server closes: no more timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self) -> None:
        if self._timer is None and self._order and self._timeout is not None:
            first = next(iter(self._order))
            self._timer = self._loop.call_at(first.last_received + self._timeout, self._passed)

    def _passed(self) -> None:
        """The first association's deadline came (or one that went since, or one that was
        heard since): close those whose deadline passed, then wait for the next."""
        self._timer = None
        assert self._timeout is not None
        order, now, timeout = self._order, self._loop.time(), self._timeout
        while order:
            first = next(iter(order))
            if first.last_received + timeout > now:
                break
            del order[first]
            self._close(first)
        self._arm()
