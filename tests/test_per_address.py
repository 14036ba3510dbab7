"""The one rule for which entry makes way (dtlsgate.gate.per_address.PerAddress), shared by
the admission table and the gate's ClientHello reassembly: from an address at its limit,
that address's oldest; into a full table, the oldest of the address holding the most."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dtlsgate.gate.per_address import PerAddress


def filled(per_address: int, total: int, entries: list[tuple[int, str]]) -> PerAddress[int]:
    table = PerAddress[int](per_address, total)
    for key, address in entries:
        table.add(key, address)
    return table


def test_with_room_nothing_makes_way() -> None:
    table = filled(2, 4, [(1, "a"), (2, "b"), (3, "a")])
    assert table.make_way("b") is None and table.make_way("c") is None
    assert len(table) == 3 and table.count("a") == 2 and table.count("c") == 0


def test_an_address_at_its_limit_gives_up_its_own_oldest() -> None:
    table = filled(2, 10, [(1, "a"), (2, "b"), (3, "a")])
    assert table.make_way("a") == (1, True)
    table.remove(1, "a")
    table.add(4, "a")
    assert table.make_way("a") == (3, True)


def test_a_full_table_takes_the_oldest_of_the_busiest_address() -> None:
    table = filled(3, 4, [(1, "a"), (2, "b"), (3, "b"), (4, "c")])
    # b holds the most: its oldest goes, not 1 (the oldest overall).
    assert table.make_way("d") == (2, False)
    table.remove(2, "b")
    table.add(5, "d")
    # Every address holds one now: the one whose oldest is the oldest, a.
    assert table.make_way("e") == (1, False)
    # b and d each hold one, a two: a's oldest, though b's entry is older than it.
    table.remove(1, "a")
    table.add(6, "a")
    table.add(7, "a")
    table.remove(4, "c")
    assert table.make_way("e") == (6, False)


@settings(max_examples=200, deadline=None)
@given(
    per_address=st.integers(1, 4),
    extra=st.integers(0, 4),
    arrivals=st.lists(st.sampled_from("abcde"), max_size=40),
)
def test_the_rule_against_a_list_kept_oldest_first(
    per_address: int, extra: int, arrivals: list[str]
) -> None:
    """Newcomers arrive and make way as the adapters do; a plain list, oldest first, says
    what the rule should pick (its first entry from the address at its limit, else its
    first entry of an address holding the most), and the table is never over a bound."""
    total = per_address + extra
    table = PerAddress[int](per_address, total)
    model: list[tuple[int, str]] = []
    for key, address in enumerate(arrivals):
        counts = {a: sum(1 for _, b in model if b == a) for _, a in model}
        if counts.get(address, 0) >= per_address:
            expected = (next(k for k, a in model if a == address), True)
        elif len(model) >= total:
            most = max(counts.values())
            expected = (next(k for k, a in model if counts[a] == most), False)
        else:
            expected = None
        assert table.make_way(address) == expected
        if expected is not None:
            gone = expected[0]
            table.remove(gone, next(a for k, a in model if k == gone))
            model = [(k, a) for k, a in model if k != gone]
        table.add(key, address)
        model.append((key, address))
        assert len(table) == len(model) <= total
        assert all(table.count(a) == counts_a <= per_address for a, counts_a in _counts(model))


def _counts(model: list[tuple[int, str]]) -> list[tuple[str, int]]:
    addresses = {a for _, a in model}
    return [(a, sum(1 for _, b in model if b == a)) for a in sorted(addresses)]
