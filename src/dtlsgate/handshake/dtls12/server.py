"""The DTLS 1.2 server handshake (RFC 6347 §4.2, RFC 5246 §7.3): states, the table of legal
messages per state, one handler per (state, message).

The server machine starts after the gate admitted a ClientHello (RFC 6347 §4.2.1): the
cookie is not checked again. Each handler returns the next state and the actions for the
connection (send these messages as a flight, install epoch-1 keys, handshake complete).

    Client                                   Server
    ClientHello          -------->
                         <--------   HelloVerifyRequest (the gate, stateless)
    ClientHello (cookie) -------->
                                     ServerHello, Certificate*, ServerKeyExchange*,
                         <--------   CertificateRequest*, ServerHelloDone
    Certificate*, ClientKeyExchange, CertificateVerify*,
    [ChangeCipherSpec], Finished -------->
                         <--------   [ChangeCipherSpec], Finished

PSK suites skip Certificate and CertificateRequest, and plain PSK sends ServerKeyExchange
only with an identity hint (RFC 4279 §2). A server that issues session tickets sends a
NewSessionTicket before its ChangeCipherSpec (RFC 5077 §3.3).

A ClientHello offering a session we can resume (a ticket or a cached session ID, see
``resume``) gets the abbreviated handshake (RFC 5246 §7.3):

    ClientHello (cookie) -------->
                                     ServerHello, [ChangeCipherSpec],
                         <--------   Finished
    [ChangeCipherSpec], Finished -------->
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dtlsgate._frozen import frozen
from dtlsgate._memo import Memo
from dtlsgate.config import ServerConfig
from dtlsgate.crypto.certs import (
    TrustStore,
    check_dtls12_identity,
    parse_peer_certificate,
    peer_public_key,
    pinned_peer_key,
    spki_of,
    verify_peer_chain,
)
from dtlsgate.crypto.kex import KeyShare
from dtlsgate.crypto.prf import psk_premaster_secret
from dtlsgate.crypto.provider import CryptoProvider
from dtlsgate.crypto.suites import KeyExchange, SuiteInfo, suite_info
from dtlsgate.errors import (
    HandshakeFailure,
    IllegalParameter,
    ProtocolError,
    UnknownPskIdentity,
    UnsupportedCertificate,
)
from dtlsgate.events import HandshakeCompleted
from dtlsgate.handshake.dtls12.common import (
    EPOCHS,
    ESTABLISHED,
    ESTABLISHED_EPOCHS,
    HANDSHAKE_EPOCHS,
    Actions,
    Established,
    ReceivedMessage,
    Session,
    Transcript,
    WaitFinished,
    as_datetime,
    as_session,
    change_cipher_spec,
    check_finished,
    complete,
    derive,
    exporter_of,
    finished_data,
    key_log,
)
from dtlsgate.handshake.dtls12.negotiate import (
    DEFAULT_SIGNATURE_SCHEMES,
    Choice,
    Keys,
    Preferences,
    choose,
    keys_from_master,
)
from dtlsgate.handshake.dtls12.resume import (
    MAX_TICKET_LENGTH,
    StoredSession,
    TicketKeys,
    encode_stored_session,
    offered_session,
)
from dtlsgate.handshake.engine import (
    END_FLIGHT,
    END_LAST_FLIGHT,
    Complete,
    InstallCipherState,
    KeyLogging,
    Machine,
    SendChangeCipherSpec,
    SendWarning,
)
from dtlsgate.wire.enums import (
    AlertDescription,
    ExtensionType,
    HandshakeType,
    ProtocolVersion,
    SignatureScheme,
)
from dtlsgate.wire.extensions import (
    CERTIFICATE_TYPE_RAW_PUBLIC_KEY,
    Extension,
    decode_supported_versions_ch,
    encode_alpn,
    encode_ec_point_formats,
    encode_renegotiation_info,
    encode_use_srtp,
)
from dtlsgate.wire.handshake import encode_dtls_handshake
from dtlsgate.wire.messages import (
    RANDOM_LENGTH,
    ClientHello,
    encode_server_hello_choice,
    encode_server_hello_start,
)
from dtlsgate.wire.messages12 import (
    Certificate12,
    CertificateRequest12,
    CertificateVerify12,
    ClientKeyExchange,
    EcdhParams,
    KeyExchangeKind,
    RawPublicKey12,
    ServerHelloDone,
    ServerKeyExchange,
    ecdhe_client_public,
    ecdhe_server_key_exchange,
    ecdhe_signed_params,
    encode_ecdh_params,
    encode_new_session_ticket12,
)

HT = HandshakeType
# What `ServerContext.answer` remembers an answer by: a ClientHello's legacy_version, cipher
# suites, compression methods and extensions.
Offer = tuple[int, tuple[int, ...], bytes, tuple[Extension, ...] | None]
# RFC 5246 §7.4.4: ClientCertificateType rsa_sign(1), ecdsa_sign(64) (RFC 8422 §5.5).
_CERTIFICATE_TYPES = bytes((1, 64))
# The ServerHello extensions whose bodies never vary, encoded once:
# RFC 5746 §3.6: an empty renegotiation_info on the initial handshake;
_EMPTY_RENEGOTIATION_INFO = Extension(ExtensionType.renegotiation_info, encode_renegotiation_info())
# RFC 7627 §5.1: extended_master_secret with an empty body;
_EXTENDED_MASTER_SECRET = Extension(ExtensionType.extended_master_secret, b"")
# RFC 8422 §5.2: the server's ec_point_formats, uncompressed only;
_UNCOMPRESSED_POINT_FORMAT = Extension(ExtensionType.ec_point_formats, encode_ec_point_formats())
# RFC 6066 §3: an empty server_name acknowledges that the name was used.
_SERVER_NAME_ACKNOWLEDGED = Extension(ExtensionType.server_name, b"")
# RFC 5077 §3.2: an empty session_ticket says a NewSessionTicket will follow.
_SESSION_TICKET = Extension(ExtensionType.session_ticket, b"")
# RFC 5246 §7.4.1.2: our session IDs are 32 random bytes.
SESSION_ID_LENGTH = 32
# RFC 5246 §7.4.5: the ServerHelloDone body (empty), likewise encoded once.
_SERVER_HELLO_DONE_BODY = ServerHelloDone().encode()


# The server's answers remembered per offer (`ServerContext.answer`): clients of one kind
# send one offer, in every handshake. Only offers of at most MAX_OFFER_ITEMS cipher suites
# and extensions, whose extensions' bodies come to at most MAX_OFFER_EXTENSION_BYTES (a
# common offer has 20 to 60 items and 50 to 250 bytes of them), are kept, so that the memo
# (a `Memo` of at most MAX_ANSWERS) stays small however the offers are made.
MAX_ANSWERS = 32
MAX_OFFER_ITEMS = 128
MAX_OFFER_EXTENSION_BYTES = 1024

# What full handshakes report on completion (`ServerContext.completed`), remembered per
# suite, ALPN protocol, server name and extended master secret: a server sees a few of them.
# Only for a server name of at most MAX_REMEMBERED_NAME_LENGTH characters (a DNS name has at
# most 255 octets, RFC 1035 §2.3.4; a ClientHello's may be longer), so that each entry
# stays small however the names are made.
MAX_COMPLETIONS = 32
MAX_REMEMBERED_NAME_LENGTH = 255
# What a completion is remembered by: the suite, the ALPN protocol, the server name,
# whether the extended master secret was used, and the SRTP protection profile.
Completion = tuple[int, bytes | None, str | None, bool, int | None]

# The Certificate messages a context keeps, one per message_seq, for at most this many
# (the ServerHello's follows the client's ClientHello: 1 after a HelloVerifyRequest; others
# are encoded per handshake).
MAX_CACHED_MESSAGE_SEQS = 4


class ServerContext(KeyLogging):
    """A ``ServerConfig`` prepared for DTLS 1.2 handshakes, once per config, not per
    handshake, and read by every handler of its connections: the choices of `Preferences`,
    the trust store for client certificates, the ticket keys, our Certificate message
    encoded (the same for every handshake but for its message_seq, and held once by all the
    connections whose first flight waits to be retransmitted), and our answer to each offer
    a ClientHello makes (`answer`). The gate that admits the handshakes makes it
    (``Gate.dtls12_context``); a connection made without one makes its own. ``log_keys``,
    ``logging_keys()``: `KeyLogging`."""

    __slots__ = (
        "_answers",
        "_certificate_messages",
        "_completions",
        "certificate_body",
        "config",
        "fingerprints",
        "preferences",
        "provider",
        "raw_public_key_certificate",
        "request_schemes",
        "requests_certificate",
        "speaks_dtls13",
        "tickets",
        "trust",
    )

    def __init__(self, config: ServerConfig) -> None:
        # Refused now rather than mid-handshake: a certificate DTLS 1.2 cannot use.
        check_dtls12_identity(config.certificate_chain, config.private_key)
        super().__init__()
        self.config = config
        self.provider: CryptoProvider = config.provider
        # Whether a handshake on a certificate suite asks for the client's (RFC 5246
        # §7.4.4); decided here, as the trust store is, once for every handshake.
        self.requests_certificate = config.verify_client != "none"
        verify = self.requests_certificate and config.cafile
        # Loaded once per config, shared with its (D)TLS 1.3 context.
        self.trust: TrustStore | None = config.trust_store() if verify else None
        # The client certificate's fingerprints (RFC 8122), parsed once per config.
        self.fingerprints = config.peer_fingerprints() if self.requests_certificate else None
        self.preferences = Preferences(config)
        self.tickets = TicketKeys(config)
        # What our CertificateRequest offers, and so what a client may sign with.
        self.request_schemes = tuple(config.signature_schemes or DEFAULT_SIGNATURE_SCHEMES)
        # Whether the config also speaks DTLS 1.3 (then our random may carry the downgrade
        # sentinel, `downgrade_protected`).
        self.speaks_dtls13 = ProtocolVersion.DTLS13 in getattr(config, "dtls_versions", ())
        chain = config.certificate_chain
        self.certificate_body = Certificate12(tuple(map(_der, chain))).encode() if chain else b""
        self._certificate_messages: dict[int, bytes] = {}
        self._answers: Memo[Offer, Answer] = Memo(MAX_ANSWERS)
        self._completions: Memo[Completion, HandshakeCompleted] = Memo(MAX_COMPLETIONS)
        # RFC 7250 §3: our Certificate body carrying our raw public key.
        key = config.private_key
        self.raw_public_key_certificate = (
            RawPublicKey12(spki_of(key)).encode() if config.raw_public_key and key else b""
        )

    def answer(self, hello: ClientHello) -> Answer:
        """`choose` for ``hello`` (raising what it raises), and what a full handshake on the
        choice sends for it, made once per offer: they depend on the configuration and on
        the offer alone (its legacy_version, cipher suites, compression methods and
        extensions; not on the random, session_id or cookie). `MAX_ANSWERS` offers are
        remembered."""
        offer = (
            hello.legacy_version,
            hello.cipher_suites,
            hello.compression_methods,
            hello.extensions,
        )
        answer = self._answers.get(offer)
        if answer is not None:
            return answer
        choice = choose(self.preferences, hello)  # an offer refused raises, not remembered
        # RFC 5077 §3.2: the client supports tickets when it sends the extension (empty or not).
        new_ticket = self.config.session_tickets > 0 and choice.session_ticket is not None
        chosen = _server_hello_choice(choice, choice.suite, choice.ec_point_formats, new_ticket)
        answer = Answer(choice, new_ticket, chosen)
        extensions = hello.extension_bodies
        if (
            len(hello.cipher_suites) + len(extensions) <= MAX_OFFER_ITEMS
            and sum(map(len, extensions.values())) <= MAX_OFFER_EXTENSION_BYTES
        ):
            self._answers.remember(offer, answer)
        return answer

    def completed(self, state: WaitFinished) -> Complete[HandshakeCompleted]:
        """`complete` for a full handshake ending in ``state``. When the client gave no
        identity (no certificate or raw public key, no PSK identity), what it reports
        depends on the session's suite, ALPN protocol, server name, extended master secret
        and SRTP protection profile alone: made once per distinct ones (`MAX_COMPLETIONS`
        remembered, server names of at most `MAX_REMEMBERED_NAME_LENGTH`) and shared by the
        connections that report it (an event is immutable). The keying material exporter is
        each handshake's own."""
        session = state.session
        if state.peer_chain or state.psk_identity is not None:
            return complete(state, peer_raw=session.client_raw_public_key)
        key = (
            session.suite.suite,
            session.alpn,
            session.server_name,
            session.extended_master_secret,
            session.srtp_profile,
        )
        info = self._completions.get(key)
        if info is None:
            done = complete(state)
            name = session.server_name
            if name is None or len(name) <= MAX_REMEMBERED_NAME_LENGTH:
                self._completions.remember(key, done.info)
            return done
        return Complete(info, None, exporter_of(state))

    @property
    def completions_remembered(self) -> int:
        """How many completions `completed` remembers (at most `MAX_COMPLETIONS`)."""
        return len(self._completions)

    @property
    def answers_remembered(self) -> int:
        """How many offers' answers `answer` remembers (at most `MAX_ANSWERS`)."""
        return len(self._answers)

    def certificate_message(self, message_seq: int) -> bytes:
        """The whole Certificate message of our chain (DTLS header included) with
        ``message_seq``."""
        message = self._certificate_messages.get(message_seq)
        if message is None:
            message = encode_dtls_handshake(HT.CERTIFICATE, self.certificate_body, message_seq)
            if len(self._certificate_messages) < MAX_CACHED_MESSAGE_SEQS:
                self._certificate_messages[message_seq] = message
        return message


