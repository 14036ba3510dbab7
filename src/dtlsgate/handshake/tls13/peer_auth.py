"""Authenticating the peer in TLS 1.3: its certificate chain (RFC 8446 §4.4.2) and its
CertificateVerify signature over the transcript (§4.4.3). Shared by server and client."""

from __future__ import annotations

import datetime
from collections.abc import Collection
from typing import Any

from dtlsgate.crypto.certs import (
    TrustStore,
    parse_peer_certificate,
    peer_public_key,
    verify_client_chain,
    verify_server_chain,
)
from dtlsgate.crypto.signatures import TLS13_FORBIDDEN_SCHEMES, certificate_verify_content
from dtlsgate.errors import IllegalParameter
from dtlsgate.handshake.tls13.common import DEFAULT_SIGNATURE_SCHEMES
from dtlsgate.wire.enums import SignatureScheme
from dtlsgate.wire.messages13 import CertificateVerify


def check_peer_certificate(
    chain_der: tuple[bytes, ...], server_name: str | None, trust: TrustStore | None, now: float
) -> Any:
    """The leaf's public key after verifying the chain at time ``now`` (seconds since the
    epoch): for a server, against ``server_name``. With ``trust`` None (the application
    asked for it by name: ``insecure`` / no client CA), only the leaf is parsed."""
    when = datetime.datetime.fromtimestamp(now, datetime.UTC)
    if trust is None:
        return peer_public_key(parse_peer_certificate(chain_der[0]))
    if server_name is None:
        return peer_public_key(verify_client_chain(chain_der, trust, when))
    return peer_public_key(verify_server_chain(chain_der, server_name, trust, when))


def verify_certificate_verify(
    provider: Any,
    peer_key: Any,
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
    scheme = SignatureScheme(cv.algorithm)
    content = certificate_verify_content(transcript_digest, server=server)
    provider.verify(peer_key, scheme, content, cv.signature)
    return scheme
