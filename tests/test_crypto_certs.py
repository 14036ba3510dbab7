"""Certificates: loading PEM chains and keys (with the errors a user sees), chain and host name
verification against a small CA built here, expiry, unknown CA, and self-signed generation."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dtlsgate.crypto.certs import (
    Identity,
    TrustStore,
    check_key_matches,
    load_certificate_chain,
    load_identity,
    load_private_key,
    load_trust_store,
    make_self_signed,
    parse_peer_certificate,
    system_ca_file,
    verify_client_chain,
    verify_server_chain,
)
from dtlsgate.crypto.signatures import schemes_for_key
from dtlsgate.errors import BadCertificate, UsageError
from dtlsgate.wire.enums import AlertDescription

NOW = datetime.datetime(2030, 6, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    san: list[x509.GeneralName] | None = None,
    not_before: datetime.datetime = NOW - 30 * DAY,
    not_after: datetime.datetime = NOW + 30 * DAY,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(san or []), False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


class Pki:
    def __init__(self) -> None:
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = _cert("Test Root", self.root_key, "Test Root", self.root_key, ca=True)
        self.inter_key = ec.generate_private_key(ec.SECP256R1())
        self.inter = _cert("Test Inter", self.inter_key, "Test Root", self.root_key, ca=True)
        self.leaf_key = ec.generate_private_key(ec.SECP256R1())
        san: list[x509.GeneralName] = [
            x509.DNSName("server.example"),
            x509.IPAddress(ipaddress.ip_address("192.0.2.7")),
            x509.IPAddress(ipaddress.ip_address("2001:db8::7")),
        ]
        self.leaf = _cert(
            "server.example", self.leaf_key, "Test Inter", self.inter_key, ca=False, san=san
        )
        self.trust = TrustStore((self.root,))
        self.chain = [_der(self.leaf), _der(self.inter)]


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def test_verify_server_by_dns_name_and_ip(pki: Pki) -> None:
    assert verify_server_chain(pki.chain, "server.example", pki.trust, NOW) == pki.leaf
    assert verify_server_chain(pki.chain, "SERVER.example.", pki.trust, NOW) == pki.leaf
    assert verify_server_chain(pki.chain, "192.0.2.7", pki.trust, NOW) == pki.leaf
    assert verify_server_chain(pki.chain, "[2001:db8::7]", pki.trust, NOW) == pki.leaf
    assert verify_client_chain(pki.chain, pki.trust, NOW) == pki.leaf


@pytest.mark.parametrize("name", ["other.example", "192.0.2.8", "example", "x.server.example"])
def test_wrong_host_name(pki: Pki, name: str) -> None:
    with pytest.raises(BadCertificate) as info:
        verify_server_chain(pki.chain, name, pki.trust, NOW)
    assert info.value.alert is AlertDescription.bad_certificate


def test_unknown_ca_and_missing_intermediate(pki: Pki) -> None:
    stranger = Pki()
    with pytest.raises(BadCertificate) as info:
        verify_server_chain(pki.chain, "server.example", stranger.trust, NOW)
    assert info.value.alert is AlertDescription.unknown_ca
    with pytest.raises(BadCertificate) as info:
        verify_server_chain(pki.chain[:1], "server.example", pki.trust, NOW)
    assert info.value.alert is AlertDescription.unknown_ca


def test_expired_and_not_yet_valid(pki: Pki) -> None:
    with pytest.raises(BadCertificate) as info:
        verify_server_chain(pki.chain, "server.example", pki.trust, NOW + 60 * DAY)
    assert info.value.alert is AlertDescription.certificate_expired
    expired_leaf = _cert(
        "server.example",
        pki.leaf_key,
        "Test Inter",
        pki.inter_key,
        ca=False,
        san=[x509.DNSName("server.example")],
        not_before=NOW - 10 * DAY,
        not_after=NOW - DAY,
    )
    with pytest.raises(BadCertificate) as info:
        verify_server_chain([_der(expired_leaf), _der(pki.inter)], "server.example", pki.trust, NOW)
    assert info.value.alert is AlertDescription.certificate_expired
    with pytest.raises(BadCertificate) as info:
        verify_client_chain(pki.chain, pki.trust, NOW - 60 * DAY)
    assert info.value.alert is AlertDescription.bad_certificate


def test_malformed_or_empty_peer_chain(pki: Pki) -> None:
    with pytest.raises(BadCertificate) as info:
        verify_server_chain([b"\x30\x03\x02\x01\x00"], "server.example", pki.trust, NOW)
    assert info.value.alert is AlertDescription.bad_certificate
    with pytest.raises(BadCertificate):
        verify_client_chain([], pki.trust, NOW)
    with pytest.raises(BadCertificate):
        verify_client_chain([pki.chain[0]] * 9, pki.trust, NOW)


def test_verification_misuse(pki: Pki) -> None:
    with pytest.raises(UsageError):
        verify_server_chain(pki.chain, "server.example", pki.trust, NOW.replace(tzinfo=None))
    with pytest.raises(UsageError):
        verify_server_chain(pki.chain, "", pki.trust, NOW)


def test_load_identity_from_bytes_and_files(pki: Pki, tmp_path: Path) -> None:
    chain_pem = _pem(pki.leaf) + _pem(pki.inter)
    identity = load_identity(chain_pem, _key_pem(pki.leaf_key))
    assert isinstance(identity, Identity)
    assert identity.leaf == pki.leaf
    assert identity.chain_der == tuple(pki.chain)
    cert_file = tmp_path / "chain.pem"
    key_file = tmp_path / "key.pem"
    cert_file.write_bytes(chain_pem)
    key_file.write_bytes(_key_pem(pki.leaf_key, b"secret"))
    from_files = load_identity(str(cert_file), key_file, password=b"secret")
    assert from_files.chain == identity.chain
    assert load_certificate_chain(chain_pem.decode()) == [pki.leaf, pki.inter]


def test_load_errors_are_clear_usage_errors(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not match"):
        load_identity(_pem(pki.leaf), _key_pem(pki.inter_key))
    with pytest.raises(UsageError, match="cannot read certificate file"):
        load_certificate_chain(tmp_path / "missing.pem")
    with pytest.raises(UsageError, match="no PEM certificate"):
        load_certificate_chain(b"not a certificate")
    with pytest.raises(UsageError, match="malformed PEM certificate"):
        load_certificate_chain(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(UsageError, match="no PEM private key"):
        load_private_key(_pem(pki.leaf))
    with pytest.raises(UsageError, match="password"):
        load_private_key(_key_pem(pki.leaf_key, b"secret"))
    with pytest.raises(UsageError):
        load_private_key(_key_pem(pki.leaf_key, b"secret"), password=b"wrong")
    check_key_matches(pki.leaf, pki.leaf_key)


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "rsa-2048", "ed25519"])
def test_make_self_signed(key_type: str) -> None:
    cert_pem, key_pem = make_self_signed(key_type=key_type, days=10, now=NOW)
    identity = load_identity(cert_pem, key_pem)
    key = identity.private_key
    expected = {"ecdsa-p256": ec.EllipticCurvePrivateKey, "rsa-2048": rsa.RSAPrivateKey}
    assert isinstance(key, expected.get(key_type, ed25519.Ed25519PrivateKey))
    assert schemes_for_key(key)
    san = identity.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert identity.leaf.not_valid_after_utc == NOW + 10 * DAY
    # A client that pins the self-signed certificate as its trust anchor accepts it.
    trust = TrustStore(identity.chain)
    for name in ("localhost", "127.0.0.1", "::1"):
        verify_server_chain(identity.chain_der, name, trust, NOW + DAY)
    with pytest.raises(BadCertificate):
        verify_server_chain(identity.chain_der, "example.com", trust, NOW + DAY)


def test_make_self_signed_misuse() -> None:
    with pytest.raises(UsageError):
        make_self_signed(key_type="dsa-1024")
    with pytest.raises(UsageError):
        make_self_signed(days=0)


def test_trust_store_from_ca_file_and_system(pki: Pki, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(_pem(pki.root))
    assert load_trust_store(ca_file).certificates == (pki.root,)
    if system_ca_file() is None:
        pytest.skip("no system CA bundle on this machine")
    assert len(load_trust_store().certificates) > 10


# A self-signed leaf whose subject CommonName carries tag 13 instead of UTF8String (12), as
# a fuzzer sent it (tests/test_tls13_fuzz.py): loading it succeeds, and the verifier then
# failed with a ValueError instead of a VerificationError.
_BAD_SUBJECT_TAG_LEAF = bytes.fromhex(
    "308201ca3082016fa00302010202143beaf4ccfceb8311e27f3c3fd22de25d83f6013e300a06082a8648ce3d"
    "04030230143112301006035504030c096c6f63616c686f7374301e170d3236313132363039313734395a170d"
    "3237313132363039323234395a30143112301006035504030d096c6f63616c686f73743059301306072a8648"
    "ce3d020106082a8648ce3d0301070342000456a17a565f4d4a8caa74fef5e74878f1c6b62916a5733738e69b"
    "1f32f6fa98118ad408ce5ce56e311aec2ce05a42129a5a940b78a666dcdb0ae10c28d3b119fda3819e30819b"
    "302c0603551d110425302382096c6f63616c686f737487047f00000185100000000000000000000000000000"
    "0001300c0603551d130101ff04023000301d0603551d0e04160414479f50218313024113099b39f4a370a352"
    "0d98bd301f0603551d23041830168014479f50218313024113099b39f4a370a3520d98bd301d0603551d2504"
    "16301406082b0601050507030106082b06010505070302300a06082a8648ce3d0403020349003046022100b9"
    "5ef15b7d7093f2f6f0d6d193d459ab2b485948aa74b3d93eadb49eab79e5ad0221009d9bc32edbbbcac53ba5"
    "0de1aaf6e8ccee22b9f567a391dbcbc413530e4c88fb"
)


def test_unparsable_field_found_by_the_verifier_is_bad_certificate() -> None:
    leaf = _BAD_SUBJECT_TAG_LEAF
    at = leaf.find(b"\r\tlocalhost")
    anchor = x509.load_der_x509_certificate(leaf[:at] + b"\x0c" + leaf[at + 1 :])
    trust = load_trust_store(anchor.public_bytes(serialization.Encoding.PEM).decode())
    when = datetime.datetime(2026, 11, 26, 12, tzinfo=datetime.UTC)
    with pytest.raises(BadCertificate) as server:
        verify_server_chain([leaf], "localhost", trust, when)
    with pytest.raises(BadCertificate) as client:
        verify_client_chain([leaf], trust, when)
    assert server.value.alert == client.value.alert == AlertDescription.bad_certificate


def test_certificate_of_an_unknown_x509_version_is_bad_certificate() -> None:
    """cryptography raises x509.InvalidVersion (no ValueError) for a version field other
    than v1-v3: every way a peer's certificate is read turns it into bad_certificate."""
    # The test certificate above with its subject repaired: a well-formed v3 self-signed
    # certificate, and the same bytes with the version field saying v4.
    v3 = _BAD_SUBJECT_TAG_LEAF.replace(b"\r\tlocalhost", b"\x0c\tlocalhost")
    assert v3.count(bytes.fromhex("a003020102")) == 1
    v4 = v3.replace(bytes.fromhex("a003020102"), bytes.fromhex("a003020103"))
    anchor = x509.load_der_x509_certificate(v3).public_bytes(serialization.Encoding.PEM)
    trust = load_trust_store(anchor.decode())
    when = datetime.datetime(2026, 11, 26, 12, tzinfo=datetime.UTC)
    for check in (
        lambda: parse_peer_certificate(v4),
        lambda: verify_server_chain([v4], "localhost", trust, when),
        lambda: verify_client_chain([v4], trust, when),
    ):
        with pytest.raises(BadCertificate) as info:
            check()
        assert info.value.alert == AlertDescription.bad_certificate
    assert parse_peer_certificate(v3).version == x509.Version.v3


