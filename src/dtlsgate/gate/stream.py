"""The stateless HelloRetryRequest: OpenSSL's ``SSL_stateless()`` as a pure function.

``StatelessGate(config).receive(data, peer, now)`` judges the first bytes a client sent on
a stream and returns exactly one of

- `Reply`: a HelloRetryRequest with a cookie to send back (followed by the compatibility
  ChangeCipherSpec when the client's legacy_session_id is not empty, RFC 8446 Appendix
  D.4); nothing is kept;
- `StreamAdmit`: a ClientHello2 whose cookie verified, with everything the server
  connection needs to go on (`ServerConnection.from_admit`), which does not verify the
  cookie again;
- ``Drop(DropReason.CLIENT_HELLO_INCOMPLETE)``: the whole ClientHello is not there yet;
  nothing was sent (the caller retries with more bytes, like ``SSL_stateless`` failing when
  the read BIO runs dry);
- `Refuse`: a fatal alert to send before closing: not TLS 1.3 (protocol_version, without
  any TLS 1.2 flight, as ``SSL_stateless`` returns 0 for older versions), malformed input
  (decode_error), a cookie that does not verify or a ClientHello2 that changed what
  ClientHello1 fixed (illegal_parameter).

These are the datagram gate's result family (`dtlsgate.gate.results`), with its counters.

The cookie (RFC 8446 §4.2.2) is minted by the config's `CookieJar`: it is bound to the peer
address and to the ClientHello fields that ClientHello2 must repeat (legacy_version, random,
legacy_session_id, cipher_suites, RFC 8446 §4.1.2) and carries, integrity-protected::

    format (1) | cipher_suite (2) | group (2) | key_share requested (1) |
    Hash(ClientHello1) <1..64> | application cookie <0..2^16-1>

so that ClientHello2 rebuilds the transcript: ``message_hash`` of ClientHello1 (§4.4.1),
the HelloRetryRequest (rebuilt byte for byte from these values and the cookie), then
ClientHello2. The application part comes from ``stateless_cookie_generate(peer)`` and is
checked by ``stateless_cookie_verify(peer, cookie)`` (OpenSSL's
``SSL_CTX_set_stateless_cookie_generate_cb`` / ``_verify_cb``).

A ChangeCipherSpec record before ClientHello2 (middlebox compatibility mode, RFC 8446
§4.2.2 and Appendix D.4) is skipped, not refused (OpenSSL 3.0 aborts there).

Doing less per ClientHello, as the DTLS 1.3 gate (`dtlsgate.gate.dtls13`) does, with the
same parts: every ClientHello is read by `peek_client_hello13` (its TLS form), which slices
what the cookie binds from the bytes. A ClientHello1 without a pre_shared_key whose offer
(what the cookie binds after the random and session_id, and whether key_share is there:
`_offer`) was decoded in full and chosen from before is answered from the peek and the
remembered choice (a bounded `Memo` per configuration, filled from ClientHello1s the full
decode accepted); a ClientHello2 whose rest was admitted before is the remembered one with
its own random, session_id, key shares and cookie put in (`ClientHello2Memo`, filled only
once a cookie verified). Anything else, and anything the peek or those shortcuts refuse, is
decoded in full as before, so every result, alerts and their reasons included, is the one
the full decode gives (``tests/test_tls13_stateless_peek.py``, ``bench/gate_results.py``).
The cookie state's head is kept per (suite, group, requested) (`CookieStates`), and the
HelloRetryRequest record per shape, its session_id and cookie put in.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from dtlsgate._frozen import frozen
from dtlsgate._memo import Memo
from dtlsgate.crypto.suites import suite_info
from dtlsgate.errors import (
    DecodeError,
    IllegalParameter,
    ProtocolError,
    RecordOverflow,
    UnexpectedMessage,
    UsageError,
)
from dtlsgate.gate.results import (
    Drop,
    DropReason,
    GateCounters,
    Refuse,
    Reply,
    StreamAdmit,
    StreamGateResult,
)
from dtlsgate.handshake.tls13.common import (
    TLS_VERSIONS,
    ClientHelloInfo,
    Versions,
    client_hello_fixed_part,
    client_hello_like,
    decode_client_hello,
    hello_retry_request,
)
from dtlsgate.handshake.tls13.server import Choice, ServerContext, choose, find_psk
from dtlsgate.record.tls13 import MAX_PLAINTEXT, RECORD_HEADER_LENGTH, check_record_header
from dtlsgate.wire.client_hello13_peek import (
    ClientHello2Split,
    ClientHello13Peek,
    peek_client_hello13,
)
from dtlsgate.wire.enums import AlertDescription, AlertLevel, ContentType, HandshakeType
from dtlsgate.wire.messages import RANDOM_LENGTH, ClientHello

if TYPE_CHECKING:
    from dtlsgate.config import ServerConfig

PAYLOAD_FORMAT = 1
_STATE_HEAD = struct.Struct(">BHHBB")  # format, suite, group, requested, digest length
# A ClientHello larger than this is refused before reassembly: real ones are a few hundred
# bytes (a few KB with post-quantum shares and many PSK identities); the cap bounds what one
# unauthenticated call can make us buffer and hash.
MAX_CLIENT_HELLO = 1 << 16
# The HRR + CCS we answer with stay small; this only bounds the application's cookie part.
MAX_APPLICATION_COOKIE = 1024
# RFC 8446 Appendix D.4: a client in middlebox compatibility mode sends one
# ChangeCipherSpec, after ClientHello1, so at most one comes before a ClientHello (the gate
# forgets all between calls). Skipping more would let a peer stream CCS records that the
# caller keeps buffering and re-reading until its timeout.
MAX_CCS_BEFORE_CLIENT_HELLO = 1
_CCS_RECORD = bytes((ContentType.CHANGE_CIPHER_SPEC, 3, 3, 0, 1, 1))


_INCOMPLETE = Drop(DropReason.CLIENT_HELLO_INCOMPLETE)
# The end of a cookie state without an application cookie: its length (2), zero.
_NO_APPLICATION_COOKIE = bytes(2)
# The server's choices remembered per offer (`StatelessGate`'s ClientHello1 path): the
# clients of one deployment send a handful of distinct offers. Only offers of at most
# MAX_OFFER_BYTES (what the cookie binds after the random and session_id: a common one has
# 150 to 400) are kept, so that the memo stays small (some 32 x 1 KB) however they are made.
MAX_OFFERS = 32
MAX_OFFER_BYTES = 1024
# ClientHello2s decoded per the rest of the message (`ClientHello2Memo`, both gates): what
# one kind of client sends alike in every handshake, kept once the cookie verified (so only
# from clients that answered a HelloRetryRequest). The stream gate keeps only those of at
# most MAX_HELLO2_BYTES (a common one has 250 to 500 bytes, about 1,500 with a
# post-quantum key share, as our TLS client's default; the entry holds the decoded message,
# about three times its size): a `Memo` of some 32 x 6 KB however they are made.
MAX_HELLO2S = 32
MAX_HELLO2_BYTES = 2048
# In a HelloRetryRequest record: the record header, the handshake header, legacy_version
# and random, then the session_id's length byte (RFC 8446 §5.1, §4.1.3).
_SESSION_ID_AT = RECORD_HEADER_LENGTH + 4 + 2 + RANDOM_LENGTH + 1
# In a ClientHello body: legacy_version, random and the session_id's length byte, before
# the session_id (what the cookie binds starts with these and the session_id).
_HEAD_BEFORE_SESSION_ID = 2 + RANDOM_LENGTH + 1


def alert_record(alert: AlertDescription) -> bytes:
    """A plaintext fatal alert record (RFC 8446 §6)."""
    return bytes((ContentType.ALERT, 3, 3, 0, 2, AlertLevel.FATAL, alert))


def bound_fields(hello: ClientHello) -> bytes:
    """What ClientHello2 must repeat from ClientHello1 (RFC 8446 §4.1.2, §4.1.4): everything
    but key_share, early_data, cookie, pre_shared_key and padding. The cookie's tag covers
    it, so a ClientHello2 that changed any of it does not verify."""
    return client_hello_fixed_part(hello)


def encode_cookie_state(
    cipher_suite: int,
    group: int,
    key_share_requested: bool,
    client_hello1_digest: bytes,
    application_cookie: bytes,
) -> bytes:
    """A `CookieState`'s encoding from its fields, without the object (the gates mint one per
    stateless HelloRetryRequest and read it back only from ClientHello2's cookie):
    format (1) | cipher_suite (2) | group (2) | key_share_requested (1) |
    client_hello1_digest<1..64> | application_cookie<0..2^16-1>, the fixed fields in one
    pack."""
    digest, app = client_hello1_digest, application_cookie
    if not 1 <= len(digest) <= 64 or len(app) > 0xFFFF:
        raise UsageError("cookie state: digest of 1 to 64 bytes, app cookie below 64 KiB")
    head = _STATE_HEAD.pack(
        PAYLOAD_FORMAT, cipher_suite, group, int(key_share_requested), len(digest)
    )
    return head + digest + len(app).to_bytes(2, "big") + app


@frozen
class CookieState:
    """The integrity-protected payload of a TLS 1.3 cookie."""

    cipher_suite: int
    group: int
    key_share_requested: bool
    client_hello1_digest: bytes
    application_cookie: bytes

    def encode(self) -> bytes:
        """`encode_cookie_state` of these fields."""
        return encode_cookie_state(
            self.cipher_suite,
            self.group,
            self.key_share_requested,
            self.client_hello1_digest,
            self.application_cookie,
        )

    @classmethod
    def decode(cls, data: bytes) -> CookieState:
        """`decode_cookie_state`'s fields as a `CookieState`."""
        return cls(*decode_cookie_state(data))


