"""DTLS 1.2 session resumption (RFC 5246 §7.3): what a session is, how a server seals it in
a ticket (RFC 5077) or keeps it in its session ID cache, which offered session it accepts,
and what a client keeps to offer it again (`Dtls12Session`).

A ticket carries the whole session, sealed as the TLS 1.3 tickets are (``tls13.tickets``),
with the key's rotation epoch in the clear::

    format (1) | key epoch (4) | nonce (12) | AES-256-GCM(key, nonce, state,
                                                         aad = format | key epoch)
    state = version (2) | suite (2) | issued_at (8, seconds) | lifetime (4) | ems (1) |
            master_secret <48> | server_name <0..255> | psk_identity <0..2^16-1> |
            peer_certificates <0..2^24-1> of <1..2^24-1>

``key`` is ``CookieJar.derive_key(label, epoch)``: derived from the cookie jar's master key,
one per ``ticket_lifetime`` seconds (the current and the previous epoch's open, so a ticket
opens for its whole lifetime), so every server sharing the master key opens every other's
tickets and nothing is stored (RFC 5077 §4's recommended layout differs: the server's key
name is our key epoch, and GCM replaces AES-CBC with HMAC). The session cache keeps the same
``state`` bytes under a session ID. A ticket or cached session that does not open, has
expired, or does not fit the new ClientHello is not an error: the handshake is a full one.
"""

from __future__ import annotations

import base64
import struct

from dtlsgate._frozen import frozen
from dtlsgate.config import ServerConfig
from dtlsgate.crypto.aead import Aead, AeadAlgorithm
from dtlsgate.crypto.suites import SUITES
from dtlsgate.errors import DecodeError, UsageError
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.handshake.dtls12.negotiate import DEFAULT_SUITES, Choice
from dtlsgate.wire.buffer import Reader, Writer, encode_vector
from dtlsgate.wire.enums import ProtocolVersion
from dtlsgate.wire.messages import ClientHello

TICKET_FORMAT = 2  # 1 is the TLS 1.3 tickets' format
_TICKET_LABEL = b"dtlsgate dtls12 ticket key v1"
_NONCE_LENGTH = 12
_TAG_LENGTH = 16
_HEAD_LENGTH = 1 + 4
#: RFC 5246 §8.1: the master secret is 48 bytes.
MASTER_SECRET_LENGTH = 48
# RFC 5077 §3.3: a ticket is at most 2^16-1 bytes; one holding a long client certificate
# chain would not fit: that session goes to the cache instead.
MAX_TICKET_LENGTH = 0xFFFF
# The state's fixed fields: version, suite, issued_at, lifetime, ems, and the master
# secret with its length (always 48: a vector of fixed length).
_STATE_HEAD = struct.Struct(f"!HHQIBB{MASTER_SECRET_LENGTH}s")
# Servers of a fleet whose clocks differ by a few seconds accept each other's tickets (as
# their cookies: gate.cookie.DEFAULT_CLOCK_SKEW).
CLOCK_SKEW = 5