class Answer(NamedTuple):
    """The server's answer to one offer (`ServerContext.answer`): its choice, whether a full
    handshake on it issues a session ticket, and the part of that handshake's ServerHello
    that says what was chosen (from cipher_suite on: `encode_server_hello_choice`)."""

    choice: Choice
    new_ticket: bool
    server_hello: bytes


# --- states ---------------------------------------------------------------------------------


@frozen
class ServerWaitClientHello:
    """Nothing sent yet. ``admitted_hello`` is the ClientHello the gate decoded, when it did
    (then the message's body is not decoded a second time)."""

    transcript: Transcript
    admitted_hello: ClientHello | None = None


@frozen
class ServerWaitCertificate:
    """We asked for a client certificate (RFC 5246 §7.4.6)."""

    transcript: Transcript
    session: Session
    key_share: KeyShare | None


@frozen
class ServerWaitClientKeyExchange:
    """Our first flight is out, and no client certificate came (none asked for, or an empty
    Certificate where one was optional)."""

    transcript: Transcript
    session: Session
    key_share: KeyShare | None


@frozen
class ServerWaitClientKeyExchangeAfterCertificate:
    """The client sent its certificate chain (or raw public key), verified: its
    ClientKeyExchange comes next, then the CertificateVerify (RFC 5246 §7.3)."""

    transcript: Transcript
    session: Session
    key_share: KeyShare | None
    peer_chain: tuple[bytes, ...]


