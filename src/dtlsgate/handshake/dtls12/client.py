"""The DTLS 1.2 client handshake (RFC 6347 §4.2, RFC 5246 §7.3): states, the table of legal
messages per state, one handler per (state, message).

``start`` gives the first state and the first ClientHello (empty cookie). The client answers
a HelloVerifyRequest when the server sends one (RFC 6347 §4.2.1) and handshakes with
servers that send none. The server's first flight takes one of three paths after the
ServerHello, by key exchange:

- certificates (ECDHE_ECDSA, ECDHE_RSA): Certificate, ServerKeyExchange,
  CertificateRequest*, ServerHelloDone;
- ECDHE_PSK: ServerKeyExchange, ServerHelloDone;
- PSK: ServerKeyExchange* (only with an identity hint, RFC 4279 §2), ServerHelloDone.

A server that issues tickets sends a NewSessionTicket before its Finished (RFC 5077 §3.3).
With ``ClientConfig.session_ticket`` (a `Dtls12Session`) the ClientHello offers that
session, by ticket or session ID; a ServerHello echoing our session ID resumes it: the
abbreviated handshake of RFC 5246 §7.3 (ServerHello, NewSessionTicket*, ChangeCipherSpec,
Finished from the server; our ChangeCipherSpec and Finished end it). Any other ServerHello
is a full handshake.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding

from dtlsgate._frozen import frozen
from dtlsgate.config import ClientConfig, verifies_x509
from dtlsgate.crypto.certs import (
    TrustStore,
    peer_public_key,
    pinned_peer_key,
    spki_of,
    verify_peer_chain,
)
from dtlsgate.crypto.kex import ecdhe_groups
from dtlsgate.crypto.prf import psk_premaster_secret
from dtlsgate.crypto.provider import CryptoProvider
from dtlsgate.crypto.signatures import schemes_for_key
from dtlsgate.crypto.suites import KeyExchange, SuiteInfo, suite_info
from dtlsgate.errors import (
    HandshakeFailure,
    IllegalParameter,
    ProtocolError,
    ProtocolVersionError,
    UnexpectedMessage,
    UnsupportedCertificate,
    UnsupportedExtension,
    UsageError,
)
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
    finished_data,
    key_log,
)
from dtlsgate.handshake.dtls12.negotiate import (
    DEFAULT_GROUPS,
    DEFAULT_SIGNATURE_SCHEMES,
    EC_POINT_UNCOMPRESSED,
    Keys,
    client_suites,
    keys_from_master,
    kind_of,
)
from dtlsgate.handshake.dtls12.resume import Dtls12Session
from dtlsgate.handshake.engine import (
    END_FLIGHT,
    END_LAST_FLIGHT,
    ExpectMessageSeq,
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
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
)
from dtlsgate.wire.extensions import (
    CERTIFICATE_TYPE_RAW_PUBLIC_KEY,
    CERTIFICATE_TYPE_X509,
    Extension,
    chosen_srtp_profile,
    decode_alpn,
    decode_certificate_type,
    decode_ec_point_formats,
    decode_renegotiation_info,
    encode_alpn,
    encode_certificate_types,
    encode_ec_point_formats,
    encode_renegotiation_info,
    encode_server_name,
    encode_u16_list_ext,
    encode_use_srtp,
    require_empty,
)
from dtlsgate.wire.messages import RANDOM_LENGTH, ClientHello, HelloVerifyRequest, ServerHello
from dtlsgate.wire.messages12 import (
    Certificate12,
    CertificateRequest12,
    CertificateVerify12,
    ClientKeyExchange,
    EcdhParams,
    HelloRequest,
    KeyExchangeKind,
    NewSessionTicket12,
    RawPublicKey12,
    ServerHelloDone,
    ServerKeyExchange,
    ecdhe_signed_params,
)
from dtlsgate.wire.record import DTLS_VERSION_MAJOR

HT = HandshakeType
_X509 = CERTIFICATE_TYPE_X509
_RAW_PUBLIC_KEY = CERTIFICATE_TYPE_RAW_PUBLIC_KEY
# RFC 6347 §4.2.1: a client answers HelloVerifyRequests; a server that keeps sending new
# ones is broken or hostile. Two covers a cookie secret rotating between the hellos.
MAX_HELLO_VERIFY_REQUESTS = 2


class ClientContext(KeyLogging):
    """What every handler of one client connection reads: the configuration, the trust
    store and the certificate fingerprints (the config's, parsed once), the suites, groups
    and schemes we offer (computed once). ``log_keys``, ``logging_keys()``: `KeyLogging`."""

    __slots__ = (
        "client_types",
        "config",
        "fingerprints",
        "groups",
        "offered_dtls13",
        "provider",
        "schemes",
        "server_types",
        "session",
        "suites",
        "trust",
    )

    def __init__(self, config: ClientConfig, trust: TrustStore | None) -> None:
        super().__init__()
        self.config = config
        self.provider: CryptoProvider = config.provider
        self.trust = trust
        self.fingerprints = config.peer_fingerprints()
        self.suites = client_suites(config)
        if not self.suites:
            raise UsageError("no DTLS 1.2 cipher suite to offer with this configuration")
        # Only elliptic curves: FFDHE and ML-KEM groups in a shared config are TLS 1.3's.
        self.groups = ecdhe_groups(config.groups or DEFAULT_GROUPS)
        self.schemes = tuple(config.signature_schemes or DEFAULT_SIGNATURE_SCHEMES)
        # The session to offer: a DTLS 1.2 one (a TLS 1.3 ticket is for the other
        # protocol), whose suite we still offer (RFC 5246 §7.4.1.2).
        session = config.session_ticket
        usable = isinstance(session, Dtls12Session) and session.cipher_suite in self.suites
        self.session: Dtls12Session | None = session if usable else None
        # RFC 7250 §4.1: the certificate types we take from the server (a raw public key
        # when we have pins, X.509 too when something checks it) and can send; None: the
        # extension is not sent (X.509 only).
        self.server_types: tuple[int, ...] | None = None
        if config.pinned_keys:
            self.server_types = (_RAW_PUBLIC_KEY,) + ((_X509,) if verifies_x509(config) else ())
        self.client_types: tuple[int, ...] | None = None
        if config.raw_public_key and config.private_key is not None:
            self.client_types = (_RAW_PUBLIC_KEY,) + ((_X509,) if config.certificate_chain else ())
        # Our ClientHello offered DTLS 1.3 too (`start_after_dtls13_offer`): a ServerHello
        # with the RFC 8446 §4.1.3 downgrade sentinel is then refused.
        self.offered_dtls13 = False


# --- states ---------------------------------------------------------------------------------


@frozen
class ClientWaitServerHello:
    """Our ClientHello is out; a ServerHello or a HelloVerifyRequest comes back."""

    transcript: Transcript
    hello: ClientHello
    hello_verify_requests: int = 0


@frozen
class ClientWaitCertificate:
    """A certificate suite: the server's Certificate comes next."""

    transcript: Transcript
    session: Session


@frozen
class ClientWaitServerKeyExchange:
    """A certificate suite: its signed ECDHE parameters come next (RFC 8422 §5.4)."""

    transcript: Transcript
    session: Session
    server_key: CertificatePublicKeyTypes
    peer_chain: tuple[bytes, ...]


@frozen
class ClientWaitEcdhePskServerKeyExchange:
    """ECDHE_PSK: the unsigned ECDHE parameters come next (RFC 5489 §2)."""

    transcript: Transcript
    session: Session


@frozen
class ClientWaitPskServerKeyExchange:
    """Plain PSK: ServerKeyExchange carries only a hint and may be absent (RFC 4279 §2)."""

    transcript: Transcript
    session: Session


@frozen
class ClientWaitCertificateRequest:
    """A certificate suite: a CertificateRequest may come before ServerHelloDone."""

    transcript: Transcript
    session: Session
    server_params: EcdhParams
    peer_chain: tuple[bytes, ...]


@frozen
class ClientWaitServerHelloDone:
    """A certificate suite, after a CertificateRequest: only ServerHelloDone can come."""

    transcript: Transcript
    session: Session
    server_params: EcdhParams
    peer_chain: tuple[bytes, ...]
    certificate_request: CertificateRequest12


@frozen
class ClientWaitPskServerHelloDone:
    """A PSK suite, after its ServerKeyExchange: only ServerHelloDone can come
    (``server_params`` for ECDHE_PSK, None for PSK). No certificate came or will: a state
    of its own, not `ClientWaitServerHelloDone` with an empty chain and request."""

    transcript: Transcript
    session: Session
    server_params: EcdhParams | None


@frozen
class ClientWaitNewSessionTicket:
    """The server said it would send a ticket (RFC 5077 §3.3): it comes before its
    ChangeCipherSpec and Finished; ``resumed`` is the session an abbreviated handshake
    resumes (None in a full handshake)."""

    transcript: Transcript
    session: Session
    keys: Keys
    peer_chain: tuple[bytes, ...]
    psk_identity: bytes | None
    resumed: Dtls12Session | None


@frozen
class ClientWaitResumedFinished:
    """Abbreviated handshake (RFC 5246 §7.3): the server's Finished comes next; ours
    answers it. ``ticket``: a new ticket the server sent for the session, if any."""

    transcript: Transcript
    session: Session
    keys: Keys
    resumed: Dtls12Session
    ticket: bytes = b""
    ticket_lifetime_hint: int = 0


@frozen
class ClientWaitFinished(WaitFinished):
    """Our second flight is out; the server's Finished (epoch 1) comes next. ``ticket``:
    the NewSessionTicket the server sent before it, if any (RFC 5077 §3.3). A state of the
    client's own: a server waiting for the client's Finished holds no ticket."""

    ticket: bytes = b""
    ticket_lifetime_hint: int = 0


ClientState = (
    ClientWaitServerHello
    | ClientWaitCertificate
    | ClientWaitServerKeyExchange
    | ClientWaitEcdhePskServerKeyExchange
    | ClientWaitPskServerKeyExchange
    | ClientWaitCertificateRequest
    | ClientWaitServerHelloDone
    | ClientWaitPskServerHelloDone
    | ClientWaitNewSessionTicket
    | ClientWaitResumedFinished
    | ClientWaitFinished
    | Established
)
Result = tuple[ClientState, Actions]


# --- the hellos -----------------------------------------------------------------------------


def start(ctx: ClientContext) -> tuple[ClientWaitServerHello, Actions]:
    """The first ClientHello (empty cookie), as the first flight."""
    transcript = Transcript()
    hello = _client_hello(ctx)
    send = transcript.send(HT.CLIENT_HELLO, hello.encode())
    return ClientWaitServerHello(transcript, hello), [send, END_FLIGHT]


def start_after_dtls13_offer(
    ctx: ClientContext, hello: ClientHello
) -> tuple[ClientWaitServerHello, Actions]:
    """The first flight when ``hello`` (a ClientHello offering DTLS 1.3 and 1.2, already
    sent) is answered by a DTLS 1.2 server: the same ClientHello, as our message 0."""
    ctx.offered_dtls13 = True
    transcript = Transcript()
    send = transcript.send(HT.CLIENT_HELLO, hello.encode())
    return ClientWaitServerHello(transcript, hello), [send, END_FLIGHT]


def fallback_extensions(ctx: ClientContext) -> tuple[Extension, ...]:
    """What a DTLS 1.2 server needs of a ClientHello that offers DTLS 1.3 and 1.2, beyond
    what DTLS 1.3 sends (RFC 8422 point formats, RFC 7627, RFC 5746, RFC 5077, RFC 7250)."""
    return tuple(
        e
        for e in _client_hello(ctx).extensions or ()
        if e.type
        in (
            ExtensionType.ec_point_formats,
            ExtensionType.extended_master_secret,
            ExtensionType.renegotiation_info,
            # RFC 5077 §3.2: a DTLS 1.2 server then issues a ticket; RFC 7250 §4.1: our raw
            # key for its certificate request (DTLS 1.3 sends neither).
            ExtensionType.session_ticket,
            ExtensionType.client_certificate_type,
        )
    )


def _client_hello(ctx: ClientContext) -> ClientHello:
    c = ctx.config
    ext: list[Extension] = []
    if c.server_name and not _is_ip(c.server_name):
        ext.append(Extension(ExtensionType.server_name, encode_server_name(c.server_name)))
    ecc = any(kind_of(suite_info(s)) is not KeyExchangeKind.PSK for s in ctx.suites)
    if ecc:
        ext.append(Extension(ExtensionType.supported_groups, encode_u16_list_ext(ctx.groups)))
        ext.append(Extension(ExtensionType.ec_point_formats, encode_ec_point_formats()))
    if any(suite_info(s).uses_certificate for s in ctx.suites):
        schemes = encode_u16_list_ext(ctx.schemes)
        ext.append(Extension(ExtensionType.signature_algorithms, schemes))
        for ext_type, types in (
            (ExtensionType.client_certificate_type, ctx.client_types),
            (ExtensionType.server_certificate_type, ctx.server_types),
        ):
            if types is not None:
                ext.append(Extension(ext_type, encode_certificate_types(types)))
    if c.alpn_protocols:
        alpn = encode_alpn(c.alpn_protocols)
        ext.append(Extension(ExtensionType.application_layer_protocol_negotiation, alpn))
    if c.srtp_profiles:  # RFC 5764 §4.1.1, with no MKI
        ext.append(Extension(ExtensionType.use_srtp, encode_use_srtp(c.srtp_profiles)))
    # RFC 5077 §3.2: the ticket we resume with, or an empty one to ask for tickets.
    session, session_id = ctx.session, b""
    ext.append(Extension(ExtensionType.session_ticket, session.ticket if session else b""))
    ext.append(Extension(ExtensionType.extended_master_secret, b""))
    ext.append(Extension(ExtensionType.renegotiation_info, encode_renegotiation_info()))
    random = ctx.provider.random(RANDOM_LENGTH)
    if session is not None:
        # RFC 5077 §3.4: with a ticket, a session ID of our own, which a server accepting
        # the ticket echoes: that is how we tell a resumption from a full handshake.
        session_id = ctx.provider.random(32) if session.ticket else session.session_id
    return ClientHello(
        ProtocolVersion.DTLS12,
        random,
        session_id,
        ctx.suites,
        b"\x00",
        tuple(ext),
        b"",
    )


def on_hello_verify_request(
    ctx: ClientContext, state: ClientWaitServerHello, message: ReceivedMessage, now: float
) -> Result:
    hvr = HelloVerifyRequest.decode(message.body)
    if state.hello_verify_requests >= MAX_HELLO_VERIFY_REQUESTS:
        raise UnexpectedMessage("too many HelloVerifyRequests")
    if hvr.server_version >> 8 != DTLS_VERSION_MAJOR:
        raise ProtocolVersionError("HelloVerifyRequest with a non-DTLS version")
    # RFC 6347 §4.2.1: the same ClientHello with the cookie added; the first hello and
    # the HelloVerifyRequest are left out of the transcript (§4.2.6).
    old = state.hello
    hello = ClientHello(
        old.legacy_version,
        old.random,
        old.session_id,
        old.cipher_suites,
        old.compression_methods,
        old.extensions,
        hvr.cookie,
    )
    transcript = Transcript(state.transcript.send_seq)
    # RFC 6347 §4.2.2: the server's ServerHello takes this ClientHello's message_seq.
    actions: Actions = [
        ExpectMessageSeq(transcript.send_seq),
        transcript.send(HT.CLIENT_HELLO, hello.encode()),
        END_FLIGHT,
    ]
    return ClientWaitServerHello(transcript, hello, state.hello_verify_requests + 1), actions


def is_new_hello_verify_request(state: ClientState, body: bytes) -> bool:
    """Whether a HelloVerifyRequest is a new answer to the ClientHello we sent with a
    cookie (the server refused that cookie), not a copy of the one we answered.

    A stateless server numbers every HelloVerifyRequest message_seq 0: it keeps no
    count (RFC 6347 §4.2.1). One that refuses our cookie (its secret rotated, or
    another server of a fleet without the same key got our ClientHello) carries a
    cookie other than the one we sent; by message_seq alone it would look like a
    retransmission of the first, and we would resend the refused cookie forever."""
    if not isinstance(state, ClientWaitServerHello) or not state.hello.cookie:
        return False
    try:
        return HelloVerifyRequest.decode(body).cookie != state.hello.cookie
    except ProtocolError:
        return False


def on_server_hello(
    ctx: ClientContext, state: ClientWaitServerHello, message: ReceivedMessage, now: float
) -> Result:
    sh = ServerHello.decode(message.body, tls13=False)
    # RFC 8446 §4.1.3 (RFC 9147 §5.3): having offered DTLS 1.3, a DTLS 1.2 ServerHello
    # from a server that speaks 1.3 means someone removed it from our offer.
    if ctx.offered_dtls13 and sh.random[-8:-1] == b"DOWNGRD":
        raise IllegalParameter("downgrade sentinel in a DTLS 1.2 ServerHello")
    if sh.legacy_version != ProtocolVersion.DTLS12:
        raise ProtocolVersionError(f"server chose version {sh.legacy_version:#06x}")
    if sh.cipher_suite not in ctx.suites or sh.compression_method != 0:
        raise IllegalParameter("server chose a suite or compression we did not offer")
    offered = {e.type for e in state.hello.extensions or ()}
    for ext in sh.extensions or ():
        if ext.type not in offered:
            # RFC 5246 §7.4.1.4: only extensions the client offered may come back.
            raise UnsupportedExtension(f"unsolicited extension {ext.type}")
    _check_server_hello_extensions(sh)
    ems = sh.get(ExtensionType.extended_master_secret) is not None
    if ctx.config.require_extended_master_secret and not ems:
        raise HandshakeFailure("server does not use the extended master secret")
    reneg = sh.get(ExtensionType.renegotiation_info)
    if reneg is not None and decode_renegotiation_info(reneg):
        raise HandshakeFailure("non-empty renegotiation_info in ServerHello")
    alpn = sh.get(ExtensionType.application_layer_protocol_negotiation)
    selected = decode_alpn(alpn) if alpn is not None else ()
    if len(selected) > 1 or (selected and selected[0] not in ctx.config.alpn_protocols):
        raise IllegalParameter("server selected an ALPN protocol we did not offer")
    srtp_profile = chosen_srtp_profile(sh.get(ExtensionType.use_srtp), ctx.config.srtp_profiles)
    suite = suite_info(sh.cipher_suite)
    session = as_session(
        (
            suite,
            state.hello.random,  # client_random
            sh.random,  # server_random
            ems,
            selected[0] if selected else None,  # alpn
            ctx.config.server_name,
            sh.session_id,
            sh.get(ExtensionType.session_ticket) is not None,  # new_ticket
            _chosen_type(sh, ExtensionType.server_certificate_type, ctx.server_types),
            _chosen_type(sh, ExtensionType.client_certificate_type, ctx.client_types),
            srtp_profile,
        )
    )
    t = state.transcript
    if ctx.session is not None and sh.session_id and sh.session_id == state.hello.session_id:
        return _resumed(ctx, t, session, ctx.session)
    if suite.uses_certificate:
        return ClientWaitCertificate(t, session), []
    if session.kind is KeyExchangeKind.PSK:
        return ClientWaitPskServerKeyExchange(t, session), []
    return ClientWaitEcdhePskServerKeyExchange(t, session), []


def _chosen_type(sh: ServerHello, ext_type: int, offered: tuple[int, ...] | None) -> bool:
    """Whether the server chose RawPublicKey for this certificate_type (RFC 7250 §4.2);
    it may only choose a type we offered."""
    data = sh.get(ext_type)
    if data is None:
        return False
    chosen = decode_certificate_type(data)
    if offered is None or chosen not in offered:
        raise IllegalParameter("server chose a certificate type we did not offer")
    return chosen == _RAW_PUBLIC_KEY


def _resumed(ctx: ClientContext, t: Transcript, session: Session, saved: Dtls12Session) -> Result:
    """The server echoed our session ID: it resumes ``saved`` (RFC 5246 §7.3)."""
    if session.suite.suite != saved.cipher_suite:
        # RFC 5246 §7.4.1.3: a resumed session keeps its cipher suite.
        raise IllegalParameter("server resumed the session with another cipher suite")
    if session.extended_master_secret != saved.extended_master_secret:
        # RFC 7627 §5.3: the extension must be as it was in the original handshake, or
        # the client aborts with handshake_failure.
        raise HandshakeFailure("extended_master_secret differs from the resumed session's")
    keys = keys_from_master(
        ctx.provider,
        session.suite,
        saved.master_secret,
        session.client_random,
        session.server_random,
    )
    actions = key_log(ctx.log_keys, session.client_random, saved.master_secret)
    actions.append(InstallCipherState(keys.server_write))
    if session.new_ticket:
        chain, identity = saved.peer_certificates, saved.psk_identity
        return ClientWaitNewSessionTicket(t, session, keys, chain, identity, saved), actions
    return ClientWaitResumedFinished(t, session, keys, saved), actions


def _check_server_hello_extensions(sh: ServerHello) -> None:
    """The bodies of the ServerHello extensions a DTLS 1.2 client acts on."""
    ems = sh.get(ExtensionType.extended_master_secret)
    if ems is not None:
        # RFC 7627 §5.1: "The "extension_data" field of this extension is empty."
        require_empty(ems, "extended_master_secret")
    server_name = sh.get(ExtensionType.server_name)
    if server_name is not None:
        # RFC 6066 §3: the server's server_name "SHALL be empty".
        require_empty(server_name, "server_name")
    formats = sh.get(ExtensionType.ec_point_formats)
    if formats is not None and EC_POINT_UNCOMPRESSED not in decode_ec_point_formats(formats):
        # RFC 8422 §5.2: the server's list MUST contain uncompressed, the only format we
        # (and RFC 8422 §5.1.2) use.
        raise IllegalParameter("server's ec_point_formats lacks uncompressed")


# --- the server's first flight ----------------------------------------------------------------


def on_certificate(
    ctx: ClientContext, state: ClientWaitCertificate, message: ReceivedMessage, now: float
) -> Result:
    session = state.session
    if session.server_raw_public_key:
        # RFC 7250 §3: one raw public key, which must be pinned.
        spki = RawPublicKey12.decode(message.body).subject_public_key_info
        key = _server_public_key(pinned_peer_key(spki, ctx.config.pinned_keys), session.suite)
        return ClientWaitServerKeyExchange(state.transcript, session, key, (spki,)), []
    chain = Certificate12.decode(message.body).certificates
    trust, fingerprints = ctx.trust, ctx.fingerprints
    if trust is None and fingerprints is None and ctx.config.pinned_keys:
        # Pins only: X.509 is not a type we take (RFC 7250 §4.2).
        raise UnsupportedCertificate(
            "server sent an X.509 certificate; we take raw public keys only"
        )
    name = ctx.config.server_name or ""
    leaf = verify_peer_chain(chain, trust, fingerprints, as_datetime(now), name)
    key = _server_public_key(peer_public_key(leaf), session.suite)
    return ClientWaitServerKeyExchange(state.transcript, session, key, chain), []


def _server_public_key(
    key: CertificatePublicKeyTypes, suite: SuiteInfo
) -> CertificatePublicKeyTypes:
    """The server's public key, when it can sign for ``suite``'s key exchange. RFC 5246
    §7.4.2: the key "MUST be compatible with the selected key exchange algorithm"; RFC 8422
    §5.3: ECDHE_ECDSA needs an ECDSA or EdDSA key, ECDHE_RSA an RSA key."""
    wanted: tuple[type, ...] = (
        (rsa.RSAPublicKey,)
        if suite.key_exchange is KeyExchange.ECDHE_RSA
        else (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)
    )
    if not isinstance(key, wanted):
        raise UnsupportedCertificate(
            f"a {type(key).__name__} cannot sign for {suite.key_exchange.name}"
        )
    return key


def _ecdhe_params(ctx: ClientContext, ske: ServerKeyExchange) -> EcdhParams:
    assert ske.params is not None  # ECDHE layouts always carry parameters
    if ske.params.group not in ctx.groups:
        raise IllegalParameter("server chose a group we did not offer")
    return ske.params


def on_server_key_exchange(
    ctx: ClientContext, state: ClientWaitServerKeyExchange, message: ReceivedMessage, now: float
) -> Result:
    session = state.session
    ske = ServerKeyExchange.decode(message.body, session.kind)
    params = _ecdhe_params(ctx, ske)
    if ske.signature_scheme not in ctx.schemes:
        raise IllegalParameter("server signed with a scheme we did not offer")
    signed = ecdhe_signed_params(session.client_random, session.server_random, params.encode())
    ctx.provider.verify(
        state.server_key,
        SignatureScheme(ske.signature_scheme),
        signed,
        ske.signature,
        tls13=False,
    )
    return ClientWaitCertificateRequest(state.transcript, session, params, state.peer_chain), []


def on_ecdhe_psk_server_key_exchange(
    ctx: ClientContext,
    state: ClientWaitEcdhePskServerKeyExchange,
    message: ReceivedMessage,
    now: float,
) -> Result:
    ske = ServerKeyExchange.decode(message.body, KeyExchangeKind.ECDHE_PSK)
    params = _ecdhe_params(ctx, ske)
    return ClientWaitPskServerHelloDone(state.transcript, state.session, params), []


def on_psk_server_key_exchange(
    ctx: ClientContext, state: ClientWaitPskServerKeyExchange, message: ReceivedMessage, now: float
) -> Result:
    ServerKeyExchange.decode(message.body, KeyExchangeKind.PSK)
    return ClientWaitPskServerHelloDone(state.transcript, state.session, None), []


def on_certificate_request(
    ctx: ClientContext, state: ClientWaitCertificateRequest, message: ReceivedMessage, now: float
) -> Result:
    request = CertificateRequest12.decode(message.body)
    t = state.transcript
    return ClientWaitServerHelloDone(
        t, state.session, state.server_params, state.peer_chain, request
    ), []


# --- our second flight ------------------------------------------------------------------------


def on_server_hello_done(
    ctx: ClientContext,
    state: ClientWaitCertificateRequest
    | ClientWaitServerHelloDone
    | ClientWaitPskServerHelloDone
    | ClientWaitPskServerKeyExchange,
    message: ReceivedMessage,
    now: float,
) -> Result:
    ServerHelloDone.decode(message.body)
    t, session = state.transcript, state.session
    # The fields the flight needs, from the state itself: no state made for the step.
    if isinstance(state, ClientWaitCertificateRequest):  # no CertificateRequest came
        return _client_flight(ctx, t, session, state.server_params, state.peer_chain, None)
    if isinstance(state, ClientWaitServerHelloDone):
        request = state.certificate_request
        return _client_flight(ctx, t, session, state.server_params, state.peer_chain, request)
    if isinstance(state, ClientWaitPskServerHelloDone):
        return _client_flight(ctx, t, session, state.server_params, (), None)
    return _client_flight(ctx, t, session, None, (), None)  # PSK, no ServerKeyExchange


def _client_flight(
    ctx: ClientContext,
    t: Transcript,
    session: Session,
    server_params: EcdhParams | None,
    peer_chain: tuple[bytes, ...],
    certificate_request: CertificateRequest12 | None,
) -> Result:
    """Certificate*, ClientKeyExchange, CertificateVerify*, ChangeCipherSpec, Finished."""
    actions: Actions = []
    scheme = _client_certificate(ctx, t, session, certificate_request, actions)
    pms, identity = _client_key_exchange(ctx, t, session, server_params, actions)
    keys = derive(ctx.provider, t, session, pms)
    actions[:0] = key_log(ctx.log_keys, session.client_random, keys.master_secret)
    if scheme is not None:
        assert ctx.config.private_key is not None  # a scheme is chosen only for our key
        signature = ctx.provider.sign(ctx.config.private_key, scheme, t.data(), tls13=False)
        actions.append(
            t.send(HT.CERTIFICATE_VERIFY, CertificateVerify12(scheme, signature).encode())
        )
    actions += change_cipher_spec(keys, is_client=True)
    actions.append(t.send(HT.FINISHED, finished_data(t, session, keys, client=True, last=False)))
    actions.append(END_FLIGHT)
    if session.new_ticket:
        return ClientWaitNewSessionTicket(t, session, keys, peer_chain, identity, None), actions
    return ClientWaitFinished(t, session, keys, peer_chain, identity), actions


def _client_certificate(
    ctx: ClientContext,
    t: Transcript,
    session: Session,
    request: CertificateRequest12 | None,
    actions: Actions,
) -> SignatureScheme | None:
    """RFC 5246 §7.4.6: answer a CertificateRequest with our chain, or an empty one."""
    if request is None:
        return None
    key = ctx.config.private_key
    scheme = None
    raw = session.client_raw_public_key
    if (ctx.config.certificate_chain or raw) and key is not None:
        usable = set(schemes_for_key(key))
        scheme = next((SignatureScheme(s) for s in request.signature_schemes if s in usable), None)
    if raw:
        # RFC 7250 §3: our raw public key (the type the server chose from our offer).
        if scheme is None:
            raise HandshakeFailure("our raw public key cannot sign with a requested scheme")
        actions.append(t.send(HT.CERTIFICATE, RawPublicKey12(spki_of(key)).encode()))
        return scheme
    chain = (
        tuple(c.public_bytes(Encoding.DER) for c in ctx.config.certificate_chain) if scheme else ()
    )
    actions.append(t.send(HT.CERTIFICATE, Certificate12(chain).encode()))
    return scheme


def _client_key_exchange(
    ctx: ClientContext, t: Transcript, session: Session, params: EcdhParams | None, actions: Actions
) -> tuple[bytes, bytes | None]:
    kind = session.kind
    public, shared = b"", None
    if params is not None:
        share = ctx.provider.generate_key_share(NamedGroup(params.group))
        shared = share.exchange(params.public)
        public = share.public_bytes
    if kind is KeyExchangeKind.ECDHE:
        assert shared is not None
        actions.append(t.send(HT.CLIENT_KEY_EXCHANGE, ClientKeyExchange(kind, public).encode()))
        return shared, None
    identity, psk = ctx.config.psk_identity, ctx.config.psk
    if identity is None or psk is None:
        raise HandshakeFailure("server chose a PSK suite but we have no PSK")
    body = ClientKeyExchange(kind, public, identity).encode()
    actions.append(t.send(HT.CLIENT_KEY_EXCHANGE, body))
    return psk_premaster_secret(psk, shared), identity


def on_new_session_ticket(
    ctx: ClientContext, state: ClientWaitNewSessionTicket, message: ReceivedMessage, now: float
) -> Result:
    nst = NewSessionTicket12.decode(message.body)
    t, session, keys = state.transcript, state.session, state.keys
    ticket, hint = nst.ticket, nst.ticket_lifetime_hint
    if state.resumed is not None:
        return ClientWaitResumedFinished(t, session, keys, state.resumed, ticket, hint), []
    return ClientWaitFinished(
        t, session, keys, state.peer_chain, state.psk_identity, ticket, hint
    ), []


def on_finished(
    ctx: ClientContext, state: ClientWaitFinished, message: ReceivedMessage, now: float
) -> Result:
    t, session = state.transcript, state.session
    check_finished(finished_data(t, session, state.keys, client=False, last=True), message)
    saved = None
    if session.session_id or state.ticket:
        saved = Dtls12Session(
            session.suite.suite,
            state.keys.master_secret,
            session.extended_master_secret,
            session.session_id,
            state.ticket,
            state.ticket_lifetime_hint,
            now,
            session.server_name,
            state.peer_chain,
            state.psk_identity,
        )
    done = complete(state, saved=saved, peer_raw=session.server_raw_public_key)
    return ESTABLISHED, [done]


def on_resumed_finished(
    ctx: ClientContext, state: ClientWaitResumedFinished, message: ReceivedMessage, now: float
) -> Result:
    """The server's Finished (over the hellos); ours follows (RFC 5246 §7.3)."""
    t, session, keys, saved = state.transcript, state.session, state.keys, state.resumed
    check_finished(finished_data(t, session, keys, client=False, last=True), message)
    actions: Actions = [SendChangeCipherSpec(keys.client_write)]
    actions.append(t.send(HT.FINISHED, finished_data(t, session, keys, client=True, last=False)))
    actions.append(END_LAST_FLIGHT)
    renewed = None
    if state.ticket:
        renewed = dataclasses.replace(
            saved,
            session_id=b"",
            ticket=state.ticket,
            ticket_lifetime_hint=state.ticket_lifetime_hint,
            received_at=now,
        )
    done = WaitFinished(t, session, keys, saved.peer_certificates, saved.psk_identity)
    actions.append(complete(done, resumed=True, saved=renewed))
    return ESTABLISHED, actions


def on_hello_request(
    ctx: ClientContext, state: Established, message: ReceivedMessage, now: float
) -> Result:
    HelloRequest.decode(message.body)
    # RFC 5246 §7.4.1.1: a client that will not renegotiate may answer no_renegotiation.
    return state, [SendWarning(AlertDescription.no_renegotiation)]


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


# --- the table --------------------------------------------------------------------------------

Handler = Callable[..., Result]
# After our second flight: the server's Finished, or first its NewSessionTicket.
_CLIENT_FLIGHT_SENT = (ClientWaitFinished, ClientWaitNewSessionTicket)

#: The one table of legal messages per state (RFC 5246 §7.3, RFC 6347 §4.2).
CLIENT: Machine[Handler] = Machine(
    name="DTLS 1.2 client",
    start=(ClientWaitServerHello,),
    table={
        ClientWaitServerHello: {
            HT.HELLO_VERIFY_REQUEST: on_hello_verify_request,
            HT.SERVER_HELLO: on_server_hello,
        },
        ClientWaitCertificate: {HT.CERTIFICATE: on_certificate},
        ClientWaitServerKeyExchange: {HT.SERVER_KEY_EXCHANGE: on_server_key_exchange},
        ClientWaitEcdhePskServerKeyExchange: {
            HT.SERVER_KEY_EXCHANGE: on_ecdhe_psk_server_key_exchange
        },
        ClientWaitPskServerKeyExchange: {
            HT.SERVER_KEY_EXCHANGE: on_psk_server_key_exchange,
            HT.SERVER_HELLO_DONE: on_server_hello_done,
        },
        ClientWaitCertificateRequest: {
            HT.CERTIFICATE_REQUEST: on_certificate_request,
            HT.SERVER_HELLO_DONE: on_server_hello_done,
        },
        ClientWaitServerHelloDone: {HT.SERVER_HELLO_DONE: on_server_hello_done},
        ClientWaitPskServerHelloDone: {HT.SERVER_HELLO_DONE: on_server_hello_done},
        ClientWaitNewSessionTicket: {HT.NEW_SESSION_TICKET: on_new_session_ticket},
        ClientWaitResumedFinished: {HT.FINISHED: on_resumed_finished},
        ClientWaitFinished: {HT.FINISHED: on_finished},
        Established: {HT.HELLO_REQUEST: on_hello_request},
    },
    goes_to={
        (ClientWaitServerHello, HT.HELLO_VERIFY_REQUEST): (ClientWaitServerHello,),
        (ClientWaitServerHello, HT.SERVER_HELLO): (
            ClientWaitCertificate,
            ClientWaitEcdhePskServerKeyExchange,
            ClientWaitPskServerKeyExchange,
            ClientWaitNewSessionTicket,
            ClientWaitResumedFinished,
        ),
        (ClientWaitCertificate, HT.CERTIFICATE): (ClientWaitServerKeyExchange,),
        (ClientWaitServerKeyExchange, HT.SERVER_KEY_EXCHANGE): (ClientWaitCertificateRequest,),
        (ClientWaitEcdhePskServerKeyExchange, HT.SERVER_KEY_EXCHANGE): (
            ClientWaitPskServerHelloDone,
        ),
        (ClientWaitPskServerKeyExchange, HT.SERVER_KEY_EXCHANGE): (ClientWaitPskServerHelloDone,),
        (ClientWaitPskServerKeyExchange, HT.SERVER_HELLO_DONE): _CLIENT_FLIGHT_SENT,
        (ClientWaitCertificateRequest, HT.CERTIFICATE_REQUEST): (ClientWaitServerHelloDone,),
        (ClientWaitCertificateRequest, HT.SERVER_HELLO_DONE): _CLIENT_FLIGHT_SENT,
        (ClientWaitServerHelloDone, HT.SERVER_HELLO_DONE): _CLIENT_FLIGHT_SENT,
        (ClientWaitPskServerHelloDone, HT.SERVER_HELLO_DONE): _CLIENT_FLIGHT_SENT,
        (ClientWaitNewSessionTicket, HT.NEW_SESSION_TICKET): (
            ClientWaitFinished,
            ClientWaitResumedFinished,
        ),
        (ClientWaitResumedFinished, HT.FINISHED): (Established,),
        (ClientWaitFinished, HT.FINISHED): (Established,),
        (Established, HT.HELLO_REQUEST): (Established,),
    },
    epochs=EPOCHS,
    default_epochs=HANDSHAKE_EPOCHS,
    after_handshake=frozenset({Established}),
    after_handshake_epochs=ESTABLISHED_EPOCHS,
)

__all__ = [
    "CLIENT",
    "MAX_HELLO_VERIFY_REQUESTS",
    "ClientContext",
    "ClientState",
    "is_new_hello_verify_request",
    "start",
]
