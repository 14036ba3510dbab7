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
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding

from dtlsgate._frozen import frozen
from dtlsgate.config import ClientConfig
from dtlsgate.crypto.certs import (
    TrustStore,
    parse_peer_certificate,
    peer_public_key,
    verify_server_chain,
)
from dtlsgate.crypto.kex import ecdhe_groups
from dtlsgate.crypto.prf import psk_premaster_secret
from dtlsgate.crypto.provider import CryptoProvider
from dtlsgate.crypto.signatures import schemes_for_key
from dtlsgate.crypto.suites import KeyExchange, SuiteInfo, suite_info
from dtlsgate.errors import (
    BadCertificate,
    HandshakeFailure,
    IllegalParameter,
    ProtocolError,
    ProtocolVersionError,
    UnexpectedMessage,
    UsageError,
)
from dtlsgate.handshake.dtls12.common import (
    EPOCHS,
    ESTABLISHED_EPOCHS,
    HANDSHAKE_EPOCHS,
    Actions,
    Established,
    ReceivedMessage,
    Session,
    Transcript,
    WaitFinished,
    as_datetime,
    change_cipher_spec,
    check_finished,
    complete,
    derive,
    finished_data,
)
from dtlsgate.handshake.dtls12.negotiate import (
    DEFAULT_GROUPS,
    DEFAULT_SIGNATURE_SCHEMES,
    EC_POINT_UNCOMPRESSED,
    client_suites,
    kind_of,
)
from dtlsgate.handshake.engine import EndFlight, ExpectMessageSeq, Machine, SendWarning
from dtlsgate.wire.enums import (
    AlertDescription,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
)
from dtlsgate.wire.extensions import (
    Extension,
    decode_alpn,
    decode_ec_point_formats,
    decode_renegotiation_info,
    encode_alpn,
    encode_ec_point_formats,
    encode_renegotiation_info,
    encode_server_name,
    encode_u16_list_ext,
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
    ServerHelloDone,
    ServerKeyExchange,
    ecdhe_signed_params,
)

HT = HandshakeType
# RFC 6347 §4.2.1: a client answers HelloVerifyRequests; a server that keeps sending new
# ones is broken or hostile. Two covers a cookie secret rotating between the hellos.
MAX_HELLO_VERIFY_REQUESTS = 2


class ClientContext:
    """What every handler of one client connection reads: the configuration, the trust
    store, and the suites, groups and schemes we offer (computed once)."""

    __slots__ = ("config", "groups", "offered_dtls13", "provider", "schemes", "suites", "trust")

    def __init__(self, config: ClientConfig, trust: TrustStore | None) -> None:
        self.config = config
        self.provider: CryptoProvider = config.provider
        self.trust = trust
        self.suites = client_suites(config)
        if not self.suites:
            raise UsageError("no DTLS 1.2 cipher suite to offer with this configuration")
        # Only elliptic curves: FFDHE and ML-KEM groups in a shared config are TLS 1.3's.
        self.groups = ecdhe_groups(config.groups or DEFAULT_GROUPS)
        self.schemes = tuple(config.signature_schemes or DEFAULT_SIGNATURE_SCHEMES)
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
    """Only ServerHelloDone can come: after a CertificateRequest, or a PSK suite's
    ServerKeyExchange (``server_params`` for ECDHE_PSK, None for PSK)."""

    transcript: Transcript
    session: Session
    server_params: EcdhParams | None
    peer_chain: tuple[bytes, ...] = ()
    certificate_request: CertificateRequest12 | None = None


ClientState = (
    ClientWaitServerHello
    | ClientWaitCertificate
    | ClientWaitServerKeyExchange
    | ClientWaitEcdhePskServerKeyExchange
    | ClientWaitPskServerKeyExchange
    | ClientWaitCertificateRequest
    | ClientWaitServerHelloDone
    | WaitFinished
    | Established
)
Result = tuple[ClientState, Actions]


# --- the hellos -----------------------------------------------------------------------------


def start(ctx: ClientContext) -> tuple[ClientWaitServerHello, Actions]:
    """The first ClientHello (empty cookie), as the first flight."""
    transcript = Transcript()
    hello = _client_hello(ctx)
    send = transcript.send(HT.CLIENT_HELLO, hello.encode())
    return ClientWaitServerHello(transcript, hello), [send, EndFlight(expect_reply=True)]


