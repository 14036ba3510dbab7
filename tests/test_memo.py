"""`dtlsgate._memo.Memo`, the bounded table the gates and the DTLS 1.2 server context keep
their work per distinct offer in: a dict of at most ``size`` entries, emptied when full."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dtlsgate._memo import Memo


def test_a_memo_is_a_dict_that_starts_over_when_full() -> None:
    memo: Memo[str, int] = Memo(3)
    for n, key in enumerate("abc"):
        memo.remember(key, n)
    assert memo == {"a": 0, "b": 1, "c": 2} and memo.get("b") == 1
    memo.remember("b", 10)  # full, even for a key it holds: it starts over
    assert memo == {"b": 10}
    with pytest.raises(ValueError, match="at least one"):
        Memo(0)


@given(st.integers(1, 8), st.lists(st.integers(0, 20), max_size=100))
def test_a_memo_never_holds_more_than_its_size(size: int, keys: list[int]) -> None:
    memo: Memo[int, int] = Memo(size)
    for key in keys:
        memo.remember(key, key * 2)
        assert 1 <= len(memo) <= size and memo[key] == key * 2
        assert all(value == k * 2 for k, value in memo.items())
