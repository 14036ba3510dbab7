"""The stateless HelloRetryRequest of DTLS 1.3 (RFC 9147 §5.1), for the datagram gate.

A ClientHello that offers DTLS 1.3 in supported_versions is answered the way the stream
gate (`dtlsgate.gate.stream`, OpenSSL's ``SSL_stateless``) answers a TLS 1.3 one, on a
datagram:

- without a cookie: a HelloRetryRequest whose cookie extension carries, integrity-protected
  by the config's `CookieJar` and bound to the peer and to the fields ClientHello2 must
  repeat, the server's choice (suite, group, whether the HRR asked for a key share) and
  Hash(ClientHello1): the stream gate's `CookieState` format, so the server rebuilds the
  transcript from ClientHello2 alone (RFC 8446 §4.4.1), and the application's part from
  ``stateless_cookie_generate`` (checked by ``stateless_cookie_verify`` on ClientHello2; the
  DTLS 1.2 ``cookie_generate``/``_verify`` cannot carry that state). It goes in one
  DTLSPlaintext record with message_seq 0 and the ClientHello record's sequence number (as
  a HelloVerifyRequest does, RFC 6347 §4.2.1), and is dropped rather than sent when it
  would be larger than the ClientHello (anti-amplification, DESIGN.md);
- with a cookie that verifies: a `Dtls13Admit`, from which
  ``Dtls13ServerConnection.from_admit`` continues without verifying it again;
- anything else (malformed, a cookie that does not verify, nothing we can negotiate) is
  dropped silently: datagrams are not refused (RFC 9147 §4.5.2 drops invalid records).

A ClientHello without a cookie extension and without a pre_shared_key (the PSK path needs
the full decoders) is not decoded in full: `peek_client_hello13` (`wire/`) checks its
framing, every extension's header and no type twice, and key_share's entries (which groups
have a share), and returns the offer the server chooses from (cipher_suites,
supported_versions, supported_groups, signature_algorithms, ALPN) as the bytes received.
The server's choice (`choose`, the same function the engine uses) is made once per
distinct offer, those bytes decoded by the full decoders (`decode_offer13`; ALPN only when
the server has protocols) the first time they are seen, and remembered in a small bounded
table keyed by them (`DtlsGate13.choose`: per configuration, not per peer): clients of one
kind send the same offer byte for byte, so a ClientHello1 seen before is answered without
decoding any of it again. What the cookie binds (`client_hello_fixed_part`) and the
transcript hash come from the received bytes. One with a pre_shared_key is decoded in
full as well; so is a ClientHello2 (a cookie) whose rest (all but its random, session_id,
key shares and cookie, as the peek cuts it: the same bytes in every handshake of one kind
of client) is not remembered. It is remembered once its cookie verified (so a spoofed
flood neither fills the table nor costs more than its decode), after which another with
that rest is the one decoded before with its own fields put in and decoded
(`DtlsGate13.decode_hello2`, as strict as the full decode). Its cookie is checked
against what it binds (sliced by the peek, or its head and the remembered rest's part), and
the admit carries the decoded ClientHello2 to the server, which does not decode it again.
Any ClientHello the full decoders accept gets the same HelloRetryRequest, byte for byte;
one malformed only in an extension nothing here reads (server_name, record_size_limit, ...)
now gets one too, where the full decode used to send it to the DTLS 1.2 path. That costs
nothing the gate contract protects: the reply is never larger than the request (checked
below) and nothing is stored, as for a HelloVerifyRequest answered from the fields before
the cookie; ClientHello2 must repeat those extensions (the cookie binds them) and is
decoded whole (its rest once) before anything is allocated, so a malformed one is never
admitted. Malformed framing, or a malformed body the reply depends on, still falls through
as before (None: judged as DTLS 1.2).

A ClientHello larger than the path MTU (many suites, or an ML-KEM key share of over 1 KB)
arrives in fragments, its cookie extension near the end, so no first fragment can be
judged. The datagram gate reassembles such a cookie-less ClientHello in a table bounded
per address, in entries, in bytes and in time (`dtlsgate.gate.reassembly`) and judges it
here once whole. That is the one thing stored before a cookie verifies, and what it costs
the no-state-before-cookie promise is said there: a fixed-size table that a flood of
never-completed first fragments fills and churns, delaying (not stopping) fragmented
ClientHellos, and never touching ClientHellos that fit in one datagram.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Hashable
from typing import TYPE_CHECKING

from dtlsgate._memo import Memo
from dtlsgate.errors import ProtocolError, UsageError
from dtlsgate.gate.results import Drop, DropReason, Dtls13Admit
from dtlsgate.gate.stream import (
    MAX_APPLICATION_COOKIE,
    ClientHello2Memo,
    CookieStates,
    decode_cookie_state,
    encode_cookie_state,
)
from dtlsgate.handshake.tls13.common import (
    DTLS_VERSIONS,
    ClientHelloInfo,
    client_hello_fixed_part,
    decode_client_hello,
    hello_retry_request,
)
from dtlsgate.handshake.tls13.server import Choice, ServerContext, choose, find_psk
from dtlsgate.wire.client_hello13_peek import (
    ClientHello13Peek,
    decode_offer13,
    peek_client_hello13,
)
from dtlsgate.wire.enums import ContentType, HandshakeType, ProtocolVersion
from dtlsgate.wire.extensions import decode_alpn
from dtlsgate.wire.handshake import DTLS_HANDSHAKE_HEADER_LENGTH, encode_dtls_handshake
from dtlsgate.wire.messages import RANDOM_LENGTH, ClientHello
from dtlsgate.wire.record import DTLS_RECORD_HEADER_LENGTH, encode_dtls_record

if TYPE_CHECKING:
    from dtlsgate.config import ServerConfig
    from dtlsgate.gate.cookie import CookieJar

__all__ = ["DtlsGate13", "judge_dtls13", "offers_dtls13"]

# The server's choices remembered per offer (`DtlsGate13.choose`): the clients of one
# deployment send a handful of distinct offers, and a flood repeats one. Only offers whose
# suites, versions, groups, signature schemes and ALPN names take at most MAX_OFFER_BYTES
# bytes on the wire are kept (a common one has 40 to 150), so that the memo stays small
# (a `Memo`: some 32 x 512 bytes) however the offers are made.
MAX_CHOICES = 32
MAX_OFFER_BYTES = 512
# ClientHello2s decoded per the rest of the message (`DtlsGate13.decode_hello2`, a
# `ClientHello2Memo` of at most MAX_HELLO2S, as the stream gate's): only those of at most
# MAX_HELLO2_BYTES (a common one has 250 to 500; the entry holds the decoded message,
# about three times its size) are kept: some 32 x 3 KB however they are made.
MAX_HELLO2_BYTES = 1024
_DTLS13_BYTES = ProtocolVersion.DTLS13.to_bytes(2, "big")
# In a HelloRetryRequest record: the record header, the handshake header, legacy_version
# and random, then the session_id's length byte (RFC 9147 §4, §5.2; RFC 8446 §4.1.3).
_SESSION_ID_AT = DTLS_RECORD_HEADER_LENGTH + DTLS_HANDSHAKE_HEADER_LENGTH + 2 + RANDOM_LENGTH + 1
# In a DTLSPlaintext header: type (1), version (2), epoch (2), sequence_number (6).
_SEQUENCE_NUMBER_AT = 5


def offers_dtls13(body: bytes) -> bool:
    """A cheap first look: whether a ClientHello body may offer DTLS 1.3 (its version
    appears somewhere in it); `judge_dtls13` decodes it to be sure."""
    return _DTLS13_BYTES in body


def decode_dtls13_hello(body: bytes) -> tuple[ClientHello, ClientHelloInfo] | None:
    """The ClientHello and its extensions when it offers DTLS 1.3; None when it does not
    (a DTLS 1.2 ClientHello, for the HelloVerifyRequest path) or does not decode."""
    try:
        return decode_client_hello(body, DTLS_VERSIONS)
    except ProtocolError:
        return None


class DtlsGate13:
    """What the datagram gate prepares once for its DTLS 1.3 ClientHellos: the TLS 1.3
    server context (suites, groups, PSKs), each suite's hash and the cookie states' heads
    (`CookieStates`, as the stream gate's), the server's choice for each
    offer a ClientHello1 makes (`choose`), and the HelloRetryRequest records, made by the
    codec the first time a reply of their shape is sent (per suite, group asked for,
    session_id length and cookie length: a handful per configuration) and each reply made
    from one with its sequence number, session_id and cookie put in."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.context = ServerContext(config, versions=DTLS_VERSIONS)
        self._choices: Memo[tuple[object, ...], Choice | DropReason] = Memo(MAX_CHOICES)
        self._reads_alpn = bool(config.alpn_protocols)
        # The ClientHello2s admitted, by their rest (`decode_hello2`), as the stream gate's.
        self.hellos2 = ClientHello2Memo(DTLS_VERSIONS, MAX_HELLO2_BYTES)
        # (suite, group or None, session_id length, cookie length) -> the record's parts
        # before the sequence number, between it and the session_id, between the session_id
        # and the cookie (the last field of the last extension).
        self._records: dict[tuple[int, int | None, int, int], tuple[bytes, bytes, bytes]] = {}
        # Each suite's hash and the cookie states' heads per the server's choices.
        self.states = CookieStates()

    def judge_hello(
        self,
        sequence_number: int,
        message_seq: int,
        body: bytes,
        data: bytes,
        peer: Hashable | None,
        now: float,
    ) -> bytes | Dtls13Admit | Drop | None:
        """`judge_dtls13` for a whole ClientHello ``body`` (the first record's); None when it
        does not offer DTLS 1.3 or is malformed in what is read (the caller judges it as DTLS
        1.2). A ClientHello1 is answered from `peek_client_hello13` (module docstring); one
        with a cookie (a ClientHello2) or a pre_shared_key is decoded in full."""
        try:
            peek = peek_client_hello13(body, self.hellos2)
        except ProtocolError:
            return None
        if not peek.needs_full:
            return _retry_peeked(self, sequence_number, peek, body, data, peer, now)
        decoded = self.decode_hello2(peek, body)
        if decoded is None:
            return None
        result = judge_dtls13(self, sequence_number, message_seq, decoded, body, data, peer, now)
        hello2 = peek.hello2
        if type(result) is Dtls13Admit and hello2 is not None:
            # Remembered once its cookie verified: a spoofed flood of made-up ClientHello2s
            # neither fills the memo nor costs more than their decode.
            self.hellos2.remember_hello2(hello2, body, decoded)
        return result

    def decode_hello2(
        self, peek: ClientHello13Peek, body: bytes
    ) -> tuple[ClientHello, ClientHelloInfo, bytes] | None:
        """`decode_dtls13_hello` for a ClientHello ``body`` with a cookie or a
        pre_shared_key, read by `peek_client_hello13`, and what its cookie binds
        (`client_hello_fixed_part`; the peek slices it unless given the remembered rests,
        as `judge_hello` gives them). A ClientHello2 (a cookie, no PSK) is decoded in full
        when the rest of it (``peek.hello2.rest``: all but its random, session_id, key
        shares and cookie) is not remembered; `judge_hello` remembers it once its cookie
        verified (`ClientHello2Memo.remember_hello2`). Another with a remembered rest is the one
        decoded before with its own random, session_id, key shares and cookie put in and
        decoded (`ClientHello2Memo.like`), checked as the full decode checks them, and binds
        its head and the same part."""
        hello2 = peek.hello2
        if hello2 is None:  # a PSK offer
            decoded = decode_dtls13_hello(body)
            assert peek.fixed is not None  # sliced by the peek for all but a ClientHello2
            return None if decoded is None else (*decoded, peek.fixed)
        known = self.hellos2.like(peek)
        if known is not None:
            return known
        # Not seen lately, or not as strict as the full decode wants (which drops it).
        decoded = decode_dtls13_hello(body)
        if decoded is None:
            return None
        fixed = peek.fixed  # sliced: the rest was not known to the peek ...
        if fixed is None:  # ... or was, and the memo started over since (or it is malformed)
            fixed = client_hello_fixed_part(decoded[0])
        return (*decoded, fixed)

    def choose(self, peek: ClientHello13Peek) -> Choice | DropReason | None:
        """The server's `choose` for a ClientHello1 read by `peek_client_hello13` (no PSK:
        none is offered): a `Choice`, CLIENT_HELLO_REFUSED when it refuses the offer, None
        when the offer is malformed (`decode_offer13`, or the ALPN body when the server has
        protocols) or does not offer DTLS 1.3 (judged as DTLS 1.2). Decoded and made once
        per offer: the choice depends on the configuration and on the offer's bytes alone
        (the fields in the key; not on the random, session_id or key shares), and clients of
        one kind send the same bytes. `MAX_CHOICES` offers are remembered, each of at most
        `MAX_OFFER_BYTES` bytes."""
        alpn = peek.alpn if self._reads_alpn else None  # what choose reads
        key = (
            peek.cipher_suites,
            peek.versions,
            peek.groups,
            peek.share_groups is None,
            peek.signature_schemes,
            alpn,
        )
        try:
            return self._choices[key]
        except KeyError:  # an offer not seen lately
            pass
        try:
            suites, versions, groups, schemes = decode_offer13(peek)
            alpn_names = () if alpn is None else decode_alpn(alpn)
        except ProtocolError:
            return None
        # check_tls13_client_hello: DTLS 1.3 offered.
        if DTLS_VERSIONS.version not in versions:
            return None
        hello = ClientHello(
            peek.legacy_version,
            peek.random,
            peek.session_id,
            suites,
            peek.compression_methods,
            (),
            peek.legacy_cookie,
        )
        # choose reads of key_share only whether it is present; which groups have a share
        # is ``peek.share_groups``.
        info = ClientHelloInfo(
            versions,
            groups,
            None if peek.share_groups is None else (),
            schemes,
            None,
            alpn_names,
            (),
            None,
            None,
            None,
            False,
        )
        choice: Choice | DropReason
        try:
            choice = choose(self.context, hello, info, None)
        except ProtocolError:
            choice = DropReason.CLIENT_HELLO_REFUSED
        size = len(peek.cipher_suites) + len(alpn or b"")
        size += len(peek.versions or b"") + len(peek.groups or b"")
        if size + len(peek.signature_schemes or b"") <= MAX_OFFER_BYTES:
            self._choices.remember(key, choice)
        return choice

    @property
    def hellos2_remembered(self) -> int:
        """How many ClientHello2s `decode_hello2` remembers (at most
        `dtlsgate.gate.stream.MAX_HELLO2S`)."""
        return len(self.hellos2)

    @property
    def hello2_rests(self) -> Container[bytes]:
        """The rests of the ClientHello2s `decode_hello2` remembers, for the peek
        (`peek_client_hello13`'s ``known``)."""
        return self.hellos2

    @property
    def choices_remembered(self) -> int:
        """How many offers' choices `choose` remembers (at most `MAX_CHOICES`)."""
        return len(self._choices)

    def hello_retry_request(
        self,
        sequence_number: int,
        session_id: bytes,
        suite: int,
        group: int | None,
        cookie: bytes,
    ) -> bytes:
        """One datagram: the HelloRetryRequest (`hello_retry_request`, DTLS 1.3) in one
        DTLSPlaintext record, epoch 0, ``sequence_number`` (48 bits), message_seq 0."""
        if sequence_number >> 48:
            raise UsageError("sequence_number out of range")
        key = (suite, group, len(session_id), len(cookie))
        parts = self._records.get(key)
        if parts is None:
            parts = self._records[key] = _record_parts(*key)
        before_sequence_number, before_session_id, before_cookie = parts
        return b"".join(
            (
                before_sequence_number,
                sequence_number.to_bytes(6, "big"),
                before_session_id,
                session_id,
                before_cookie,
                cookie,
            )
        )


def _application_cookie(
    generate: Callable[[Hashable | None], bytes], peer: Hashable | None
) -> bytes:
    """The application's part of the cookie (``stateless_cookie_generate``, as the stream
    gate's), checked; what the callback raises is the application's and goes up as is."""
    application = generate(peer)
    if not isinstance(application, bytes) or len(application) > MAX_APPLICATION_COOKIE:
        raise UsageError(
            f"stateless_cookie_generate must return at most {MAX_APPLICATION_COOKIE} bytes"
        )
    return application


def _application_verifies(
    verify: Callable[[Hashable | None, bytes], bool], peer: Hashable | None, application: bytes
) -> bool:
    """``stateless_cookie_verify`` on the application's part of a cookie that verified."""
    accepted = verify(peer, application)
    if not isinstance(accepted, bool):
        raise UsageError("stateless_cookie_verify must return True or False")
    return accepted


def _record_parts(
    suite: int, group: int | None, session_id_length: int, cookie_length: int
) -> tuple[bytes, bytes, bytes]:
    """The HelloRetryRequest record of that shape made by the codec (sequence number 0, the
    session_id and cookie zeros), cut around the sequence number, session_id and cookie."""
    hrr = hello_retry_request(
        bytes(session_id_length), suite, group, bytes(cookie_length), DTLS_VERSIONS
    )
    record = encode_dtls_record(
        ContentType.HANDSHAKE,
        ProtocolVersion.DTLS12,  # RFC 9147 §4: DTLSPlaintext's legacy_record_version
        0,
        0,
        encode_dtls_handshake(HandshakeType.SERVER_HELLO, hrr[4:], 0),
    )
    session_id_end = _SESSION_ID_AT + session_id_length
    return (
        record[:_SEQUENCE_NUMBER_AT],
        record[_SEQUENCE_NUMBER_AT + 6 : _SESSION_ID_AT],
        record[session_id_end : len(record) - cookie_length],
    )


def judge_dtls13(
    gate13: DtlsGate13,
    sequence_number: int,
    message_seq: int,
    hello: tuple[ClientHello, ClientHelloInfo, bytes],
    body: bytes,
    data: bytes,
    peer: Hashable | None,
    now: float,
) -> bytes | Dtls13Admit | Drop:
    """A HelloRetryRequest datagram, an admit or a drop for a whole DTLS 1.3 ClientHello
    (``body``, the first record's, its ``sequence_number`` and ``message_seq``), decoded
    (``hello``: the ClientHello, its extensions and what of it the cookie binds,
    `client_hello_fixed_part`, as `DtlsGate13.decode_hello2` returns them)."""
    jar = gate13.config.cookie_jar
    assert jar is not None  # ServerConfig always makes one
    client_hello, info, fixed = hello
    # The TLS form (RFC 9147 §5.2): msg_type and length, then the body.
    message = data[DTLS_RECORD_HEADER_LENGTH : DTLS_RECORD_HEADER_LENGTH + 4] + body
    if info.cookie is None:
        return _retry(
            jar, gate13, sequence_number, client_hello, info, fixed, message, data, peer, now
        )
    payload = jar.verify(peer, now, info.cookie, fixed)
    if payload is None:
        return Drop(DropReason.COOKIE_INVALID)
    try:
        suite, group, requested, client_hello1_digest, application = decode_cookie_state(payload)
    except ProtocolError:
        return Drop(DropReason.COOKIE_INVALID)
    verify = gate13.config.stateless_cookie_verify
    if verify is not None and not _application_verifies(verify, peer, application):
        return Drop(DropReason.COOKIE_INVALID)
    # Its fields in order, not by keyword (as the gate's `Admit`): a class called with
    # keywords builds a dict of them to unpack again, every ClientHello2 admitted.
    return Dtls13Admit(
        peer,
        client_hello,
        info,
        message,  # client_hello_message
        client_hello1_digest,
        suite,  # cipher_suite
        group,
        requested,  # key_share_requested
        info.cookie,
        message_seq,
        sequence_number,  # record_sequence_number
        data,  # datagram
    )


def _retry(
    jar: CookieJar,
    gate13: DtlsGate13,
    sequence_number: int,
    hello: ClientHello,
    info: ClientHelloInfo,
    fixed: bytes,
    message: bytes,
    data: bytes,
    peer: Hashable | None,
    now: float,
) -> bytes | Drop:
    context = gate13.context
    try:
        # As the stream gate: a PSK only in psk_dhe_ke mode (the cookie's state needs a
        # group), its hash fixing the suite.
        found = find_psk(context, hello, info, now, context.suites, True)
        choice = choose(context, hello, info, found)
    except ProtocolError:
        return Drop(DropReason.CLIENT_HELLO_REFUSED)
    assert choice.group is not None
    # RFC 8446 §4.2.8: ask for a share only when the client has none for our group.
    requested = info.share_for(choice.group) is None
    return _reply(
        jar,
        gate13,
        sequence_number,
        hello.session_id,
        fixed,
        choice,
        requested,
        message,
        data,
        peer,
        now,
    )


def _retry_peeked(
    gate13: DtlsGate13,
    sequence_number: int,
    peek: ClientHello13Peek,
    body: bytes,
    data: bytes,
    peer: Hashable | None,
    now: float,
) -> bytes | Drop | None:
    """`_retry` for a ClientHello1 read by `peek_client_hello13`: the checks of
    `decode_client_hello` on what was read (None where it raises), then the same choice
    (`DtlsGate13.choose`: the engine's, no PSK since none is offered)."""
    # check_tls13_client_hello, DTLS: no compression, legacy_version {254, 253}, an empty
    # legacy_cookie (RFC 9147 §5.3); 1.3 offered (in `DtlsGate13.choose`).
    if (
        peek.compression_methods != b"\x00"
        or peek.legacy_version != DTLS_VERSIONS.legacy_version
        or peek.legacy_cookie
    ):
        return None
    choice = gate13.choose(peek)
    if not isinstance(choice, Choice):
        return None if choice is None else Drop(choice)
    assert choice.group is not None and peek.share_groups is not None and peek.fixed is not None
    jar = gate13.config.cookie_jar
    assert jar is not None  # ServerConfig always makes one
    requested = choice.group not in peek.share_groups
    message = data[DTLS_RECORD_HEADER_LENGTH : DTLS_RECORD_HEADER_LENGTH + 4] + body
    return _reply(
        jar,
        gate13,
        sequence_number,
        peek.session_id,
        peek.fixed,
        choice,
        requested,
        message,
        data,
        peer,
        now,
    )


def _reply(
    jar: CookieJar,
    gate13: DtlsGate13,
    sequence_number: int,
    session_id: bytes,
    fixed: bytes,
    choice: Choice,
    requested: bool,
    message: bytes,
    data: bytes,
    peer: Hashable | None,
    now: float,
) -> bytes | Drop:
    """The HelloRetryRequest datagram for ``choice``: its cookie binds ``fixed`` (what
    ClientHello2 must repeat) and carries the choice and Hash(``message``)."""
    assert choice.group is not None
    generate = gate13.config.stateless_cookie_generate
    if generate is None:
        state = gate13.states.cookie_state(choice.suite, choice.group, requested, message)
    else:
        application = _application_cookie(generate, peer)
        digest = gate13.states.digest(choice.suite, message)
        state = encode_cookie_state(choice.suite, choice.group, requested, digest, application)
    cookie = jar.mint(peer, now, fixed, state)
    group = choice.group if requested else None
    reply = gate13.hello_retry_request(sequence_number, session_id, choice.suite, group, cookie)
    if len(reply) > len(data):  # never amplify (DESIGN.md, the gate contract)
        return Drop(DropReason.REPLY_TOO_LARGE)
    return reply
