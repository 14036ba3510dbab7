"""Stateless session tickets and PSK binders (RFC 8446 §4.6.1, §4.2.11).

The server keeps nothing per ticket: what a resumption needs (the suite, the resumption
PSK, when and for how long the ticket was issued, its ``ticket_age_add``, the ALPN
protocol) travels inside the ticket, encrypted and integrity-protected with AES-256-GCM
under a key derived from the config's ``ticket_key``. Any process holding that key can
resume a session another one began::

    format (1) | nonce (12) | AES-256-GCM(key, nonce, state, aad = format)
    state = suite (2) | issued_at_ms (8) | lifetime (4) | age_add (4) |
            psk <1..255> | alpn <0..255>

`fill_binders` / `binder` compute the PSK binder (§4.2.11.2): an HMAC, shaped like a
Finished, over the transcript up to the ClientHello truncated before the binders list.
"""

from __future__ import annotations

import hmac
import struct
from typing import Any

from dtlsgate._frozen import frozen
from dtlsgate.crypto.aead import Aead, AeadAlgorithm
from dtlsgate.crypto.hashes import Hash, TranscriptHash
from dtlsgate.crypto.keyschedule import KeySchedule, hkdf_expand, hkdf_extract
from dtlsgate.errors import DecodeError, UsageError
from dtlsgate.wire.buffer import Reader, encode_vector
from dtlsgate.wire.extensions import OfferedPsks, binders_length, encode_pre_shared_key_ch

TICKET_FORMAT = 1
TICKET_KEY_LENGTH = 32
_NONCE_LENGTH = 12
_LABEL = b"dtlsgate ticket key v1"
# A ticket's suite, issued_at_ms, lifetime and age_add (`TicketState.encode`).
_FIXED_FIELDS = struct.Struct(">HQII")
# RFC 8446 §4.6.1: a ticket lives at most 7 days; we issue for 2 hours by default (what
# OpenSSL and NSS use), long enough for a client to come back, short enough to bound what
# one stolen ticket is worth.
DEFAULT_TICKET_LIFETIME = 7200
MAX_TICKET_LIFETIME = 604800
# RFC 8446 §4.6.1 / §8.3: the client's view of the ticket age (from the obfuscated age) and
# ours (from the issue time inside the ticket) differ by a round trip and clock drift. A
# ticket whose ages differ by more than this is not accepted (full handshake instead).
MAX_TICKET_AGE_SKEW_MS = 10_000


def ticket_key_from_master(master_key: bytes) -> bytes:
    """A ticket key derived from the cookie master key, so a fleet sharing that key also
    resumes each other's sessions (HKDF-SHA256 with a label of our own)."""
    prk = hkdf_extract(Hash.SHA256, _LABEL, master_key)
    return hkdf_expand(Hash.SHA256, prk, b"ticket key", TICKET_KEY_LENGTH)


@frozen
class TicketState:
    """What a ticket carries, once opened."""

    suite: int
    issued_at_ms: int
    lifetime: int
    age_add: int
    psk: bytes
    alpn: bytes

    def encode(self) -> bytes:
        """suite (u16), issued_at_ms (u64), lifetime and age_add (u32), psk<1..255>,
        alpn<0..255>: the fixed fields in one pack."""
        try:
            fixed = _FIXED_FIELDS.pack(self.suite, self.issued_at_ms, self.lifetime, self.age_add)
        except struct.error:
            raise UsageError("a ticket field out of range") from None
        return fixed + encode_vector(1, self.psk, 1) + encode_vector(1, self.alpn)

    @classmethod
    def decode(cls, data: bytes) -> TicketState:
        r = Reader(data)
        state = cls(r.u16(), r.u64(), r.u32(), r.u32(), r.vector(1, 1), r.vector(1))
        r.finish()
        return state

    def age_ok(self, obfuscated_age: int, now: float) -> bool:
        """RFC 8446 §4.6.1: within the lifetime on our clock, and the client's ticket age
        (obfuscated_ticket_age - ticket_age_add mod 2^32) close to ours."""
        ours = int(now * 1000) - self.issued_at_ms
        if ours < -MAX_TICKET_AGE_SKEW_MS or ours > self.lifetime * 1000:
            return False
        theirs = (obfuscated_age - self.age_add) & 0xFFFFFFFF
        return abs(theirs - ours) <= MAX_TICKET_AGE_SKEW_MS


class TicketSealer:
    """Seals and opens tickets under one ticket key (stateless: nothing per ticket)."""

    def __init__(self, ticket_key: bytes, provider: Any) -> None:
        if len(ticket_key) != TICKET_KEY_LENGTH:
            raise UsageError(f"ticket_key must be {TICKET_KEY_LENGTH} bytes")
        key = hkdf_expand(Hash.SHA256, ticket_key, _LABEL, 32)
        self._aead = Aead(AeadAlgorithm.AES_256_GCM, key)
        self._provider = provider

    def seal(self, state: TicketState) -> bytes:
        head = bytes((TICKET_FORMAT,))
        nonce: bytes = self._provider.random(_NONCE_LENGTH)
        return head + nonce + self._aead.seal(nonce, state.encode(), head)

    def open(self, ticket: bytes) -> TicketState | None:
        """The state inside ``ticket``, or None when it is not one of ours (forged,
        corrupted, another key): the AEAD tag check is constant-time."""
        if len(ticket) < 1 + _NONCE_LENGTH + 16 or ticket[0] != TICKET_FORMAT:
            return None
        nonce = ticket[1 : 1 + _NONCE_LENGTH]
        plain = self._aead.open(nonce, ticket[1 + _NONCE_LENGTH :], ticket[:1])
        if plain is None:
            return None
        try:
            return TicketState.decode(plain)
        except DecodeError:
            return None


# ---- binders ------------------------------------------------------------------------------


def binder(
    schedule: KeySchedule,
    prefix: TranscriptHash | None,
    truncated_hello: bytes,
    *,
    external: bool = False,
) -> bytes:
    """The binder of a PSK (RFC 8446 §4.2.11.2): HMAC(finished_key(binder_key),
    Transcript-Hash(prefix + truncated ClientHello)); ``prefix`` is the transcript before
    this ClientHello (message_hash(ClientHello1) and the HelloRetryRequest), or None;
    ``external`` picks the "ext binder" key (§7.1) rather than "res binder"."""
    if prefix is None:
        th = schedule.hash.digest(truncated_hello)
    else:
        transcript = prefix.copy()
        transcript.update(truncated_hello)
        th = transcript.digest()
    return schedule.finished_verify_data(schedule.binder_key(external=external), th)


def truncate(hello_message: bytes, offer: OfferedPsks) -> bytes:
    """The ClientHello message up to (not including) the binders list (§4.2.11.2)."""
    return hello_message[: len(hello_message) - binders_length(offer)]


def fill_binders(
    hello_message: bytes,
    offer: OfferedPsks,
    schedule: KeySchedule,
    prefix: TranscriptHash | None,
    *,
    external: bool = False,
) -> bytes:
    """``hello_message`` (whose pre_shared_key, the last extension, holds ``offer`` with
    placeholder binders of the right length) with the real binder of its one identity."""
    truncated = truncate(hello_message, offer)
    value = binder(schedule, prefix, truncated, external=external)
    filled = OfferedPsks(offer.identities, (value,))
    encoded = encode_pre_shared_key_ch(filled)
    return truncated + encoded[len(encoded) - binders_length(filled) :]


def binders_equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of a received and an expected binder."""
    return hmac.compare_digest(a, b)