@pytest.mark.parametrize("year", [2020, 2030], ids=["not-yet-valid", "expired"])
def test_out_of_date_certificate_with_an_unreadable_subject_is_bad_certificate(
    year: int,
) -> None:
    """The validity check names the certificate by its subject, which cryptography parses
    only then: for the leaf above, whose subject is malformed, that raised ValueError."""
    leaf = _BAD_SUBJECT_TAG_LEAF
    v3 = leaf.replace(b"\r\tlocalhost", b"\x0c\tlocalhost")
    anchor = x509.load_der_x509_certificate(v3).public_bytes(serialization.Encoding.PEM)
    trust = load_trust_store(anchor.decode())
    when = datetime.datetime(year, 1, 1, tzinfo=datetime.UTC)
    with pytest.raises(BadCertificate) as server:
        verify_server_chain([leaf], "localhost", trust, when)
    with pytest.raises(BadCertificate) as client:
        verify_client_chain([leaf], trust, when)
    assert server.value.alert == client.value.alert == AlertDescription.bad_certificate


# ---- certificates as deployed (issue 10, part 4) --------------------------------------------


def req_x509_like(
    cn: str = "localhost",
    key: ec.EllipticCurvePrivateKey | None = None,
    *,
    san: list[x509.GeneralName] | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    now: datetime.datetime = NOW,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate shaped as ``openssl req -x509`` makes one: self-signed, basicConstraints
    CA:TRUE (critical), subject and authority key identifiers, and neither subjectAltName
    nor key usages unless asked for."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - 30 * DAY)
        .not_valid_after(now + 30 * DAY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    if san is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), False)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), False)
    return builder.sign(key, hashes.SHA256()), key