@frozen
class ServerWaitCertificateVerify:
    """The client sent a certificate: it must prove it holds the key (RFC 5246 §7.4.8)."""

    transcript: Transcript
    session: Session
    keys: Keys
    peer_chain: tuple[bytes, ...]
    psk_identity: bytes | None


@frozen
class ServerWaitResumedFinished:
    """Abbreviated handshake (RFC 5246 §7.3): our ServerHello, ChangeCipherSpec and
    Finished are out; the client's Finished comes next."""

    transcript: Transcript
    session: Session
    keys: Keys
    peer_chain: tuple[bytes, ...]
    psk_identity: bytes | None


ServerState = (
    ServerWaitClientHello
    | ServerWaitCertificate
    | ServerWaitClientKeyExchange
    | ServerWaitClientKeyExchangeAfterCertificate
    | ServerWaitCertificateVerify
    | WaitFinished
    | ServerWaitResumedFinished
    | Established
)


def start(
    ctx: ServerContext, message_seq: int, admitted_hello: ClientHello | None
) -> ServerWaitClientHello:
    """The state before the ClientHello; our messages are numbered from ``message_seq``.
    The transcript keeps the messages only if the client's CertificateVerify may come to
    sign them (RFC 5246 §7.4.8): otherwise their running hash is all it needs."""
    # By position: keywords to a class build a dict of them per handshake.
    transcript = Transcript(message_seq, ctx.requests_certificate)
    return ServerWaitClientHello(transcript, admitted_hello)


