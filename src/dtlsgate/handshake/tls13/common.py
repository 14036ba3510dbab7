"""What the TLS 1.3 server and client state machines share: the actions they ask of the
record layer, the handshake keys of one connection, ClientHello extension parsing and the
HelloRetryRequest encoding (shared with the stateless path).

A state machine never touches records: it consumes whole handshake messages and returns
`Action`s (send this message, install this key, send the compatibility ChangeCipherSpec,
the handshake is complete). The stream connection (`connection.py`) carries them out over
TLS records; a DTLS 1.3 connection can carry out the same actions over its own records.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar, final

from dtlsgate._frozen import frozen
from dtlsgate.crypto.aead import AeadAlgorithm
from dtlsgate.crypto.hashes import TranscriptHash
from dtlsgate.crypto.kex import DEFAULT_TLS13_GROUPS, ECDHE_GROUPS, tls13_groups
from dtlsgate.crypto.keyschedule import KeySchedule
from dtlsgate.crypto.suites import SUITES, KeyExchange, SuiteInfo
from dtlsgate.errors import IllegalParameter, ProtocolError, ProtocolVersionError
from dtlsgate.handshake.engine import Complete as Complete
from dtlsgate.handshake.engine import Epochs, KeyLogging, from_epoch, install_key, only
from dtlsgate.handshake.engine import InstallKey as InstallKey
from dtlsgate.handshake.engine import KeyLog as KeyLog
from dtlsgate.handshake.engine import SendChangeCipherSpec as SendChangeCipherSpec
from dtlsgate.handshake.engine import SendMessage as SendMessage
from dtlsgate.wire.cert_compression import (
    CompressedCertificate,
    available_algorithms,
    compress_certificate,
    decode_compress_certificate,
    decompress_certificate,
)
from dtlsgate.wire.enums import (
    CipherSuite,
    ConnectionIdUsage,
    ExtensionType,
    HandshakeType,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
)
from dtlsgate.wire.extensions import (
    CHANGEABLE_IN_CLIENT_HELLO2,
    Extension,
    KeyShareEntry,
    OfferedPsks,
    decode_alpn,
    decode_certificate_types,
    decode_cookie,
    decode_key_share_ch,
    decode_pre_shared_key_ch,
    decode_psk_key_exchange_modes,
    decode_record_size_limit,
    decode_server_name,
    decode_supported_versions_ch,
    decode_u16_list_ext,
    decode_use_srtp,
    encode_cookie,
    encode_key_share_hrr,
    encode_supported_versions_sh,
    require_empty,
    with_bodies,
)
from dtlsgate.wire.handshake import encode_handshake
from dtlsgate.wire.messages import (
    HELLO_RETRY_REQUEST_RANDOM,
    RANDOM_LENGTH,
    ClientHello,
    ServerHello,
)


@frozen
class Versions:
    """What the one TLS 1.3 engine does differently when it runs DTLS 1.3 (RFC 9147 §5):
    the hellos' legacy_version ({254, 253}, §5.3) and the version in supported_versions
    ({254, 252}); the DTLS ClientHello form with its legacy_cookie, always empty (§5.3);
    no middlebox-compatibility ChangeCipherSpec or legacy_session_id (§5: "no CCS"); the
    key schedule's "dtls13" label prefix (§5.9). ``fallback`` is a version the client
    also offers (DTLS 1.2), never negotiated by this engine."""

    dtls: bool
    legacy_version: int
    version: int
    fallback: tuple[int, ...] = ()

    def schedule(self, suite: SuiteInfo, psk: bytes | None = None) -> KeySchedule:
        return KeySchedule.for_suite(suite, psk, self.dtls)  # by position: once per handshake

    @property
    def default_groups(self) -> tuple[NamedGroup, ...]:
        """The groups offered and chosen when the config names none. DTLS 1.3: the
        elliptic curves only. A post-quantum key share (over 1 KB) makes a ClientHello
        larger than the default path MTU: fragmented, so that every handshake would pass
        through the gate's pre-cookie reassembly table (`dtlsgate.gate.reassembly`), the
        one place a spoofed flood can delay a client. Configure ``groups`` to use them."""
        return ECDHE_GROUPS if self.dtls else DEFAULT_GROUPS


# RFC 8446 §4.1.2: legacy_version is 0x0303 (TLS 1.2) in a TLS 1.3 ClientHello and ServerHello.
TLS_VERSIONS = Versions(False, ProtocolVersion.TLS12, ProtocolVersion.TLS13)
DTLS_VERSIONS = Versions(True, ProtocolVersion.DTLS12, ProtocolVersion.DTLS13)
DTLS_VERSIONS_WITH_FALLBACK = Versions(
    True, ProtocolVersion.DTLS12, ProtocolVersion.DTLS13, (ProtocolVersion.DTLS12,)
)

#: Our order of preference for the three suites RFC 8446 §9.1 makes mandatory or
#: recommended (and CCM, which we implement but do not offer by default).
DEFAULT_SUITES: tuple[CipherSuite, ...] = (
    CipherSuite.TLS_AES_128_GCM_SHA256,
    CipherSuite.TLS_AES_256_GCM_SHA384,
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
)
#: Every group we implement, hybrids first (`dtlsgate.crypto.kex.SUPPORTED_GROUPS`).
DEFAULT_GROUPS: tuple[NamedGroup, ...] = DEFAULT_TLS13_GROUPS
#: What we offer in signature_algorithms: every TLS 1.3 scheme we can verify.
DEFAULT_SIGNATURE_SCHEMES: tuple[SignatureScheme, ...] = (
    SignatureScheme.ecdsa_secp256r1_sha256,
    SignatureScheme.ecdsa_secp384r1_sha384,
    SignatureScheme.ecdsa_secp521r1_sha512,
    SignatureScheme.ed25519,
    SignatureScheme.ed448,
    SignatureScheme.rsa_pss_rsae_sha256,
    SignatureScheme.rsa_pss_rsae_sha384,
    SignatureScheme.rsa_pss_rsae_sha512,
    SignatureScheme.rsa_pss_pss_sha256,
    SignatureScheme.rsa_pss_pss_sha384,
    SignatureScheme.rsa_pss_pss_sha512,
)


# The TLS 1.3 suites of the suite table, as numbers: worked out once, not per DTLS 1.3
# client connection (a walk over every suite of both versions, about 36,000 instructions).
_TLS13_SUITE_NUMBERS = frozenset(
    int(s) for s, info in SUITES.items() if info.key_exchange is KeyExchange.TLS13
)


def tls13_suites(suites: tuple[int, ...]) -> tuple[int, ...]:
    """The TLS 1.3 suites of ``suites`` (DEFAULT_SUITES when it has none)."""
    return tuple(s for s in suites if s in _TLS13_SUITE_NUMBERS) or DEFAULT_SUITES


class Tls13Context(KeyLogging):
    """What a client's and a server's per-config data (`ClientContext`, `ServerContext`)
    share: the config, its provider, the versions (`Versions`: what the engine does
    differently for DTLS), and the suites and groups to use, preferred first. A datagram
    config may list DTLS 1.2 suites too (one port or one client, both versions): only its
    TLS 1.3 ones are used here."""

    def __init__(self, config: Any, versions: Versions) -> None:
        super().__init__()
        self.config = config
        self.provider = config.provider
        self.versions = versions
        suites: tuple[int, ...] = config.cipher_suites or DEFAULT_SUITES
        self.suites = tls13_suites(suites) if versions.dtls else suites
        self.groups = tls13_groups(config.groups or versions.default_groups)


#: Every TLS 1.3 scheme we sign and verify: the defaults and ML-DSA (draft-ietf-tls-mldsa),
#: offered when configured (``signature_schemes``): not by default, as no deployed CA issues
#: ML-DSA certificates yet and each scheme lengthens every ClientHello.
SUPPORTED_SIGNATURE_SCHEMES: tuple[SignatureScheme, ...] = (
    *DEFAULT_SIGNATURE_SCHEMES,
    SignatureScheme.mldsa44,
    SignatureScheme.mldsa65,
    SignatureScheme.mldsa87,
)

T = TypeVar("T")

# The engine's epoch rule for TLS 1.3 (`dtlsgate.handshake.engine`), with the encryption
# levels numbered as RFC 9147 §6.1 numbers DTLS 1.3 epochs: the hellos in plaintext (0),
# the rest of the handshake under the handshake traffic keys (2, RFC 8446 §2), and after
# it everything under the application traffic keys (3, one more per KeyUpdate, §4.6).
EPOCHS: dict[int, Epochs] = {
    HandshakeType.CLIENT_HELLO: only(0),
    HandshakeType.SERVER_HELLO: only(0),
}
HANDSHAKE_EPOCHS = only(2)
APPLICATION_EPOCHS = from_epoch(3)


# ---- actions ---------------------------------------------------------------------------------
# The shared ones (SendMessage, SendChangeCipherSpec, InstallKey, KeyLog, Complete) are
# `dtlsgate.handshake.engine`'s; these are TLS 1.3's own.


@final
@frozen
class PeerRecordLimit:
    """The peer's record_size_limit (RFC 8449 §4), for records we protect from now on."""

    limit: int


