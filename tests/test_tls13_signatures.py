"""TLS 1.3 signature schemes (issue 13 item 2): an id-RSASSA-PSS certificate served with
rsa_pss_pss_* (RFC 8446 §4.2.3), ML-DSA-44/65/87 (draft-ietf-tls-mldsa: 0x0904-0x0906, pure
ML-DSA with an empty context, TLS 1.3 only) and Ed448, on both sides; each scheme tied to the
key type its specification requires, and DTLS 1.2 refusing the certificates it cannot use."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from helpers import NOW, client_config, credentials, pair, server_config
from peers import require

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.connection.datagram import DtlsClientConnection
from dtlsgate.connection.stream import ClientConnection, ServerConnection
from dtlsgate.crypto import DefaultProvider
from dtlsgate.crypto.certs import load_certificate_chain, load_identity
from dtlsgate.crypto.signatures import certificate_verify_content, schemes_for_key, sign
from dtlsgate.errors import ProtocolError, UsageError
from dtlsgate.handshake.tls13.common import SUPPORTED_SIGNATURE_SCHEMES
from dtlsgate.handshake.tls13.peer_auth import PeerKey, verify_certificate_verify
from dtlsgate.wire.enums import AlertDescription, SignatureScheme

_A = AlertDescription
_S = SignatureScheme
MLDSA = {"mldsa44": _S.mldsa44, "mldsa65": _S.mldsa65, "mldsa87": _S.mldsa87}


def test_mldsa_code_points_are_the_drafts() -> None:
    """draft-ietf-tls-mldsa §3: mldsa44(0x0904), mldsa65(0x0905), mldsa87(0x0906)."""
    assert (_S.mldsa44, _S.mldsa65, _S.mldsa87) == (0x0904, 0x0905, 0x0906)


@pytest.fixture(scope="module")
def rsassa_pss_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An id-RSASSA-PSS certificate and its key, made by openssl as a user would."""
    require("openssl")
    d = tmp_path_factory.mktemp("pss")
    key, cert = d / "pss.key", d / "pss.pem"
    for args in (
        ["genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key],
        ["req", "-x509", "-key", key, "-out", cert, "-days", "30", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
    ):  # fmt: skip
        subprocess.run(
            ["timeout", "60", "openssl", *map(str, args)], check=True, capture_output=True
        )
    return cert, key


def pss_pair(scfg: ServerConfig, ccfg: ClientConfig) -> tuple[ClientConnection, ServerConnection]:
    """``pair`` at the current time: openssl dates the certificate from when it made it,
    after the helpers' NOW."""
    now = time.time() + 1
    client, server = ClientConnection(ccfg), ServerConnection(scfg)
    client.start()
    for _ in range(6):
        server.receive_data(client.data_to_send(), now)
        client.receive_data(server.data_to_send(), now)
    return client, server


def pss_configs(cert: Path, key: Path, **client: object) -> tuple[ServerConfig, ClientConfig]:
    scfg = ServerConfig()
    scfg.load_cert_chain(str(cert), str(key))
    ccfg = ClientConfig(server_name="localhost", cafile=str(cert), **client)  # type: ignore[arg-type]
    return scfg, ccfg


def test_rsassa_pss_certificate_is_served_with_rsa_pss_pss(
    rsassa_pss_cert: tuple[Path, Path],
) -> None:
    """RFC 8446 §4.2.3: the certificate's key signs with rsa_pss_pss_*; our client checks it
    against the certificate's key type and completes (load_cert_chain used to refuse it)."""
    client, server = pss_pair(*pss_configs(*rsassa_pss_cert))
    assert client.info is not None and server.info is not None
    assert client.info.signature_scheme == _S.rsa_pss_pss_sha256


def test_rsassa_pss_server_with_an_rsae_only_client_is_handshake_failure(
    rsassa_pss_cert: tuple[Path, Path],
) -> None:
    """A client offering only rsa_pss_rsae_*: nothing fits an RSASSA-PSS key."""
    scfg, ccfg = pss_configs(*rsassa_pss_cert, signature_schemes=(_S.rsa_pss_rsae_sha256,))
    client, server = ClientConnection(ccfg), ServerConnection(scfg)
    client.start()
    with pytest.raises(ProtocolError) as info:
        server.receive_data(client.data_to_send(), NOW)
    assert info.value.alert == _A.handshake_failure


def test_rsassa_pss_client_certificate(rsassa_pss_cert: tuple[Path, Path]) -> None:
    cert, key = rsassa_pss_cert
    ident = load_identity(str(cert), str(key))
    ccfg = client_config(certificate_chain=list(ident.chain), private_key=ident.private_key)
    scfg = server_config(verify_client="required", cafile=str(cert))
    _, server = pss_pair(scfg, ccfg)
    assert server.info is not None and server.info.peer_certificates


@pytest.mark.parametrize("how", ["load_cert_chain", "objects"])
@pytest.mark.parametrize("side", ["server", "client"])
def test_dtls12_refuses_an_rsassa_pss_certificate(
    rsassa_pss_cert: tuple[Path, Path], how: str, side: str
) -> None:
    """DTLS 1.2 offers no rsa_pss_pss_*: a clear UsageError when the connection is made,
    whether the certificate was loaded from files or given as objects."""
    from helpers import SERVER, make_pair
    from helpers import client_config as dtls_client_config

    cert, key = rsassa_pss_cert
    if how == "objects":
        ident = load_identity(str(cert), str(key))
        creds = {"certificate_chain": list(ident.chain), "private_key": ident.private_key}
    else:
        creds = {}
    if side == "server":
        scfg = ServerConfig(**creds)  # type: ignore[arg-type]
        if how == "load_cert_chain":
            scfg.load_cert_chain(str(cert), str(key))
        with pytest.raises(UsageError, match=r"RSASSA-PSS.*TLS 1.3 only"):
            make_pair(scfg, dtls_client_config(insecure=True)).run()
    else:
        ccfg = ClientConfig(insecure=True, **creds)  # type: ignore[arg-type]
        if how == "load_cert_chain":
            ccfg.load_cert_chain(str(cert), str(key))
        with pytest.raises(UsageError, match=r"RSASSA-PSS.*TLS 1.3 only"):
            DtlsClientConnection(ccfg, SERVER)


def test_dtls12_refuses_an_mldsa_certificate() -> None:
    ident = load_identity(*credentials("mldsa44"))
    ccfg = ClientConfig(
        insecure=True, certificate_chain=list(ident.chain), private_key=ident.private_key
    )
    with pytest.raises(UsageError, match="ML-DSA"):
        DtlsClientConnection(ccfg)


@pytest.mark.parametrize("key_type", [*MLDSA, "ed448"])
def test_server_and_client_certificates_of_each_new_key_type(key_type: str) -> None:
    """ML-DSA (offered when configured) and Ed448 sign the server's and the client's
    CertificateVerify; each side verifies with the scheme of the other's key."""
    ident = load_identity(*credentials(key_type))
    ccfg = client_config(
        key_type,
        signature_schemes=SUPPORTED_SIGNATURE_SCHEMES,
        certificate_chain=list(ident.chain),
        private_key=ident.private_key,
    )
    scfg = server_config(
        key_type,
        verify_client="required",
        cafile=credentials(key_type)[0],
        signature_schemes=SUPPORTED_SIGNATURE_SCHEMES,
    )
    client, server = pair(scfg, ccfg)
    assert client.info is not None and server.info is not None
    expected = MLDSA.get(key_type, _S.ed448)
    assert client.info.signature_scheme == expected
    assert server.info.peer_certificates == (ident.chain[0].public_bytes(Encoding.DER),)


def test_mldsa_is_not_offered_by_default() -> None:
    """ML-DSA is configured, not a default: a default client and an ML-DSA-only server have
    no scheme in common (handshake_failure), and the default ClientHello stays as it was."""
    client = ClientConnection(client_config("mldsa65"))
    server = ServerConnection(server_config("mldsa65"))
    client.start()
    with pytest.raises(ProtocolError) as info:
        server.receive_data(client.data_to_send(), NOW)
    assert info.value.alert == _A.handshake_failure


def test_each_key_type_has_only_its_own_schemes() -> None:
    for key_type, scheme in MLDSA.items():
        key = load_identity(*credentials(key_type)).private_key
        assert schemes_for_key(key, tls13=True) == [scheme]
        assert schemes_for_key(key) == []  # TLS 1.2: none
    ed448 = load_identity(*credentials("ed448")).private_key
    assert schemes_for_key(ed448, tls13=True) == [_S.ed448]
    rsa = load_identity(*credentials("rsa-2048")).private_key
    assert schemes_for_key(rsa, tls13=True, rsassa_pss=True) == [
        _S.rsa_pss_pss_sha256,
        _S.rsa_pss_pss_sha384,
        _S.rsa_pss_pss_sha512,
    ]
    assert schemes_for_key(rsa, rsassa_pss=True) == []


# ---- mismatched schemes: illegal_parameter (RFC 8446 §4.2.3, draft-ietf-tls-mldsa §3.2) ------

MISMATCHES = [
    # (certificate key type, scheme claimed, key type that really signed)
    ("ecdsa-p256", _S.mldsa44, "mldsa44"),
    ("mldsa44", _S.mldsa65, "mldsa65"),
    ("mldsa65", _S.mldsa44, "mldsa44"),
    ("mldsa87", _S.ed25519, "ed25519"),
    ("ed25519", _S.ed448, "ed448"),
    ("ed448", _S.ed25519, "ed25519"),
    ("mldsa44", _S.ecdsa_secp256r1_sha256, "ecdsa-p256"),
]


@pytest.mark.parametrize(("cert_type", "scheme", "signer"), MISMATCHES)
def test_a_scheme_that_does_not_fit_the_certificate_key_is_illegal_parameter(
    cert_type: str, scheme: SignatureScheme, signer: str
) -> None:
    """A valid signature under a scheme that is not the certificate key's: illegal_parameter,
    whoever sent it; the same scheme with a matching key verifies."""
    peer = PeerKey(load_identity(*credentials(cert_type)).chain[0].public_key())
    digest = bytes(32)
    content = certificate_verify_content(digest, server=True)
    key = load_identity(*credentials(signer)).private_key
    from dtlsgate.wire.messages13 import CertificateVerify

    body = CertificateVerify(scheme, sign(key, scheme, content)).encode()
    provider = DefaultProvider()
    with pytest.raises(ProtocolError) as info:
        verify_certificate_verify(
            provider, peer, body, digest, server=True, offered=SUPPORTED_SIGNATURE_SCHEMES
        )
    assert info.value.alert == _A.illegal_parameter
    right = PeerKey(key.public_key())
    assert (
        verify_certificate_verify(
            provider, right, body, digest, server=True, offered=SUPPORTED_SIGNATURE_SCHEMES
        )
        == scheme
    )


def test_a_wrong_mldsa_signature_is_decrypt_error() -> None:
    """ML-DSA signs with an empty context (draft-ietf-tls-mldsa §3.2): a signature made with
    any other context does not verify: decrypt_error (RFC 8446 §4.4.3)."""
    key = load_identity(*credentials("mldsa44")).private_key
    digest = bytes(32)
    content = certificate_verify_content(digest, server=True)
    from dtlsgate.wire.messages13 import CertificateVerify

    signature = key.sign(content, b"not empty")  # type: ignore[call-arg, union-attr]
    body = CertificateVerify(_S.mldsa44, signature).encode()
    with pytest.raises(ProtocolError) as info:
        verify_certificate_verify(
            DefaultProvider(),
            PeerKey(key.public_key()),
            body,
            digest,
            server=True,
            offered=SUPPORTED_SIGNATURE_SCHEMES,
        )
    assert info.value.alert == _A.decrypt_error


def test_rsassa_pss_certificate_loads(rsassa_pss_cert: tuple[Path, Path]) -> None:
    chain = load_certificate_chain(rsassa_pss_cert[0])
    ident = load_identity(*map(str, rsassa_pss_cert))
    assert ident.chain == tuple(chain)


def test_the_dtls_listener_refuses_an_rsassa_pss_certificate_at_once(
    rsassa_pss_cert: tuple[Path, Path],
) -> None:
    """The DTLS 1.2 Listener fails when made, not at its first handshake."""
    import socket

    from dtlsgate.io.listener import Listener

    config = ServerConfig()
    config.load_cert_chain(*map(str, rsassa_pss_cert))
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
        pytest.raises(UsageError, match="RSASSA-PSS"),
    ):
        Listener(sock, config)