def test_client_certificate_without_subject_alt_name_is_accepted(pki: Pki) -> None:
    """Host-name checks apply to servers: a client (device) certificate without
    subjectAltName verifies, as OpenSSL accepts it; a server certificate still needs one."""
    key = ec.generate_private_key(ec.SECP256R1())
    without = (
        x509.CertificateBuilder()
        .subject_name(_name("device-42"))
        .issuer_name(_name("Test Inter"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + DAY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(pki.inter_key.public_key()), False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        .sign(pki.inter_key, hashes.SHA256())
    )
    chain = [_der(without), _der(pki.inter)]
    assert verify_client_chain(chain, pki.trust, NOW) == without
    with pytest.raises(BadCertificate, match="subjectAltName"):
        verify_server_chain(chain, "device-42", pki.trust, NOW)


def test_self_signed_ca_certificate_in_the_trust_store_is_accepted_as_the_peer(pki: Pki) -> None:
    """``openssl req -x509`` (CA:TRUE, no SAN) presented as the end-entity certificate, when
    that exact certificate is a trust anchor (RFC 5280 §6.1): accepted from a client, and
    from a server for the name in its subject's CN (no SAN to check instead)."""
    cert, _ = req_x509_like("localhost")
    pinned = TrustStore((pki.root, cert))
    assert verify_client_chain([_der(cert)], pinned, NOW) == cert
    assert verify_server_chain([_der(cert)], "LocalHost.", pinned, NOW) == cert
    for name in ("other.example", "127.0.0.1", "*.localhost"):
        with pytest.raises(BadCertificate) as info:
            verify_server_chain([_der(cert)], name, pinned, NOW)
        assert info.value.alert is AlertDescription.bad_certificate
    # Its dates still count.
    with pytest.raises(BadCertificate) as info:
        verify_server_chain([_der(cert)], "localhost", pinned, NOW + 60 * DAY)
    assert info.value.alert is AlertDescription.certificate_expired


def test_pinned_self_signed_ca_with_subject_alt_name_is_checked_against_it() -> None:
    """With a SAN (``openssl req -x509 -addext subjectAltName=...``) the name is matched
    against the SAN only, the CN no longer counts (RFC 6125 §6.4.4)."""
    cert, _ = req_x509_like("localhost", san=[x509.DNSName("device.example")])
    pinned = TrustStore((cert,))
    assert verify_server_chain([_der(cert)], "device.example", pinned, NOW) == cert
    with pytest.raises(BadCertificate):
        verify_server_chain([_der(cert)], "localhost", pinned, NOW)


def test_pinned_self_signed_ca_for_clients_only_is_refused_as_a_server() -> None:
    cert, _ = req_x509_like("localhost", eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    pinned = TrustStore((cert,))
    assert verify_client_chain([_der(cert)], pinned, NOW) == cert
    with pytest.raises(BadCertificate, match="serverAuth"):
        verify_server_chain([_der(cert)], "localhost", pinned, NOW)


def test_ca_certificate_as_the_peer_is_refused_unless_it_is_itself_an_anchor(pki: Pki) -> None:
    """A self-signed CA certificate the trust store does not hold, or a CA:TRUE certificate
    issued by a trusted CA: still refused as the end-entity certificate."""
    stranger, _ = req_x509_like("localhost", san=[x509.DNSName("localhost")])
    with pytest.raises(BadCertificate):
        verify_server_chain([_der(stranger)], "localhost", pki.trust, NOW)
    with pytest.raises(BadCertificate):
        verify_client_chain([_der(stranger)], pki.trust, NOW)
    # The intermediate is a CA issued by the root: as a peer's leaf it is refused.
    chain = [_der(pki.inter)]
    with pytest.raises(BadCertificate, match="cA"):
        verify_client_chain(chain, pki.trust, NOW)
    # Same key and name as a pinned certificate, but other bytes: not the anchor.
    cert, key = req_x509_like("localhost")
    twin, _ = req_x509_like("localhost", key)
    with pytest.raises(BadCertificate):
        verify_server_chain([_der(twin)], "localhost", TrustStore((cert,)), NOW)


def test_trust_anchor_without_key_usage_may_issue_but_an_intermediate_may_not(pki: Pki) -> None:
    """A CA made by ``openssl req -x509`` has no keyUsage. As a trust anchor it is taken as
    configured (RFC 5280 §6.1: keyUsage is checked on intermediates only, §6.1.4 (n)), as
    OpenSSL takes it; an intermediate without keyCertSign is still refused (§4.2.1.3)."""
    ca, ca_key = req_x509_like("Device CA")
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName("server.example")]
    leaf = _cert("server.example", leaf_key, "Device CA", ca_key, ca=False, san=san)
    trust = TrustStore((ca,))
    assert verify_client_chain([_der(leaf)], trust, NOW) == leaf
    assert verify_server_chain([_der(leaf)], "server.example", trust, NOW) == leaf
    # The same CA as an intermediate under a trusted root: its missing keyUsage counts.
    inter = x509.CertificateBuilder(
        issuer_name=pki.root.subject,
        subject_name=ca.subject,
        public_key=ca.public_key(),
        serial_number=x509.random_serial_number(),
        not_valid_before=ca.not_valid_before_utc,
        not_valid_after=ca.not_valid_after_utc,
        extensions=[
            x509.Extension(x509.BasicConstraints.oid, True, x509.BasicConstraints(True, None)),
            x509.Extension(
                x509.AuthorityKeyIdentifier.oid,
                False,
                x509.AuthorityKeyIdentifier.from_issuer_public_key(pki.root_key.public_key()),
            ),
        ],
    ).sign(pki.root_key, hashes.SHA256())
    with pytest.raises(BadCertificate, match="keyCertSign"):
        verify_client_chain([_der(leaf), _der(inter)], pki.trust, NOW)
