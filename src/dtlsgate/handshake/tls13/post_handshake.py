"""After the handshake: the connected state, KeyUpdate (RFC 8446 §4.6.3, §7.2), the
states of post-handshake client authentication (§4.6.2), and DTLS 1.3's connection ID
messages (RFC 9147 §9).

Each KeyUpdate moves one direction to the next application traffic secret,
``application_traffic_secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "", Hash.length)``.

Post-handshake authentication: a server whose client sent post_handshake_auth sends a
CertificateRequest with a fresh context and waits, still connected, for the client's
Certificate, CertificateVerify and Finished; their transcript is the handshake's (through the
client Finished) followed by that CertificateRequest, and the Finished key comes from the
client's current application traffic secret (§4.4). Each waiting state is a `Connected`, so
application data and KeyUpdates go on meanwhile.

NewConnectionId and RequestConnectionId exist only in DTLS 1.3: `for_dtls` adds their rows
to every connected state of a TLS 1.3 machine, making the DTLS 1.3 one (over TLS they stay
absent, so unexpected_message). Their handlers decode them and hand them to the connection
(`PeerConnectionIds`, `ConnectionIdsRequested`), which owns the CIDs in use and decides
whether they were negotiated (`dtlsgate.connection.datagram13`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

from dtlsgate.crypto.hashes import TranscriptHash
from dtlsgate.crypto.keyschedule import KeySchedule
from dtlsgate.crypto.suites import SuiteInfo
from dtlsgate.errors import UnexpectedMessage
from dtlsgate.handshake.engine import Machine
from dtlsgate.handshake.tls13.common import (
    Actions,
    AppSecrets,
    ConnectionIdsRequested,
    InstallKey,
    PeerConnectionIds,
    SendMessage,
    message,
)
from dtlsgate.wire.enums import ConnectionIdUsage, HandshakeType, KeyUpdateRequest
from dtlsgate.wire.messages13 import KeyUpdate, NewConnectionId, RequestConnectionId

# RFC 8446 §4.6.3 puts no bound on KeyUpdates, and each one with update_requested makes us
# derive two keys and send a KeyUpdate back, whether or not the peer reads it. A peer
# rotating its key on a timer while idle sends a few; 32 requests in a row with no
# application data between them (BoringSSL's limit for KeyUpdates too) is a flood, refused
# with unexpected_message. Updates that request nothing cost no answer and are not counted.
MAX_KEY_UPDATES_WITHOUT_DATA = 32


@dataclass(slots=True)
class Connected:
    """The handshake is complete; ``read_secret`` / ``write_secret`` are the current
    application traffic secrets of each direction."""

    schedule: KeySchedule
    suite: SuiteInfo
    app: AppSecrets
    read_secret: bytes
    write_secret: bytes
    # KeyUpdates with update_requested received since the peer last sent application data
    # (the connection resets it on each non-empty application data record).
    peer_key_updates: int = 0
    # The handshake transcript through the client Finished (RFC 8446 §4.4: the context of
    # post-handshake authentication), and whether the client sent post_handshake_auth.
    transcript: TranscriptHash | None = None
    post_handshake_auth: bool = False


@dataclass(slots=True)
class PendingAuth:
    """A post-handshake CertificateRequest awaiting its answer: its context, the transcript
    so far (handshake, CertificateRequest, then the client's messages), the client's chain
    and key once its Certificate came."""

    context: bytes
    transcript: TranscriptHash
    chain: tuple[bytes, ...] = ()
    peer_key: Any = None


@dataclass(slots=True)
class WaitPostHandshakeCertificate(Connected):
    """We sent a CertificateRequest after the handshake (RFC 8446 §4.6.2)."""

    pending: PendingAuth | None = None


@dataclass(slots=True)
class WaitPostHandshakeCertificateVerify(Connected):
    pending: PendingAuth | None = None


@dataclass(slots=True)
class WaitPostHandshakeFinished(Connected):
    pending: PendingAuth | None = None


C = TypeVar("C", bound=Connected)


def moved(kind: type[C], state: Connected, **changes: Any) -> C:
    """``state``'s connection data in a state of type ``kind``."""
    values = {f.name: getattr(state, f.name) for f in fields(Connected)}
    values.update(changes)
    return kind(**values)


def update_write(state: Connected, request_peer: bool) -> tuple[Connected, Actions]:
    """Send a KeyUpdate and switch our sending key (RFC 8446 §4.6.3)."""
    request = (
        KeyUpdateRequest.update_requested if request_peer else KeyUpdateRequest.update_not_requested
    )
    next_write = state.schedule.next_traffic_secret(state.write_secret)
    actions: Actions = [
        SendMessage(message(HandshakeType.KEY_UPDATE, KeyUpdate(request).encode())),
        InstallKey(True, state.schedule, state.suite.aead, next_write),
    ]
    return replace(state, write_secret=next_write), actions


def key_update_handler(
    ctx: Any, state: Connected, body: bytes, raw: bytes, now: float
) -> tuple[Connected, Actions]:
    """The peer's KeyUpdate: switch our receiving key; when asked, answer with a KeyUpdate of
    our own that does not request one back (RFC 8446 §4.6.3)."""
    update = KeyUpdate.decode(body)
    requested = update.request_update == KeyUpdateRequest.update_requested
    if requested and state.peer_key_updates >= MAX_KEY_UPDATES_WITHOUT_DATA:
        raise UnexpectedMessage(f"more than {MAX_KEY_UPDATES_WITHOUT_DATA} KeyUpdates in a row")
    next_read = state.schedule.next_traffic_secret(state.read_secret)
    actions: Actions = [InstallKey(False, state.schedule, state.suite.aead, next_read)]
    state = replace(state, read_secret=next_read)
    if requested:
        state.peer_key_updates += 1
        state, more = update_write(state, request_peer=False)
        actions.extend(more)
    return state, actions


# ---- DTLS 1.3 connection IDs (RFC 9147 §9) -------------------------------------------------


def new_connection_id_message(cids: tuple[bytes, ...], usage: ConnectionIdUsage) -> bytes:
    """A NewConnectionId offering ``cids`` for the records the peer sends us."""
    return message(HandshakeType.NEW_CONNECTION_ID, NewConnectionId(cids, usage).encode())


def request_connection_id_message(num_cids: int) -> bytes:
    """A RequestConnectionId asking the peer for ``num_cids`` CIDs."""
    return message(HandshakeType.REQUEST_CONNECTION_ID, RequestConnectionId(num_cids).encode())


def new_connection_id_handler(
    ctx: Any, state: Connected, body: bytes, raw: bytes, now: float
) -> tuple[Connected, Actions]:
    """The peer's NewConnectionId: CIDs for the records we send (RFC 9147 §9)."""
    offer = NewConnectionId.decode(body)
    return state, [PeerConnectionIds(offer.cids, offer.usage)]


def request_connection_id_handler(
    ctx: Any, state: Connected, body: bytes, raw: bytes, now: float
) -> tuple[Connected, Actions]:
    """The peer's RequestConnectionId: it wants CIDs from us (RFC 9147 §9)."""
    request = RequestConnectionId.decode(body)
    return state, [ConnectionIdsRequested(request.num_cids)]


#: The post-handshake messages DTLS 1.3 has beyond TLS 1.3's (RFC 9147 §9, Appendix A.2).
DTLS_POST_HANDSHAKE: dict[int, Any] = {
    HandshakeType.NEW_CONNECTION_ID: new_connection_id_handler,
    HandshakeType.REQUEST_CONNECTION_ID: request_connection_id_handler,
}

H = TypeVar("H")


def for_dtls(machine: Machine[H], name: str) -> Machine[H]:
    """``machine`` (a TLS 1.3 side) with `DTLS_POST_HANDSHAKE` taken in each of its
    connected states, each staying where it is: the DTLS 1.3 side."""
    extra = DTLS_POST_HANDSHAKE
    table = {
        state: {**row, **extra} if state in machine.after_handshake else row
        for state, row in machine.table.items()
    }
    goes_to = dict(machine.goes_to)
    for state in machine.after_handshake:
        goes_to.update({(state, msg_type): (state,) for msg_type in extra})
    return dataclasses.replace(machine, name=name, table=table, goes_to=goes_to)
