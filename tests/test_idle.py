"""`dtlsgate.io.idle.IdleOrder`, the asyncio servers' one idle timer, on a fake loop whose
clock the test moves and whose timers run exactly when due: every association is closed at
its own deadline (``last_received + timeout``), never before and never after, whatever the
order in which associations are added, heard and discarded; nothing is kept of one that
ended. The servers' use of it over loopback is in test_server_limits.py."""

from __future__ import annotations

import gc
import heapq
import itertools
import random
import tracemalloc
import weakref
from collections.abc import Callable
from typing import Any

from helpers import cycle_collector_off

from dtlsgate.io.idle import IdleOrder

TIMEOUT = 10.0


class Timer:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self._when = when
        self.callback = callback
        self.cancelled = False

    def when(self) -> float:
        return self._when

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """``time()`` and ``call_at()``; ``advance(to)`` runs the timers due by then, each at
    its own time."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self.errors: list[Exception] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(when, callback)
        heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    def pending(self) -> int:
        return sum(not timer.cancelled for _, _, timer in self._timers)

    def advance(self, to: float) -> None:
        for _ in range(100_000):
            if not self._timers or self._timers[0][0] > to:
                break
            when, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                self.now = max(self.now, when)
                try:
                    timer.callback()
                except Exception as exc:  # as asyncio's loop: reported, the loop goes on
                    self.errors.append(exc)
        self.now = to


class Association:
    def __init__(self, name: int, last_received: float) -> None:
        self.name = name
        self.last_received = last_received


def make_order(loop: FakeLoop, closed: list[tuple[Association, float]]) -> IdleOrder[Any]:
    def close(association: Association) -> None:
        closed.append((association, loop.now))

    return IdleOrder(loop, TIMEOUT, close)  # type: ignore[arg-type]


def test_each_association_is_closed_at_its_own_deadline() -> None:
    """A random schedule over 400 associations: adds (the handshake's last datagram up to
    a second before), datagrams heard, associations that end; at each close the clock reads
    that association's deadline exactly, at every step none is past its deadline, and one
    timer at most is pending."""
    rng = random.Random(14)
    loop = FakeLoop()
    closed: list[tuple[Association, float]] = []
    order = make_order(loop, closed)
    open_: dict[int, Association] = {}
    ended: set[int] = set()
    names = itertools.count()
    for _ in range(6000):
        action = rng.random()
        if action < 0.1 or not open_:
            name = next(names)
            association = Association(name, loop.now - rng.uniform(0.0, 1.0))
            if association.last_received + TIMEOUT > loop.now:
                open_[name] = association
                order.add(association)
        elif action < 0.6:
            association = open_[rng.choice(list(open_))]
            association.last_received = loop.now
        elif action < 0.63:
            association = open_.pop(rng.choice(list(open_)))
            ended.add(association.name)
            order.discard(association)
        else:
            loop.advance(loop.now + rng.expovariate(1.0))
        for association, at in closed:
            assert association.last_received + TIMEOUT == at, "closed early or late"
            assert association.name not in ended
            del open_[association.name]
        closed.clear()
        assert all(a.last_received + TIMEOUT > loop.now for a in open_.values())
        assert len(order) == len(open_) and loop.pending() <= 1
    assert next(names) > 400


def test_active_associations_stay_and_idle_ones_go() -> None:
    loop = FakeLoop()
    closed: list[tuple[Association, float]] = []
    order = make_order(loop, closed)
    associations = [Association(i, 0.0) for i in range(100)]
    for association in associations:
        order.add(association)
    for step in range(1, 40):  # the even ones hear a datagram each half timeout
        loop.advance(step * TIMEOUT / 2)
        for association in associations[::2]:
            association.last_received = loop.now
    assert sorted(a.name for a, _ in closed) == list(range(1, 100, 2))
    assert len(order) == 50 and all(a in order for a in associations[::2])


def test_ended_associations_leave_nothing_behind() -> None:
    loop = FakeLoop()
    closed: list[tuple[Association, float]] = []
    order = make_order(loop, closed)
    associations = [Association(i, 0.0) for i in range(50)]
    for association in associations:
        order.add(association)
    for association in associations:
        order.discard(association)
    assert len(order) == 0 and not any(a in order for a in associations)
    refs = [weakref.ref(a) for a in associations]
    with cycle_collector_off():
        del association, associations
        assert not any(ref() for ref in refs)  # freed by reference counting alone
    loop.advance(3 * TIMEOUT)  # the timer fires once for nothing, and is not set again
    assert not closed and loop.pending() == 0
    order.add(Association(50, loop.now))
    order.stop()
    assert loop.pending() == 0


def test_an_association_added_late_goes_in_its_place() -> None:
    """An association's task may run after others were heard (or established) since its
    handshake's last datagram: it goes before them, and is closed at its own deadline."""
    loop = FakeLoop()
    closed: list[tuple[Association, float]] = []
    order = make_order(loop, closed)
    loop.advance(1.0)
    first, second, third = Association(1, 0.75), Association(2, 0.5), Association(3, 0.25)
    order.add(first)  # the timer for 0.75 + TIMEOUT
    order.add(second)
    order.add(third)
    loop.advance(2 * TIMEOUT)
    assert closed == [(third, 0.25 + TIMEOUT), (second, 0.5 + TIMEOUT), (first, 0.75 + TIMEOUT)]


def test_associations_that_come_and_go_are_not_kept_until_their_deadline() -> None:
    """20,000 associations established and ended within one idle_timeout, beside one that
    stays: what is kept for them does not grow with their number."""
    loop = FakeLoop()
    closed: list[tuple[Association, float]] = []
    order = make_order(loop, closed)
    order.add(Association(-1, 0.0))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(20_000):
            association = Association(i, 0.0)
            order.add(association)
            order.discard(association)
        del association
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(order) == 1 and grown < 64 * 1024, grown


def test_a_close_that_raises_leaves_the_others_watched() -> None:
    loop = FakeLoop()
    closed: list[Association] = []
    associations = [Association(i, float(i)) for i in range(5)]

    def close(association: Association) -> None:
        if association.name == 1:
            raise RuntimeError("a handler's fault")
        closed.append(association)

    order: IdleOrder[Any] = IdleOrder(loop, TIMEOUT, close)  # type: ignore[arg-type]
    for association in associations:
        order.add(association)
    loop.advance(3 * TIMEOUT)
    assert closed == [associations[0], *associations[2:]] and len(order) == 0
    assert [str(exc) for exc in loop.errors] == ["a handler's fault"]


def test_no_timer_is_left_once_every_association_ended() -> None:
    """With the last association discarded, the order holds no timer (which would keep it,
    and the server it belongs to, until idle_timeout passed) and no entries; a new one is
    watched again from its own last datagram."""
    loop = FakeLoop()
    closed: list[tuple[Association, float]] = []
    order = make_order(loop, closed)
    first = [Association(i, float(i)) for i in range(100)]
    for association in first:
        order.add(association)
    assert loop.pending() == 1
    for association in first:
        order.discard(association)
    assert loop.pending() == 0 and len(order) == 0
    loop.advance(500.0)
    late = Association(100, 500.0)
    order.add(late)
    assert loop.pending() == 1
    loop.advance(500.0 + TIMEOUT - 0.5)
    assert closed == []
    loop.advance(600.0)
    assert closed == [(late, 500.0 + TIMEOUT)]