def decode_cookie_state(data: bytes) -> tuple[int, int, bool, bytes, bytes]:
    """`encode_cookie_state`'s layout read back: (cipher_suite, group, key_share_requested,
    client_hello1_digest, application_cookie), without a `CookieState` (both gates read
    the fields of every ClientHello2's cookie once and keep none of it). By slices and one
    unpack, no Reader: the same checks in the same order (the format first, then
    truncation, the digest's <1..64>, nothing after the app cookie)."""
    if not data:
        raise DecodeError("cookie state: empty")
    if data[0] != PAYLOAD_FORMAT:
        raise IllegalParameter("cookie format")
    end = len(data)
    if end < _STATE_HEAD.size:
        raise DecodeError("cookie state: truncated")
    _, suite, group, requested, n = _STATE_HEAD.unpack_from(data)
    start = _STATE_HEAD.size
    stop = start + n
    if not 1 <= n <= 64 or stop + 2 > end:
        raise DecodeError("cookie state: digest length")
    app_start = stop + 2
    if app_start + ((data[stop] << 8) | data[stop + 1]) != end:
        raise DecodeError("cookie state: app cookie length")
    return suite, group, bool(requested), data[start:stop], data[app_start:]


class CookieStates:
    """What a stateless gate makes once for the cookie states it mints (both gates keep
    one): each suite's hash function, and the state's bytes before the digest per the
    server's own choices (suite, group, requested: a handful per configuration, never
    keyed by peer input)."""

    def __init__(self) -> None:
        self._hashes: dict[int, Callable[[bytes], bytes]] = {}
        # (suite, group, key share requested) -> the cookie state's bytes before the digest
        self._heads: dict[tuple[int, int, bool], bytes] = {}

    def digest(self, suite: int, message: bytes) -> bytes:
        """Hash(``message``) with the hash of ``suite`` (RFC 8446 §4.4.1)."""
        digest = self._hashes.get(suite)
        if digest is None:
            digest = self._hashes[suite] = suite_info(suite).hash.digest
        return digest(message)

    def cookie_state(self, suite: int, group: int, requested: bool, message: bytes) -> bytes:
        """`encode_cookie_state` of the server's choice and Hash(``message``) by ``suite``'s
        hash (`digest`: ClientHello1, RFC 8446 §4.4.1), without an application cookie (a
        gate's without ``stateless_cookie_generate``): the state's bytes before the digest
        made once per (suite, group, requested) and kept (one digest length per suite: the
        hash is the suite's), then the digest and the application cookie's empty length."""
        digest = self.digest(suite, message)
        key = (suite, group, requested)
        head = self._heads.get(key)
        if head is None:
            state = encode_cookie_state(suite, group, requested, digest, b"")
            head = self._heads[key] = state[: -len(digest) - 2]
        return head + digest + _NO_APPLICATION_COOKIE


