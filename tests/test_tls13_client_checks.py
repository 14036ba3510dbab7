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


def _refused(scenario: str, k: int, state: str, msg_type: int, body: bytes) -> int:
    """The alert of a client of ``scenario`` in ``state`` (after ``k`` records) fed the
    handshake message ``msg_type`` with ``body`` instead of the server's next one."""
    from helpers import NOW
    from tls13_hostile import at_state, inject

    conn, _ = at_state(scenario, "c", k)
    assert conn.state_name == state
    message = bytes((msg_type,)) + len(body).to_bytes(3, "big") + body
    with pytest.raises(ProtocolError) as info:
        conn.receive_data(inject(conn, 22, message), NOW)
    assert conn.closed
    return info.value.alert


def test_empty_server_certificate_is_decode_error() -> None:
    """RFC 8446 §4.4.2.4: a server's Certificate is never empty (decode_error)."""
    alert = _refused("plain", 3, "WaitCertificateOrRequest", 11, b"\x00\x00\x00\x00")
    assert alert == AlertDescription.decode_error


def test_raw_public_key_certificate_of_two_keys_is_bad_certificate() -> None:
    """RFC 7250 §3: a RawPublicKey Certificate holds one CertificateEntry, the key."""
    from helpers import identity_key

    from dtlsgate.crypto.certs import spki_of

    spki = spki_of(identity_key())
    entry = len(spki).to_bytes(3, "big") + spki + b"\x00\x00"
    body = b"\x00" + (2 * len(entry)).to_bytes(3, "big") + entry * 2
    alert = _refused("raw_public_keys", 4, "WaitCertificate", 11, body)
    assert alert == AlertDescription.bad_certificate


def test_server_certificate_type_we_did_not_offer_is_illegal_parameter() -> None:
    """RFC 7250 §4.2: a client that offered RawPublicKey only (pins, no CA) refuses a
    server that chooses X.509 in EncryptedExtensions."""
    from dtlsgate.wire.enums import ExtensionType
    from dtlsgate.wire.messages13 import EncryptedExtensions

    chosen = Extension(ExtensionType.server_certificate_type, b"\x00")  # X.509
    body = EncryptedExtensions((chosen,)).encode()
    alert = _refused("raw_public_keys", 2, "WaitEncryptedExtensions", 8, body)
    assert alert == AlertDescription.illegal_parameter


def test_raw_public_key_that_does_not_parse_is_bad_certificate() -> None:
    """RFC 7250 §3: the CertificateEntry of a RawPublicKey is a DER SubjectPublicKeyInfo;
    one that does not parse is bad_certificate."""
    junk = b"\x30\x03\x02\x01\x00"  # a DER SEQUENCE, not a SubjectPublicKeyInfo
    entry = len(junk).to_bytes(3, "big") + junk + b"\x00\x00"
    body = b"\x00" + len(entry).to_bytes(3, "big") + entry
    alert = _refused("raw_public_keys", 4, "WaitCertificate", 11, body)
    assert alert == AlertDescription.bad_certificate