def handshake_keylog(log_keys: bool, keys: Keys) -> list[KeyLog]:
    """The handshake traffic secrets' key log lines (NSS format) when the connection keeps
    a key log (its context's ``log_keys``, `KeyLogging`); otherwise none."""
    if not log_keys:
        return []
    random = keys.client_random
    return [
        KeyLog("CLIENT_HANDSHAKE_TRAFFIC_SECRET", random, keys.client_handshake),
        KeyLog("SERVER_HANDSHAKE_TRAFFIC_SECRET", random, keys.server_handshake),
    ]


def application_keylog(
    log_keys: bool, keys: Keys, app: AppSecrets, transcript_hash: bytes
) -> list[KeyLog]:
    """Generation-0 application secrets and the exporter secret (RFC 8446 §7.1), the latter
    over ``transcript_hash``, the hash through the server Finished the secrets were made
    from; when the connection keeps a key log, otherwise none."""
    if not log_keys:
        # Nor the exporter secret: it would serve only its line (connections export no
        # keying material in TLS 1.3).
        return []
    random = keys.client_random
    exporter = keys.schedule.exporter_master_secret(transcript_hash)
    return [
        KeyLog("CLIENT_TRAFFIC_SECRET_0", random, app.client),
        KeyLog("SERVER_TRAFFIC_SECRET_0", random, app.server),
        KeyLog("EXPORTER_SECRET", random, exporter),
    ]


