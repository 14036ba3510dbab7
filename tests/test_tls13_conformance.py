"""TLS 1.3 conformance (RFC 8446) where a conformance suite found us wrong (issue 10, part 2):
key_share absent vs empty (§9.2), no RSASSA-PKCS1-v1_5 in a TLS 1.3 CertificateVerify
(§4.2.3, §4.4.3), schemes that must match the certificate's key type (§4.2.3), RSASSA-PSS
certificates refused at configuration time, bytes that are no TLS record answered at once
(§5.1), and one alert for a handshake message over our size limit (decode_error), in the
connections, the stateless gate and DTLS 1.2's reassembly. Each test names its rule."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from helpers import NOW, client_config, credentials, pair, server_config
from peers import require
from test_tls13_hardening import PEER, changed_hello2, client_hello1, gate, refused_with
from tls13_hostile import inject, run

from dtlsgate import serve_tls
from dtlsgate.connection.stream import ClientConnection, ServerConnection, TlsConnection
from dtlsgate.crypto import DefaultProvider
from dtlsgate.crypto.certs import load_certificate_chain, load_identity
from dtlsgate.crypto.signatures import certificate_verify_content, schemes_for_key, sign
from dtlsgate.errors import DecodeError, ProtocolError
from dtlsgate.gate.datagram import Reply
from dtlsgate.gate.stream import MAX_CLIENT_HELLO, Refuse, alert_record
from dtlsgate.handshake.tls13.common import message
from dtlsgate.handshake.tls13.peer_auth import check_peer_certificate, verify_certificate_verify
from dtlsgate.record.tls13 import MAX_HANDSHAKE_MESSAGE
from dtlsgate.wire.enums import AlertDescription, ExtensionType, HandshakeType, SignatureScheme
from dtlsgate.wire.messages import ServerHello
from dtlsgate.wire.messages13 import CertificateVerify

_A = AlertDescription


def refusal(stateless: bool, data: bytes, **config: object) -> AlertDescription | None:
    """The alert a server sends for ``data`` as the first bytes of a stream: the stateful
    connection's (None when it did not refuse), or the stateless gate's."""
    if stateless:
        result = gate(**config).receive(data, PEER, NOW)
        return result.alert if isinstance(result, Refuse) else None
    server = ServerConnection(server_config(**config))  # type: ignore[arg-type]
    try:
        server.receive_data(data, NOW)
    except ProtocolError as exc:
        assert server.closed and server.data_to_send() == alert_record(exc.alert)
        return exc.alert
    return None


BOTH = pytest.mark.parametrize("stateless", [False, True], ids=["stateful", "stateless"])


# ---- 2.1: key_share absent is not key_share empty (RFC 8446 §9.2, §4.2.8) --------------------


@BOTH
def test_supported_groups_without_key_share_is_missing_extension(stateless: bool) -> None:
    """RFC 8446 §9.2: a ClientHello with supported_groups MUST also carry key_share;
    without it the server aborts with missing_extension (it used to send an HRR)."""
    hello = changed_hello2(client_hello1(), ExtensionType.key_share, None)
    assert refusal(stateless, hello) == _A.missing_extension


def hello_retry_request_in(data: bytes) -> ServerHello:
    """The ServerHello at the start of ``data`` (one plaintext handshake record)."""
    assert data[0] == 22 and data[5] == HandshakeType.SERVER_HELLO
    return ServerHello.decode(data[9 : 5 + int.from_bytes(data[3:5], "big")])


@BOTH
def test_an_empty_key_share_gets_a_hello_retry_request(stateless: bool) -> None:
    """RFC 8446 §4.2.8: an empty client_shares vector is legal: the client lets the server
    choose, and the server asks with a HelloRetryRequest naming its group."""
    hello = changed_hello2(client_hello1(), ExtensionType.key_share, b"\x00\x00")
    if stateless:
        result = gate().receive(hello, PEER, NOW)
        assert isinstance(result, Reply)
        answer = result.data
    else:
        server = ServerConnection(server_config())
        server.receive_data(hello, NOW)
        assert not server.closed
        answer = server.data_to_send()
    hrr = hello_retry_request_in(answer)
    assert hrr.is_hello_retry_request and hrr.get(ExtensionType.key_share) is not None


# ---- 2.2: RSA signs with RSASSA-PSS only (RFC 8446 §4.2.3, §4.4.3) ----------------------------

PKCS1_ONLY = (SignatureScheme.rsa_pkcs1_sha256, SignatureScheme.rsa_pkcs1_sha384)


@BOTH
def test_rsa_server_with_a_pkcs1_only_client_is_handshake_failure(stateless: bool) -> None:
    """An RSA certificate and a client offering only rsa_pkcs1_*: there is no scheme the
    server may sign a TLS 1.3 CertificateVerify with (it used to sign with PKCS#1 v1.5)."""
    client = ClientConnection(client_config("rsa-2048", signature_schemes=PKCS1_ONLY))
    client.start()
    hello = client.data_to_send()
    assert refusal(stateless, hello, key_type="rsa-2048") == _A.handshake_failure


def test_rsa_server_signs_with_pss_when_the_client_prefers_pkcs1() -> None:
    schemes = (*PKCS1_ONLY, SignatureScheme.rsa_pss_rsae_sha384)
    client, server = pair(
        server_config("rsa-2048"), client_config("rsa-2048", signature_schemes=schemes)
    )
    assert client.info is not None and server.info is not None
    assert client.info.signature_scheme == SignatureScheme.rsa_pss_rsae_sha384


def test_tls13_schemes_for_an_rsa_key_leave_pkcs1_out_dtls12_keeps_it() -> None:
    key = load_identity(*credentials("rsa-2048")).private_key
    tls12 = schemes_for_key(key)
    assert SignatureScheme.rsa_pkcs1_sha256 in tls12  # DTLS 1.2 (RFC 5246) unchanged
    assert schemes_for_key(key, tls13=True) == [s for s in tls12 if s.name.startswith("rsa_pss")]


# ---- 2.3: a scheme must match its key type (RFC 8446 §4.2.3) ----------------------------------


def rsa_client_auth() -> tuple[ClientConnection, ServerConnection]:
    ident = load_identity(*credentials("rsa-2048"))
    ccfg = client_config(
        "rsa-2048", certificate_chain=list(ident.chain), private_key=ident.private_key
    )
    scfg = server_config("rsa-2048", verify_client="required", cafile=credentials("rsa-2048")[0])
    return ClientConnection(ccfg), ServerConnection(scfg)


def waiting_for_certificate_verify(side: str) -> TlsConnection:
    """The client (side "c") or the server ("s") of an RSA handshake with client
    certificates, delivered record by record up to the peer's CertificateVerify."""
    wanted = {"c": "WaitCertificateVerify", "s": "WaitClientCertificateVerify"}[side]
    for k in range(12):
        client, server = rsa_client_auth()
        run(client, server, side, k)
        conn = client if side == "c" else server
        if conn.state_name == wanted:
            return conn
    raise AssertionError(f"never reached {wanted}")


def certificate_verify(conn: TlsConnection, scheme: SignatureScheme) -> bytes:
    """A CertificateVerify from ``conn``'s peer, with ``scheme`` and a signature that is
    right for it (RSASSA-PSS with the scheme's hash), protected as the peer would send it."""
    key = load_identity(*credentials("rsa-2048")).private_key
    from_server = isinstance(conn, ClientConnection)
    digest = conn.state.keys.transcript.digest()
    content = certificate_verify_content(digest, server=from_server)
    # rsa_pss_pss_* and rsa_pss_rsae_* sign alike: only the key type tells them apart.
    signature = sign(key, SignatureScheme.rsa_pss_rsae_sha256, content)
    body = CertificateVerify(scheme, signature).encode()
    return inject(conn, 22, message(HandshakeType.CERTIFICATE_VERIFY, body))


@pytest.mark.parametrize("side", ["c", "s"], ids=["client", "server"])
def test_rsa_pss_pss_scheme_from_an_rsa_encryption_certificate_is_illegal_parameter(
    side: str,
) -> None:
    """rsa_pss_pss_* is only for an RSASSA-PSS key; both ends refuse it from an
    rsaEncryption certificate, though the signature itself verifies."""
    conn = waiting_for_certificate_verify(side)
    cv = certificate_verify(conn, SignatureScheme.rsa_pss_pss_sha256)
    assert refused_with(conn, cv) == _A.illegal_parameter  # type: ignore[arg-type]
    # The same signature under rsa_pss_rsae_sha256 is accepted: only the scheme was wrong.
    conn = waiting_for_certificate_verify(side)
    conn.receive_data(certificate_verify(conn, SignatureScheme.rsa_pss_rsae_sha256), NOW)
    assert not conn.closed and "Finished" in conn.state_name


@pytest.fixture(scope="module")
def rsassa_pss_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An id-RSASSA-PSS certificate and its key, made by openssl as a user would."""
    require("openssl")
    d = tmp_path_factory.mktemp("pss")
    key, cert = d / "pss.key", d / "pss.pem"
    run_openssl("genpkey", "-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", str(key))  # fmt: skip
    run_openssl("req", "-x509", "-key", str(key), "-out", str(cert), "-days", "30",
                "-subj", "/CN=localhost")  # fmt: skip
    return cert, key


def run_openssl(*args: str) -> None:
    subprocess.run(["timeout", "60", "openssl", *args], check=True, capture_output=True)


def test_rsa_pss_rsae_scheme_from_an_rsassa_pss_certificate_is_illegal_parameter(
    rsassa_pss_cert: tuple[Path, Path],
) -> None:
    """The other half of §4.2.3: an RSASSA-PSS certificate's key signs only with
    rsa_pss_pss_*; rsa_pss_rsae_* from it is illegal_parameter."""
    cert_der = load_certificate_chain(rsassa_pss_cert[0])[0].public_bytes(Encoding.DER)
    peer = check_peer_certificate((cert_der,), None, None, None, NOW)
    assert peer.rsassa_pss
    key = load_pem_private_key(rsassa_pss_cert[1].read_bytes(), None)
    digest = bytes(32)
    content = certificate_verify_content(digest, server=True)
    signature = sign(key, SignatureScheme.rsa_pss_rsae_sha256, content)  # type: ignore[arg-type]
    provider = DefaultProvider()
    for scheme, ok in (
        (SignatureScheme.rsa_pss_pss_sha256, True),
        (SignatureScheme.rsa_pss_rsae_sha256, False),
    ):
        body = CertificateVerify(scheme, signature).encode()
        if ok:
            assert verify_certificate_verify(provider, peer, body, digest, server=True) == scheme
        else:
            with pytest.raises(ProtocolError) as info:
                verify_certificate_verify(provider, peer, body, digest, server=True)
            assert info.value.alert == _A.illegal_parameter
    # And an rsaEncryption key may not use rsa_pss_pss_*.
    from dtlsgate.handshake.tls13.peer_auth import PeerKey

    rsae = PeerKey(key.public_key(), rsassa_pss=False)  # type: ignore[union-attr]
    body = CertificateVerify(SignatureScheme.rsa_pss_pss_sha256, signature).encode()
    with pytest.raises(ProtocolError):
        verify_certificate_verify(provider, rsae, body, digest, server=True)


# ---- 2.4: RSASSA-PSS certificates -----------------------------------------------------------
# Refused at configuration time until issue 13 served them with rsa_pss_pss_*: now they load,
# serve TLS 1.3, and DTLS 1.2 refuses them (tests/test_tls13_signatures.py).


# ---- 2.5: bytes that are no TLS record are answered at once (RFC 8446 §5.1) -------------------


def sslv2_client_hello() -> bytes:
    """An SSL 2.0-format CLIENT-HELLO offering TLS 1.2 (RFC 5246 Appendix E.2): a two-byte
    length with the high bit set, msg_type 1, version, three vector lengths, the vectors.
    Read as a TLS record header its "length" is 0x0303, far more than follows."""
    specs, challenge = bytes((0, 0, 0x2F)), bytes(range(16))
    body = bytes((1, 3, 3, 0, len(specs), 0, 0, 0, len(challenge))) + specs + challenge
    return bytes((0x80 | len(body) >> 8, len(body) & 0xFF)) + body


NOT_A_RECORD = {
    # An SSL 2.0 client cannot negotiate TLS 1.3 (RFC 8446 Appendix D.5).
    "sslv2_client_hello": (sslv2_client_hello(), _A.protocol_version),
    # A "version" that is no TLS one, with a length that would have us wait for 16 KB.
    "junk_with_large_length": (bytes((0x16, 0x99, 0x99, 0x3F, 0xFF, 1, 2, 3)), _A.decode_error),
    # RFC 8446 §5: an unknown record type is unexpected_message.
    "unknown_content_type": (bytes((0x63, 3, 3, 0x3F, 0xFF, 1, 2, 3)), _A.unexpected_message),
}


@BOTH
@pytest.mark.parametrize("case", NOT_A_RECORD)
def test_bytes_that_are_no_tls_record_are_answered_at_once(stateless: bool, case: str) -> None:
    """The record header is judged when its five bytes are in, not after the body its
    length announces (which never comes): the alert goes out at once."""
    data, alert = NOT_A_RECORD[case]
    assert refusal(stateless, data) == alert


@BOTH
@pytest.mark.parametrize("case", NOT_A_RECORD)
def test_serve_tls_answers_no_tls_record_without_waiting_for_the_timeout(
    stateless: bool, case: str
) -> None:
    """Over TCP: the alert record arrives and the server closes, well within a bounded wait
    that is a small part of the handshake timeout (it used to hold the connection,
    unanswered, until the handshake timeout)."""
    data, alert = NOT_A_RECORD[case]

    async def main() -> tuple[bytes, bytes]:
        async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            raise AssertionError("no handshake should complete")

        cfg = server_config(stateless=stateless)
        server = await serve_tls(never, "127.0.0.1", 0, cfg, handshake_timeout=600)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(data)
            answer = await asyncio.wait_for(reader.readexactly(7), 20)
            end = await asyncio.wait_for(reader.read(), 20)
            writer.close()
            return answer, end
        finally:
            server.close()
            await server.wait_closed()

    answer, end = asyncio.run(asyncio.wait_for(main(), 60))
    assert answer == alert_record(alert)
    assert end == b""  # and then the server closed the connection


# ---- 2.6: a handshake message over our limit is decode_error, everywhere ---------------------


def oversized(msg_type: int, limit: int) -> bytes:
    """The start of a handshake message whose length is one over ``limit``."""
    return bytes((msg_type,)) + (limit + 1).to_bytes(3, "big") + bytes(16)


def plaintext_record(fragment: bytes) -> bytes:
    return bytes((22, 3, 3)) + len(fragment).to_bytes(2, "big") + fragment


@BOTH
def test_oversized_client_hello_is_decode_error(stateless: bool) -> None:
    limit = MAX_CLIENT_HELLO if stateless else MAX_HANDSHAKE_MESSAGE
    data = plaintext_record(oversized(HandshakeType.CLIENT_HELLO, limit))
    assert refusal(stateless, data) == _A.decode_error


def test_oversized_server_hello_is_decode_error() -> None:
    """Before any key: the client reading the server's first message."""
    client = ClientConnection(client_config())
    client.start()
    data = plaintext_record(oversized(HandshakeType.SERVER_HELLO, MAX_HANDSHAKE_MESSAGE))
    assert refused_with(client, data) == _A.decode_error


@pytest.mark.parametrize("side", ["c", "s"], ids=["client", "server"])
@pytest.mark.parametrize("when", ["handshake_keys", "application_keys"])
def test_oversized_protected_handshake_message_is_decode_error(side: str, when: str) -> None:
    """Under the handshake keys (the client's EncryptedExtensions, the server's client
    Certificate) and after the handshake (a NewSessionTicket, a KeyUpdate): it used to be
    unexpected_message here and illegal_parameter in the stateless gate."""
    if when == "handshake_keys":
        conn = waiting_for_certificate_verify(side)
    else:
        client, server = pair()
        conn = client if side == "c" else server
    msg_type = HandshakeType.NEW_SESSION_TICKET if side == "c" else HandshakeType.KEY_UPDATE
    data = inject(conn, 22, oversized(msg_type, MAX_HANDSHAKE_MESSAGE))
    assert refused_with(conn, data) == _A.decode_error  # type: ignore[arg-type]


def test_dtls12_oversized_protected_handshake_message_is_decode_error() -> None:
    """DTLS 1.2's reassembly: from the peer's protected epoch it is the same decode_error.
    A plaintext (epoch 0) one is forgeable by anyone on the path and stays a silent drop
    (RFC 6347 §4.1.2.7; tests/test_dtls12_fuzz.py floods a handshake with them)."""
    from helpers import CLIENT, alerts_in
    from test_dtls12_negative import established

    from dtlsgate.connection.flight import MAX_HANDSHAKE_MESSAGE_LENGTH, Reassembler
    from dtlsgate.wire.handshake import DtlsHandshakeHeader

    header = DtlsHandshakeHeader(1, MAX_HANDSHAKE_MESSAGE_LENGTH + 1, 0, 0, 16)
    fragment = header.encode() + bytes(16)
    reassembler = Reassembler()
    assert reassembler.add(header, fragment, 0) is False and reassembler.buffered_bytes() == 0
    with pytest.raises(DecodeError):
        reassembler.add(header, fragment, 1)

    p = established()
    client, server = p.client, p.server  # type: ignore[attr-defined]
    header = header._replace(message_seq=server.reassembler.next_seq)
    record = client.record_layer.protect(22, header.encode() + bytes(16), 1)
    with pytest.raises(DecodeError):
        server.receive(record, CLIENT, p.now)  # type: ignore[attr-defined]
    assert server.closed
    assert alerts_in(server.datagrams_to_send(), client) == [_A.decode_error]
