"""The stateless gate: OpenSSL's ``DTLSv1_listen()`` as a pure function.

``Gate(config).receive(datagram, peer, now)`` judges one datagram and returns exactly one of

- ``Reply(data)``: a HelloVerifyRequest to send to ``peer`` (the ClientHello had no cookie,
  or one that did not verify: both are answered alike, RFC 6347 §4.2.1);
- ``Admit(...)``: the ClientHello carried a cookie that verified; a server connection is
  created from it and does not verify the cookie again;
- ``Drop(reason)``: ignore the datagram; ``reason`` is a ``DropReason``.

Nothing is stored per peer: the gate keeps only its configuration, counters, and the last
well-framed extensions block it saw (one bytes object, whoever sent it). Malformed input
never raises. A reply is never larger than the datagram that caused it.

On the wire it does what OpenSSL does: the HelloVerifyRequest's record version and
``server_version`` are DTLS 1.0 (RFC 6347 §4.2.1 says a server SHOULD use 1.0 there, so
that a 1.0 client understands it), its record epoch and sequence number are copied from
the ClientHello's record (§4.2.1, to avoid sequence number duplication), and its
message_seq is 0.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Callable, Hashable
from enum import StrEnum
from typing import TYPE_CHECKING

from dtlsgate._frozen import frozen
from dtlsgate.errors import ProtocolError, UsageError
from dtlsgate.gate.cookie import COOKIE_OVERHEAD, TAG_LENGTH
from dtlsgate.wire.enums import ContentType, HandshakeType, ProtocolVersion
from dtlsgate.wire.handshake import DTLS_HANDSHAKE_HEADER_LENGTH
from dtlsgate.wire.messages import (
    MAX_DTLS12_COOKIE_LENGTH,
    MAX_SESSION_ID_LENGTH,
    RANDOM_LENGTH,
    ClientHello,
)
from dtlsgate.wire.record import DTLS_RECORD_HEADER_LENGTH

if TYPE_CHECKING:
    from dtlsgate.config import ServerConfig


class DropReason(StrEnum):
    """Why the gate ignored a datagram. The values are stable: tests and logs use them."""

    RECORD_MALFORMED = "malformed record header"
    NOT_HANDSHAKE = "not a handshake record"
    NOT_DTLS = "record version is not DTLS"
    NONZERO_EPOCH = "record epoch is not 0"
    HANDSHAKE_MALFORMED = "malformed handshake header"
    NOT_CLIENT_HELLO = "handshake message is not a ClientHello"
    NOT_FIRST_FRAGMENT = "ClientHello fragment is not the first"
    FRAGMENT_TOO_SHORT = "first ClientHello fragment ends before the fields the cookie binds"
    CLIENT_HELLO_MALFORMED = "malformed ClientHello"
    CLIENT_VERSION = "ClientHello version is not DTLS"
    REPLY_TOO_LARGE = "HelloVerifyRequest would be larger than the ClientHello"


@frozen
class Reply:
    """Send ``data`` (one datagram) back to the peer; keep nothing."""

    data: bytes


@frozen
class Drop:
    """Ignore the datagram."""

    reason: DropReason


@frozen
class Admit:
    """A ClientHello whose cookie verified: everything a server connection needs to go on.

    - ``client_hello``: the decoded message, or None when only its first fragment was in
      the datagram (the connection reassembles the rest from later datagrams);
    - ``client_hello_message``: the ClientHello as it enters the handshake transcript
      (12-byte DTLS header with fragment_offset 0 and fragment_length = length, then the
      body exactly as received; RFC 6347 §4.2.6). For a fragment: the fragment as received.
    - ``message_seq``: the ClientHello's; the ServerHello continues from it (§4.2.2).
    - ``record_sequence_number``: the ClientHello record's; the ServerHello record reuses it
      (§4.2.1, "to avoid sequence number duplication").
    - ``datagram``: the whole datagram, for records that followed the ClientHello.
    """

    peer: Hashable | None
    client_hello: ClientHello | None
    client_hello_message: bytes
    client_version: int
    cookie: bytes
    message_seq: int
    record_sequence_number: int
    datagram: bytes

    @property
    def fragmented(self) -> bool:
        return self.client_hello is None

    @property
    def client_random(self) -> bytes:
        """The ClientHello's random (RFC 5246 §7.4.1.2), also when only its first fragment
        arrived: the gate admits a fragment only when it reaches past the random."""
        start = DTLS_HANDSHAKE_HEADER_LENGTH + 2  # after the header and client_version
        return self.client_hello_message[start : start + RANDOM_LENGTH]


GateResult = Reply | Admit | Drop

# Results are immutable, so one Drop per reason is shared, and a Reply is built without the
# frozen dataclass's per-field __setattr__ detour (a third of a microsecond per datagram).
_DROPS = {reason: Drop(reason) for reason in DropReason}
_new_object = object.__new__
# One join instead of a chain of concatenations (each + goes through the buffer protocol):
# the HelloVerifyRequest is five pieces.
_join = b"".join
_set_reply_data: Callable[[Reply, bytes], None] = vars(Reply)["data"].__set__


_HANDSHAKE = ContentType.HANDSHAKE
_CLIENT_HELLO = HandshakeType.CLIENT_HELLO
_RECORD_AND_HANDSHAKE = DTLS_RECORD_HEADER_LENGTH + DTLS_HANDSHAKE_HEADER_LENGTH
# Size of the HelloVerifyRequest datagram around its cookie: record header, handshake
# header, server_version and the cookie's length byte.
HELLO_VERIFY_REQUEST_OVERHEAD = _RECORD_AND_HANDSHAKE + 3
_DTLS10_BYTES = ProtocolVersion.DTLS10.to_bytes(2, "big")
# Every field at a fixed offset that the gate reads, up to the session_id's length: type,
# version major (minor skipped), epoch, sequence_number (skipped), length | msg_type, length
# (24 bits as 8 + 16), message_seq (skipped), fragment_offset (8 + 16), fragment_length
# (8 + 16) | client_version major (minor and random skipped), session_id length.
_FIXED = struct.Struct(">BBxH6xHBBH2xBHBHBx32xB")
_unpack_fixed = _FIXED.unpack_from
_FIXED_SIZE = _FIXED.size
_SESSION_ID_AT = _FIXED_SIZE - 1  # the session_id's length byte
assert _SESSION_ID_AT == _RECORD_AND_HANDSHAKE + 2 + RANDOM_LENGTH


def is_client_hello(datagram: bytes) -> bool:
    """Whether ``datagram`` starts with an epoch-0 handshake record holding a ClientHello
    (RFC 6347 §4.1, §4.2.2): what a client that restarted sends to the address of an
    established association (§4.2.8). A cheap look at three header bytes for the adapters'
    routing; the gate judges the rest."""
    return (
        len(datagram) > _RECORD_AND_HANDSHAKE
        and datagram[0] == _HANDSHAKE
        and datagram[3] == 0
        and datagram[4] == 0
        and datagram[DTLS_RECORD_HEADER_LENGTH] == _CLIENT_HELLO
    )


class Gate:
    """Judges ClientHellos statelessly for one ``ServerConfig`` (see the module docstring).

    ``replies``, ``admits`` and ``drops`` (per ``DropReason``) count outcomes, bounded by the
    number of distinct reasons; besides them only the last well-framed extensions block
    changes across calls (it spares a flood's identical blocks the framing walk).
    """

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.replies = 0
        self.admits = 0
        self.drops: Counter[DropReason] = Counter()
        self._generate = config.cookie_generate
        self._verify = config.cookie_verify
        self._jar = config.cookie_jar if self._generate is None else None
        # The last extensions block found well framed (never empty: an empty block is not
        # one), bounded by the largest ClientHello the gate reads.
        self._framed_extensions = b""

    @property
    def stats(self) -> Counter[str]:
        """All outcomes so far: ``"reply"``, ``"admit"`` and one count per ``DropReason``."""
        counts: Counter[str] = Counter({"reply": self.replies, "admit": self.admits})
        counts.update({str(reason): n for reason, n in self.drops.items()})
        return counts

    def receive(self, datagram: bytes, peer: Hashable | None, now: float) -> GateResult:
        """Judge one datagram from ``peer`` at time ``now`` (seconds since the epoch)."""
        result = self.judge(datagram, peer, now)
        if type(result) is bytes:
            reply = _new_object(Reply)  # a Reply without calling its constructor (see above)
            _set_reply_data(reply, result)
            return reply
        return result  # type: ignore[return-value]

    def judge(self, datagram: bytes, peer: Hashable | None, now: float) -> bytes | Admit | Drop:
        """``receive()`` for the adapters' hot loops: a reply comes back as the datagram
        itself (``bytes``) instead of a ``Reply`` around it; an ``Admit`` or a ``Drop`` as
        from ``receive()``. Under a flood every reply is one object fewer to make and read."""
        d = datagram if type(datagram) is bytes else bytes(datagram)
        # The hot path of a listener under a flood: parsed by hand with every length checked
        # against its enclosing end before use (the equivalent of nested bounded readers,
        # without their call overhead). The full ClientHello is decoded by the Reader-based
        # codec on Admit, and a property test checks that both agree.
        size = len(d)
        if size < DTLS_RECORD_HEADER_LENGTH:
            return self._drop(DropReason.RECORD_MALFORMED)
        # Every field at a fixed offset, up to the session_id's length, in one unpack; a
        # shorter datagram is padded for the unpack only, and every field is used only after
        # the check that the datagram really holds it.
        (
            content_type,
            version_major,
            epoch,
            record_length,
            msg_type,
            length_high,
            length_low,
            offset_high,
            offset_low,
            fragment_high,
            fragment_low,
            client_major,
            sid_len,
        ) = _unpack_fixed(d if size >= _FIXED_SIZE else d.ljust(_FIXED_SIZE, b"\x00"))
        # DTLSPlaintext header (RFC 6347 §4.1): type, version, epoch, sequence_number, length.
        record_end = DTLS_RECORD_HEADER_LENGTH + record_length
        if record_end > size:
            return self._drop(DropReason.RECORD_MALFORMED)
        if content_type != _HANDSHAKE:
            return self._drop(DropReason.NOT_HANDSHAKE)
        if version_major != 0xFE:
            return self._drop(DropReason.NOT_DTLS)
        if epoch:
            return self._drop(DropReason.NONZERO_EPOCH)
        # Handshake header (RFC 6347 §4.2.2) at the start of the first record.
        if record_end < _RECORD_AND_HANDSHAKE:
            return self._drop(DropReason.HANDSHAKE_MALFORMED)
        if msg_type != _CLIENT_HELLO:
            return self._drop(DropReason.NOT_CLIENT_HELLO)
        fragment_length = (fragment_high << 16) | fragment_low
        end = _RECORD_AND_HANDSHAKE + fragment_length
        fragment_offset = (offset_high << 16) | offset_low
        length = (length_high << 16) | length_low
        if end > record_end or fragment_offset + fragment_length > length:
            return self._drop(DropReason.HANDSHAKE_MALFORMED)
        # A stateless gate cannot reassemble (RFC 6347 §4.2.1; DTLSv1_listen(3)).
        if fragment_offset:
            return self._drop(DropReason.NOT_FIRST_FRAGMENT)
        whole = fragment_length == length
        # ClientHello up to the extensions (RFC 6347 §4.2.1): client_version, random,
        # session_id<0..32>, cookie<0..2^8-1>, cipher_suites<2..2^16-2>,
        # compression_methods<1..2^8-1>. A field the message ends before is a malformed
        # ClientHello, or a first fragment too short for the gate (``_drop_short``).
        if end <= _SESSION_ID_AT:
            return self._drop_short(whole)
        if client_major != 0xFE:
            return self._drop(DropReason.CLIENT_VERSION)
        if sid_len > MAX_SESSION_ID_LENGTH:
            return self._drop(DropReason.CLIENT_HELLO_MALFORMED)
        cookie_at = _SESSION_ID_AT + 1 + sid_len
        if cookie_at >= end:
            return self._drop_short(whole)
        cookie_end = cookie_at + 1 + d[cookie_at]
        if cookie_end + 2 > end:
            return self._drop_short(whole)
        suites_len = d[cookie_end] * 256 + d[cookie_end + 1]
        if suites_len < 2 or suites_len & 1:
            return self._drop(DropReason.CLIENT_HELLO_MALFORMED)
        compression_at = cookie_end + 2 + suites_len
        if compression_at >= end:
            return self._drop_short(whole)
        compression_len = d[compression_at]
        if not compression_len:
            return self._drop(DropReason.CLIENT_HELLO_MALFORMED)
        pos = compression_at + 1 + compression_len
        if pos > end:
            return self._drop_short(whole)
        if whole and pos != end:
            # Extensions block (RFC 5246 §7.4.1.2): exactly fills the message, and each
            # extension's length fits in it. Bodies and duplicates are checked on Admit.
            # Whether a block is well framed depends on its bytes alone, and a flood's
            # ClientHellos share one: the same bytes as the last good block need no walk.
            framed = self._framed_extensions
            if end - pos != len(framed) or not d.startswith(framed, pos):
                if pos + 2 > end or pos + 2 + d[pos] * 256 + d[pos + 1] != end:
                    return self._drop(DropReason.CLIENT_HELLO_MALFORMED)
                # at: each extension's length field (2 bytes after its start), while a
                # whole 4-byte extension header fits before the end.
                at = pos + 4
                last = end - 1
                while at < last:
                    at += (d[at] << 8 | d[at + 1]) + 4
                if at != end + 2:
                    return self._drop(DropReason.CLIENT_HELLO_MALFORMED)
                self._framed_extensions = d[pos:end]
        # RFC 6347 §4.2.1: the fields the second ClientHello must repeat.
        bound = d[_RECORD_AND_HANDSHAKE:cookie_at] + d[cookie_end:pos]
        if cookie_end > cookie_at + 1 and self._cookie_ok(
            peer, now, d[cookie_at + 1 : cookie_end], bound
        ):
            return self._admit(d, end, whole, peer, d[cookie_at + 1 : cookie_end])
        # No cookie, or one that did not verify: both get a HelloVerifyRequest (§4.2.1).
        jar = self._jar
        if jar is not None:
            since, until, head, inner, outer = jar.minting
            if since <= now < until and type(peer) is tuple and len(peer) >= 2:
                # jar.mint(peer, now, bound) inlined for a socket address within the
                # second the jar is minting in: the flood's hot path (cookie.Minting).
                h = inner.copy()
                h.update(f"{peer[0]}\x00{peer[1]}".encode() + bound)
                o = outer.copy()
                o.update(h.digest())
                self.replies += 1
                return _join((_HVR_HEAD, d[3:11], _JAR_HVR_MIDDLE, head, o.digest()[:TAG_LENGTH]))
            cookie = jar.mint(peer, now, bound)
        else:
            cookie = self._generate_cookie(peer)
            if HELLO_VERIFY_REQUEST_OVERHEAD + len(cookie) > size:
                return self._drop(DropReason.REPLY_TOO_LARGE)
        # The jar's cookie (21 bytes) always fits: the smallest ClientHello that reaches
        # this line is 67 bytes, its HelloVerifyRequest 49 (a property test checks it).
        self.replies += 1
        return _join((_HVR_HEAD, d[3:11], _HVR_MIDDLES[len(cookie)], cookie))

    def _drop(self, reason: DropReason) -> Drop:
        self.drops[reason] += 1
        return _DROPS[reason]

    def _drop_short(self, whole: bool) -> Drop:
        """The ClientHello ends before a field the gate reads: malformed when the datagram
        holds the whole message, else a first fragment too short to bind the cookie to."""
        return self._drop(
            DropReason.CLIENT_HELLO_MALFORMED if whole else DropReason.FRAGMENT_TOO_SHORT
        )

    def _cookie_ok(self, peer: Hashable | None, now: float, cookie: bytes, bound: bytes) -> bool:
        if self._jar is not None:
            return self._jar.verify(peer, now, cookie, bound) is not None
        assert self._verify is not None  # ServerConfig guarantees the pair
        return bool(self._verify(peer, cookie))

    def _generate_cookie(self, peer: Hashable | None) -> bytes:
        assert self._generate is not None  # ServerConfig guarantees the pair
        cookie = self._generate(peer)
        if not isinstance(cookie, bytes) or len(cookie) > MAX_DTLS12_COOKIE_LENGTH:
            raise UsageError("cookie_generate must return at most 255 bytes")
        return cookie

    def _admit(
        self, d: bytes, end: int, whole: bool, peer: Hashable | None, cookie: bytes
    ) -> Admit | Drop:
        start = _RECORD_AND_HANDSHAKE
        message_seq = (d[17] << 8) | d[18]
        hello: ClientHello | None = None
        if whole:
            try:
                hello = ClientHello.decode(d[start:end], dtls=True)
            except ProtocolError:
                return self._drop(DropReason.CLIENT_HELLO_MALFORMED)
        # The handshake message as received: for a whole ClientHello (fragment_offset 0,
        # fragment_length = length) that is already the transcript's form (RFC 6347
        # §4.2.6); for a first fragment, the fragment.
        message = d[DTLS_RECORD_HEADER_LENGTH:end]
        self.admits += 1
        return Admit(
            peer=peer,
            client_hello=hello,
            client_hello_message=message,
            client_version=(d[start] << 8) | d[start + 1],
            cookie=cookie,
            message_seq=message_seq,
            record_sequence_number=int.from_bytes(d[5:11], "big"),
            datagram=d,
        )


def _hello_verify_request_middle(cookie_length: int) -> bytes:
    """What lies between the copied epoch/sequence number and the cookie in a
    HelloVerifyRequest datagram: record length, handshake header, server_version and the
    cookie's length. It depends on the cookie's length only, so it is made once per length."""
    body_length = (3 + cookie_length).to_bytes(3, "big")
    return (
        (DTLS_HANDSHAKE_HEADER_LENGTH + 3 + cookie_length).to_bytes(2, "big")
        + bytes((HandshakeType.HELLO_VERIFY_REQUEST,))
        + body_length
        + b"\x00\x00"  # message_seq 0
        + b"\x00\x00\x00"  # fragment_offset 0
        + body_length  # fragment_length: the whole message
        + _DTLS10_BYTES  # server_version
        + bytes((cookie_length,))
    )


_HVR_MIDDLES = tuple(_hello_verify_request_middle(n) for n in range(MAX_DTLS12_COOKIE_LENGTH + 1))
_HVR_HEAD = bytes((ContentType.HANDSHAKE,)) + _DTLS10_BYTES
_JAR_HVR_MIDDLE = _HVR_MIDDLES[COOKIE_OVERHEAD]  # a CookieJar cookie carries no payload here


def encode_hello_verify_request(epoch_and_sequence: bytes, cookie: bytes) -> bytes:
    """One datagram: a HelloVerifyRequest record (RFC 6347 §4.2.1) whose epoch and sequence
    number (8 bytes) are the ClientHello record's, version DTLS 1.0, message_seq 0."""
    return _HVR_HEAD + epoch_and_sequence + _HVR_MIDDLES[len(cookie)] + cookie