@final
@frozen
class OwnRecordLimit:
    """Our record_size_limit was negotiated (RFC 8449 §4): records we receive from now on
    must not carry a larger TLSInnerPlaintext."""

    limit: int


@final
@frozen
class SkipEarlyData:
    """RFC 8446 §4.2.10: the client offered 0-RTT, which we never accept: skip up to
    ``limit`` bytes of records that are its early data (0: stop skipping)."""

    limit: int


@frozen
class HandshakeInfo:
    """What was negotiated, reported once the handshake completes."""

    cipher_suite: CipherSuite
    group: NamedGroup | None
    signature_scheme: SignatureScheme | None
    alpn_protocol: bytes | None
    server_name: str | None
    peer_certificates: tuple[bytes, ...]
    hello_retry: bool
    resumed: bool = False
    # The identity of the external PSK the handshake authenticated with (RFC 8446 §4.2.11).
    psk_identity: bytes | None = None
    # The client sent post_handshake_auth (RFC 8446 §4.2.6): the server may ask it for a
    # certificate after the handshake.
    post_handshake_auth: bool = False
    # RFC 7250: the peer's raw public key (DER SubjectPublicKeyInfo), when it sent one.
    peer_raw_public_key: bytes | None = None
    # RFC 5764 §4.1.1 (DTLS 1.3: use_srtp in the EncryptedExtensions): the profile agreed on.
    srtp_profile: int | None = None

    @property
    def psk_authenticated(self) -> bool:
        """A PSK (a ticket or an external one) authenticated the handshake: no certificates
        (RFC 8446 §2.2)."""
        return self.resumed or self.psk_identity is not None


