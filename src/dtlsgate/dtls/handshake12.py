"""The DTLS 1.2 handshake state machines (RFC 6347 §4.2, RFC 5246 §7.3), server and client.

Each state is a small frozen dataclass holding only what is valid in it; ``SERVER_TABLE``
and ``CLIENT_TABLE`` say which handshake message is legal in which state and which handler
takes it. A handler decodes the message, checks it, queues what to send in the ``Outbox``
and returns the next state. The received bytes enter the transcript before the handler
runs (``Transcript.digest(exclude_last=True)`` gives the hash without them).

Full handshake, certificates (PSK suites skip Certificate and may skip ServerKeyExchange):

    Client                                   Server
    ClientHello          -------->
                         <--------   HelloVerifyRequest (the gate, stateless)
    ClientHello (cookie) -------->
                                     ServerHello, Certificate, ServerKeyExchange,
                         <--------   CertificateRequest*, ServerHelloDone
    Certificate*, ClientKeyExchange, CertificateVerify*,
    [ChangeCipherSpec], Finished -------->
                         <--------   [ChangeCipherSpec], Finished
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from dtlsgate._frozen import frozen
from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.connection.flight import FlightItem, HandshakeMessage, OutgoingChangeCipherSpec
from dtlsgate.connection.flight import OutgoingHandshake as _Out
from dtlsgate.crypto.certs import (
    TrustStore,
    parse_peer_certificate,
    peer_public_key,
    verify_client_chain,
    verify_server_chain,
)
from dtlsgate.crypto.hashes import Hash, constant_time_equal
from dtlsgate.crypto.kex import KeyShare, ecdhe_groups
from dtlsgate.crypto.prf import psk_premaster_secret, verify_data
from dtlsgate.crypto.signatures import schemes_for_key
from dtlsgate.crypto.suites import KeyExchange, SuiteInfo, suite_info
from dtlsgate.dtls.negotiate import (
    DEFAULT_GROUPS,
    DEFAULT_SIGNATURE_SCHEMES,
    EC_POINT_UNCOMPRESSED,
    Choice,
    Keys,
    check_client_version,
    choose,
    client_suites,
    derive_keys,
    kind_of,
)
from dtlsgate.errors import (
    BadCertificate,
    DecryptError,
    HandshakeFailure,
    IllegalParameter,
    ProtocolError,
    ProtocolVersionError,
    UnexpectedMessage,
    UsageError,
)
from dtlsgate.record.dtls12 import CipherState
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
from dtlsgate.wire.handshake import encode_dtls_handshake
from dtlsgate.wire.messages import RANDOM_LENGTH, ClientHello, HelloVerifyRequest, ServerHello
from dtlsgate.wire.messages12 import (
    Certificate12,
    CertificateRequest12,
    CertificateVerify12,
    ClientKeyExchange,
    EcdhParams,
    Finished,
    HelloRequest,
    KeyExchangeKind,
    ServerHelloDone,
    ServerKeyExchange,
    ecdhe_signed_params,
)

if TYPE_CHECKING:
    from hashlib import _Hash as _HashState

HT = HandshakeType
# Read on every message, or by the server's handlers on every handshake: a module global is
# about 0.17 us cheaper than ``HT.FINISHED`` in Python 3.11 (the enum class's __getattr__
# hook).
_FINISHED = HT.FINISHED
_SERVER_HELLO = HT.SERVER_HELLO
_CERTIFICATE = HT.CERTIFICATE
_SERVER_KEY_EXCHANGE = HT.SERVER_KEY_EXCHANGE
_CERTIFICATE_REQUEST = HT.CERTIFICATE_REQUEST
_SERVER_HELLO_DONE = HT.SERVER_HELLO_DONE
_DTLS12 = ProtocolVersion.DTLS12
_KX_ECDHE = KeyExchangeKind.ECDHE
_KX_PSK = KeyExchangeKind.PSK
_KX_ECDHE_PSK = KeyExchangeKind.ECDHE_PSK
# RFC 6347 §4.2.1: a client answers HelloVerifyRequests; a server that keeps sending new
# ones is broken or hostile. Two covers a cookie secret rotating between the hellos.
MAX_HELLO_VERIFY_REQUESTS = 2
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
# RFC 5246 §7.4.5: the ServerHelloDone body (empty), likewise encoded once.
_SERVER_HELLO_DONE_BODY = ServerHelloDone().encode()


@frozen
class HandshakeComplete:
    """The handshake finished: what was negotiated."""

    cipher_suite: int
    alpn_protocol: bytes | None
    server_name: str | None
    peer_certificates: tuple[bytes, ...]
    psk_identity: bytes | None
    extended_master_secret: bool


class Transcript:
    """The handshake messages as received and sent, in order (RFC 5246 §7.4.9).

    A handshake asks for the hash three times (the session hash after ClientKeyExchange,
    both Finished), each time of a longer prefix, two of them often the same: the running
    hash of the prefix hashed last is kept, so each byte is hashed once."""

    __slots__ = ("_data", "_hashed", "_last")

    def __init__(self) -> None:
        self._data = bytearray()
        self._last = 0
        # (hash, n, state): ``state`` has hashed the first n bytes of _data with ``hash``.
        self._hashed: tuple[Hash, int, _HashState] | None = None

    def add(self, message: bytes) -> None:
        self._last = len(self._data)
        self._data += message

    def data(self, *, exclude_last: bool = False) -> bytes:
        return bytes(self._data[: self._last] if exclude_last else self._data)

    def digest(self, hash: Hash, *, exclude_last: bool = False) -> bytes:
        end = self._last if exclude_last else len(self._data)
        hashed = self._hashed
        if hashed is not None and hashed[0] is hash and hashed[1] <= end:
            state, start = hashed[2], hashed[1]
        else:
            state, start = hash.new(), 0
        if start < end:
            state.update(self._data[start:end])
            self._hashed = (hash, end, state)
        return state.digest()


class Outbox:
    """What a handler asks of its connection; the connection takes it after each call."""

    __slots__ = (
        "complete",
        "expect_message_seq",
        "expect_reply",
        "flight_ready",
        "items",
        "keylog",
        "read_keys",
        "warnings",
        "write_keys",
    )

    def __init__(self) -> None:
        self.items: list[FlightItem] = []
        self.flight_ready = False
        self.expect_reply = True
        self.read_keys: CipherState | None = None
        self.write_keys: CipherState | None = None
        self.warnings: list[AlertDescription] = []
        self.complete: HandshakeComplete | None = None
        self.keylog: list[str] = []
        # The message_seq the peer's next message carries, when it is not simply the next
        # one (after a HelloVerifyRequest: the ServerHello continues from our new
        # ClientHello's).
        self.expect_message_seq: int | None = None


@frozen
class Session:
    """What both sides agreed in the hellos; carried from state to state."""

    suite: SuiteInfo
    client_random: bytes
    server_random: bytes
    extended_master_secret: bool
    alpn: bytes | None = None
    server_name: str | None = None

    @property
    def kind(self) -> KeyExchangeKind:
        return kind_of(self.suite)


# --- states ---------------------------------------------------------------------------------


@frozen
class ServerWaitClientHello:
    pass


@frozen
class ServerWaitCertificate:
    session: Session
    key_share: KeyShare | None


@frozen
class ServerWaitClientKeyExchange:
    session: Session
    key_share: KeyShare | None
    peer_chain: tuple[bytes, ...] = ()


@frozen
class ServerWaitCertificateVerify:
    session: Session
    keys: Keys
    peer_chain: tuple[bytes, ...]
    psk_identity: bytes | None


@frozen
class WaitFinished:
    session: Session
    keys: Keys
    peer_chain: tuple[bytes, ...] = ()
    psk_identity: bytes | None = None


@frozen
class Established:
    session: Session


@frozen
class ClientWaitServerHello:
    hello: ClientHello
    hello_verify_requests: int = 0


@frozen
class ClientWaitCertificate:
    session: Session


@frozen
class ClientWaitServerKeyExchange:
    session: Session
    server_key: Any = None  # the leaf's public key (certificate suites)
    peer_chain: tuple[bytes, ...] = ()


@frozen
class ClientWaitPskServerKeyExchange:
    """Plain PSK: ServerKeyExchange carries only a hint and may be absent (RFC 4279 §2)."""

    session: Session


@frozen
class ClientWaitCertificateRequest:
    session: Session
    server_params: EcdhParams | None
    peer_chain: tuple[bytes, ...] = ()
    psk_identity_hint: bytes = b""


@frozen
class ClientWaitServerHelloDone:
    session: Session
    server_params: EcdhParams | None
    peer_chain: tuple[bytes, ...]
    certificate_request: CertificateRequest12


State = Any
Handler = Callable[[Any, Any, HandshakeMessage, float], Any]
_NO_MESSAGES: dict[int, str] = {}  # a state missing from a TABLE takes no message


class _Handshake:
    """What server and client share: the transcript, message_seq, the outbox, dispatch."""

    TABLE: ClassVar[dict[type, dict[int, str]]]

    def __init__(self, provider: Any, send_seq: int) -> None:
        self.provider = provider
        self.transcript = Transcript()
        self.send_seq = send_seq
        self.out = Outbox()
        self.state: State = None

    def handle(self, message: HandshakeMessage, now: float) -> None:
        """Process one reassembled message (RFC 6347 §4.2.2: in message_seq order)."""
        state, msg_type = self.state, message.msg_type
        name = self.TABLE.get(type(state), _NO_MESSAGES).get(msg_type)
        if name is None:
            raise UnexpectedMessage(f"{_name(msg_type)} in state {type(state).__name__}")
        if type(state) is not Established:
            # RFC 5246 §7.4.9 / RFC 6347 §4.1: Finished is the first message of the new
            # epoch; everything before it travels in epoch 0.
            if (msg_type == _FINISHED) != (message.epoch > 0):
                raise UnexpectedMessage(f"{_name(msg_type)} in epoch {message.epoch}")
            self.transcript.add(message.transcript_bytes)
        self.state = getattr(self, name)(state, message, now)

    def send(self, msg_type: int, body: bytes, epoch: int = 0) -> None:
        # The message as one fragment: what the transcript hashes and what is sent whole.
        message = encode_dtls_handshake(msg_type, body, self.send_seq)
        self.out.items.append(_Out(message, epoch))
        self.transcript.add(message)
        self.send_seq += 1

    def flight(self, *, expect_reply: bool) -> None:
        self.out.flight_ready = True
        self.out.expect_reply = expect_reply

    def change_cipher_spec(self, keys: Keys, *, is_client: bool) -> None:
        self.out.items.append(OutgoingChangeCipherSpec(0))
        mine, theirs = (
            (keys.client_write, keys.server_write)
            if is_client
            else (keys.server_write, keys.client_write)
        )
        self.out.write_keys = mine
        self.out.read_keys = theirs

    def derive_keys(self, session: Session, pms: bytes) -> Keys:
        """Master secret (extended when negotiated) and key block from the premaster
        secret, logged in NSS key log format (CLIENT_RANDOM <client random> <master>)."""
        keys = derive_keys(
            self.provider,
            session.suite,
            pms,
            session.client_random,
            session.server_random,
            self.session_hash(session),
        )
        self.out.keylog.append(
            f"CLIENT_RANDOM {session.client_random.hex()} {keys.master_secret.hex()}"
        )
        return keys

    def finished_data(self, session: Session, keys: Keys, *, client: bool, last: bool) -> bytes:
        return verify_data(
            session.suite.hash,
            keys.master_prf,
            client,
            self.transcript.digest(session.suite.hash, exclude_last=last),
        )

    def session_hash(self, session: Session) -> bytes | None:
        """RFC 7627 §3: the hash of the transcript through ClientKeyExchange."""
        if not session.extended_master_secret:
            return None
        return self.transcript.digest(session.suite.hash)


def _name(msg_type: int) -> str:
    try:
        return HandshakeType(msg_type).name
    except ValueError:
        return f"handshake message {msg_type}"


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


# Encoded Certificate message bodies by the identities of their certificates, for at most
# this many chains (a process has a few configs; past that the cache starts afresh).
MAX_CACHED_CHAINS = 32
_certificate_bodies: dict[tuple[int, ...], tuple[tuple[x509.Certificate, ...], bytes]] = {}


def _certificate_body(chain: list[x509.Certificate]) -> bytes:
    """The Certificate message body for a configured chain: the same for every handshake
    of a config, so encoded once. Looked up by the certificates' identities: an entry holds
    its certificates, so their ids are not reused while it is cached (hashing a certificate,
    as an lru_cache key would, costs about 2.4 us per handshake)."""
    key = tuple(map(id, chain))
    cached = _certificate_bodies.get(key)
    if cached is None:
        if len(_certificate_bodies) >= MAX_CACHED_CHAINS:
            _certificate_bodies.clear()
        certificates = tuple(chain)
        body = Certificate12(tuple(_der(c) for c in certificates)).encode()
        cached = _certificate_bodies[key] = (certificates, body)
    return cached[1]


def _check_finished(expected: bytes, message: HandshakeMessage) -> None:
    received = Finished.decode(message.body).verify_data
    if not constant_time_equal(expected, received):
        # RFC 5246 §7.4.9: a wrong verify_data is a decrypt_error.
        raise DecryptError("Finished verify_data does not match")


def _datetime(now: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(now, datetime.UTC)


# --- server ---------------------------------------------------------------------------------


class ServerHandshake(_Handshake):
    """The server side, created after the gate admitted a ClientHello (RFC 6347 §4.2.1):
    the cookie is not checked again."""

    TABLE: ClassVar[dict[type, dict[int, str]]] = {
        ServerWaitClientHello: {HT.CLIENT_HELLO: "on_client_hello"},
        ServerWaitCertificate: {HT.CERTIFICATE: "on_certificate"},
        ServerWaitClientKeyExchange: {HT.CLIENT_KEY_EXCHANGE: "on_client_key_exchange"},
        ServerWaitCertificateVerify: {HT.CERTIFICATE_VERIFY: "on_certificate_verify"},
        WaitFinished: {HT.FINISHED: "on_finished"},
        Established: {HT.CLIENT_HELLO: "on_renegotiation"},
    }

    def __init__(
        self,
        config: ServerConfig,
        message_seq: int,
        admitted_hello: ClientHello | None = None,
        trust: TrustStore | None = None,
    ) -> None:
        # RFC 6347 §4.2.2: after a stateless HelloVerifyRequest, the ServerHello's
        # message_seq is the second ClientHello's.
        super().__init__(config.provider, message_seq)
        self.config = config
        self.state = ServerWaitClientHello()
        self._admitted_hello = admitted_hello
        self._trust = trust

    def on_client_hello(self, state: State, message: HandshakeMessage, now: float) -> State:
        hello = self._admitted_hello or ClientHello.decode(message.body, dtls=True)
        self._admitted_hello = None
        choice = choose(self.config, hello)
        server_random = self.provider.random(RANDOM_LENGTH)
        session = Session(
            choice.suite,
            hello.random,
            server_random,
            choice.extended_master_secret,
            choice.alpn,
            choice.server_name,
        )
        self.send(_SERVER_HELLO, self._server_hello(choice, server_random).encode())
        certificate = choice.suite.uses_certificate
        if certificate:
            self.send(_CERTIFICATE, _certificate_body(self.config.certificate_chain))
        key_share = self._send_server_key_exchange(choice, session)
        request = certificate and self.config.verify_client != "none"
        if request:
            schemes = tuple(self.config.signature_schemes or DEFAULT_SIGNATURE_SCHEMES)
            body = CertificateRequest12(_CERTIFICATE_TYPES, schemes).encode()
            self.send(_CERTIFICATE_REQUEST, body)
        self.send(_SERVER_HELLO_DONE, _SERVER_HELLO_DONE_BODY)
        self.flight(expect_reply=True)
        if request:
            return ServerWaitCertificate(session, key_share)
        return ServerWaitClientKeyExchange(session, key_share)

    def _server_hello(self, choice: Choice, server_random: bytes) -> ServerHello:
        extensions: list[Extension] = []
        if choice.secure_renegotiation:
            extensions.append(_EMPTY_RENEGOTIATION_INFO)
        if choice.extended_master_secret:
            extensions.append(_EXTENDED_MASTER_SECRET)
        if choice.ec_point_formats:
            extensions.append(_UNCOMPRESSED_POINT_FORMAT)
        if choice.server_name is not None:
            extensions.append(_SERVER_NAME_ACKNOWLEDGED)
        if choice.alpn is not None:
            alpn = encode_alpn((choice.alpn,))
            extensions.append(Extension(ExtensionType.application_layer_protocol_negotiation, alpn))
        return ServerHello(
            _DTLS12,
            server_random,
            b"",  # no session to resume (RFC 5246 §7.4.1.3)
            choice.suite.suite,
            0,
            tuple(extensions),
        )

    def _send_server_key_exchange(self, choice: Choice, session: Session) -> KeyShare | None:
        kind = session.kind
        hint = self.config.psk_identity_hint
        if kind is _KX_PSK:
            # RFC 4279 §2: without a hint, ServerKeyExchange is omitted.
            if hint:
                self.send(
                    _SERVER_KEY_EXCHANGE, ServerKeyExchange(kind, psk_identity_hint=hint).encode()
                )
            return None
        assert choice.group is not None  # choose() only picks ECDHE suites with a group
        share: KeyShare = self.provider.generate_key_share(choice.group)
        params = EcdhParams(choice.group, share.public_bytes)
        if kind is _KX_ECDHE_PSK:
            ske = ServerKeyExchange(kind, params, psk_identity_hint=hint)
        else:
            assert choice.signature_scheme is not None
            signed = ecdhe_signed_params(session.client_random, session.server_random, params)
            signature = self.provider.sign(
                self.config.private_key, choice.signature_scheme, signed, tls13=False
            )
            ske = ServerKeyExchange(kind, params, choice.signature_scheme, signature)
        self.send(_SERVER_KEY_EXCHANGE, ske.encode())
        return share

    def on_certificate(
        self, state: ServerWaitCertificate, message: HandshakeMessage, now: float
    ) -> State:
        chain = Certificate12.decode(message.body).certificates
        if not chain and self.config.verify_client == "required":
            # RFC 5246 §7.4.6: a server that requires a certificate sends handshake_failure.
            raise HandshakeFailure("client sent no certificate")
        if chain:
            if self._trust is None:
                raise UsageError("verify_client needs a cafile with the trusted client CAs")
            verify_client_chain(chain, self._trust, _datetime(now))
        return ServerWaitClientKeyExchange(state.session, state.key_share, chain)

    def _psk(self, identity: bytes) -> bytes:
        psk = self.config.psk.get(identity)
        if psk is None:
            # RFC 4279 §2: an unknown identity may be answered with unknown_psk_identity.
            raise ProtocolError("unknown PSK identity", AlertDescription.unknown_psk_identity)
        return psk

    def on_client_key_exchange(
        self, state: ServerWaitClientKeyExchange, message: HandshakeMessage, now: float
    ) -> State:
        session = state.session
        kind = session.kind
        cke = ClientKeyExchange.decode(message.body, kind)
        identity: bytes | None = None
        if kind is _KX_ECDHE:
            assert state.key_share is not None
            pms = state.key_share.exchange(cke.public)
        else:
            identity = cke.psk_identity
            shared = None
            if kind is _KX_ECDHE_PSK:
                assert state.key_share is not None
                shared = state.key_share.exchange(cke.public)
            pms = psk_premaster_secret(self._psk(identity), shared)
        keys = self.derive_keys(session, pms)
        self.out.read_keys = keys.client_write
        if state.peer_chain:
            return ServerWaitCertificateVerify(session, keys, state.peer_chain, identity)
        return WaitFinished(session, keys, (), identity)

    def on_certificate_verify(
        self, state: ServerWaitCertificateVerify, message: HandshakeMessage, now: float
    ) -> State:
        cv = CertificateVerify12.decode(message.body)
        offered = self.config.signature_schemes or DEFAULT_SIGNATURE_SCHEMES
        if cv.signature_scheme not in offered:
            raise IllegalParameter("CertificateVerify uses a scheme we did not request")
        leaf = parse_peer_certificate(state.peer_chain[0])
        # RFC 5246 §7.4.8: the signature covers every handshake message before this one.
        self.provider.verify(
            peer_public_key(leaf),
            SignatureScheme(cv.signature_scheme),
            self.transcript.data(exclude_last=True),
            cv.signature,
            tls13=False,
        )
        return WaitFinished(state.session, state.keys, state.peer_chain, state.psk_identity)

    def on_finished(self, state: WaitFinished, message: HandshakeMessage, now: float) -> State:
        session, keys = state.session, state.keys
        _check_finished(self.finished_data(session, keys, client=True, last=True), message)
        self.change_cipher_spec(keys, is_client=False)
        self.send(_FINISHED, self.finished_data(session, keys, client=False, last=False), 1)
        self.flight(expect_reply=False)
        self.out.complete = _complete(state)
        return Established(session)

    def on_renegotiation(self, state: Established, message: HandshakeMessage, now: float) -> State:
        # RFC 5746 §4.4 / RFC 5246 §7.2.2: we do not renegotiate; a warning says so.
        self.out.warnings.append(AlertDescription.no_renegotiation)
        return state


def _complete(state: WaitFinished) -> HandshakeComplete:
    return HandshakeComplete(
        cipher_suite=state.session.suite.suite,
        alpn_protocol=state.session.alpn,
        server_name=state.session.server_name,
        peer_certificates=state.peer_chain,
        psk_identity=state.psk_identity,
        extended_master_secret=state.session.extended_master_secret,
    )


# --- client ---------------------------------------------------------------------------------


class ClientHandshake(_Handshake):
    """The client side: sends the ClientHello, answers a HelloVerifyRequest when the server
    sends one (RFC 6347 §4.2.1), and handshakes with servers that send none."""

    TABLE: ClassVar[dict[type, dict[int, str]]] = {
        ClientWaitServerHello: {
            HT.HELLO_VERIFY_REQUEST: "on_hello_verify_request",
            HT.SERVER_HELLO: "on_server_hello",
        },
        ClientWaitCertificate: {HT.CERTIFICATE: "on_certificate"},
        ClientWaitServerKeyExchange: {HT.SERVER_KEY_EXCHANGE: "on_server_key_exchange"},
        ClientWaitPskServerKeyExchange: {
            HT.SERVER_KEY_EXCHANGE: "on_psk_server_key_exchange",
            HT.SERVER_HELLO_DONE: "on_server_hello_done",
        },
        ClientWaitCertificateRequest: {
            HT.CERTIFICATE_REQUEST: "on_certificate_request",
            HT.SERVER_HELLO_DONE: "on_server_hello_done",
        },
        ClientWaitServerHelloDone: {HT.SERVER_HELLO_DONE: "on_server_hello_done"},
        WaitFinished: {HT.FINISHED: "on_finished"},
        Established: {HT.HELLO_REQUEST: "on_hello_request"},
    }

    def __init__(self, config: ClientConfig, trust: TrustStore | None) -> None:
        super().__init__(config.provider, 0)
        self.config = config
        self._trust = trust
        self._suites = client_suites(config)
        if not self._suites:
            raise UsageError("no DTLS 1.2 cipher suite to offer with this configuration")
        # Only elliptic curves: FFDHE and ML-KEM groups in a shared config are TLS 1.3's.
        self._groups = ecdhe_groups(config.groups or DEFAULT_GROUPS)
        self._schemes = tuple(config.signature_schemes or DEFAULT_SIGNATURE_SCHEMES)
        self.state = ClientWaitServerHello(self._client_hello(b""))

    def start(self) -> None:
        """Queue the first ClientHello (empty cookie)."""
        self.send(HT.CLIENT_HELLO, self.state.hello.encode())
        self.flight(expect_reply=True)

    def _client_hello(self, cookie: bytes) -> ClientHello:
        c = self.config
        ext: list[Extension] = []
        if c.server_name and not _is_ip(c.server_name):
            ext.append(Extension(ExtensionType.server_name, encode_server_name(c.server_name)))
        ecc = any(kind_of(suite_info(s)) is not KeyExchangeKind.PSK for s in self._suites)
        if ecc:
            ext.append(Extension(ExtensionType.supported_groups, encode_u16_list_ext(self._groups)))
            ext.append(Extension(ExtensionType.ec_point_formats, encode_ec_point_formats()))
        if any(suite_info(s).uses_certificate for s in self._suites):
            schemes = encode_u16_list_ext(self._schemes)
            ext.append(Extension(ExtensionType.signature_algorithms, schemes))
        if c.alpn_protocols:
            alpn = encode_alpn(c.alpn_protocols)
            ext.append(Extension(ExtensionType.application_layer_protocol_negotiation, alpn))
        ext.append(Extension(ExtensionType.extended_master_secret, b""))
        ext.append(Extension(ExtensionType.renegotiation_info, encode_renegotiation_info()))
        return ClientHello(
            ProtocolVersion.DTLS12,
            self.provider.random(RANDOM_LENGTH),
            b"",
            self._suites,
            b"\x00",
            tuple(ext),
            cookie,
        )

    def on_hello_verify_request(
        self, state: ClientWaitServerHello, message: HandshakeMessage, now: float
    ) -> State:
        hvr = HelloVerifyRequest.decode(message.body)
        if state.hello_verify_requests >= MAX_HELLO_VERIFY_REQUESTS:
            raise UnexpectedMessage("too many HelloVerifyRequests")
        if hvr.server_version >> 8 != 0xFE:
            raise ProtocolVersionError("HelloVerifyRequest with a non-DTLS version")
        # RFC 6347 §4.2.1: the same ClientHello with the cookie added; the first hello and
        # the HelloVerifyRequest are left out of the transcript (§4.2.6).
        hello = ClientHello(
            state.hello.legacy_version,
            state.hello.random,
            state.hello.session_id,
            state.hello.cipher_suites,
            state.hello.compression_methods,
            state.hello.extensions,
            hvr.cookie,
        )
        self.transcript = Transcript()
        # RFC 6347 §4.2.2: the server's ServerHello takes this ClientHello's message_seq.
        self.out.expect_message_seq = self.send_seq
        self.send(HT.CLIENT_HELLO, hello.encode())
        self.flight(expect_reply=True)
        return ClientWaitServerHello(hello, state.hello_verify_requests + 1)

    def is_new_hello_verify_request(self, body: bytes) -> bool:
        """Whether a HelloVerifyRequest is a new answer to the ClientHello we sent with a
        cookie (the server refused that cookie), not a copy of the one we answered.

        A stateless server numbers every HelloVerifyRequest message_seq 0: it keeps no
        count (RFC 6347 §4.2.1). One that refuses our cookie (its secret rotated, or
        another server of a fleet without the same key got our ClientHello) carries a
        cookie other than the one we sent; by message_seq alone it would look like a
        retransmission of the first, and we would resend the refused cookie forever."""
        state = self.state
        if type(state) is not ClientWaitServerHello or not state.hello.cookie:
            return False
        try:
            return HelloVerifyRequest.decode(body).cookie != state.hello.cookie
        except ProtocolError:
            return False

    def on_server_hello(
        self, state: ClientWaitServerHello, message: HandshakeMessage, now: float
    ) -> State:
        sh = ServerHello.decode(message.body, tls13=False)
        if sh.legacy_version != ProtocolVersion.DTLS12:
            raise ProtocolVersionError(f"server chose version {sh.legacy_version:#06x}")
        if sh.cipher_suite not in self._suites or sh.compression_method != 0:
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
        if self.config.require_extended_master_secret and not ems:
            raise HandshakeFailure("server does not use the extended master secret")
        reneg = sh.get(ExtensionType.renegotiation_info)
        if reneg is not None and decode_renegotiation_info(reneg):
            raise HandshakeFailure("non-empty renegotiation_info in ServerHello")
        alpn = sh.get(ExtensionType.application_layer_protocol_negotiation)
        selected = decode_alpn(alpn) if alpn is not None else ()
        if len(selected) > 1 or (selected and selected[0] not in self.config.alpn_protocols):
            raise IllegalParameter("server selected an ALPN protocol we did not offer")
        suite = suite_info(sh.cipher_suite)
        session = Session(
            suite,
            state.hello.random,
            sh.random,
            ems,
            selected[0] if selected else None,
            self.config.server_name,
        )
        if suite.uses_certificate:
            return ClientWaitCertificate(session)
        if session.kind is KeyExchangeKind.PSK:
            return ClientWaitPskServerKeyExchange(session)
        return ClientWaitServerKeyExchange(session)

    def on_certificate(
        self, state: ClientWaitCertificate, message: HandshakeMessage, now: float
    ) -> State:
        chain = Certificate12.decode(message.body).certificates
        if self._trust is not None:
            name = self.config.server_name or ""
            leaf = verify_server_chain(chain, name, self._trust, _datetime(now))
        elif chain:
            leaf = parse_peer_certificate(chain[0])
        else:
            raise BadCertificate("server sent no certificate")
        key = _server_public_key(leaf, state.session.suite)
        return ClientWaitServerKeyExchange(state.session, key, chain)

    def on_server_key_exchange(
        self, state: ClientWaitServerKeyExchange, message: HandshakeMessage, now: float
    ) -> State:
        session = state.session
        ske = ServerKeyExchange.decode(message.body, session.kind)
        assert ske.params is not None  # ECDHE layouts always carry parameters
        if ske.params.group not in self._groups:
            raise IllegalParameter("server chose a group we did not offer")
        if session.kind is KeyExchangeKind.ECDHE:
            if ske.signature_scheme not in self._schemes:
                raise IllegalParameter("server signed with a scheme we did not offer")
            signed = ecdhe_signed_params(session.client_random, session.server_random, ske.params)
            self.provider.verify(
                state.server_key,
                SignatureScheme(ske.signature_scheme),
                signed,
                ske.signature,
                tls13=False,
            )
        return ClientWaitCertificateRequest(
            session, ske.params, state.peer_chain, ske.psk_identity_hint
        )

    def on_psk_server_key_exchange(
        self, state: ClientWaitPskServerKeyExchange, message: HandshakeMessage, now: float
    ) -> State:
        ske = ServerKeyExchange.decode(message.body, KeyExchangeKind.PSK)
        return ClientWaitCertificateRequest(state.session, None, (), ske.psk_identity_hint)

    def on_certificate_request(
        self, state: ClientWaitCertificateRequest, message: HandshakeMessage, now: float
    ) -> State:
        if not state.session.suite.uses_certificate:
            # RFC 4279 §2: PSK servers do not request certificates.
            raise UnexpectedMessage("CertificateRequest in a PSK handshake")
        request = CertificateRequest12.decode(message.body)
        return ClientWaitServerHelloDone(
            state.session, state.server_params, state.peer_chain, request
        )

    def on_server_hello_done(self, state: State, message: HandshakeMessage, now: float) -> State:
        ServerHelloDone.decode(message.body)
        session: Session = state.session
        params: EcdhParams | None = getattr(state, "server_params", None)
        request: CertificateRequest12 | None = getattr(state, "certificate_request", None)
        if session.kind is KeyExchangeKind.ECDHE_PSK and params is None:
            raise UnexpectedMessage("ECDHE_PSK server sent no ServerKeyExchange")
        scheme = self._send_client_certificate(request)
        pms, identity = self._send_client_key_exchange(session, params)
        keys = self.derive_keys(session, pms)
        if scheme is not None:
            signature = self.provider.sign(
                self.config.private_key, scheme, self.transcript.data(), tls13=False
            )
            self.send(HT.CERTIFICATE_VERIFY, CertificateVerify12(scheme, signature).encode())
        self.change_cipher_spec(keys, is_client=True)
        self.send(HT.FINISHED, self.finished_data(session, keys, client=True, last=False), 1)
        self.flight(expect_reply=True)
        chain: tuple[bytes, ...] = getattr(state, "peer_chain", ())
        return WaitFinished(session, keys, chain, identity)

    def _send_client_certificate(
        self, request: CertificateRequest12 | None
    ) -> SignatureScheme | None:
        """RFC 5246 §7.4.6: answer a CertificateRequest with our chain, or an empty one."""
        if request is None:
            return None
        key = self.config.private_key
        scheme = None
        if self.config.certificate_chain and key is not None:
            usable = set(schemes_for_key(key))
            scheme = next(
                (SignatureScheme(s) for s in request.signature_schemes if s in usable), None
            )
        chain = tuple(_der(c) for c in self.config.certificate_chain) if scheme else ()
        self.send(HT.CERTIFICATE, Certificate12(chain).encode())
        return scheme

    def _send_client_key_exchange(
        self, session: Session, params: EcdhParams | None
    ) -> tuple[bytes, bytes | None]:
        kind = session.kind
        public, shared = b"", None
        if params is not None:
            share = self.provider.generate_key_share(NamedGroup(params.group))
            shared = share.exchange(params.public)
            public = share.public_bytes
        if kind is KeyExchangeKind.ECDHE:
            assert shared is not None
            self.send(HT.CLIENT_KEY_EXCHANGE, ClientKeyExchange(kind, public).encode())
            return shared, None
        identity, psk = self.config.psk_identity, self.config.psk
        if identity is None or psk is None:
            raise HandshakeFailure("server chose a PSK suite but we have no PSK")
        self.send(HT.CLIENT_KEY_EXCHANGE, ClientKeyExchange(kind, public, identity).encode())
        return psk_premaster_secret(psk, shared), identity

    def on_finished(self, state: WaitFinished, message: HandshakeMessage, now: float) -> State:
        _check_finished(
            self.finished_data(state.session, state.keys, client=False, last=True), message
        )
        self.out.complete = _complete(state)
        return Established(state.session)

    def on_hello_request(self, state: Established, message: HandshakeMessage, now: float) -> State:
        HelloRequest.decode(message.body)
        # RFC 5246 §7.4.1.1: a client that will not renegotiate may answer no_renegotiation.
        self.out.warnings.append(AlertDescription.no_renegotiation)
        return state


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


def _server_public_key(leaf: x509.Certificate, suite: SuiteInfo) -> Any:
    """The leaf's public key, when it can sign for ``suite``'s key exchange. RFC 5246
    §7.4.2: the key "MUST be compatible with the selected key exchange algorithm"; RFC 8422
    §5.3: ECDHE_ECDSA needs an ECDSA or EdDSA key, ECDHE_RSA an RSA key."""
    key = peer_public_key(leaf)
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


def _is_ip(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


__all__ = [
    "ClientHandshake",
    "HandshakeComplete",
    "Outbox",
    "ServerHandshake",
    "Transcript",
    "check_client_version",
]
