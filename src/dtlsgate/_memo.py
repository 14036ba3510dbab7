"""``Memo``: what a server worked out once per distinct offer, for the next ClientHello that
makes the same one.

Clients of one kind send the same offer (cipher suites, extensions, groups...) in every
handshake; only their random, session_id, cookie and key shares differ. A server that
decodes an offer, or chooses its answer to it, once per distinct offer does that work once
and not per handshake (the gates and the DTLS 1.2 server context keep one each). A memo is a
``dict`` (its lookups are the dict's own) with one bound: at most ``size`` entries. A full
memo starts over (one ``dict.clear``, which threads sharing a context cannot race the way
displacing the oldest entry can), so that however the offers are made, a flood of distinct
ones among them, the memo stays small and a miss costs what the work cost without it. Each
user also bounds what one entry may hold (the offer's bytes or items) before it remembers it.
"""

from __future__ import annotations

from typing import TypeVar

_K = TypeVar("_K")
_V = TypeVar("_V")


class Memo(dict[_K, _V]):
    """A dict of at most ``size`` entries; `remember` adds one, starting over when full."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        super().__init__()
        if size < 1:
            raise ValueError("a memo holds at least one entry")
        self.size = size

    def remember(self, key: _K, value: _V) -> None:
        """Keep ``value`` for ``key``; a full memo is emptied first."""
        if len(self) >= self.size:
            self.clear()
        self[key] = value


__all__ = ["Memo"]