class ClientHello2Memo(Memo[bytes, tuple[ClientHello, ClientHelloInfo, bytes]]):
    """The ClientHello2s a gate decoded in full and admitted, by their rest
    (`ClientHello2Split.rest`: all but the random, session_id and the bodies of key_share
    and cookie, the same bytes in every handshake of one kind of client), for the next
    ClientHello2 with that rest (both gates keep one: the stream gate's, TLS; the DTLS 1.3
    gate's, DTLS); each rest maps to the ClientHello2 decoded and its part of what the
    cookie binds after the head. Filled only once a cookie verified (`remember_hello2`, by
    the gate after its admit), so a spoofed flood of made-up ClientHello2s neither fills it
    nor costs more than their decode. At most `MAX_HELLO2S` entries, each of a ClientHello2
    of at most ``max_bytes`` (the gate's bound: an entry holds the decoded message, about
    three times its size). A `Memo` of the rests itself, so that the peek
    (`peek_client_hello13`'s ``known``) asks the dict."""

    __slots__ = ("max_bytes", "versions")

    def __init__(self, versions: Versions, max_bytes: int) -> None:
        super().__init__(MAX_HELLO2S)
        self.versions = versions
        self.max_bytes = max_bytes

    def like(self, peek: ClientHello13Peek) -> tuple[ClientHello, ClientHelloInfo, bytes] | None:
        """What `decode_client_hello` returns for the ClientHello2 ``peek`` read, and what
        its cookie binds (`client_hello_fixed_part`), when its rest is remembered: the one
        decoded before with its own random, session_id, key shares and cookie put in and
        decoded (`client_hello_like`), as strict as the full decode. None when the rest is
        not remembered, or when the full decode would raise (the caller decodes it in full,
        which says how)."""
        hello2 = peek.hello2
        if hello2 is None:
            return None
        known = self.get(hello2.rest)
        if known is None:
            return None
        # check_tls13_client_hello on the head: legacy_version (RFC 8446 §4.1.2; RFC 9147
        # §5.3); the rest's checks passed when it was decoded.
        versions = self.versions
        if versions.dtls:
            if peek.legacy_version != versions.legacy_version:
                return None
        elif peek.legacy_version < versions.legacy_version:
            return None
        hello, info, bound = known
        try:
            hello, info = client_hello_like(
                (hello, info), peek.random, peek.session_id, hello2.key_share, hello2.cookie
            )
        except ProtocolError:
            return None
        return hello, info, hello2.head + bound

    def remember_hello2(
        self,
        hello2: ClientHello2Split,
        body: bytes,
        decoded: tuple[ClientHello, ClientHelloInfo, bytes],
    ) -> None:
        """Keep a ClientHello2 ``body`` decoded in full (``decoded``, with what its cookie
        binds) whose cookie verified, unless it is larger than ``max_bytes`` or its rest is
        kept already (a full memo is emptied before it takes a new entry: `Memo.remember`).
        What its cookie binds starts with the head (legacy_version, random, session_id); the
        rest's part, which follows, is kept."""
        if len(body) <= self.max_bytes and hello2.rest not in self:
            hello, info, fixed = decoded
            self.remember(hello2.rest, (hello, info, fixed[len(hello2.head) :]))


