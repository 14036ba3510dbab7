"""Authenticating the peer in TLS 1.3: its certificate chain (RFC 8446 §4.4.2) and its
CertificateVerify signature over the transcript (§4.4.3). Shared by server and client."""

from __future__ import annotations

import datetime
from collections.abc import Collection
from typing import Any

from cryptography import x509

from dtlsgate._frozen import frozen
from dtlsgate.crypto.certs import (
    Fingerprints,
    TrustStore,
    is_rsassa_pss,
    peer_public_key,
    verify_peer_chain,
)
from dtlsgate.crypto.signatures import (
    RSA_PSS_PSS_SCHEMES,
    TLS13_FORBIDDEN_SCHEMES,
    certificate_verify_content,
    schemes_for_key,
)
from dtlsgate.errors import IllegalParameter
from dtlsgate.handshake.tls13.common import DEFAULT_SIGNATURE_SCHEMES
from dtlsgate.wire.enums import SignatureScheme
from dtlsgate.wire.messages13 import CertificateVerify


def certificate_schemes(chain: list[x509.Certificate], key: Any) -> tuple[SignatureScheme, ...]:
    """The TLS 1.3 schemes our certificate's key signs with (RFC 8446 §4.2.3: the key type
    of the leaf, told apart by its subjectPublicKeyInfo for RSASSA-PSS)."""
    if key is None:
        return ()
    pss = bool(chain) and is_rsassa_pss(chain[0])
    return tuple(schemes_for_key(key, tls13=True, rsassa_pss=pss))


@frozen
class PeerKey:
    """The public key of the peer's leaf certificate, and whether the certificate names it
    id-RSASSA-PSS rather than rsaEncryption (the same key type to ``cryptography``)."""

    key: Any
    rsassa_pss: bool = False


def check_peer_certificate(
    chain_der: tuple[bytes, ...],
    server_name: str | None,
    trust: TrustStore | None,
    fingerprints: Fingerprints | None,
    now: float,
) -> PeerKey:
    """The leaf's public key after checking the chain at time ``now`` (seconds since the
    epoch) by `verify_peer_chain`'s rule: against ``trust`` (for a server, for
    ``server_name``) and/or ``fingerprints``. With neither (the application asked for it by
    name: ``insecure``), only the leaf is parsed."""
    when = datetime.datetime.fromtimestamp(now, datetime.UTC)
    leaf = verify_peer_chain(chain_der, trust, fingerprints, when, server_name)
    return PeerKey(peer_public_key(leaf), is_rsassa_pss(leaf))


def verify_certificate_verify(
    provider: Any,
    peer: PeerKey,
    body: bytes,
    transcript_digest: bytes,
    *,
    server: bool,
    offered: Collection[int] = DEFAULT_SIGNATURE_SCHEMES,
) -> SignatureScheme:
    """Check the peer's CertificateVerify (``server``: it came from the server; ``offered``:
    the schemes our signature_algorithms listed)."""
    cv = CertificateVerify.decode(body)
    # RFC 8446 §4.4.3: the scheme must be one we offered, and not PKCS#1 v1.5 or SHA-1.
    if cv.algorithm not in offered or cv.algorithm in TLS13_FORBIDDEN_SCHEMES:
        raise IllegalParameter(f"CertificateVerify with scheme {cv.algorithm:#06x}")
    # RFC 8446 §4.2.3: rsa_pss_pss_* only with an RSASSA-PSS certificate key, and an
    # RSASSA-PSS key only with them (rsa_pss_rsae_* are for rsaEncryption keys).
    if (cv.algorithm in RSA_PSS_PSS_SCHEMES) != peer.rsassa_pss:
        raise IllegalParameter(f"scheme {cv.algorithm:#06x} does not fit the certificate key")
    scheme = SignatureScheme(cv.algorithm)
    content = certificate_verify_content(transcript_digest, server=server)
    provider.verify(peer.key, scheme, content, cv.signature)
    return scheme