# --- handlers -------------------------------------------------------------------------------


def on_client_hello(
    ctx: ServerContext, state: ServerWaitClientHello, message: ReceivedMessage, now: float
) -> tuple[ServerState, Actions]:
    config, t = ctx.config, state.transcript
    hello = state.admitted_hello or ClientHello.decode(message.body, dtls=True)
    answer = ctx.answer(hello)
    choice = answer.choice
    stored = offered_session(ctx.tickets, hello, choice, now)
    if stored is not None:
        return _resume(ctx, t, hello, choice, stored)
    server_random = downgrade_protected(ctx, choice, ctx.provider.random(RANDOM_LENGTH))
    new_ticket = answer.new_ticket
    # RFC 5077 §3.4: with a ticket the session needs no ID; without, a cached one.
    resumable_by_id = not new_ticket and config.session_cache is not None
    session = as_session(
        (
            choice.suite,
            hello.random,  # client_random
            server_random,
            choice.extended_master_secret,
            choice.alpn,
            choice.server_name,
            ctx.provider.random(SESSION_ID_LENGTH) if resumable_by_id else b"",  # session_id
            new_ticket,
            choice.server_certificate_type == CERTIFICATE_TYPE_RAW_PUBLIC_KEY,
            choice.client_certificate_type == CERTIFICATE_TYPE_RAW_PUBLIC_KEY,
            choice.srtp_profile,
        )
    )
    certificate = choice.suite.uses_certificate
    request = certificate and ctx.requests_certificate
    # From here the transcript keeps only its running hash, and the messages themselves
    # only when the client's CertificateVerify will sign them (RFC 5246 §7.4.8).
    t.hash_with(choice.suite.hash, keep_messages=request)
    actions: Actions = [t.send(HT.SERVER_HELLO, _server_hello(session, answer.server_hello))]
    if certificate and session.server_raw_public_key:
        actions.append(t.send(HT.CERTIFICATE, ctx.raw_public_key_certificate))
    elif certificate:
        actions.append(t.send_encoded(ctx.certificate_message(t.send_seq)))
    key_share = _server_key_exchange(ctx, t, choice, session, actions)
    if request:
        body = CertificateRequest12(_CERTIFICATE_TYPES, ctx.request_schemes).encode()
        actions.append(t.send(HT.CERTIFICATE_REQUEST, body))
    actions.append(t.send(HT.SERVER_HELLO_DONE, _SERVER_HELLO_DONE_BODY))
    actions.append(END_FLIGHT)
    if request:
        return ServerWaitCertificate(t, session, key_share), actions
    return ServerWaitClientKeyExchange(t, session, key_share), actions