class StatelessGate(GateCounters):
    """Judges the first bytes of a TLS 1.3 stream statelessly (module docstring).

    ``replies``, ``admits``, ``drops`` and ``refusals`` count outcomes (`GateCounters`).
    Besides them it keeps only what it works out once per configuration and offer: the
    cookie states' heads (`CookieStates`), the HelloRetryRequest records per shape, and the
    server's choice per offer (`MAX_OFFERS`, below)."""

    def __init__(self, config: ServerConfig, *, context: ServerContext | None = None) -> None:
        super().__init__()
        if config.cookie_jar is None:  # pragma: no cover - ServerConfig always makes one
            raise UsageError("the stateless gate needs a cookie jar")
        self.config = config
        self.jar = config.cookie_jar
        self.context = context or ServerContext(config)
        self.states = CookieStates()
        # (what the cookie binds after the head, key_share absent) -> the server's choice
        self._offers: Memo[tuple[bytes, bool], Choice] = Memo(MAX_OFFERS)
        # (suite, group or None, session_id length, cookie length) -> the record's parts
        # before the session_id and between it and the cookie (the last field).
        self._records: dict[tuple[int, int | None, int, int], tuple[bytes, bytes]] = {}
        self.hellos2 = ClientHello2Memo(TLS_VERSIONS, MAX_HELLO2_BYTES)

    def receive(self, data: bytes, peer: Hashable | None, now: float) -> StreamGateResult:
        return self._count(self._judge(bytes(data), peer, now))

    def _judge(self, data: bytes, peer: Hashable | None, now: float) -> StreamGateResult:
        found = read_client_hello(data)
        if not isinstance(found, tuple):
            return found
        message, consumed = found
        body = message[4:]
        try:
            # dtls False, by position: a keyword in a call (or a keyword-only parameter)
            # keeps the interpreter from specializing it (about 1,200 instructions).
            peek: ClientHello13Peek | None = peek_client_hello13(body, self.hellos2, False)
        except ProtocolError:
            peek = None  # malformed: the full decode below says how (its alert)
        offer = None
        if peek is not None and not peek.needs_full:
            # A ClientHello1 without a PSK: answered from the peek when its offer was
            # decoded and chosen from before (`_offer`).
            offer = _offer(peek)
            choice = self._offers.get(offer)
            # check_tls13_client_hello's one check on the head (the rest's passed when the
            # offer was decoded); a legacy_version below it is refused by the full decode.
            if choice is not None and peek.legacy_version >= TLS_VERSIONS.legacy_version:
                assert choice.group is not None and peek.share_groups is not None
                assert peek.fixed is not None  # sliced for every ClientHello1
                requested = choice.group not in peek.share_groups
                return self._reply(
                    peek.session_id, peek.fixed, choice, requested, message, peer, now
                )
        elif peek is not None and peek.hello2 is not None:
            # A ClientHello2 (a cookie, no pre_shared_key) with a rest admitted before.
            like = self.hellos2.like(peek)
            if like is not None:
                return self._admit(*like, message, data[consumed:], peer, now)
        try:
            hello, info = decode_client_hello(body)
        except ProtocolError as exc:
            return _refuse(exc)
        if info.cookie is None:
            return self._retry(hello, info, message, peek, offer, peer, now)
        fixed = bound_fields(hello) if peek is None or peek.fixed is None else peek.fixed
        result = self._admit(hello, info, fixed, message, data[consumed:], peer, now)
        if type(result) is StreamAdmit and peek is not None and peek.hello2 is not None:
            self.hellos2.remember_hello2(peek.hello2, body, (hello, info, fixed))
        return result

    def _retry(
        self,
        hello: ClientHello,
        info: ClientHelloInfo,
        message: bytes,
        peek: ClientHello13Peek | None,
        offer: tuple[bytes, bool] | None,
        peer: Hashable | None,
        now: float,
    ) -> StreamGateResult:
        """The HelloRetryRequest for a ClientHello1 decoded in full; its choice remembered
        for ``offer`` (`_offer`; None: a PSK offer, whose choice depends on more)."""
        try:
            # Every ClientHello2 comes after our HelloRetryRequest: a PSK in psk_dhe_ke mode
            # only, whose hash (a ticket's suite, RFC 8446 §4.2.11) the HRR's suite fixes.
            found = find_psk(self.context, hello, info, now, self.context.suites, True)
            choice = choose(self.context, hello, info, found)
        except ProtocolError as exc:
            return _refuse(exc)
        assert choice.group is not None  # psk_dhe_ke or no PSK: a group was chosen
        if offer is not None and len(offer[0]) <= MAX_OFFER_BYTES:
            self._offers.remember(offer, choice)
        # RFC 8446 §4.2.8: ask for a share only when the client has none for our group.
        requested = info.share_for(choice.group) is None
        fixed = bound_fields(hello) if peek is None or peek.fixed is None else peek.fixed
        return self._reply(hello.session_id, fixed, choice, requested, message, peer, now)

    def _reply(
        self,
        session_id: bytes,
        fixed: bytes,
        choice: Choice,
        requested: bool,
        message: bytes,
        peer: Hashable | None,
        now: float,
    ) -> Reply:
        """The HelloRetryRequest for ``choice``: its cookie binds ``fixed`` (what ClientHello2
        must repeat, `bound_fields`) and carries the choice and Hash(``message``)."""
        assert choice.group is not None
        suite = choice.suite
        generate = self.config.stateless_cookie_generate
        if generate is None:
            state = self.states.cookie_state(suite, choice.group, requested, message)
        else:
            application = _call_application(generate, peer)
            if not isinstance(application, bytes) or len(application) > MAX_APPLICATION_COOKIE:
                raise UsageError(
                    f"stateless_cookie_generate must return at most {MAX_APPLICATION_COOKIE} bytes"
                )
            digest = self.states.digest(suite, message)
            state = encode_cookie_state(suite, choice.group, requested, digest, application)
        cookie = self.jar.mint(peer, now, fixed, state)
        key = (suite, choice.group if requested else None, len(session_id), len(cookie))
        parts = self._records.get(key)
        if parts is None:
            parts = self._records[key] = _record_parts(*key)
        before_session_id, before_cookie = parts
        # RFC 8446 Appendix D.4: the CCS follows our first handshake message in compat mode.
        ccs = _CCS_RECORD if session_id else b""
        return Reply(b"".join((before_session_id, session_id, before_cookie, cookie, ccs)))

    def _admit(
        self,
        hello: ClientHello,
        info: ClientHelloInfo,
        fixed: bytes,
        message: bytes,
        remaining: bytes,
        peer: Hashable | None,
        now: float,
    ) -> StreamGateResult:
        """The admit for a ClientHello2 decoded, whose cookie binds ``fixed``
        (`bound_fields`), or its refusal."""
        assert info.cookie is not None
        payload = self.jar.verify(peer, now, info.cookie, fixed)
        if payload is None:
            # Forged, expired, minted for another address, or ClientHello2 changed a field
            # ClientHello1 fixed: the cookie does not verify.
            return _refuse(IllegalParameter("cookie does not verify"))
        try:
            suite, group, requested, client_hello1_digest, application = decode_cookie_state(
                payload
            )
        except ProtocolError:
            return _refuse(IllegalParameter("cookie payload"))
        verify = self.config.stateless_cookie_verify
        if verify is not None:
            accepted = _call_application(verify, peer, application)
            if not isinstance(accepted, bool):
                raise UsageError("stateless_cookie_verify must return True or False")
            if not accepted:
                return _refuse(IllegalParameter("application cookie refused"))
        return StreamAdmit(
            peer,
            hello,
            info,
            message,
            client_hello1_digest,
            suite,  # cipher_suite
            group,
            requested,  # key_share_requested
            info.cookie,
            application,  # application_cookie
            remaining,
        )