@final
@frozen
class ClientAuthenticated:
    """Post-handshake authentication finished (RFC 8446 §4.6.2): the client's chain, or ()."""

    chain: tuple[bytes, ...]


@final
@frozen
class TicketReceived:
    """A client received a NewSessionTicket and derived its resumption PSK (§4.6.1)."""

    ticket: Any


@final
@frozen
class UseConnectionIds:
    """DTLS 1.3 connection IDs were negotiated (RFC 9147 §9, RFC 9146): ``read`` is ours,
    in every protected record we receive from now on; ``write`` is the peer's, in every
    protected record we send."""

    read: bytes
    write: bytes


@final
@frozen
class PeerConnectionIds:
    """DTLS 1.3: the peer's NewConnectionId (RFC 9147 §9), CIDs for the records we send."""

    cids: tuple[bytes, ...]
    usage: ConnectionIdUsage


@final
@frozen
class ConnectionIdsRequested:
    """DTLS 1.3: the peer's RequestConnectionId (RFC 9147 §9) asks for ``num_cids`` CIDs."""

    num_cids: int


# Written as strings: only type checkers read these, and a mypyc build cannot subscript the
# generic Complete at run time.
Action: TypeAlias = (
    "SendMessage | SendChangeCipherSpec | InstallKey | PeerRecordLimit | OwnRecordLimit"
    " | SkipEarlyData | UseConnectionIds | PeerConnectionIds | ConnectionIdsRequested"
    " | Complete[HandshakeInfo]"
)
Actions: TypeAlias = "list[Action | TicketReceived | ClientAuthenticated | KeyLog]"


def message(msg_type: HandshakeType, body: bytes) -> bytes:
    """A whole TLS handshake message: type, uint24 length, body (RFC 8446 §4)."""
    return encode_handshake(msg_type, body)


# ---- per-connection handshake keys ------------------------------------------------------------


@dataclass(slots=True)
class Keys:
    """The key schedule and transcript of a handshake past the ServerHello, with the two
    handshake traffic secrets (RFC 8446 §7.1)."""

    schedule: KeySchedule
    transcript: TranscriptHash
    client_handshake: bytes
    server_handshake: bytes
    # The ClientHello random: it names the connection in a key log (NSS format).
    client_random: bytes

    @classmethod
    def after_server_hello(
        cls, schedule: KeySchedule, transcript: TranscriptHash, client_random: bytes
    ) -> Keys:
        th = transcript.digest()
        return cls(
            schedule,
            transcript,
            schedule.client_handshake_traffic_secret(th),
            schedule.server_handshake_traffic_secret(th),
            client_random,
        )

    def finished(self, server: bool) -> bytes:
        """verify_data for the transcript so far (RFC 8446 §4.4.4)."""
        base = self.server_handshake if server else self.client_handshake
        return self.schedule.finished_verify_data(base, self.transcript.digest())


@frozen
class AppSecrets:
    """Application traffic secrets (generation N), the resumption master secret, and the
    transcript hash through the server Finished that the generation-0 secrets are over (so
    is the exporter master secret: `dtlsgate.crypto.exporters.Tls13Exporter`)."""

    client: bytes
    server: bytes
    resumption: bytes = b""
    transcript_hash: bytes = b""


def install(write: bool, keys: Keys, aead: AeadAlgorithm, secret: bytes) -> InstallKey:
    return install_key((write, keys.schedule, aead, secret))


# ---- ClientHello extensions -------------------------------------------------------------------


