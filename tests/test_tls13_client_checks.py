"""Client-side checks of what the server sends: unsolicited EncryptedExtensions and
CertificateVerify schemes the client did not offer."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import pair

import dtlsgate.handshake.tls13.server as server_module
from dtlsgate.errors import ProtocolError
from dtlsgate.wire.enums import AlertDescription, SignatureScheme
from dtlsgate.wire.extensions import Extension


def with_extra_extension(extension: Extension) -> Any:
    original = server_module.EncryptedExtensions

    def build(extensions: tuple[Extension, ...]) -> Any:
        return original((*extensions, extension))

    return build


def test_unsolicited_encrypted_extension_is_unsupported_extension(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RFC 8446 §4.2: a response to an extension the client did not send aborts the
    handshake (here heartbeat, which may appear in EncryptedExtensions but which our client
    never offers). The server's usual server_name acknowledgement (solicited) passes in
    every other handshake test."""
    monkeypatch.setattr(
        server_module, "EncryptedExtensions", with_extra_extension(Extension(15, b"\x01"))
    )
    with pytest.raises(ProtocolError) as info:
        pair()
    assert info.value.alert == AlertDescription.unsupported_extension


def test_certificate_verify_scheme_must_be_one_we_offered() -> None:
    """RFC 8446 §4.4.3: a client configured for ECDSA P-384 only refuses a CertificateVerify
    made with ECDSA P-256, before looking at the signature; the default list accepts it."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from dtlsgate.crypto import DefaultProvider
    from dtlsgate.crypto.signatures import certificate_verify_content, sign
    from dtlsgate.handshake.tls13.peer_auth import PeerKey, verify_certificate_verify
    from dtlsgate.wire.messages13 import CertificateVerify

    key = ec.generate_private_key(ec.SECP256R1())
    digest = bytes(32)
    scheme = SignatureScheme.ecdsa_secp256r1_sha256
    signature = sign(key, scheme, certificate_verify_content(digest, server=True))
    body = CertificateVerify(scheme, signature).encode()
    provider = DefaultProvider()
    peer = PeerKey(key.public_key())
    assert verify_certificate_verify(provider, peer, body, digest, server=True) == scheme
    with pytest.raises(ProtocolError) as info:
        verify_certificate_verify(
            provider,
            peer,
            body,
            digest,
            server=True,
            offered=(SignatureScheme.ecdsa_secp384r1_sha384,),
        )
    assert info.value.alert == AlertDescription.illegal_parameter