def _offer(peek: ClientHello13Peek) -> tuple[bytes, bool]:
    """What the server's choice for a ClientHello1 read by `peek_client_hello13` (no cookie,
    no pre_shared_key) is remembered by: what the cookie binds after the head (``fixed``
    without legacy_version, random and session_id: cipher_suites, compression_methods and
    every extension but key_share, early_data and padding, each with its header) and
    whether key_share is absent. Two ClientHello1s with these equal differ only in the
    head, the bodies of key_share, early_data and padding, and the extensions' order: the
    full decode reads nothing else (the order only for a pre_shared_key, which these do
    not have; early_data's presence, not its body, and no answer of the gate depends on
    it; padding not at all), so one that decoded and was chosen from stands for the other,
    once the peek checked key_share's entries as `decode_key_share_ch` does and
    legacy_version is checked (`_judge`)."""
    assert peek.fixed is not None
    return peek.fixed[_HEAD_BEFORE_SESSION_ID + len(peek.session_id) :], peek.share_groups is None


def _record_parts(
    suite: int, group: int | None, session_id_length: int, cookie_length: int
) -> tuple[bytes, bytes]:
    """The HelloRetryRequest record of that shape made by the codec (the session_id and
    cookie zeros), cut around the session_id and the cookie (the last field of the last
    extension)."""
    hrr = hello_retry_request(bytes(session_id_length), suite, group, bytes(cookie_length))
    reply = record(ContentType.HANDSHAKE, hrr)
    return (
        reply[:_SESSION_ID_AT],
        reply[_SESSION_ID_AT + session_id_length : len(reply) - cookie_length],
    )


