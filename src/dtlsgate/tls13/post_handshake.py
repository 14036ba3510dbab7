"""After the handshake: the connected state and KeyUpdate (RFC 8446 §4.6.3, §7.2).

Each KeyUpdate moves one direction to the next application traffic secret,
``application_traffic_secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "", Hash.length)``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from dtlsgate.crypto.keyschedule import KeySchedule
from dtlsgate.crypto.suites import SuiteInfo
from dtlsgate.tls13.handshake import Actions, AppSecrets, InstallKey, SendMessage, message
from dtlsgate.wire.enums import HandshakeType, KeyUpdateRequest
from dtlsgate.wire.messages13 import KeyUpdate


@dataclass(slots=True)
class Connected:
    """The handshake is complete; ``read_secret`` / ``write_secret`` are the current
    application traffic secrets of each direction."""

    schedule: KeySchedule
    suite: SuiteInfo
    app: AppSecrets
    read_secret: bytes
    write_secret: bytes


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
    next_read = state.schedule.next_traffic_secret(state.read_secret)
    actions: Actions = [InstallKey(False, state.schedule, state.suite.aead, next_read)]
    state = replace(state, read_secret=next_read)
    if update.request_update == KeyUpdateRequest.update_requested:
        state, more = update_write(state, request_peer=False)
        actions.extend(more)
    return state, actions