@frozen
class StoredSession:
    """A session as the server keeps it: inside a ticket, or in its session cache."""

    suite: int
    issued_at: int
    lifetime: int
    extended_master_secret: bool
    master_secret: bytes
    server_name: str | None
    psk_identity: bytes | None
    peer_certificates: tuple[bytes, ...]
    version: int = ProtocolVersion.DTLS12

    def encode(self) -> bytes:
        return encode_stored_session(
            self.suite,
            self.issued_at,
            self.lifetime,
            self.extended_master_secret,
            self.master_secret,
            self.server_name,
            self.psk_identity,
            self.peer_certificates,
            self.version,
        )

    @classmethod
    def decode(cls, data: bytes) -> StoredSession:
        r = Reader(data)
        version, suite, issued_at, lifetime, ems = r.u16(), r.u16(), r.u64(), r.u32(), r.u8()
        master = r.vector(1, MASTER_SECRET_LENGTH, MASTER_SECRET_LENGTH)
        name, identity = r.vector(1), r.vector(2)
        chain = r.prefixed(3)
        certificates: list[bytes] = []
        while not chain.at_end():
            certificates.append(chain.vector(3, 1))
        r.finish()
        if ems > 1:
            raise DecodeError("extended_master_secret flag must be 0 or 1")
        try:
            server_name = name.decode() if name else None
        except UnicodeDecodeError:
            raise DecodeError("server_name is not UTF-8") from None
        return cls(
            suite,
            issued_at,
            lifetime,
            ems == 1,
            master,
            server_name,
            identity or None,
            tuple(certificates),
            version,
        )

    def fresh(self, now: float, max_lifetime: int) -> bool:
        """Issued no later than now (with the fleet's clock skew) and not yet expired, by
        its own lifetime and by the server's current one."""
        age = now - self.issued_at
        return -CLOCK_SKEW <= age < min(self.lifetime, max_lifetime)


def encode_stored_session(
    suite: int,
    issued_at: int,
    lifetime: int,
    extended_master_secret: bool,
    master_secret: bytes,
    server_name: str | None,
    psk_identity: bytes | None,
    peer_certificates: tuple[bytes, ...],
    version: int = ProtocolVersion.DTLS12,
) -> bytes:
    """The `StoredSession` with these fields, encoded: what a server that keeps the session
    it just completed seals in a ticket or caches, without an object made to be encoded
    once."""
    if len(master_secret) != MASTER_SECRET_LENGTH:
        raise UsageError(f"a master secret of {len(master_secret)} bytes")
    try:
        head = _STATE_HEAD.pack(
            version,
            suite,
            issued_at,
            lifetime,
            1 if extended_master_secret else 0,
            MASTER_SECRET_LENGTH,
            master_secret,
        )
    except struct.error:
        raise UsageError("a session field does not fit its width") from None
    if not (server_name or psk_identity or peer_certificates):
        return head + _NO_NAME_IDENTITY_OR_CERTIFICATES
    return (
        head
        + encode_vector(1, (server_name or "").encode())
        + encode_vector(2, psk_identity or b"")
        + encode_vector(3, _certificate_list(peer_certificates))
    )


# The end of a session with no server name, PSK identity or peer certificates (a
# certificate server's that does not ask for the client's: its usual session): the three
# empty vectors, encoded once.
_NO_NAME_IDENTITY_OR_CERTIFICATES = (
    encode_vector(1, b"") + encode_vector(2, b"") + encode_vector(3, b"")
)


def _certificate_list(certificates: tuple[bytes, ...]) -> bytes:
    """The peer's certificates, each a vector <1..2^24-1> (no writer for none, the
    usual case: a server that does not ask for a client certificate)."""
    if not certificates:
        return b""
    w = Writer()
    for certificate in certificates:
        w.vector(3, certificate, 1)
    return w.getvalue()


# ---- tickets ----------------------------------------------------------------------------------


# A server's ticket keys, one per rotation epoch, kept for at most this many epochs (a
# ticket opens under the current, previous and next epoch's key; past that the table starts
# afresh).
MAX_TICKET_KEY_EPOCHS = 4