def _resume(
    ctx: ServerContext, t: Transcript, hello: ClientHello, choice: Choice, stored: StoredSession
) -> tuple[ServerState, Actions]:
    """The abbreviated handshake (RFC 5246 §7.3): ServerHello echoing the client's session
    ID (RFC 5077 §3.4 for a ticket), ChangeCipherSpec, Finished; keys from the session's
    master secret and the new randoms. The ticket is not renewed: a session lives at most
    one ``ticket_lifetime`` from its full handshake."""
    suite = suite_info(stored.suite)
    # Whether to answer ec_point_formats goes by the resumed session's suite, which the
    # Session (not the choice made for a full handshake) carries into the ServerHello.
    formats = choice.ec_point_formats or (
        hello.get(ExtensionType.ec_point_formats) is not None
        and suite.key_exchange is not KeyExchange.PSK
    )
    server_random = downgrade_protected(ctx, choice, ctx.provider.random(RANDOM_LENGTH))
    session = Session(
        suite,
        hello.random,
        server_random,
        stored.extended_master_secret,
        choice.alpn,
        choice.server_name,
        hello.session_id,
        srtp_profile=choice.srtp_profile,
    )
    keys = keys_from_master(ctx.provider, suite, stored.master_secret, hello.random, server_random)
    # No CertificateVerify in an abbreviated handshake: the running hash is all it needs.
    t.hash_with(suite.hash, keep_messages=False)
    chosen = _server_hello_choice(choice, suite, formats, new_ticket=False)
    actions: Actions = [t.send(HT.SERVER_HELLO, _server_hello(session, chosen))]
    actions += key_log(ctx.log_keys, hello.random, stored.master_secret)
    actions += change_cipher_spec(keys, is_client=False)
    actions.append(t.send(HT.FINISHED, finished_data(t, session, keys, client=False, last=False)))
    actions.append(END_FLIGHT)
    peers = stored.peer_certificates
    return ServerWaitResumedFinished(t, session, keys, peers, stored.psk_identity), actions


# RFC 8446 §4.1.3: the last 8 bytes of the random of a (D)TLS 1.3-capable server that
# negotiates (D)TLS 1.2 (RFC 9147 §5.3 applies it to DTLS).
DOWNGRADE_SENTINEL_12 = b"DOWNGRD\x01"


def downgrade_protected(ctx: ServerContext, choice: Choice, server_random: bytes) -> bytes:
    """``server_random`` with the downgrade sentinel when we also speak DTLS 1.3 and the
    client offered it: a client that offered DTLS 1.3 then knows that an attacker, not we,
    took it away (RFC 8446 §4.1.3). A DTLS 1.2-only ClientHello gets a plain random, so
    DTLS 1.2 handshakes stay as they were."""
    offered = choice.supported_versions
    if not ctx.speaks_dtls13 or offered is None:
        return server_random
    try:
        versions = decode_supported_versions_ch(offered)
    except ProtocolError:
        return server_random
    if ProtocolVersion.DTLS13 not in versions:
        return server_random
    return server_random[:-8] + DOWNGRADE_SENTINEL_12


