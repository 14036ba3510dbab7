"""Protocol numbers: the IANA registries of TLS and DTLS, as IntEnums.

Each enum lists what dtlsgate speaks or must recognise; values not listed still
decode as plain ints where a registry is open (cipher suites, extensions, groups),
so an unknown value from a peer is never an error by itself.
"""

from __future__ import annotations

from enum import IntEnum


class ContentType(IntEnum):
    """TLSPlaintext.type (RFC 8446 §5.1, RFC 9147 §4)."""

    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23
    HEARTBEAT = 24
    TLS12_CID = 25
    ACK = 26


class HandshakeType(IntEnum):
    """Handshake.msg_type (RFC 8446 §4, RFC 6347 §4.3.2)."""

    HELLO_REQUEST = 0
    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    HELLO_VERIFY_REQUEST = 3
    NEW_SESSION_TICKET = 4
    END_OF_EARLY_DATA = 5
    HELLO_RETRY_REQUEST = 6  # never on the wire in TLS 1.3 final; an HRR is a ServerHello
    ENCRYPTED_EXTENSIONS = 8
    REQUEST_CONNECTION_ID = 9
    NEW_CONNECTION_ID = 10
    CERTIFICATE = 11
    SERVER_KEY_EXCHANGE = 12
    CERTIFICATE_REQUEST = 13
    SERVER_HELLO_DONE = 14
    CERTIFICATE_VERIFY = 15
    CLIENT_KEY_EXCHANGE = 16
    FINISHED = 20
    CERTIFICATE_URL = 21
    CERTIFICATE_STATUS = 22
    KEY_UPDATE = 24
    COMPRESSED_CERTIFICATE = 25  # RFC 8879 §4
    MESSAGE_HASH = 254


class AlertLevel(IntEnum):
    WARNING = 1
    FATAL = 2


class AlertDescription(IntEnum):
    """Alert.description (RFC 8446 §6, RFC 5246 §7.2)."""

    close_notify = 0
    unexpected_message = 10
    bad_record_mac = 20
    record_overflow = 22
    handshake_failure = 40
    bad_certificate = 42
    unsupported_certificate = 43
    certificate_revoked = 44
    certificate_expired = 45
    certificate_unknown = 46
    illegal_parameter = 47
    unknown_ca = 48
    access_denied = 49
    decode_error = 50
    decrypt_error = 51
    too_many_cids_requested = 52  # RFC 9147 §9
    protocol_version = 70
    insufficient_security = 71
    internal_error = 80
    inappropriate_fallback = 86
    user_canceled = 90
    no_renegotiation = 100
    missing_extension = 109
    unsupported_extension = 110
    unrecognized_name = 112
    bad_certificate_status_response = 113
    unknown_psk_identity = 115
    certificate_required = 116
    no_application_protocol = 120


class ProtocolVersion(IntEnum):
    """ProtocolVersion values on the wire. DTLS counts down: 0xFEFF is 1.0."""

    TLS10 = 0x0301
    TLS11 = 0x0302
    TLS12 = 0x0303
    TLS13 = 0x0304
    DTLS10 = 0xFEFF
    DTLS12 = 0xFEFD
    DTLS13 = 0xFEFC


class ExtensionType(IntEnum):
    """ExtensionType (IANA TLS ExtensionType Values)."""

    server_name = 0
    max_fragment_length = 1
    status_request = 5
    supported_groups = 10
    ec_point_formats = 11
    signature_algorithms = 13
    use_srtp = 14
    heartbeat = 15
    application_layer_protocol_negotiation = 16
    signed_certificate_timestamp = 18
    client_certificate_type = 19
    server_certificate_type = 20
    padding = 21
    encrypt_then_mac = 22
    extended_master_secret = 23
    compress_certificate = 27
    record_size_limit = 28
    session_ticket = 35
    pre_shared_key = 41
    early_data = 42
    supported_versions = 43
    cookie = 44
    psk_key_exchange_modes = 45
    certificate_authorities = 47
    oid_filters = 48
    post_handshake_auth = 49
    signature_algorithms_cert = 50
    key_share = 51
    connection_id = 54
    renegotiation_info = 0xFF01