def start_after_dtls13_offer(
    ctx: ClientContext, hello: ClientHello
) -> tuple[ClientWaitServerHello, Actions]:
    """The first flight when ``hello`` (a ClientHello offering DTLS 1.3 and 1.2, already
    sent) is answered by a DTLS 1.2 server: the same ClientHello, as our message 0."""
    ctx.offered_dtls13 = True
    transcript = Transcript()
    send = transcript.send(HT.CLIENT_HELLO, hello.encode())
    return ClientWaitServerHello(transcript, hello), [send, EndFlight(expect_reply=True)]


def fallback_extensions(ctx: ClientContext) -> tuple[Extension, ...]:
    """What a DTLS 1.2 server needs of a ClientHello that offers DTLS 1.3 and 1.2, beyond
    what DTLS 1.3 sends (RFC 8422 point formats, RFC 7627, RFC 5746)."""
    return tuple(
        e
        for e in _client_hello(ctx).extensions or ()
        if e.type
        in (
            ExtensionType.ec_point_formats,
            ExtensionType.extended_master_secret,
            ExtensionType.renegotiation_info,
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
    if c.alpn_protocols:
        alpn = encode_alpn(c.alpn_protocols)
        ext.append(Extension(ExtensionType.application_layer_protocol_negotiation, alpn))
    ext.append(Extension(ExtensionType.extended_master_secret, b""))
    ext.append(Extension(ExtensionType.renegotiation_info, encode_renegotiation_info()))
    return ClientHello(
        ProtocolVersion.DTLS12,
        ctx.provider.random(RANDOM_LENGTH),
        b"",
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
    if hvr.server_version >> 8 != 0xFE:
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
        EndFlight(expect_reply=True),
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
            raise ProtocolError(
                f"unsolicited extension {ext.type}", AlertDescription.unsupported_extension
            )
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
    suite = suite_info(sh.cipher_suite)
    session = Session(
        suite,
        state.hello.random,
        sh.random,
        ems,
        selected[0] if selected else None,
        ctx.config.server_name,
    )
    t = state.transcript
    if suite.uses_certificate:
        return ClientWaitCertificate(t, session), []
    if session.kind is KeyExchangeKind.PSK:
        return ClientWaitPskServerKeyExchange(t, session), []
    return ClientWaitEcdhePskServerKeyExchange(t, session), []


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
    chain = Certificate12.decode(message.body).certificates
    if ctx.trust is not None:
        name = ctx.config.server_name or ""
        leaf = verify_server_chain(chain, name, ctx.trust, as_datetime(now))
    elif chain:
        leaf = parse_peer_certificate(chain[0])
    else:
        raise BadCertificate("server sent no certificate")
    key = _server_public_key(leaf, state.session.suite)
    return ClientWaitServerKeyExchange(state.transcript, state.session, key, chain), []


def _server_public_key(leaf: x509.Certificate, suite: SuiteInfo) -> CertificatePublicKeyTypes:
    """The leaf's public key, when it can sign for ``suite``'s key exchange. RFC 5246
    §7.4.2: the key "MUST be compatible with the selected key exchange algorithm"; RFC 8422
    §5.3: ECDHE_ECDSA needs an ECDSA or EdDSA key, ECDHE_RSA an RSA key."""
    key: CertificatePublicKeyTypes = peer_public_key(leaf)
    wanted: tuple[type, ...] = (
        (rsa.RSAPublicKey,)
        if suite.key_exchange is KeyExchange.ECDHE_RSA
        else (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)
    )
    if not isinstance(key, wanted):
        raise BadCertificate(
            f"a {type(key).__name__} cannot sign for {suite.key_exchange.name}",
            AlertDescription.unsupported_certificate,
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
    signed = ecdhe_signed_params(session.client_random, session.server_random, params)
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
    return ClientWaitServerHelloDone(state.transcript, state.session, params), []


def on_psk_server_key_exchange(
    ctx: ClientContext, state: ClientWaitPskServerKeyExchange, message: ReceivedMessage, now: float
) -> Result:
    ServerKeyExchange.decode(message.body, KeyExchangeKind.PSK)
    return ClientWaitServerHelloDone(state.transcript, state.session, None), []


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
    | ClientWaitPskServerKeyExchange,
    message: ReceivedMessage,
    now: float,
) -> Result:
    ServerHelloDone.decode(message.body)
    if isinstance(state, ClientWaitServerHelloDone):
        done = state
    elif isinstance(state, ClientWaitCertificateRequest):
        done = ClientWaitServerHelloDone(
            state.transcript, state.session, state.server_params, state.peer_chain
        )
    else:  # plain PSK without a ServerKeyExchange
        done = ClientWaitServerHelloDone(state.transcript, state.session, None)
    return _client_flight(ctx, done)


def _client_flight(ctx: ClientContext, state: ClientWaitServerHelloDone) -> Result:
    """Certificate*, ClientKeyExchange, CertificateVerify*, ChangeCipherSpec, Finished."""
    session, t = state.session, state.transcript
    actions: Actions = []
    scheme = _client_certificate(ctx, t, state.certificate_request, actions)
    pms, identity = _client_key_exchange(ctx, t, session, state.server_params, actions)
    keys, keylog = derive(ctx.provider, t, session, pms)
    actions.insert(0, keylog)
    if scheme is not None:
        assert ctx.config.private_key is not None  # a scheme is chosen only for our key
        signature = ctx.provider.sign(ctx.config.private_key, scheme, t.data(), tls13=False)
        actions.append(
            t.send(HT.CERTIFICATE_VERIFY, CertificateVerify12(scheme, signature).encode())
        )
    actions += change_cipher_spec(keys, is_client=True)
    actions.append(t.send(HT.FINISHED, finished_data(t, session, keys, client=True, last=False)))
    actions.append(EndFlight(expect_reply=True))
    return WaitFinished(t, session, keys, state.peer_chain, identity), actions


def _client_certificate(
    ctx: ClientContext, t: Transcript, request: CertificateRequest12 | None, actions: Actions
) -> SignatureScheme | None:
    """RFC 5246 §7.4.6: answer a CertificateRequest with our chain, or an empty one."""
    if request is None:
        return None
    key = ctx.config.private_key
    scheme = None
    if ctx.config.certificate_chain and key is not None:
        usable = set(schemes_for_key(key))
        scheme = next((SignatureScheme(s) for s in request.signature_schemes if s in usable), None)
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


def on_finished(
    ctx: ClientContext, state: WaitFinished, message: ReceivedMessage, now: float
) -> Result:
    t = state.transcript
    check_finished(finished_data(t, state.session, state.keys, client=False, last=True), message)
    return Established(state.session), [complete(state)]


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
        WaitFinished: {HT.FINISHED: on_finished},
        Established: {HT.HELLO_REQUEST: on_hello_request},
    },
    goes_to={
        (ClientWaitServerHello, HT.HELLO_VERIFY_REQUEST): (ClientWaitServerHello,),
        (ClientWaitServerHello, HT.SERVER_HELLO): (
            ClientWaitCertificate,
            ClientWaitEcdhePskServerKeyExchange,
            ClientWaitPskServerKeyExchange,
        ),
        (ClientWaitCertificate, HT.CERTIFICATE): (ClientWaitServerKeyExchange,),
        (ClientWaitServerKeyExchange, HT.SERVER_KEY_EXCHANGE): (ClientWaitCertificateRequest,),
        (ClientWaitEcdhePskServerKeyExchange, HT.SERVER_KEY_EXCHANGE): (ClientWaitServerHelloDone,),
        (ClientWaitPskServerKeyExchange, HT.SERVER_KEY_EXCHANGE): (ClientWaitServerHelloDone,),
        (ClientWaitPskServerKeyExchange, HT.SERVER_HELLO_DONE): (WaitFinished,),
        (ClientWaitCertificateRequest, HT.CERTIFICATE_REQUEST): (ClientWaitServerHelloDone,),
        (ClientWaitCertificateRequest, HT.SERVER_HELLO_DONE): (WaitFinished,),
        (ClientWaitServerHelloDone, HT.SERVER_HELLO_DONE): (WaitFinished,),
        (WaitFinished, HT.FINISHED): (Established,),
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