def _server_hello(session: Session, chosen: bytes) -> bytes:
    """Our ServerHello's body: ``chosen`` (`_server_hello_choice`) after our random and the
    session_id (RFC 5246 §7.4.1.3: empty when the session is not cached)."""
    start = encode_server_hello_start(
        ProtocolVersion.DTLS12, session.server_random, session.session_id
    )
    return start + chosen


def _server_hello_choice(
    choice: Choice, suite: SuiteInfo, point_formats: bool, new_ticket: bool
) -> bytes:
    """Our ServerHello from its cipher_suite on: ``suite`` (a resumed session's own, RFC 5246
    §7.4.1.3), and the extensions that answer the client's: ``point_formats`` whether to
    send our ec_point_formats, ``new_ticket`` whether a NewSessionTicket follows."""
    extensions: list[Extension] = []
    if choice.secure_renegotiation:
        extensions.append(_EMPTY_RENEGOTIATION_INFO)
    if choice.extended_master_secret:
        extensions.append(_EXTENDED_MASTER_SECRET)
    if point_formats:
        extensions.append(_UNCOMPRESSED_POINT_FORMAT)
    if choice.server_name is not None:
        extensions.append(_SERVER_NAME_ACKNOWLEDGED)
    if choice.alpn is not None:
        alpn = encode_alpn((choice.alpn,))
        extensions.append(Extension(ExtensionType.application_layer_protocol_negotiation, alpn))
    if new_ticket:
        extensions.append(_SESSION_TICKET)
    if choice.srtp_profile is not None:
        # RFC 5764 §4.1.1: the one profile chosen, and no MKI of ours.
        extensions.append(
            Extension(ExtensionType.use_srtp, encode_use_srtp((choice.srtp_profile,)))
        )
    # RFC 7250 §4.2: the certificate types chosen, when the client sent the extensions.
    for ext_type, chosen in (
        (ExtensionType.client_certificate_type, choice.client_certificate_type),
        (ExtensionType.server_certificate_type, choice.server_certificate_type),
    ):
        if chosen is not None:
            extensions.append(Extension(ext_type, bytes((chosen,))))
    return encode_server_hello_choice(suite.suite, 0, tuple(extensions))


def _server_key_exchange(
    ctx: ServerContext, t: Transcript, choice: Choice, session: Session, actions: Actions
) -> KeyShare | None:
    """Append the ServerKeyExchange, when there is one, to ``actions``; our key share.
    Which one goes by the suite's prepared facts (`SuiteInfo`): plain PSK uses no group,
    ECDHE_PSK a group and no certificate, ECDHE_ECDSA and ECDHE_RSA both."""
    suite = session.suite
    hint = ctx.config.psk_identity_hint
    if not suite.uses_group:
        # RFC 4279 §2: without a hint, ServerKeyExchange is omitted.
        if hint:
            body = ServerKeyExchange(KeyExchangeKind.PSK, psk_identity_hint=hint).encode()
            actions.append(t.send(HT.SERVER_KEY_EXCHANGE, body))
        return None
    assert choice.group is not None  # choose() only picks ECDHE suites with a group
    share: KeyShare = ctx.provider.generate_key_share(choice.group)
    if not suite.uses_certificate:
        params = EcdhParams(choice.group, share.public_bytes)
        body = ServerKeyExchange(KeyExchangeKind.ECDHE_PSK, params, psk_identity_hint=hint).encode()
    else:
        assert choice.signature_scheme is not None
        assert ctx.config.private_key is not None  # a scheme is chosen only for our key
        # Encoded once: the signature covers these bytes, the message carries them.
        encoded = encode_ecdh_params(choice.group, share.public_bytes)
        signed = ecdhe_signed_params(session.client_random, session.server_random, encoded)
        signature = ctx.provider.sign(
            ctx.config.private_key, choice.signature_scheme, signed, tls13=False
        )
        body = ecdhe_server_key_exchange(encoded, choice.signature_scheme, signature)
    actions.append(t.send(HT.SERVER_KEY_EXCHANGE, body))
    return share


