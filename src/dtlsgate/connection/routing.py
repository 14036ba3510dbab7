"""Routing a server's datagrams by DTLS 1.3 connection ID (RFC 9147 §9, RFC 9146 §6), the
same for every adapter (the asyncio server and the blocking listener).

A server finds an association by the address a datagram came from. With connection IDs a
peer's address may change (a NAT rebinding, a new path): a datagram from an address with
no association that carries one of an association's CIDs goes to that association, which
authenticates the record and then follows the new address (`Dtls13Connection.receive`);
the server's address table follows it (`follow`). Nothing else routes by CID: an unknown
CID is judged by the gate like any datagram from a stranger (a DTLS 1.3 record is never a
ClientHello, so it is dropped there), and a CID datagram creates no state.

`ConnectionIdRoutes` holds, for each established DTLS 1.3 association, the CIDs its peer
may put in its records (the negotiated one and those issued since, until retired; at most
`MAX_READ_CONNECTION_IDS` each). It is a dict (CID -> association), so that an adapter's
per-datagram test "is any CID routed?" is the dict's own truth value.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TypeVar

from dtlsgate.record.dtls13 import connection_id_of

A = TypeVar("A")


class ConnectionIdRoutes(dict[bytes, A]):
    """Associations by the connection IDs (of ``length`` bytes, the server's configured
    length) their peers may put in their records."""

    def __init__(self, length: int) -> None:
        super().__init__()
        self.length = length
        # What each association has in the table, as its connection last reported it.
        self._routed: dict[A, tuple[bytes, ...]] = {}

    def find(self, datagram: bytes) -> A | None:
        """The association whose CID ``datagram``'s first record carries, if any."""
        cid = connection_id_of(datagram, self.length)
        return self.get(cid) if cid is not None else None

    def route(self, association: A, cids: tuple[bytes, ...]) -> None:
        """Keep ``association``'s CIDs in the table: ``cids`` (its connection's
        ``connection_ids``, the same tuple until they change) added, those it retired
        removed. The first association with a CID keeps it (a collision of random CIDs is
        not routed twice)."""
        if self._routed.get(association, ()) is cids:
            return
        self._remove(association, cids)
        for cid in cids:
            self.setdefault(cid, association)
        if cids:
            self._routed[association] = cids

    def unroute(self, association: A) -> None:
        """Remove every CID of ``association`` (it ended)."""
        self._remove(association, ())

    def _remove(self, association: A, keep: tuple[bytes, ...]) -> None:
        for cid in self._routed.pop(association, ()):
            if cid not in keep and self.get(cid) is association:
                del self[cid]


def follow(by_address: dict[Hashable, A], association: A, old: Hashable, new: Hashable) -> bool:
    """``association`` moved from address ``old`` to ``new`` (its connection followed a
    peer whose records authenticated from there): its entry in the server's address table
    moves with it (returns whether it did). An association at ``new`` already (a NAT that
    gave the address to another client) loses that address to the one whose records now
    come from it."""
    if new == old or by_address.get(old) is not association:
        return False
    del by_address[old]
    by_address[new] = association
    return True
