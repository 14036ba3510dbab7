"""DTLS 1.2 parameter choice: what a server picks from a ClientHello, what a client offers,
and the key derivation both sides share once they agree.

Kept apart from the state machines so each handler stays short: a server handler calls
``choose(preferences, hello)`` and gets a ``Choice`` or the exception carrying the right
alert. `Preferences` is what ``choose`` needs from a ``ServerConfig`` made once per config
(the server's ``ServerContext`` holds it), not per handshake.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import NamedTuple, cast

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from dtlsgate._frozen import frozen
from dtlsgate.config import ClientConfig, ServerConfig, verifies_x509
from dtlsgate.crypto.hashes import Hash, KeyedHmac
from dtlsgate.crypto.kex import ecdhe_groups
from dtlsgate.crypto.prf import extended_master_secret, key_block, master_secret
from dtlsgate.crypto.provider import CryptoProvider
from dtlsgate.crypto.signatures import schemes_for_key
from dtlsgate.crypto.suites import SUITES, KeyExchange, SuiteInfo
from dtlsgate.errors import (
    HandshakeFailure,
    IllegalParameter,
    NoApplicationProtocol,
    ProtocolVersionError,
    UnsupportedCertificate,
)
from dtlsgate.record.dtls12 import CipherState
from dtlsgate.wire.enums import (
    CipherSuite,
    ExtensionType,
    NamedGroup,
    ProtocolVersion,
    SignatureScheme,
)
from dtlsgate.wire.extensions import (
    CERTIFICATE_TYPE_RAW_PUBLIC_KEY,
    CERTIFICATE_TYPE_X509,
    decode_alpn,
    decode_certificate_types,
    decode_ec_point_formats,
    decode_renegotiation_info,
    decode_server_name,
    decode_u16_list_ext,
    decode_use_srtp,
    pick_srtp_profile,
    require_empty,
)
from dtlsgate.wire.messages import ClientHello
from dtlsgate.wire.messages12 import KeyExchangeKind
from dtlsgate.wire.record import DTLS_VERSION_MAJOR

_CS = CipherSuite
_S = SignatureScheme

#: Our suite preference (server) and offer (client), strongest AEAD first for certificates;
#: the PSK suites after them. Only AEAD suites exist in this library (DESIGN.md).
DEFAULT_SUITES: tuple[CipherSuite, ...] = (
    _CS.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    _CS.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    _CS.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    _CS.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    _CS.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_128_CCM,
    _CS.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
    _CS.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
    _CS.TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256,
    _CS.TLS_PSK_WITH_AES_128_GCM_SHA256,
    _CS.TLS_PSK_WITH_AES_256_GCM_SHA384,
    _CS.TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
    _CS.TLS_PSK_WITH_AES_128_CCM,
    _CS.TLS_PSK_WITH_AES_128_CCM_8,
)
DEFAULT_GROUPS: tuple[NamedGroup, ...] = (
    NamedGroup.x25519,
    NamedGroup.secp256r1,
    NamedGroup.secp384r1,
)
DEFAULT_SIGNATURE_SCHEMES: tuple[SignatureScheme, ...] = (
    _S.ecdsa_secp256r1_sha256,
    _S.ecdsa_secp384r1_sha384,
    _S.ecdsa_secp521r1_sha512,
    _S.ed25519,
    _S.rsa_pss_rsae_sha256,
    _S.rsa_pss_rsae_sha384,
    _S.rsa_pss_rsae_sha512,
    _S.rsa_pkcs1_sha256,
    _S.rsa_pkcs1_sha384,
    _S.rsa_pkcs1_sha512,
)
# RFC 5746 §3.3: the signalling value that stands for an empty renegotiation_info.
#: RFC 8422 §5.1.2: ECPointFormat uncompressed, the only point format used.
EC_POINT_UNCOMPRESSED = 0

_X509 = CERTIFICATE_TYPE_X509
_RAW_PUBLIC_KEY = CERTIFICATE_TYPE_RAW_PUBLIC_KEY


_KIND = {
    KeyExchange.ECDHE_ECDSA: KeyExchangeKind.ECDHE,
    KeyExchange.ECDHE_RSA: KeyExchangeKind.ECDHE,
    KeyExchange.PSK: KeyExchangeKind.PSK,
    KeyExchange.ECDHE_PSK: KeyExchangeKind.ECDHE_PSK,
}


def kind_of(suite: SuiteInfo) -> KeyExchangeKind:
    return _KIND[suite.key_exchange]


@frozen
class Choice:
    """What the server chose from a ClientHello."""

    suite: SuiteInfo
    group: NamedGroup | None
    signature_scheme: SignatureScheme | None
    extended_master_secret: bool
    secure_renegotiation: bool
    alpn: bytes | None
    server_name: str | None
    ec_point_formats: bool
    # RFC 7250 §4.2: the certificate types to echo in the ServerHello (None: not echoed,
    # X.509 implied).
    server_certificate_type: int | None = None
    client_certificate_type: int | None = None
    # What the ClientHello's extensions say beyond the choice, read once here: its
    # session_ticket (RFC 5077 §3.2; None: not sent, b"": sent empty) and its
    # supported_versions (the downgrade sentinel, RFC 8446 §4.1.3), as received.
    session_ticket: bytes | None = None
    supported_versions: bytes | None = None
    # RFC 5764 §4.1.1: the SRTP protection profile chosen from the client's use_srtp.
    srtp_profile: int | None = None


def _key_exchange_for_key(key: object) -> KeyExchange | None:
    """The certificate key exchange a private key can sign for."""
    # RFC 8422 §5.1: ECDSA and EdDSA keys sign in ECDHE_ECDSA suites; RSA in ECDHE_RSA.
    if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        return KeyExchange.ECDHE_ECDSA
    if isinstance(key, rsa.RSAPrivateKey):
        return KeyExchange.ECDHE_RSA
    return None


class Preferences:
    """What ``choose`` reads of a ``ServerConfig``, worked out once per config: the DTLS 1.2
    suites we implement in preference order, our elliptic-curve groups, the signature
    schemes our key can sign with in our order, and the key exchange of our certificate's
    key (the isinstance checks against cryptography's abstract classes are not free)."""

    __slots__ = ("certificate_key_exchange", "config", "groups", "schemes", "suites")

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        configured = config.cipher_suites or DEFAULT_SUITES
        known = (SUITES.get(s) for s in configured)  # type: ignore[call-overload]
        self.suites: tuple[SuiteInfo, ...] = tuple(i for i in known if i and not i.is_tls13)
        # Only elliptic curves: FFDHE and ML-KEM groups in a shared config are TLS 1.3's.
        self.groups = tuple(NamedGroup(g) for g in ecdhe_groups(config.groups or DEFAULT_GROUPS))
        key = config.private_key
        self.schemes: tuple[SignatureScheme, ...] = ()
        if key is not None:
            usable = set(schemes_for_key(key))
            preferred = config.signature_schemes or DEFAULT_SIGNATURE_SCHEMES
            self.schemes = tuple(SignatureScheme(s) for s in preferred if s in usable)
        self.certificate_key_exchange = _key_exchange_for_key(key)


def _pick_scheme(prefs: Preferences, extensions: Mapping[int, bytes]) -> SignatureScheme | None:
    if prefs.config.private_key is None:
        return None
    ours = prefs.schemes
    data = extensions.get(ExtensionType.signature_algorithms)
    if data is None:
        # RFC 5246 §7.4.1.4.1 would default to SHA-1, which we do not sign with.
        return ours[0] if ours else None
    offered = decode_u16_list_ext(data)
    for scheme in ours:
        if scheme in offered:
            return scheme
    return None


def _pick_group(prefs: Preferences, extensions: Mapping[int, bytes]) -> NamedGroup | None:
    data = extensions.get(ExtensionType.supported_groups)
    # RFC 8422 §4: without the extension the client supports any curve; P-256 is safe.
    offered = (NamedGroup.secp256r1,) if data is None else decode_u16_list_ext(data)
    for group in prefs.groups:
        if group in offered:
            return group
    return None


def _pick_alpn(config: ServerConfig, extensions: Mapping[int, bytes]) -> bytes | None:
    data = extensions.get(ExtensionType.application_layer_protocol_negotiation)
    if data is None or not config.alpn_protocols:
        return None
    offered = decode_alpn(data)
    for protocol in config.alpn_protocols:
        if protocol in offered:
            return protocol
    # RFC 7301 §3.2: no overlap is a fatal no_application_protocol alert.
    raise NoApplicationProtocol("no common ALPN protocol")


def _pick_srtp_profile(config: ServerConfig, extensions: Mapping[int, bytes]) -> int | None:
    """RFC 5764 §4.1.1: our most preferred profile among those the client offered in
    use_srtp; None (no use_srtp in the ServerHello) without one in common. A use_srtp that
    does not decode is a decode error."""
    data = extensions.get(ExtensionType.use_srtp)
    if data is None or not config.srtp_profiles:
        return None
    offered, _mki = decode_use_srtp(data)
    return pick_srtp_profile(config.srtp_profiles, offered)


def _server_certificate_type(config: ServerConfig, extensions: Mapping[int, bytes]) -> int | None:
    """The type of the certificate we present (RFC 7250 §4.2): a raw public key when we
    have one and the client takes it, else X.509 when we have a chain and the client takes
    it (without the extension it takes only X.509); None: no certificate suite is possible."""
    data = extensions.get(ExtensionType.server_certificate_type)
    if data is None:
        return _X509 if config.certificate_chain else None
    offered = decode_certificate_types(data)
    if config.raw_public_key and _RAW_PUBLIC_KEY in offered:
        return _RAW_PUBLIC_KEY
    if config.certificate_chain and _X509 in offered:
        return _X509
    return None


def _client_certificate_type(config: ServerConfig, extensions: Mapping[int, bytes]) -> int | None:
    """The type of certificate we ask the client for, to echo (RFC 7250 §4.2): only when we
    ask for one and the client sent the extension."""
    data = extensions.get(ExtensionType.client_certificate_type)
    if data is None or config.verify_client == "none":
        return None
    offered = decode_certificate_types(data)
    if config.pinned_keys and _RAW_PUBLIC_KEY in offered:
        return _RAW_PUBLIC_KEY
    if verifies_x509(config) and _X509 in offered:
        return _X509
    # RFC 7250 §4.2: no type in common is a fatal unsupported_certificate.
    raise UnsupportedCertificate("no client certificate type in common")


def check_client_version(hello: ClientHello) -> None:
    """RFC 8996 §5: DTLS 1.0 is refused; DTLS versions count down, so a value above
    0xFEFD is older than 1.2 (RFC 6347 §4.1)."""
    version = hello.legacy_version
    if version >> 8 != DTLS_VERSION_MAJOR or version > ProtocolVersion.DTLS12:
        raise ProtocolVersionError(f"client offers DTLS version {version:#06x}")


def _secure_renegotiation(hello: ClientHello, extensions: Mapping[int, bytes]) -> bool:
    data = extensions.get(ExtensionType.renegotiation_info)
    if data is not None and decode_renegotiation_info(data):
        # RFC 5746 §3.6: on an initial handshake the renegotiated_connection must be empty.
        raise HandshakeFailure("non-empty renegotiation_info in an initial ClientHello")
    return data is not None or CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV in hello.cipher_suites


def choose(prefs: Preferences, hello: ClientHello) -> Choice:
    """The server's choice for ``hello`` (RFC 5246 §7.4.1.3: the server's preference
    among what the client offers)."""
    config = prefs.config
    check_client_version(hello)
    if hello.compression_methods.find(0) < 0:
        raise IllegalParameter("null compression not offered")
    # Each extension type appears at most once (the codec rejects duplicates).
    extensions = hello.extension_bodies
    ems_data = extensions.get(ExtensionType.extended_master_secret)
    if ems_data is not None:
        # RFC 7627 §5.1: "The "extension_data" field of this extension is empty."
        require_empty(ems_data, "extended_master_secret")
    ems = ems_data is not None
    if config.require_extended_master_secret and not ems:
        # RFC 7627 §5.3: a server that requires it aborts with handshake_failure.
        raise HandshakeFailure("client does not offer the extended master secret")
    formats = extensions.get(ExtensionType.ec_point_formats)
    if formats is not None and EC_POINT_UNCOMPRESSED not in decode_ec_point_formats(formats):
        # RFC 8422 §5.1.2: a list without uncompressed (the one format we use) is an
        # illegal_parameter.
        raise IllegalParameter("ec_point_formats without uncompressed")
    group = _pick_group(prefs, extensions)
    scheme = _pick_scheme(prefs, extensions)
    server_type = _server_certificate_type(config, extensions)
    has_key = config.certificate_chain or config.raw_public_key
    cert_kx = prefs.certificate_key_exchange if server_type is not None else None
    offered = hello.cipher_suites
    for info in prefs.suites:
        if info.suite not in offered:
            continue
        # The suite's kinds, prepared with the suite table: PSK and ECDHE_PSK are the
        # suites without a certificate, and all but PSK need a group.
        uses_group = info.uses_group
        if not info.uses_certificate:
            if not config.psk:
                continue
        elif info.key_exchange is not cert_kx or scheme is None:
            continue
        if uses_group and group is None:
            continue
        server_name_data = extensions.get(ExtensionType.server_name)
        certificate = info.uses_certificate
        sent_type = ExtensionType.server_certificate_type in extensions
        return Choice(
            suite=info,
            group=group if uses_group else None,
            signature_scheme=scheme if info.uses_certificate else None,
            extended_master_secret=ems,
            secure_renegotiation=_secure_renegotiation(hello, extensions),
            alpn=_pick_alpn(config, extensions),
            server_name=decode_server_name(server_name_data) if server_name_data else None,
            ec_point_formats=uses_group and formats is not None,
            server_certificate_type=server_type if certificate and sent_type else None,
            client_certificate_type=(
                _client_certificate_type(config, extensions) if certificate else None
            ),
            session_ticket=extensions.get(ExtensionType.session_ticket),
            supported_versions=extensions.get(ExtensionType.supported_versions),
            srtp_profile=_pick_srtp_profile(config, extensions),
        )
    if has_key and server_type is None:
        # RFC 7250 §4.2: no server certificate type in common.
        raise UnsupportedCertificate("no server certificate type in common")
    raise HandshakeFailure("no cipher suite in common")


def client_suites(config: ClientConfig) -> tuple[int, ...]:
    """The suites a client offers: PSK suites when it has a PSK, certificate suites
    otherwise (or the configured list, filtered to DTLS 1.2 suites we implement)."""
    wanted = config.cipher_suites or DEFAULT_SUITES
    out: list[int] = []
    for suite in wanted:
        info = SUITES.get(CipherSuite(suite)) if suite in SUITES else None
        if info is None or info.is_tls13:
            continue
        if config.cipher_suites is None and info.uses_certificate == (config.psk is not None):
            continue
        out.append(int(suite))
    return tuple(out)


class Keys(NamedTuple):
    """The master secret (also keyed for the PRF: the Finished messages use it) and the
    record protection of epoch 1 for both directions. Immutable, and a named tuple rather
    than a ``@frozen`` class (as `Session`): made once per handshake and read about six
    times, its four fields stored in one C call (``_as_keys``) instead of one slot-descriptor
    call each (about 700 instructions a field)."""

    master_secret: bytes
    master_prf: KeyedHmac
    client_write: CipherState
    server_write: CipherState


# The fields in order -> Keys, in C: a named tuple's own ``__new__`` is a Python function
# (as wire/record.py's DtlsRecord).
_as_keys = cast(
    Callable[[tuple[bytes, KeyedHmac, CipherState, CipherState]], Keys],
    partial(tuple.__new__, Keys),
)


def derive_keys(
    provider: CryptoProvider,
    suite: SuiteInfo,
    pre_master_secret: bytes,
    client_random: bytes,
    server_random: bytes,
    session_hash: bytes | None,
) -> Keys:
    """Master secret (RFC 5246 §8.1, or RFC 7627 §4 when ``session_hash`` is given) and
    the key block cut into write keys and IVs (RFC 5246 §6.3)."""
    hash: Hash = suite.hash
    if session_hash is not None:
        master = extended_master_secret(hash, pre_master_secret, session_hash)
    else:
        master = master_secret(hash, pre_master_secret, client_random, server_random)
    return keys_from_master(provider, suite, master, client_random, server_random)


def keys_from_master(
    provider: CryptoProvider,
    suite: SuiteInfo,
    master: bytes,
    client_random: bytes,
    server_random: bytes,
) -> Keys:
    """The key block of a connection from its session's master secret: a new handshake's,
    or a resumed session's with the new randoms (RFC 5246 §7.3, §6.3)."""
    hash: Hash = suite.hash
    master_prf = KeyedHmac(hash, master)
    client_key, server_key, client_iv, server_iv = key_block(
        suite, master_prf, client_random, server_random
    )
    return _as_keys(
        (
            master,
            master_prf,
            CipherState(suite, provider.aead_primitive(suite.aead, client_key), client_iv),
            CipherState(suite, provider.aead_primitive(suite.aead, server_key), server_iv),
        )
    )