def on_certificate(
    ctx: ServerContext, state: ServerWaitCertificate, message: ReceivedMessage, now: float
) -> tuple[ServerState, Actions]:
    if state.session.client_raw_public_key:
        # RFC 7250 §3: one raw public key, which must be pinned.
        spki = RawPublicKey12.decode(message.body).subject_public_key_info
        pinned_peer_key(spki, ctx.config.pinned_keys)
        chain: tuple[bytes, ...] = (spki,)
    else:
        chain = Certificate12.decode(message.body).certificates
        if not chain:
            if ctx.config.verify_client == "required":
                # RFC 5246 §7.4.6: a server that requires a certificate sends
                # handshake_failure.
                raise HandshakeFailure("client sent no certificate")
            return ServerWaitClientKeyExchange(state.transcript, state.session, state.key_share), []
        if ctx.trust is None and ctx.fingerprints is None:
            # Only raw public keys are pinned (no cafile): X.509 is not a type we take.
            raise UnsupportedCertificate("no trust anchors for X.509 client certificates")
        verify_peer_chain(chain, ctx.trust, ctx.fingerprints, as_datetime(now))
    t, session = state.transcript, state.session
    return ServerWaitClientKeyExchangeAfterCertificate(t, session, state.key_share, chain), []


def _psk(ctx: ServerContext, identity: bytes) -> bytes:
    psk = ctx.config.psk.get(identity)
    if psk is None:
        # RFC 4279 §2: an unknown identity may be answered with unknown_psk_identity.
        raise UnknownPskIdentity("unknown PSK identity")
    return psk


def on_client_key_exchange(
    ctx: ServerContext,
    state: ServerWaitClientKeyExchange | ServerWaitClientKeyExchangeAfterCertificate,
    message: ReceivedMessage,
    now: float,
) -> tuple[ServerState, Actions]:
    session, t = state.session, state.transcript
    identity: bytes | None = None
    if session.suite.uses_certificate:
        # ECDHE_ECDSA, ECDHE_RSA (`_server_key_exchange`): the client's point alone.
        assert state.key_share is not None
        pms = state.key_share.exchange(ecdhe_client_public(message.body))
    else:
        kind = session.kind
        cke = ClientKeyExchange.decode(message.body, kind)
        identity = cke.psk_identity
        shared = None
        if kind is KeyExchangeKind.ECDHE_PSK:
            assert state.key_share is not None
            shared = state.key_share.exchange(cke.public)
        pms = psk_premaster_secret(_psk(ctx, identity), shared)
    keys = derive(ctx.provider, t, session, pms)
    actions = key_log(ctx.log_keys, session.client_random, keys.master_secret)
    actions.append(InstallCipherState(keys.client_write))
    if type(state) is ServerWaitClientKeyExchangeAfterCertificate:
        # RFC 5246 §7.4.8: the client proves next that it holds its certificate's key.
        return ServerWaitCertificateVerify(t, session, keys, state.peer_chain, identity), actions
    return WaitFinished(t, session, keys, (), identity), actions


def on_certificate_verify(
    ctx: ServerContext, state: ServerWaitCertificateVerify, message: ReceivedMessage, now: float
) -> tuple[ServerState, Actions]:
    cv = CertificateVerify12.decode(message.body)
    if cv.signature_scheme not in ctx.request_schemes:
        raise IllegalParameter("CertificateVerify uses a scheme we did not request")
    if state.session.client_raw_public_key:
        key = pinned_peer_key(state.peer_chain[0], ctx.config.pinned_keys)
    else:
        key = peer_public_key(parse_peer_certificate(state.peer_chain[0]))
    # RFC 5246 §7.4.8: the signature covers every handshake message before this one.
    ctx.provider.verify(
        key,
        SignatureScheme(cv.signature_scheme),
        state.transcript.data(exclude_last=True),
        cv.signature,
        tls13=False,
    )
    t = state.transcript
    return WaitFinished(t, state.session, state.keys, state.peer_chain, state.psk_identity), []


def on_finished(
    ctx: ServerContext, state: WaitFinished, message: ReceivedMessage, now: float
) -> tuple[ServerState, Actions]:
    session, keys, t = state.session, state.keys, state.transcript
    check_finished(finished_data(t, session, keys, client=True, last=True), message)
    actions: Actions = []
    if session.new_ticket or session.session_id:
        _keep_session(ctx, t, state, now, actions)
    # The client's epoch 1 is open since its ClientKeyExchange: ours follows our CCS.
    actions.append(SendChangeCipherSpec(keys.server_write))
    actions.append(t.send(HT.FINISHED, finished_data(t, session, keys, client=False, last=False)))
    actions.append(END_LAST_FLIGHT)
    actions.append(ctx.completed(state))
    return ESTABLISHED, actions