def _call_application(callback: Callable[..., object], *args: object) -> Any:
    """Call an application cookie callback. Whatever it raises is the application's bug,
    not the peer's: it leaves the gate as a `UsageError` (OpenSSL's callback failure,
    ``SSL_stateless`` < 0), chained to the original; adapters answer the client with
    internal_error (RFC 8446 §6.2) and report the error."""
    try:
        return callback(*args)
    except Exception as exc:
        raise UsageError(f"stateless cookie callback raised {exc!r}") from exc


def _refuse(error: ProtocolError) -> Refuse:
    """The refusal for ``error``: its class names the alert (dtlsgate.errors)."""
    return Refuse(alert_record(error.alert), error.alert, str(error))


def record(content_type: int, data: bytes) -> bytes:
    """One plaintext record (RFC 8446 §5.1); ``data`` fits one record here."""
    return bytes((content_type, 3, 3)) + len(data).to_bytes(2, "big") + data


def read_client_hello(data: bytes) -> tuple[bytes, int] | Drop | Refuse:
    """The whole ClientHello message at the start of ``data`` and the bytes it took,
    skipping compatibility ChangeCipherSpec records before it (RFC 8446 Appendix D.4) and
    joining handshake records it spans (§5.1)."""
    pos = 0
    skipped = 0
    message = bytearray()
    while True:
        if len(data) - pos < RECORD_HEADER_LENGTH:
            return _INCOMPLETE
        content_type = data[pos]
        length = (data[pos + 3] << 8) | data[pos + 4]
        try:
            # Judged before waiting for the body: no TLS record is answered at once.
            check_record_header(data[pos : pos + RECORD_HEADER_LENGTH], first=pos == 0)
        except ProtocolError as exc:
            return _refuse(exc)
        # Each type read once: a handshake record (the common case) costs one member read.
        handshake = content_type == ContentType.HANDSHAKE
        if not handshake and content_type != ContentType.CHANGE_CIPHER_SPEC:
            return _refuse(UnexpectedMessage("not a handshake record"))
        if length > MAX_PLAINTEXT or length == 0:
            return _refuse(RecordOverflow("record length"))
        if len(data) - pos - RECORD_HEADER_LENGTH < length:
            return _INCOMPLETE
        body = data[pos + RECORD_HEADER_LENGTH : pos + RECORD_HEADER_LENGTH + length]
        pos += RECORD_HEADER_LENGTH + length
        if not handshake:  # a ChangeCipherSpec
            if body == b"\x01" and not message:
                skipped += 1
                if skipped > MAX_CCS_BEFORE_CLIENT_HELLO:
                    return _refuse(UnexpectedMessage("ChangeCipherSpec flood"))
                continue
            return _refuse(UnexpectedMessage("not a handshake record"))
        message += body
        if message[0] != HandshakeType.CLIENT_HELLO:
            return _refuse(UnexpectedMessage("not a ClientHello"))
        if len(message) >= 4:
            size = int.from_bytes(message[1:4], "big")
            if size > MAX_CLIENT_HELLO:
                return _refuse(DecodeError("ClientHello too large"))
            if len(message) > 4 + size:
                # RFC 8446 §5.1: nothing may follow the ClientHello before the server's
                # answer; more handshake bytes in the same record are unexpected.
                return _refuse(UnexpectedMessage("data after ClientHello"))
            if len(message) == 4 + size:
                return bytes(message), pos