@frozen
class ClientHelloInfo:
    """The ClientHello extensions a TLS 1.3 server acts on, each decoded from its own bytes."""

    versions: tuple[int, ...]
    groups: tuple[int, ...]
    # None when the key_share extension is absent; () when it is present and empty (RFC
    # 8446 §4.2.8 allows that: the client asks for a HelloRetryRequest).
    shares: tuple[KeyShareEntry, ...] | None
    signature_schemes: tuple[int, ...]
    server_name: str | None
    alpn: tuple[bytes, ...]
    psk_modes: tuple[int, ...]
    psk: OfferedPsks | None
    cookie: bytes | None
    record_size_limit: int | None
    early_data: bool
    # RFC 7250 §4.1: the certificate types the client takes / can send (None: X.509 only).
    server_certificate_types: tuple[int, ...] | None = None
    client_certificate_types: tuple[int, ...] | None = None
    post_handshake_auth: bool = False
    compress_algorithms: tuple[int, ...] = ()
    # RFC 5764 §4.1.1: the SRTP protection profiles offered in use_srtp (its MKI is not
    # read: we answer with none).
    srtp_profiles: tuple[int, ...] = ()

    def with_hello2(
        self, shares: tuple[KeyShareEntry, ...] | None, cookie: bytes
    ) -> ClientHelloInfo:
        """This info with another ClientHello2's key shares and cookie (`client_hello_like`)."""
        return ClientHelloInfo(
            self.versions,
            self.groups,
            shares,
            self.signature_schemes,
            self.server_name,
            self.alpn,
            self.psk_modes,
            self.psk,
            cookie,
            self.record_size_limit,
            self.early_data,
            self.server_certificate_types,
            self.client_certificate_types,
            self.post_handshake_auth,
            self.compress_algorithms,
            self.srtp_profiles,
        )

    def share_for(self, group: int) -> bytes | None:
        for entry in self.shares or ():
            if entry.group == group:
                return entry.key_exchange
        return None


def _present(data: bytes) -> bool:
    """early_data in a ClientHello: its presence is what counts (RFC 8446 §4.2.10)."""
    return True


def _srtp_profiles(data: bytes) -> tuple[int, ...]:
    """use_srtp in a ClientHello (RFC 5764 §4.1.1): the profiles offered."""
    return decode_use_srtp(data)[0]


def _present_and_empty(data: bytes) -> bool:
    """post_handshake_auth: an empty extension (RFC 8446 §4.2.6)."""
    require_empty(data, "post_handshake_auth")
    return True


_E = ExtensionType
# Each extension the server acts on: the ClientHelloInfo field it fills and its decoder.
_PARSERS: dict[int, tuple[str, Callable[[bytes], Any]]] = {
    _E.supported_versions: ("versions", decode_supported_versions_ch),
    _E.supported_groups: ("groups", decode_u16_list_ext),
    _E.key_share: ("shares", decode_key_share_ch),
    _E.signature_algorithms: ("signature_schemes", decode_u16_list_ext),
    _E.server_name: ("server_name", decode_server_name),
    _E.application_layer_protocol_negotiation: ("alpn", decode_alpn),
    _E.psk_key_exchange_modes: ("psk_modes", decode_psk_key_exchange_modes),
    _E.pre_shared_key: ("psk", decode_pre_shared_key_ch),
    _E.cookie: ("cookie", decode_cookie),
    _E.record_size_limit: ("record_size_limit", decode_record_size_limit),
    _E.server_certificate_type: ("server_certificate_types", decode_certificate_types),
    _E.client_certificate_type: ("client_certificate_types", decode_certificate_types),
    _E.compress_certificate: ("compress_algorithms", decode_compress_certificate),
    _E.early_data: ("early_data", _present),
    _E.post_handshake_auth: ("post_handshake_auth", _present_and_empty),
    _E.use_srtp: ("srtp_profiles", _srtp_profiles),
}


def client_hello_info(hello: ClientHello) -> ClientHelloInfo:
    """Decode the extensions of ``hello``, in their order; unknown ones are ignored (RFC
    8446 §4.1.2)."""
    values: dict[str, Any] = {
        "versions": (),
        "groups": (),
        "shares": None,
        "signature_schemes": (),
        "server_name": None,
        "alpn": (),
        "psk_modes": (),
        "psk": None,
        "cookie": None,
        "record_size_limit": None,
        "early_data": False,
    }
    extensions = hello.extensions or ()
    last = len(extensions) - 1
    for index, ext in enumerate(extensions):
        parser = _PARSERS.get(ext.type)
        if parser is None:
            continue
        name, decode = parser
        # RFC 8446 §4.2.11: pre_shared_key MUST be the last extension (illegal_parameter).
        if name == "psk" and index != last:
            raise IllegalParameter("pre_shared_key is not the last extension")
        values[name] = decode(ext.data)
    return ClientHelloInfo(**values)