class CipherSuite(IntEnum):
    """The cipher suites dtlsgate implements (all AEAD), plus the signalling values."""

    # TLS 1.3 (RFC 8446 §B.4)
    TLS_AES_128_GCM_SHA256 = 0x1301
    TLS_AES_256_GCM_SHA384 = 0x1302
    TLS_CHACHA20_POLY1305_SHA256 = 0x1303
    TLS_AES_128_CCM_SHA256 = 0x1304
    TLS_AES_128_CCM_8_SHA256 = 0x1305
    # TLS/DTLS 1.2 ECDHE with certificates (RFC 5289, RFC 7905, RFC 7251)
    TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 = 0xC02B
    TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 = 0xC02C
    TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 = 0xC02F
    TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 = 0xC030
    TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 = 0xCCA8
    TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 = 0xCCA9
    TLS_ECDHE_ECDSA_WITH_AES_128_CCM = 0xC0AC
    TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 = 0xC0AE
    # PSK (RFC 5487, RFC 6655, RFC 7905)
    TLS_PSK_WITH_AES_128_GCM_SHA256 = 0x00A8
    TLS_PSK_WITH_AES_256_GCM_SHA384 = 0x00A9
    TLS_PSK_WITH_AES_128_CCM = 0xC0A4
    TLS_PSK_WITH_AES_128_CCM_8 = 0xC0A8
    TLS_PSK_WITH_CHACHA20_POLY1305_SHA256 = 0xCCAB
    TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256 = 0xCCAC
    TLS_ECDHE_PSK_WITH_AES_128_GCM_SHA256 = 0xD001
    # Signalling cipher suite values
    TLS_EMPTY_RENEGOTIATION_INFO_SCSV = 0x00FF
    TLS_FALLBACK_SCSV = 0x5600


class NamedGroup(IntEnum):
    """NamedGroup (RFC 8446 §4.2.7; RFC 7919 for ffdhe*)."""

    secp256r1 = 0x0017
    secp384r1 = 0x0018
    secp521r1 = 0x0019
    x25519 = 0x001D
    x448 = 0x001E
    ffdhe2048 = 0x0100
    ffdhe3072 = 0x0101
    ffdhe4096 = 0x0102
    ffdhe6144 = 0x0103
    ffdhe8192 = 0x0104
    # draft-ietf-tls-mlkem (pure ML-KEM) and draft-ietf-tls-ecdhe-mlkem (the hybrids), with
    # the IANA registry's names.
    MLKEM768 = 0x0201
    MLKEM1024 = 0x0202
    SecP256r1MLKEM768 = 0x11EB
    X25519MLKEM768 = 0x11EC
    SecP384r1MLKEM1024 = 0x11ED


class SignatureScheme(IntEnum):
    """SignatureScheme (RFC 8446 §4.2.3); for TLS 1.2 the same two bytes are
    SignatureAndHashAlgorithm (RFC 5246 §7.4.1.4.1)."""

    rsa_pkcs1_sha1 = 0x0201
    ecdsa_sha1 = 0x0203
    rsa_pkcs1_sha256 = 0x0401
    rsa_pkcs1_sha384 = 0x0501
    rsa_pkcs1_sha512 = 0x0601
    ecdsa_secp256r1_sha256 = 0x0403
    ecdsa_secp384r1_sha384 = 0x0503
    ecdsa_secp521r1_sha512 = 0x0603
    rsa_pss_rsae_sha256 = 0x0804
    rsa_pss_rsae_sha384 = 0x0805
    rsa_pss_rsae_sha512 = 0x0806
    ed25519 = 0x0807
    ed448 = 0x0808
    rsa_pss_pss_sha256 = 0x0809
    rsa_pss_pss_sha384 = 0x080A
    rsa_pss_pss_sha512 = 0x080B
    # draft-ietf-tls-mldsa: pure ML-DSA (FIPS 204) in TLS 1.3 only, empty context.
    mldsa44 = 0x0904
    mldsa65 = 0x0905
    mldsa87 = 0x0906


class PskKeyExchangeMode(IntEnum):
    """RFC 8446 §4.2.9."""

    psk_ke = 0
    psk_dhe_ke = 1


class ConnectionIdUsage(IntEnum):
    """RFC 9147 §9: how the CIDs of a NewConnectionId are to be used."""

    cid_immediate = 0
    cid_spare = 1


class KeyUpdateRequest(IntEnum):
    """RFC 8446 §4.6.3."""

    update_not_requested = 0
    update_requested = 1


class CompressionMethod(IntEnum):
    null = 0


class SrtpProtectionProfile(IntEnum):
    """The DTLS-SRTP protection profiles of use_srtp (RFC 5764 §4.1.2, RFC 7714 §14.2), the
    ones OpenSSL and GnuTLS offer; each fixes the SRTP keys exported (RFC 5764 §4.2)."""

    SRTP_AES128_CM_HMAC_SHA1_80 = 0x0001
    SRTP_AES128_CM_HMAC_SHA1_32 = 0x0002
    SRTP_NULL_HMAC_SHA1_80 = 0x0005
    SRTP_NULL_HMAC_SHA1_32 = 0x0006
    SRTP_AEAD_AES_128_GCM = 0x0007
    SRTP_AEAD_AES_256_GCM = 0x0008