def _keep_session(
    ctx: ServerContext, t: Transcript, state: WaitFinished, now: float, actions: Actions
) -> None:
    """The session, now complete, for resumption: sealed in a NewSessionTicket (RFC 5077
    §3.3), or cached under its session ID."""
    config, session = ctx.config, state.session
    stored = encode_stored_session(
        session.suite.suite,
        int(now),
        config.ticket_lifetime,
        session.extended_master_secret,
        state.keys.master_secret,
        session.server_name,
        state.psk_identity,
        state.peer_chain,
    )
    if session.new_ticket:
        ticket = ctx.tickets.seal_encoded(stored, ctx.provider.random(12), now)
        if len(ticket) > MAX_TICKET_LENGTH:
            ticket = b""  # RFC 5077 §3.3: an empty ticket; nothing to resume with
        body = encode_new_session_ticket12(config.ticket_lifetime, ticket)
        actions.append(t.send(HT.NEW_SESSION_TICKET, body))
    elif config.session_cache is not None:
        config.session_cache.put(session.session_id, stored, now)


def on_resumed_finished(
    ctx: ServerContext, state: ServerWaitResumedFinished, message: ReceivedMessage, now: float
) -> tuple[ServerState, Actions]:
    session, keys, t = state.session, state.keys, state.transcript
    check_finished(finished_data(t, session, keys, client=True, last=True), message)
    done = WaitFinished(t, session, keys, state.peer_chain, state.psk_identity)
    return ESTABLISHED, [complete(done, resumed=True)]


def on_renegotiation(
    ctx: ServerContext, state: Established, message: ReceivedMessage, now: float
) -> tuple[ServerState, Actions]:
    # RFC 5746 §4.4 / RFC 5246 §7.2.2: we do not renegotiate; a warning says so.
    return state, [SendWarning(AlertDescription.no_renegotiation)]


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


# --- the table --------------------------------------------------------------------------------

Handler = Callable[..., tuple[ServerState, Actions]]

#: The one table of legal messages per state (RFC 5246 §7.3, RFC 6347 §4.2).
SERVER: Machine[Handler] = Machine(
    name="DTLS 1.2 server",
    start=(ServerWaitClientHello,),
    table={
        ServerWaitClientHello: {HT.CLIENT_HELLO: on_client_hello},
        ServerWaitCertificate: {HT.CERTIFICATE: on_certificate},
        ServerWaitClientKeyExchange: {HT.CLIENT_KEY_EXCHANGE: on_client_key_exchange},
        ServerWaitClientKeyExchangeAfterCertificate: {
            HT.CLIENT_KEY_EXCHANGE: on_client_key_exchange
        },
        ServerWaitCertificateVerify: {HT.CERTIFICATE_VERIFY: on_certificate_verify},
        WaitFinished: {HT.FINISHED: on_finished},
        ServerWaitResumedFinished: {HT.FINISHED: on_resumed_finished},
        Established: {HT.CLIENT_HELLO: on_renegotiation},
    },
    goes_to={
        (ServerWaitClientHello, HT.CLIENT_HELLO): (
            ServerWaitCertificate,
            ServerWaitClientKeyExchange,
            ServerWaitResumedFinished,
        ),
        (ServerWaitCertificate, HT.CERTIFICATE): (
            ServerWaitClientKeyExchangeAfterCertificate,
            ServerWaitClientKeyExchange,
        ),
        (ServerWaitClientKeyExchange, HT.CLIENT_KEY_EXCHANGE): (WaitFinished,),
        (ServerWaitClientKeyExchangeAfterCertificate, HT.CLIENT_KEY_EXCHANGE): (
            ServerWaitCertificateVerify,
        ),
        (ServerWaitCertificateVerify, HT.CERTIFICATE_VERIFY): (WaitFinished,),
        (WaitFinished, HT.FINISHED): (Established,),
        (ServerWaitResumedFinished, HT.FINISHED): (Established,),
        (Established, HT.CLIENT_HELLO): (Established,),
    },
    epochs=EPOCHS,
    default_epochs=HANDSHAKE_EPOCHS,
    after_handshake=frozenset({Established}),
    after_handshake_epochs=ESTABLISHED_EPOCHS,
)

__all__ = ["SERVER", "ServerContext", "ServerState", "ServerWaitClientHello", "start"]
