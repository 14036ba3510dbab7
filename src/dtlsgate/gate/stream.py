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
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from dtlsgate._frozen import frozen
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
    ClientHelloInfo,
    client_hello_fixed_part,
    decode_client_hello,
    hello_retry_request,
)
from dtlsgate.handshake.tls13.server import ServerContext, choose, find_psk
from dtlsgate.record.tls13 import MAX_PLAINTEXT, RECORD_HEADER_LENGTH, check_record_header
from dtlsgate.wire.enums import AlertDescription, AlertLevel, ContentType, HandshakeType
from dtlsgate.wire.messages import ClientHello

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


class StatelessGate(GateCounters):
    """Judges the first bytes of a TLS 1.3 stream statelessly (module docstring).

    ``replies``, ``admits``, ``drops`` and ``refusals`` count outcomes (`GateCounters`);
    they are all that changes across calls."""

    def __init__(self, config: ServerConfig, *, context: ServerContext | None = None) -> None:
        super().__init__()
        if config.cookie_jar is None:  # pragma: no cover - ServerConfig always makes one
            raise UsageError("the stateless gate needs a cookie jar")
        self.config = config
        self.jar = config.cookie_jar
        self.context = context or ServerContext(config)

    def receive(self, data: bytes, peer: Hashable | None, now: float) -> StreamGateResult:
        return self._count(self._judge(bytes(data), peer, now))

    def _judge(self, data: bytes, peer: Hashable | None, now: float) -> StreamGateResult:
        found = read_client_hello(data)
        if not isinstance(found, tuple):
            return found
        message, consumed = found
        try:
            hello, info = decode_client_hello(message[4:])
        except ProtocolError as exc:
            return _refuse(exc)
        if info.cookie is None:
            return self._retry(hello, info, message, peer, now)
        return self._admit(hello, info, message, data[consumed:], peer, now)

    def _retry(
        self,
        hello: ClientHello,
        info: ClientHelloInfo,
        message: bytes,
        peer: Hashable | None,
        now: float,
    ) -> StreamGateResult:
        try:
            # Every ClientHello2 comes after our HelloRetryRequest: a PSK in psk_dhe_ke mode
            # only, whose hash (a ticket's suite, RFC 8446 §4.2.11) the HRR's suite fixes.
            found = find_psk(self.context, hello, info, now, self.context.suites, True)
            choice = choose(self.context, hello, info, found)
        except ProtocolError as exc:
            return _refuse(exc)
        assert choice.group is not None  # psk_dhe_ke or no PSK: a group was chosen
        # RFC 8446 §4.2.8: ask for a share only when the client has none for our group.
        requested = info.share_for(choice.group) is None
        application = b""
        generate = self.config.stateless_cookie_generate
        if generate is not None:
            application = _call_application(generate, peer)
            if not isinstance(application, bytes) or len(application) > MAX_APPLICATION_COOKIE:
                raise UsageError(
                    f"stateless_cookie_generate must return at most {MAX_APPLICATION_COOKIE} bytes"
                )
        digest = suite_info(choice.suite).hash.digest(message)
        state = encode_cookie_state(choice.suite, choice.group, requested, digest, application)
        cookie = self.jar.mint(peer, now, bound_fields(hello), state)
        hrr = hello_retry_request(
            hello.session_id, choice.suite, choice.group if requested else None, cookie
        )
        reply = record(ContentType.HANDSHAKE, hrr)
        # RFC 8446 Appendix D.4: the CCS follows our first handshake message in compat mode.
        if hello.session_id:
            reply += _CCS_RECORD
        return Reply(reply)

    def _admit(
        self,
        hello: ClientHello,
        info: ClientHelloInfo,
        message: bytes,
        remaining: bytes,
        peer: Hashable | None,
        now: float,
    ) -> StreamGateResult:
        assert info.cookie is not None
        payload = self.jar.verify(peer, now, info.cookie, bound_fields(hello))
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
        if content_type not in (ContentType.HANDSHAKE, ContentType.CHANGE_CIPHER_SPEC):
            return _refuse(UnexpectedMessage("not a handshake record"))
        if length > MAX_PLAINTEXT or length == 0:
            return _refuse(RecordOverflow("record length"))
        if len(data) - pos - RECORD_HEADER_LENGTH < length:
            return _INCOMPLETE
        body = data[pos + RECORD_HEADER_LENGTH : pos + RECORD_HEADER_LENGTH + length]
        pos += RECORD_HEADER_LENGTH + length
        if content_type == ContentType.CHANGE_CIPHER_SPEC and body == b"\x01" and not message:
            skipped += 1
            if skipped > MAX_CCS_BEFORE_CLIENT_HELLO:
                return _refuse(UnexpectedMessage("ChangeCipherSpec flood"))
            continue
        if content_type != ContentType.HANDSHAKE:
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
