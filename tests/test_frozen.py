"""``@frozen`` (dtlsgate._frozen): the class ``dataclass(frozen=True, slots=True)`` makes,
with its own ``__init__``; a frozen class may extend another (a client's handshake state
adding its own fields to the state both sides share)."""

from __future__ import annotations

import dataclasses

import pytest

from dtlsgate._frozen import frozen


@frozen
class Base:
    first: int
    second: bytes = b"two"


@frozen
class Extended(Base):
    third: int = 3
    fourth: tuple[int, ...] = ()


def test_a_frozen_class_stores_its_fields_and_defaults() -> None:
    base = Base(1)
    assert (base.first, base.second) == (1, b"two")
    assert Base(1, b"x") == Base(first=1, second=b"x") != base
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.first = 2  # type: ignore[misc]
    assert not hasattr(base, "__dict__")


def test_a_frozen_subclass_stores_the_fields_it_inherits() -> None:
    extended = Extended(1, b"x", 4, (5,))
    assert (extended.first, extended.second, extended.third, extended.fourth) == (
        1,
        b"x",
        4,
        (5,),
    )
    assert Extended(1) == Extended(1, b"two", 3, ())
    assert Extended(1).second == b"two" and Extended(1).third == 3
    assert isinstance(extended, Base) and extended != Base(1, b"x")
    assert dataclasses.replace(extended, first=9).first == 9
    for name in ("first", "third"):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(extended, name, 0)
    assert not hasattr(extended, "__dict__")