def check_tls13_client_hello(
    hello: ClientHello, info: ClientHelloInfo, versions: Versions = TLS_VERSIONS
) -> None:
    """The checks that make a ClientHello a TLS 1.3 (or DTLS 1.3) one we can answer."""
    # RFC 8446 §4.2.1: without supported_versions (or without 1.3 in it) this is a TLS 1.2
    # or older ClientHello; we speak only TLS 1.3 over streams (protocol_version, §4.1.2).
    if versions.version not in info.versions:
        raise ProtocolVersionError("client does not offer (D)TLS 1.3")
    # RFC 8446 §4.1.2: legacy_compression_methods MUST be exactly one null byte.
    if hello.compression_methods != b"\x00":
        raise IllegalParameter("TLS 1.3 ClientHello with compression")
    if versions.dtls:
        # RFC 9147 §5.3: legacy_version {254, 253}; a non-empty legacy_cookie is
        # illegal_parameter.
        if hello.legacy_version != versions.legacy_version:
            raise ProtocolVersionError("legacy_version is not DTLS 1.2")
        if hello.cookie:
            raise IllegalParameter("DTLS 1.3 ClientHello with a legacy_cookie")
    elif hello.legacy_version < versions.legacy_version:
        raise ProtocolVersionError("legacy_version below TLS 1.2")


def decode_client_hello(
    body: bytes, versions: Versions = TLS_VERSIONS
) -> tuple[ClientHello, ClientHelloInfo]:
    hello = ClientHello.decode(body, dtls=versions.dtls)
    if hello.extensions is None:
        raise ProtocolVersionError("ClientHello without extensions")
    info = client_hello_info(hello)
    check_tls13_client_hello(hello, info, versions)
    return hello, info


def client_hello_like(
    known: tuple[ClientHello, ClientHelloInfo],
    random: bytes,
    session_id: bytes,
    key_share: bytes | None,
    cookie: bytes,
) -> tuple[ClientHello, ClientHelloInfo]:
    """What `decode_client_hello` returns for a ClientHello that differs from ``known`` (one
    it returned) only in its random, session_id and the bodies of key_share and cookie
    (``known`` has both extensions, or only cookie when ``key_share`` is None): those two
    decoded (DecodeError, IllegalParameter as it raises them), the rest ``known``'s. The
    caller checks legacy_version, the one field `decode_client_hello` checks that is not
    here."""
    hello, info = known
    assert hello.decoded_extensions is not None  # as `decode_client_hello` made it
    changes: dict[int, bytes] = {_E.cookie: cookie}
    shares = None
    if key_share is not None:
        shares = decode_key_share_ch(key_share)
        changes[_E.key_share] = key_share
    extensions = with_bodies(hello.decoded_extensions, changes)
    hello2 = ClientHello(
        hello.legacy_version,
        random,
        session_id,
        hello.cipher_suites,
        hello.compression_methods,
        extensions[0],
        hello.cookie,
        extensions,
    )
    return hello2, info.with_hello2(shares, decode_cookie(cookie))


def client_hello_fixed_part(hello: ClientHello) -> bytes:
    """The part of a decoded ClientHello that ClientHello2 must repeat (RFC 8446 §4.1.2):
    versions, random, session id, suites, compression, and the extensions ClientHello2 may
    not change (sorted by type: a client re-encoding its hello may order them differently),
    each field as it is on the wire (its length prefix included). Joined from one pack per
    piece: a cookie binds it on every stateless HelloRetryRequest."""
    suites = hello.cipher_suites
    parts = [
        _VERSION_RANDOM_SESSION_ID_LENGTH.pack(
            hello.legacy_version, hello.random, len(hello.session_id)
        ),
        hello.session_id,
        struct.pack(f">{len(suites) + 1}H", 2 * len(suites), *suites),
        bytes((len(hello.compression_methods),)),
        hello.compression_methods,
    ]
    for ext in sorted(hello.extensions or (), key=_extension_type):
        if ext.type not in CHANGEABLE_IN_CLIENT_HELLO2:
            parts += (_EXTENSION_TYPE_AND_LENGTH.pack(ext.type, len(ext.data)), ext.data)
    return b"".join(parts)