class TicketKeys:
    """A server config's ticket keys (``key`` in the module docstring): each epoch's AEAD
    derived from the config's cookie jar once, not per ticket, and kept here, per config
    (the server's ``ServerContext`` holds one). ``seal`` and ``open`` are RFC 5077 §4's
    protection of the session state."""

    __slots__ = ("_aeads", "_jar", "_sealing", "config")

    def __init__(self, config: ServerConfig) -> None:
        if config.cookie_jar is None:  # ServerConfig.__post_init__ always makes one
            raise UsageError("the server config has no cookie jar")
        self.config = config
        self._jar: CookieJar = config.cookie_jar
        self._aeads: dict[int, Aead] = {}
        # The epoch tickets were last sealed in, with its ticket head and AEAD: made once
        # per epoch, not per ticket.
        self._sealing: tuple[int, bytes, Aead] | None = None

    def _aead(self, epoch: int) -> Aead:
        aead = self._aeads.get(epoch)
        if aead is None:
            if len(self._aeads) >= MAX_TICKET_KEY_EPOCHS:
                self._aeads.clear()
            key = self._jar.derive_key(_TICKET_LABEL, epoch)
            aead = self._aeads[epoch] = Aead(AeadAlgorithm.AES_256_GCM, key)
        return aead

    def _epoch(self, now: float) -> int:
        return int(now // self.config.ticket_lifetime) & 0xFFFFFFFF

    def seal(self, session: StoredSession, nonce: bytes, now: float) -> bytes:
        """``session`` sealed under this rotation epoch's ticket key (``nonce``: 12 random
        bytes from the provider)."""
        return self.seal_encoded(session.encode(), nonce, now)

    def seal_encoded(self, session: bytes, nonce: bytes, now: float) -> bytes:
        """`seal` for a session encoded already (`encode_stored_session`)."""
        epoch = self._epoch(now)
        sealing = self._sealing
        if sealing is None or sealing[0] != epoch:
            head = bytes((TICKET_FORMAT,)) + epoch.to_bytes(4, "big")
            sealing = self._sealing = (epoch, head, self._aead(epoch))
        _, head, aead = sealing
        return head + nonce + aead.seal(nonce, session, head)

    def open(self, ticket: bytes, now: float) -> StoredSession | None:
        """The session inside ``ticket`` when it is one of ours (format, key epoch current
        or previous, the AEAD tag: a forged, truncated or other-key ticket fails here),
        still fresh; else None."""
        if len(ticket) < _HEAD_LENGTH + _NONCE_LENGTH + _TAG_LENGTH or ticket[0] != TICKET_FORMAT:
            return None
        epoch = int.from_bytes(ticket[1:_HEAD_LENGTH], "big")
        # The previous epoch's key still opens (a ticket lives one lifetime); the next
        # one's too, for a fleet member whose clock runs a little ahead.
        if (self._epoch(now) - epoch) & 0xFFFFFFFF not in (0, 1, 0xFFFFFFFF):
            return None
        nonce = ticket[_HEAD_LENGTH : _HEAD_LENGTH + _NONCE_LENGTH]
        aead = self._aead(epoch)
        plain = aead.open(nonce, ticket[_HEAD_LENGTH + _NONCE_LENGTH :], ticket[:_HEAD_LENGTH])
        return _fresh(plain, self.config, now)


def _fresh(data: bytes | None, config: ServerConfig, now: float) -> StoredSession | None:
    if data is None:
        return None
    try:
        session = StoredSession.decode(data)
    except DecodeError:
        return None
    return session if session.fresh(now, config.ticket_lifetime) else None


def cached_session(config: ServerConfig, session_id: bytes, now: float) -> StoredSession | None:
    cache = config.session_cache
    if cache is None or not session_id:
        return None
    return _fresh(cache.get(session_id, now), config, now)


def offered_session(
    tickets: TicketKeys, hello: ClientHello, choice: Choice, now: float
) -> StoredSession | None:
    """The session ``hello`` offers (a ticket first, RFC 5077 §3.4, then its session ID),
    when it opens and may resume under the tickets' config with what ``choice``
    negotiated; None means a full handshake."""
    config = tickets.config
    ticket = choice.session_ticket
    session = None
    if ticket and config.session_tickets:
        session = tickets.open(ticket, now)
    if session is None:
        session = cached_session(config, hello.session_id, now)
    if session is None or not _may_resume(config, hello, choice, session):
        return None
    return session


def _may_resume(
    config: ServerConfig, hello: ClientHello, choice: Choice, session: StoredSession
) -> bool:
    info = SUITES.get(session.suite)  # type: ignore[call-overload]
    if session.version != ProtocolVersion.DTLS12 or info is None or info.is_tls13:
        return False
    # RFC 5246 §7.4.1.2: the client offers the session's suite; we must still allow it.
    if session.suite not in hello.cipher_suites:
        return False
    if session.suite not in (config.cipher_suites or DEFAULT_SUITES):
        return False
    # RFC 7627 §5.3: a session with the extended master secret resumes only when the new
    # ClientHello has the extension, and one without only when it has not (the server
    # "MUST NOT" resume it then): otherwise a full handshake.
    if session.extended_master_secret != choice.extended_master_secret:
        return False
    # RFC 6066 §3: a session is not resumed for another server name.
    if session.server_name != choice.server_name:
        return False
    if session.psk_identity is not None and session.psk_identity not in config.psk:
        return False  # the PSK was withdrawn since
    return not (config.verify_client == "required" and not session.peer_certificates)


# ---- the client's session -----------------------------------------------------------------------

_SESSION_MAGIC = b"dtlsgate DTLS 1.2 session v1\n"
_PEM_LABEL = "DTLSGATE DTLS 1.2 SESSION"


@frozen
class Dtls12Session:
    """What a DTLS 1.2 client keeps to resume (like ``ssl.SSLSession``): from a
    ``SessionTicketReceived`` event or a connection's ``session``; pass it back as
    ``ClientConfig(session_ticket=...)``. It holds the master secret: keep it as secret as a
    key. ``encode``/``decode`` (and the PEM forms) save and restore it."""

    cipher_suite: int
    master_secret: bytes
    extended_master_secret: bool
    session_id: bytes
    ticket: bytes
    ticket_lifetime_hint: int
    received_at: float
    server_name: str | None
    peer_certificates: tuple[bytes, ...] = ()
    psk_identity: bytes | None = None

    def encode(self) -> bytes:
        w = Writer()
        w.write(_SESSION_MAGIC)
        w.vector(1, self.session_id, 0, 32)
        w.vector(2, self.ticket)
        w.u32(self.ticket_lifetime_hint)
        stored = StoredSession(
            self.cipher_suite,
            int(self.received_at),
            self.ticket_lifetime_hint,
            self.extended_master_secret,
            self.master_secret,
            self.server_name,
            self.psk_identity,
            self.peer_certificates,
        )
        w.write(stored.encode())
        return w.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> Dtls12Session:
        """Raises `DecodeError` on anything but an encoded session."""
        if not data.startswith(_SESSION_MAGIC):
            raise DecodeError("not a saved DTLS 1.2 session")
        r = Reader(data, len(_SESSION_MAGIC))
        session_id, ticket, hint = r.vector(1, 0, 32), r.vector(2), r.u32()
        stored = StoredSession.decode(r.rest())
        return cls(
            stored.suite,
            stored.master_secret,
            stored.extended_master_secret,
            session_id,
            ticket,
            hint,
            float(stored.issued_at),
            stored.server_name,
            stored.peer_certificates,
            stored.psk_identity,
        )

    def to_pem(self) -> str:
        body = base64.encodebytes(self.encode()).decode()
        return f"-----BEGIN {_PEM_LABEL}-----\n{body}-----END {_PEM_LABEL}-----\n"

    @classmethod
    def from_pem(cls, text: str) -> Dtls12Session:
        begin, end = f"-----BEGIN {_PEM_LABEL}-----", f"-----END {_PEM_LABEL}-----"
        start, stop = text.find(begin), text.find(end)
        if start < 0 or stop < start:
            raise DecodeError(f"no {_PEM_LABEL} block")
        try:
            data = base64.b64decode(text[start + len(begin) : stop], validate=False)
        except ValueError:
            raise DecodeError("bad base64 in the session") from None
        return cls.decode(data)


__all__ = [
    "Dtls12Session",
    "StoredSession",
    "TicketKeys",
    "cached_session",
    "offered_session",
]
