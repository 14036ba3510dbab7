"""Raw public keys in TLS 1.3 (RFC 7250; RFC 8446 §4.4.2): which certificate types a server
chooses from the client's server_certificate_type / client_certificate_type lists and echoes
in EncryptedExtensions, which a client offers and accepts, and the CertificateEntry that
carries a SubjectPublicKeyInfo, checked against the configured pins.

Kept apart from the state machines, which call these at the few points the certificate type
changes what they send or check.
"""

from __future__ import annotations

from typing import Any

from dtlsgate.config import verifies_x509
from dtlsgate.crypto.certs import pinned_peer_key, spki_of
from dtlsgate.errors import BadCertificate, IllegalParameter, ProtocolError, UnsupportedCertificate
from dtlsgate.handshake.tls13.common import ClientHelloInfo
from dtlsgate.handshake.tls13.peer_auth import PeerKey
from dtlsgate.wire.enums import ExtensionType
from dtlsgate.wire.extensions import (
    CERTIFICATE_TYPE_RAW_PUBLIC_KEY,
    CERTIFICATE_TYPE_X509,
    Extension,
    decode_certificate_type,
    encode_certificate_types,
)

RAW = CERTIFICATE_TYPE_RAW_PUBLIC_KEY
X509 = CERTIFICATE_TYPE_X509
_E = ExtensionType


def _no_common_type(what: str) -> ProtocolError:
    # RFC 7250 §4.2: no certificate type in common is a fatal unsupported_certificate.
    return UnsupportedCertificate(f"no {what} certificate type in common")


def server_type(config: Any, info: ClientHelloInfo) -> int | None:
    """The type of the certificate we present: a raw public key when we have one and the
    client takes it, else X.509 when we have a chain and the client takes it. Returns the
    type to echo in EncryptedExtensions, None when the client sent no list (X.509)."""
    offered = info.server_certificate_types
    if offered is None:
        if config.raw_public_key and not config.certificate_chain:
            raise _no_common_type("server")
        return None
    if config.raw_public_key and RAW in offered:
        return RAW
    if config.certificate_chain and X509 in offered:
        return X509
    raise _no_common_type("server")


def client_type(config: Any, info: ClientHelloInfo) -> int | None:
    """The type of certificate we ask the client for, to echo (only when we ask and the
    client sent its list)."""
    offered = info.client_certificate_types
    if offered is None:
        return None
    if config.pinned_keys and RAW in offered:
        return RAW
    if verifies_x509(config) and X509 in offered:
        return X509
    raise _no_common_type("client")


def echoes(server: int | None, client: int | None) -> list[Extension]:
    out = []
    for ext_type, chosen in (
        (_E.client_certificate_type, client),
        (_E.server_certificate_type, server),
    ):
        if chosen is not None:
            out.append(Extension(ext_type, bytes((chosen,))))
    return out


def own_entries(chain_der: tuple[bytes, ...], key: Any, raw: bool) -> tuple[bytes, ...]:
    """What our CertificateEntries carry: the chain, or our key's SubjectPublicKeyInfo."""
    return (spki_of(key),) if raw else chain_der


def peer_raw_key(entries: tuple[bytes, ...], pins: tuple[bytes, ...]) -> PeerKey:
    """RFC 7250 §3 / RFC 8446 §4.4.2: one CertificateEntry holding a pinned key."""
    if len(entries) != 1:
        raise BadCertificate("a raw public key Certificate holds exactly one key")
    return PeerKey(pinned_peer_key(entries[0], pins))


# ---- the client's side ----------------------------------------------------------------------


def offers(config: Any) -> list[Extension]:
    """Our lists (RFC 7250 §4.1): a raw server key when we have pins (X.509 too with a
    cafile or fingerprints); our own raw key when we have one (X.509 too with a certificate
    chain)."""
    out = []
    if config.raw_public_key and config.private_key is not None:
        types = (RAW, X509) if config.certificate_chain else (RAW,)
        out.append(Extension(_E.client_certificate_type, encode_certificate_types(types)))
    if config.pinned_keys:
        types = (RAW, X509) if verifies_x509(config) else (RAW,)
        out.append(Extension(_E.server_certificate_type, encode_certificate_types(types)))
    return out


def chosen_raw(data: bytes | None, offered: bytes | None) -> bool:
    """Whether the server chose RawPublicKey in one of its echoes; a type we did not
    offer is illegal_parameter (RFC 7250 §4.2)."""
    if data is None:
        return False
    chosen = decode_certificate_type(data)
    if offered is None or chosen not in offered[1:]:
        raise IllegalParameter("server chose a certificate type we did not offer")
    return chosen == RAW