# legacy_version (2), random (32), the session id's length (1); an extension's type and
# length (2 each).
_VERSION_RANDOM_SESSION_ID_LENGTH = struct.Struct(f">H{RANDOM_LENGTH}sB")
_EXTENSION_TYPE_AND_LENGTH = struct.Struct(">HH")


def _extension_type(extension: Extension) -> int:
    return extension.type


# ---- HelloRetryRequest ---------------------------------------------------------------------------


def hello_retry_request(
    session_id: bytes,
    suite: int,
    group: int | None,
    cookie: bytes | None,
    versions: Versions = TLS_VERSIONS,
) -> bytes:
    """The whole HelloRetryRequest message (RFC 8446 §4.1.4): a ServerHello with the special
    random, the selected version, and the key_share group and cookie when given. It depends
    only on its arguments, so a stateless server can rebuild it byte for byte from CH2."""
    selected = encode_supported_versions_sh(versions.version)
    extensions = [Extension(_E.supported_versions, selected)]
    if group is not None:
        extensions.append(Extension(_E.key_share, encode_key_share_hrr(group)))
    if cookie is not None:
        extensions.append(Extension(_E.cookie, encode_cookie(cookie)))
    hrr = ServerHello(
        versions.legacy_version,
        HELLO_RETRY_REQUEST_RANDOM,
        session_id,
        suite,
        0,
        tuple(extensions),
    )
    return message(HandshakeType.SERVER_HELLO, hrr.encode())


# ---- certificate compression (RFC 8879) --------------------------------------------------------


def compression_algorithm(peer_algorithms: tuple[int, ...]) -> int | None:
    """The first algorithm we have among those the peer advertised (RFC 8879 §3), or None."""
    return next((a for a in available_algorithms() if a in peer_algorithms), None)


def certificate_message(body: bytes, peer_algorithms: tuple[int, ...]) -> bytes:
    """Our Certificate message, as a CompressedCertificate with the first algorithm we have
    among those the peer advertised (RFC 8879 §3), else as it is."""
    return compressed_certificate_message(body, compression_algorithm(peer_algorithms))


def compressed_certificate_message(body: bytes, algorithm: int | None) -> bytes:
    """A Certificate message with ``body``, as a CompressedCertificate with ``algorithm``
    (RFC 8879 §4) unless it is None."""
    if algorithm is None:
        return message(HandshakeType.CERTIFICATE, body)
    compressed = compress_certificate(algorithm, body)
    return message(HandshakeType.COMPRESSED_CERTIFICATE, compressed.encode())


H = TypeVar("H", bound=Callable[..., Any])


def compressed(handler: H) -> H:
    """The handler of a CompressedCertificate (RFC 8879 §4): decompressed within our bound,
    then handled as the Certificate it holds, hashed into the transcript as received. An
    algorithm we did not advertise (RFC 8879 §4: it MUST be one, no alert named) is
    illegal_parameter; data that do not decompress to exactly uncompressed_length, or past
    our bound, bad_certificate (§4)."""

    def on_compressed_certificate(ctx: Any, state: Any, body: bytes, raw: bytes, now: float) -> Any:
        wrapped = CompressedCertificate.decode(body)
        advertised = wrapped.algorithm in ctx.compression
        expect(advertised, "compression we did not advertise", IllegalParameter)
        return handler(ctx, state, decompress_certificate(wrapped), raw, now)

    on_compressed_certificate.__name__ = f"compressed_{handler.__name__}"
    return on_compressed_certificate  # type: ignore[return-value]


def expect(condition: bool, text: str, error: type[ProtocolError]) -> None:
    """Raise ``error`` (the class naming the alert) unless ``condition`` holds."""
    if not condition:
        raise error(text)


def present(value: T | None, text: str, error: type[ProtocolError]) -> T:
    """``value``, or ``error`` (the class naming the alert) when the peer left it out."""
    if value is None:
        raise error(text)
    return value
