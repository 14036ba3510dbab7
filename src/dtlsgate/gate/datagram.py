"""The stateless gate: OpenSSL's ``DTLSv1_listen()`` as a pure function.

``Gate(config).receive(datagram, peer, now)`` judges one datagram and returns exactly one of
(`dtlsgate.gate.results`)

- ``Reply(data)``: a HelloVerifyRequest to send to ``peer`` (the ClientHello had no cookie,
  or one that did not verify: both are answered alike, RFC 6347 §4.2.1);
- ``Admit(...)``: the ClientHello carried a cookie that verified; a server connection is
  created from it and does not verify the cookie again;
- ``Drop(reason)``: ignore the datagram; ``reason`` is a ``DropReason``.

Nothing is stored per peer for a ClientHello that fits in a datagram: the gate keeps only
its configuration, counters and the reassembly table for fragmented ones. Malformed
input never raises. A reply is never larger than the datagram that caused it.

What is judged: the datagram's first record, an epoch-0 DTLS handshake record holding one
ClientHello fragment and nothing else, with message_seq at most 2 and fragment_offset 0
(``DTLSv1_listen`` drops the rest alike: "length mismatch", "invalid sequence number",
"fragmented ClientHello"). Records after the first stay in the datagram for the connection.
A first fragment is judged when it holds the whole cookie: the cookie binds only the fields
before it (`dtlsgate.gate.cookie`). A whole ClientHello is read the same way, up to the end
of its cookie, before it is answered, as ``DTLSv1_listen`` reads it: a HelloVerifyRequest
depends on nothing after the cookie, is never larger than the datagram and keeps nothing,
and a first fragment ending after the cookie is answered unseen anyway. Its framing after
the cookie is checked when ClientHello2 is decoded whole, before it is admitted (a
malformed one is then dropped, ``CLIENT_HELLO_MALFORMED``).

A whole ClientHello offering DTLS 1.3 in supported_versions (when ``config.dtls_versions``
has it) is answered with a stateless HelloRetryRequest instead (`dtlsgate.gate.dtls13`,
RFC 9147 §5.1) and admitted as a `Dtls13Admit`. While DTLS 1.3 is on, a fragment of a
ClientHello without a legacy cookie is held in a bounded reassembly table
(`dtlsgate.gate.reassembly`: its cookie extension may be in a later fragment) and the
whole message judged when it completes: the gate's one state, bounded whatever the input.
A DTLS 1.2-only gate keeps nothing and drops such fragments.

On the wire it does what OpenSSL does: the HelloVerifyRequest's record version and
``server_version`` are DTLS 1.0 (RFC 6347 §4.2.1 says a server SHOULD use 1.0 there, so
that a 1.0 client understands it), its record epoch and sequence number are copied from
the ClientHello's record (§4.2.1, to avoid sequence number duplication), and its
message_seq is 0.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

from dtlsgate._memo import Memo
from dtlsgate.errors import DecodeError, ProtocolError, UsageError
from dtlsgate.gate.reassembly import (
    MAX_FRAGMENT_RECORDS_PER_DATAGRAM,
    MAX_REASSEMBLED_CLIENT_HELLO,
    ClientHelloReassembly,
)
from dtlsgate.gate.results import (
    Admit,
    Drop,
    DropReason,
    Dtls13Admit,
    GateCounters,
    GateResult,
    Reply,
)
from dtlsgate.wire.buffer import Reader
from dtlsgate.wire.client_hello_peek import (
    MAX_CLIENT_HELLO_MESSAGE_SEQ,
    ClientHelloRecordPeek,
    client_hello_from_peek,
    peek_client_hello,
    peek_client_hello_record,
)
from dtlsgate.wire.enums import ContentType, HandshakeType, ProtocolVersion
from dtlsgate.wire.handshake import (
    DTLS_HANDSHAKE_HEADER_LENGTH,
    DtlsHandshakeHeader,
    encode_dtls_handshake,
)
from dtlsgate.wire.messages import (
    MAX_DTLS12_COOKIE_LENGTH,
    MAX_KNOWN_OFFERS,
    RANDOM_LENGTH,
    ClientHello,
    HelloVerifyRequest,
)
from dtlsgate.wire.record import (
    DTLS_RECORD_HEADER_LENGTH,
    DTLS_VERSION_MAJOR,
    DtlsRecord,
    encode_dtls_record,
    split_dtls_records,
)

if TYPE_CHECKING:
    from dtlsgate.config import ServerConfig
    from dtlsgate.gate.dtls13 import DtlsGate13
    from dtlsgate.handshake.dtls12.server import ServerContext as ServerContext12
    from dtlsgate.handshake.tls13.server import ServerContext

__all__ = [
    "Admit",
    "Drop",
    "DropReason",
    "Dtls13Admit",
    "Gate",
    "GateResult",
    "Reply",
    "is_client_hello",
]

# The first look for a DTLS 1.3 offer in a cookie-less ClientHello: its version's two bytes
# anywhere in the datagram. A compiled search, not ``bytes.find``: for a two-byte needle
# ``find`` steps through the datagram testing each candidate's next byte against a filter,
# about twice the time per datagram of the regular expression engine's scan for the first
# byte (0xFE, which a DTLS 1.2 ClientHello has only in its two version fields), same
# answer (bench/RESULTS.md, listen14).
_DTLS13_BYTES = ProtocolVersion.DTLS13.to_bytes(2, "big")
_DTLS13_VERSION = re.compile(re.escape(_DTLS13_BYTES))
# Before that look, a cheaper one: whether the datagram holds the version's second byte
# (0xFC) at all. ``in`` with a byte value is one ``memchr`` through the bytes type's own
# membership slot, with no arguments to parse and no search state to set up (about 20 ns
# against the compiled search's 170 on listen.py's 205-byte ClientHello). A DTLS 1.2
# ClientHello without that byte is answered without the search: its arbitrary bytes are
# the random (32 random bytes hold 0xFC about one time in eight) and, when it resumes, a
# session_id or ticket. With the byte, the search decides, as before, about 20 ns later
# (bench/RESULTS.md, listen16).
_DTLS13_SECOND_BYTE = _DTLS13_BYTES[1]
# Where that look starts: an offer of DTLS 1.3 is an entry of supported_versions, an
# extension after the cookie (RFC 9147 §5.3), so it is never in the record and handshake
# headers, client_version or random. The scan skips those 59 bytes, the two version fields
# among them too, at whose 0xFE it would stop to test the next byte (bench/RESULTS.md,
# listen15).
_DTLS13_LOOK_FROM = DTLS_RECORD_HEADER_LENGTH + DTLS_HANDSHAKE_HEADER_LENGTH + 2 + RANDOM_LENGTH


def is_client_hello(datagram: bytes) -> bool:
    """Whether ``datagram`` starts with an epoch-0 handshake record holding a ClientHello
    (RFC 6347 §4.1, §4.2.2): what a client that restarted sends to the address of an
    established association (§4.2.8). A cheap look at header bytes for the adapters'
    routing; the gate judges the rest. The epoch's two bytes are tested first: the adapters
    ask this of every datagram of an established association, whose records are of a
    later epoch (DTLS 1.2) or have a unified header, whose bytes there are the sequence
    number and length (DTLS 1.3), so two byte comparisons answer most of them before the
    content type's and message type's enum members are read (each a call through the enum
    class's ``__getattr__`` hook on Python 3.11: bench/RESULTS.md, hrr16)."""
    return (
        len(datagram) > DTLS_RECORD_HEADER_LENGTH + DTLS_HANDSHAKE_HEADER_LENGTH
        and datagram[3] == 0
        and datagram[4] == 0
        and datagram[0] == ContentType.HANDSHAKE
        and datagram[DTLS_RECORD_HEADER_LENGTH] == HandshakeType.CLIENT_HELLO
    )


class Gate(GateCounters):
    """Judges ClientHellos statelessly for one ``ServerConfig`` (see the module docstring).

    ``replies``, ``admits`` and ``drops`` (per ``DropReason``) count outcomes
    (`GateCounters`); they are all that changes across calls."""

    def __init__(self, config: ServerConfig) -> None:
        super().__init__()
        if config.cookie_jar is None:  # pragma: no cover - ServerConfig always makes one
            raise UsageError("the gate needs a cookie jar")
        self.config = config
        self._jar = config.cookie_jar
        self._replies = HelloVerifyRequests()
        # The offers of the ClientHellos admitted lately, each decoded once
        # (`ClientHello.with_offer`, MAX_KNOWN_OFFERS).
        self._offers: Memo[bytes, ClientHello] = Memo(MAX_KNOWN_OFFERS)
        self._cookie_generate = config.cookie_generate
        self._dtls12 = ProtocolVersion.DTLS12 in config.dtls_versions
        # The config prepared for each version's handshakes, made at the first use and
        # shared by the connections this gate's admits make (`connection.datagram13.accept`);
        # DTLS 1.3's inside the gate's DTLS 1.3 half (its HelloRetryRequests use it too).
        self._context12: ServerContext12 | None = None
        self._gate13: DtlsGate13 | None = None
        # Fragmented cookie-less ClientHellos, while DTLS 1.3 is on: the gate's one state.
        self._reassembly = (
            ClientHelloReassembly(ipv6_prefix=config.ipv6_prefix_length)
            if ProtocolVersion.DTLS13 in config.dtls_versions
            else None
        )

    @property
    def dtls12_context(self) -> ServerContext12:
        """The config prepared for DTLS 1.2 handshakes, for the connections of `Admit`s."""
        if self._context12 is None:
            from dtlsgate.handshake.dtls12.server import ServerContext as ServerContext12

            self._context12 = ServerContext12(self.config)
        return self._context12

    @property
    def dtls13_context(self) -> ServerContext:
        """The config prepared for DTLS 1.3 handshakes: the gate's stateless
        HelloRetryRequests, and the connections of `Dtls13Admit`s. Made at the first use: a
        DTLS 1.2-only gate never loads the TLS 1.3 engine."""
        return self._half13().context

    def _half13(self) -> DtlsGate13:
        """The gate's DTLS 1.3 half, made at the first DTLS 1.3 hello or context asked for."""
        if self._gate13 is None:
            from dtlsgate.gate.dtls13 import DtlsGate13

            self._gate13 = DtlsGate13(self.config)
        return self._gate13

    @property
    def reassembly(self) -> ClientHelloReassembly | None:
        """The fragmented ClientHellos held until whole (None without DTLS 1.3)."""
        return self._reassembly

    def receive(self, datagram: bytes, peer: Hashable | None, now: float) -> GateResult:
        """Judge one datagram from ``peer`` at time ``now`` (seconds since the epoch)."""
        result = self.judge(datagram, peer, now)
        return Reply(result) if isinstance(result, bytes) else result

    def judge(
        self, datagram: bytes, peer: Hashable | None, now: float
    ) -> bytes | Admit | Dtls13Admit | Drop:
        """``receive()`` with a reply as the datagram to send (``bytes``) instead of a
        ``Reply`` around it: what the adapters' loops send."""
        # A bytearray or memoryview is copied (what the gate keeps or returns must not change
        # under it); bytes, what the adapters read, are used as they are.
        data = datagram if type(datagram) is bytes else bytes(datagram)
        hello = peek_client_hello_record(data)
        if hello is None:  # not the first fragment of a ClientHello that can be judged
            if self._reassembly is not None:  # a later fragment of a DTLS 1.3 one, maybe
                return self._reassemble(data, peer, now)
            return self._drop(self._why_not_judged(data))
        # A record not of DTLS or not in epoch 0, or a ClientHello whose message_seq is above
        # MAX_CLIENT_HELLO_MESSAGE_SEQ, was not read (None above): NOT_DTLS, NONZERO_EPOCH
        # and MESSAGE_SEQ, from the full decoders. client_version's first byte is the first
        # of ``bound`` (the peek makes no int of it).
        if hello.bound[0] != DTLS_VERSION_MAJOR:
            return self._drop(DropReason.CLIENT_VERSION)
        cookie = hello.cookie
        if not cookie and self._reassembly is not None:  # while DTLS 1.3 is on
            if not hello.whole:
                # A DTLS 1.3 ClientHello's cookie is in a later fragment (RFC 9147 §5.1):
                # reassembled, bounded (`dtlsgate.gate.reassembly`), then judged whole.
                return self._reassemble(data, peer, now)
            # It may offer DTLS 1.3 (cheap looks first; its legacy_cookie is always
            # empty): RFC 9147 §5.1, a stateless HelloRetryRequest, when it does. The
            # version's second byte by ``in`` (a byte value: an int operand), then its two
            # bytes by the compiled search. Not the two bytes by ``in``: with a bytes
            # operand ``bytes.__contains__`` first tries it as an integer, raising and
            # clearing a TypeError per ClientHello.
            if (
                _DTLS13_SECOND_BYTE in data
                and _DTLS13_VERSION.search(data, _DTLS13_LOOK_FROM) is not None
            ):
                result13 = self._dtls13(data, peer, now, hello)
                if result13 is not None:
                    return result13
        if not self._dtls12:
            return self._drop(DropReason.VERSION_DISABLED)
        if cookie and self._cookie_verifies(peer, now, hello):
            return self._admit(data, hello, peer)
        # No cookie, or one that did not verify: both get a HelloVerifyRequest (§4.2.1).
        if self._cookie_generate is None:
            cookie = self._jar.mint(peer, now, hello.bound)
        else:
            cookie = self._generated_cookie(peer)
        reply = self._replies.build(hello.sequence_number, cookie)
        if len(reply) > len(data):  # never amplify (DESIGN.md, the gate contract)
            return self._drop(DropReason.REPLY_TOO_LARGE)
        self.replies += 1
        return reply

    def _dtls13(
        self, data: bytes, peer: Hashable | None, now: float, hello: ClientHelloRecordPeek
    ) -> bytes | Dtls13Admit | Drop | None:
        """`dtlsgate.gate.dtls13` judging a whole ClientHello offering DTLS 1.3 (the first
        record's, which the peek read: a fragment went to the reassembly table before);
        None when it does not (a DTLS 1.2 one: judged as DTLS 1.2). Through the gate's
        DTLS 1.3 half, made (and its module imported) at the first: a DTLS 1.2-only gate
        never loads the TLS 1.3 engine."""
        # The record's length field: the peek read the body as filling the record.
        end = DTLS_RECORD_HEADER_LENGTH + ((data[11] << 8) | data[12])
        body = data[DTLS_RECORD_HEADER_LENGTH + DTLS_HANDSHAKE_HEADER_LENGTH : end]
        result = (self._gate13 or self._half13()).judge_hello(
            hello.sequence_number,
            hello.message_seq,
            body,
            data,
            peer,
            now,
        )
        if result is None:
            return None
        if isinstance(result, Drop):
            return self._drop(result.reason)
        if isinstance(result, Dtls13Admit):
            self.admits += 1
        else:
            self.replies += 1
        return result

    def _reassemble(
        self, data: bytes, peer: Hashable | None, now: float
    ) -> bytes | Admit | Dtls13Admit | Drop:
        """Hold a fragment of a cookie-less ClientHello; once the message is whole, judge
        it as one datagram: the whole ClientHello in the last fragment's record (its
        sequence number, for the reply's), then the records after it in that datagram.
        The reply is no larger than that whole message, so no larger than the fragments
        that brought it."""
        assert self._reassembly is not None
        # A datagram may carry several records (RFC 6347 §4.1.1), so several fragments of
        # one ClientHello: OpenSSL's DTLS 1.2 client sends a long one (a ticket's) that way.
        incomplete = None  # why the datagram is dropped, once a fragment of it is held
        for _ in range(MAX_FRAGMENT_RECORDS_PER_DATAGRAM):
            first = self._client_hello_fragment(data)
            if isinstance(first, DropReason):
                return self._drop(incomplete or first)
            record, header, fragment = first
            if header.fragment_length == header.length:  # whole, but not what the peek takes
                return self._drop(incomplete or self._why_not_judged(data))
            if header.length > MAX_REASSEMBLED_CLIENT_HELLO:
                return self._drop(DropReason.CLIENT_HELLO_TOO_LONG)
            if header.fragment_offset + header.fragment_length > header.length:
                return self._drop(DropReason.HANDSHAKE_MALFORMED)
            body = self._reassembly.add(
                peer, header.message_seq, header.length, header.fragment_offset, fragment, now
            )
            rest = data[DTLS_RECORD_HEADER_LENGTH + len(record.fragment) :]
            if body is not None:
                break
            if not rest:
                return self._drop(DropReason.CLIENT_HELLO_INCOMPLETE)
            incomplete = DropReason.CLIENT_HELLO_INCOMPLETE
            data = rest  # the datagram's next record: the next fragment, maybe
        else:
            return self._drop(DropReason.CLIENT_HELLO_INCOMPLETE)
        whole = encode_dtls_handshake(HandshakeType.CLIENT_HELLO, body, header.message_seq)
        datagram = encode_dtls_record(
            ContentType.HANDSHAKE, record.version, 0, record.sequence_number, whole
        )
        return self.judge(datagram + rest, peer, now)  # whole now: judged, never held

    def _why_not_judged(self, data: bytes) -> DropReason:
        """Why ``data`` is dropped when its first record is not the first fragment of a
        ClientHello that `peek_client_hello_record` reads: what the full decoders find
        first, in DTLSv1_listen's order (record, handshake header, ClientHello)."""
        first = self._first_fragment(data)
        if isinstance(first, DropReason):
            return first
        _record, header, body = first
        try:
            hello = peek_client_hello(body, whole=header.fragment_length == header.length)
        except DecodeError:
            return DropReason.CLIENT_HELLO_MALFORMED
        if hello is None:  # a stateless gate cannot reassemble (RFC 6347 §4.2.1)
            return DropReason.FRAGMENT_TOO_SHORT
        # The full decoders accept what the peek did not: the two readers disagree (the
        # test pins them together), and dropping is the safe side.
        return DropReason.CLIENT_HELLO_MALFORMED  # pragma: no cover

    def _first_fragment(
        self, data: bytes
    ) -> tuple[DtlsRecord, DtlsHandshakeHeader, bytes] | DropReason:
        """The datagram's first record, its handshake header and fragment, when they can be
        the first fragment of a ClientHello to judge; else why not."""
        first = self._client_hello_fragment(data)
        if isinstance(first, DropReason):
            return first
        if first[1].fragment_offset:  # only the first fragment can hold the cookie
            return DropReason.NOT_FIRST_FRAGMENT
        return first

    def _client_hello_fragment(
        self, data: bytes
    ) -> tuple[DtlsRecord, DtlsHandshakeHeader, bytes] | DropReason:
        """The datagram's first record, its handshake header and fragment, when the record
        holds one fragment of a ClientHello (any offset); else why not."""
        record = next(split_dtls_records(data), None)  # DTLSPlaintext (RFC 6347 §4.1)
        if record is None:
            return DropReason.RECORD_MALFORMED
        if record.content_type != ContentType.HANDSHAKE:
            return DropReason.NOT_HANDSHAKE
        if record.version >> 8 != DTLS_VERSION_MAJOR:
            return DropReason.NOT_DTLS
        if record.epoch:
            return DropReason.NONZERO_EPOCH
        r = Reader(record.fragment)
        try:
            header = DtlsHandshakeHeader.decode(r)  # RFC 6347 §4.2.2
        except DecodeError:
            return DropReason.HANDSHAKE_MALFORMED
        if header.msg_type != HandshakeType.CLIENT_HELLO:
            return DropReason.NOT_CLIENT_HELLO
        if header.message_seq > MAX_CLIENT_HELLO_MESSAGE_SEQ:
            return DropReason.MESSAGE_SEQ
        after_header = r.remaining()
        if header.fragment_length > after_header:
            return DropReason.HANDSHAKE_MALFORMED
        if header.fragment_length < after_header:  # DTLSv1_listen: "length mismatch"
            return DropReason.RECORD_TRAILING_DATA
        return record, header, r.rest()

    def _generated_cookie(self, peer: Hashable | None) -> bytes:
        """The application's cookie (``config.cookie_generate``), checked."""
        assert self._cookie_generate is not None
        cookie = self._cookie_generate(peer)
        if not isinstance(cookie, bytes) or len(cookie) > MAX_DTLS12_COOKIE_LENGTH:
            raise UsageError("cookie_generate must return at most 255 bytes")
        return cookie

    def _cookie_verifies(
        self, peer: Hashable | None, now: float, hello: ClientHelloRecordPeek
    ) -> bool:
        verify = self.config.cookie_verify
        if verify is None:
            return self._jar.verify(peer, now, hello.cookie, hello.bound) is not None
        return bool(verify(peer, hello.cookie))

    def _admit(
        self, data: bytes, hello: ClientHelloRecordPeek, peer: Hashable | None
    ) -> Admit | Drop:
        # The peek read the first record and its handshake header, and judge() checked
        # them (a handshake record of epoch 0 whose one fragment, the first of a
        # ClientHello, fills it): what the Admit needs of them is in the peek.
        fragment = data[
            DTLS_RECORD_HEADER_LENGTH : DTLS_RECORD_HEADER_LENGTH + _record_length(data)
        ]
        decoded: ClientHello | None = None  # a first fragment: the connection reassembles
        if hello.whole:
            try:
                decoded = client_hello_from_peek(
                    hello, fragment[DTLS_HANDSHAKE_HEADER_LENGTH:], self._offers
                )
            except ProtocolError:
                return self._drop(DropReason.CLIENT_HELLO_MALFORMED)
        self.admits += 1
        # Its fields in order, not by keyword: a class called with keywords builds a dict
        # of them to unpack again, every ClientHello admitted.
        return Admit(
            peer,
            decoded,  # client_hello
            # client_hello_message: the fragment as received; for a whole ClientHello
            # (fragment_offset 0, fragment_length = length) already the transcript's form
            # (RFC 6347 §4.2.6).
            fragment,
            hello.message_seq,
            hello.sequence_number,  # record_sequence_number
            data,  # datagram
        )


def _record_length(datagram: bytes) -> int:
    """The length field of ``datagram``'s first DTLSPlaintext header (RFC 6347 §4.1)."""
    return (datagram[11] << 8) | datagram[12]


class HelloVerifyRequests:
    """The HelloVerifyRequests of one gate (RFC 6347 §4.2.1): the record of every reply with
    a cookie of a given length is made once with the codec, the first time a cookie of that
    length is sent (at most 256 lengths; the default jar's cookies all have one), and each
    reply is that record with its sequence number and cookie put in."""

    def __init__(self) -> None:
        # Per cookie length (0 to 255, the index): the record up to its epoch, from its
        # length field (after the sequence number) up to the cookie, and the packing of a
        # reply from those two, epoch || sequence_number (one 64-bit integer) and the cookie;
        # None until a cookie of that length is sent.
        self._records: list[tuple[bytes, bytes, Callable[..., bytes]] | None] = [None] * (
            MAX_DTLS12_COOKIE_LENGTH + 1
        )

    def build(self, sequence_number: int, cookie: bytes) -> bytes:
        """One datagram: a HelloVerifyRequest record carrying ``cookie`` (at most 255 bytes),
        with the epoch (0) and ``sequence_number`` (48 bits) of the ClientHello's record,
        version DTLS 1.0 in the record and in server_version, message_seq 0."""
        try:
            parts = self._records[len(cookie)]
        except IndexError:
            raise UsageError("a HelloVerifyRequest's cookie is at most 255 bytes") from None
        if parts is None:
            before_epoch, after_sequence_number = _record_around_cookie(len(cookie))
            layout = f">{len(before_epoch)}sQ{len(after_sequence_number)}s{len(cookie)}s"
            parts = (before_epoch, after_sequence_number, struct.Struct(layout).pack)
            self._records[len(cookie)] = parts
        before_epoch, after_sequence_number, pack = parts
        if sequence_number >> 48:  # also a negative one
            raise UsageError("sequence_number out of range")
        # epoch (2, here 0) || sequence_number (6), one 64-bit field: RFC 6347 §4.1.
        return pack(before_epoch, sequence_number, after_sequence_number, cookie)


def _record_around_cookie(cookie_length: int) -> tuple[bytes, bytes]:
    """The HelloVerifyRequest record for a cookie of ``cookie_length`` bytes, made by the
    codec (epoch and sequence number 0, the cookie zeros), in the two parts that do not
    change: the record header up to its epoch (type and version), and from the record's
    length field to the cookie (its last field): the handshake header, server_version and
    the cookie's length byte."""
    body = HelloVerifyRequest(ProtocolVersion.DTLS10, bytes(cookie_length)).encode()
    message = encode_dtls_handshake(HandshakeType.HELLO_VERIFY_REQUEST, body, 0)
    record = encode_dtls_record(ContentType.HANDSHAKE, ProtocolVersion.DTLS10, 0, 0, message)
    epoch_at = DTLS_RECORD_HEADER_LENGTH - 10  # epoch (2), sequence_number (6), length (2)
    return record[:epoch_at], record[epoch_at + 8 : len(record) - cookie_length]
