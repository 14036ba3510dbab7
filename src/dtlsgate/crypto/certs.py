"""Certificates: loading a PEM chain and private key, checking that they belong together,
verifying a peer's chain and host name or its certificate fingerprint (RFC 8122 §5), finding
the system trust store, and minting a self-signed certificate for first runs.

Verification uses ``cryptography.x509.verification`` (RFC 5280 path validation, RFC 6125
name checks). Time is an argument: nothing here reads a clock except `make_self_signed` when
called without ``now``. Peer failures raise `BadCertificate` with the alert that fits
(RFC 8446 §6.2: unknown_ca, certificate_expired, bad_certificate).
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, mldsa, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, PublicKeyAlgorithmOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from dtlsgate._frozen import frozen
from dtlsgate.crypto.signatures import MldsaPrivateKey, PrivateKey
from dtlsgate.errors import (
    BadCertificate,
    CertificateExpired,
    UnknownCa,
    UnsupportedCertificate,
    UsageError,
)

__all__ = [
    "FINGERPRINT_HASHES",
    "Fingerprint",
    "Fingerprints",
    "Identity",
    "TrustStore",
    "certificate_fingerprint",
    "check_dtls12_identity",
    "check_key_matches",
    "is_rsassa_pss",
    "load_certificate_chain",
    "load_identity",
    "load_private_key",
    "load_trust_store",
    "make_self_signed",
    "parse_fingerprint",
    "parse_fingerprints",
    "system_ca_file",
    "verify_client_chain",
    "verify_fingerprint",
    "verify_peer_chain",
    "verify_server_chain",
]

Source = bytes | str | os.PathLike[str]

#: RFC 5280 §6.1: a bound on path length; a chain deeper than this is refused rather than
#: searched (peer-controlled work).
MAX_CHAIN_DEPTH = 8

#: Where distributions keep the CA bundle when ``ssl.get_default_verify_paths()`` points
#: nowhere useful (Debian/Ubuntu, Fedora/RHEL, openSUSE, Alpine/macOS ports, FreeBSD).
_COMMON_CA_FILES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/usr/local/etc/openssl/cert.pem",
    "/usr/local/share/certs/ca-root-nss.crt",
)


def _read(source: Source, what: str) -> bytes:
    """PEM bytes from ``source``: bytes are the PEM data itself; a str holding a PEM block is
    also data; any other str or path names a file."""
    if isinstance(source, bytes):
        return source
    if isinstance(source, str) and "-----BEGIN" in source:
        return source.encode("ascii", "replace")
    path = Path(source)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} file {str(path)!r}: {exc.strerror}") from None


def load_certificate_chain(source: Source) -> list[x509.Certificate]:
    """Every certificate in a PEM file or PEM bytes, leaf first (RFC 8446 §4.4.2 order)."""
    data = _read(source, "certificate")
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise UsageError("no PEM certificate ('-----BEGIN CERTIFICATE-----') found")
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise UsageError(f"malformed PEM certificate: {exc}") from None


def load_private_key(source: Source, password: bytes | None = None) -> PrivateKey:
    """A PEM private key (PKCS#8, traditional EC/RSA); only key types we can sign with."""
    data = _read(source, "private key")
    if b"PRIVATE KEY-----" not in data:
        raise UsageError("no PEM private key ('-----BEGIN ... PRIVATE KEY-----') found")
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except TypeError as exc:  # password missing, or given for an unencrypted key
        raise UsageError(f"private key password problem: {exc}") from None
    except ValueError as exc:
        raise UsageError(f"malformed or undecryptable private key: {exc}") from None
    if not isinstance(key, PrivateKey):
        raise UsageError(f"unsupported private key type {type(key).__name__}")
    return key


def _spki(key: PrivateKey | x509.Certificate) -> bytes:
    public = key.public_key()
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_key_matches(leaf: x509.Certificate, key: PrivateKey) -> None:
    """`UsageError` unless ``key`` is the private key of ``leaf``."""
    if _spki(leaf) != _spki(key):
        raise UsageError("the private key does not match the leaf certificate")


@frozen
class Identity:
    """Our certificate chain (leaf first) and the leaf's private key."""

    chain: tuple[x509.Certificate, ...]
    private_key: PrivateKey

    @property
    def leaf(self) -> x509.Certificate:
        """The end-entity certificate."""
        return self.chain[0]

    @property
    def chain_der(self) -> tuple[bytes, ...]:
        """DER encodings for the Certificate message (RFC 8446 §4.4.2, RFC 5246 §7.4.2)."""
        return tuple(c.public_bytes(serialization.Encoding.DER) for c in self.chain)


def load_identity(
    certificate: Source, private_key: Source, password: bytes | None = None
) -> Identity:
    """Load a chain and its key and check that the key matches the leaf."""
    chain = load_certificate_chain(certificate)
    key = load_private_key(private_key, password)
    check_key_matches(chain[0], key)
    return Identity(tuple(chain), key)


def check_dtls12_identity(chain: Sequence[x509.Certificate], key: object) -> None:
    """`UsageError` for a certificate (D)TLS 1.2 cannot use: an id-RSASSA-PSS one signs only
    with rsa_pss_pss_* (RFC 8446 §4.2.3), which our DTLS 1.2 does not offer, and ML-DSA is
    defined for TLS 1.3 only (draft-ietf-tls-mldsa). Both serve TLS 1.3."""
    if not chain:
        return
    if is_rsassa_pss(chain[0]):
        raise UsageError(
            "an RSASSA-PSS (id-RSASSA-PSS) certificate serves TLS 1.3 only; for DTLS 1.2 use "
            "an RSA (rsaEncryption), ECDSA or Ed25519 certificate"
        )
    if isinstance(key, MldsaPrivateKey):
        raise UsageError("an ML-DSA certificate serves TLS 1.3 only, not DTLS 1.2")


@frozen
class TrustStore:
    """Trust anchors for chain verification."""

    certificates: tuple[x509.Certificate, ...]

    def store(self) -> Store:
        """The ``cryptography`` Store of these anchors."""
        return Store(list(self.certificates))


def system_ca_file() -> str | None:
    """The system CA bundle: OpenSSL's configured file (``SSL_CERT_FILE`` honoured), else the
    first common distribution path that exists; ``None`` if there is none."""
    import ssl  # deferred: ssl pulls in socket, which the core does not otherwise load

    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, *_COMMON_CA_FILES):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def load_trust_store(cafile: Source | None = None) -> TrustStore:
    """Trust anchors from a PEM CA file or bytes, or from the system store when ``None``.
    A system bundle may hold a few certificates that ``cryptography`` rejects or warns
    about (e.g. negative serial numbers); those are skipped rather than failing the load."""
    if cafile is not None:
        return TrustStore(tuple(load_certificate_chain(cafile)))
    found = system_ca_file()
    if found is None:
        raise UsageError("no system CA bundle found; pass a CA file")
    data = _read(found, "CA bundle")
    anchors: list[x509.Certificate] = []
    end = b"-----END CERTIFICATE-----"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for block in data.split(end)[:-1]:
            try:
                anchors.append(x509.load_pem_x509_certificate(block + end))
            except ValueError:
                continue
    if not anchors:
        raise UsageError(f"no usable certificate in the system CA bundle {found!r}")
    return TrustStore(tuple(anchors))


# What cryptography raises for a certificate it cannot read: DER or a field it cannot parse
# (ValueError; some fields only when something reads them), a version other than v1-v3
# (x509.InvalidVersion), a key of an algorithm it does not know (UnsupportedAlgorithm). None
# of them derives from another: a peer's certificate needs all three caught.
UNREADABLE_CERTIFICATE: tuple[type[Exception], ...] = (
    ValueError,
    x509.InvalidVersion,
    UnsupportedAlgorithm,
)


def parse_peer_certificate(der: bytes) -> x509.Certificate:
    """A certificate the peer sent; `BadCertificate` (bad_certificate) when unreadable."""
    try:
        return x509.load_der_x509_certificate(der)
    except UNREADABLE_CERTIFICATE as exc:
        raise BadCertificate(f"malformed peer certificate: {exc}") from None


def peer_public_key(certificate: x509.Certificate) -> Any:
    """The public key of a peer's certificate; `BadCertificate` (unsupported_certificate)
    when cryptography cannot read it."""
    try:
        return certificate.public_key()
    except UNREADABLE_CERTIFICATE as exc:
        raise UnsupportedCertificate(f"peer certificate has an unsupported key: {exc}") from None


# ---- raw public keys (RFC 7250) --------------------------------------------------------------


def spki_of(key: Any) -> bytes:
    """The DER SubjectPublicKeyInfo of a public or private key (RFC 7250 §3: what a raw
    public key Certificate carries)."""
    public = key.public_key() if hasattr(key, "public_key") else key
    return bytes(
        public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----", re.DOTALL)


def load_public_keys(source: Source) -> list[bytes]:
    """Every public key in a PEM file or PEM bytes (``-----BEGIN PUBLIC KEY-----``, or the
    key of a certificate or private key), as DER SubjectPublicKeyInfo: keys to pin."""
    data = _read(source, "public key")
    out: list[bytes] = []
    for block in _PEM_BLOCK.finditer(data):
        label, pem = block.group(1), block.group(0)
        try:
            if label == b"PUBLIC KEY":
                out.append(spki_of(serialization.load_pem_public_key(pem)))
            elif label == b"CERTIFICATE":
                out.append(spki_of(x509.load_pem_x509_certificate(pem)))
            elif label.endswith(b"PRIVATE KEY"):
                out.append(spki_of(serialization.load_pem_private_key(pem, None)))
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise UsageError(f"malformed PEM key: {exc}") from None
    if not out:
        raise UsageError("no PEM public key, certificate or private key found")
    return out


def pinned_peer_key(spki: bytes, pinned: Sequence[bytes]) -> Any:
    """The public key of a peer's raw public key Certificate (RFC 7250 §3), when it is one
    of ``pinned`` (DER SubjectPublicKeyInfo, compared in their canonical DER form); else
    `BadCertificate` (bad_certificate): RFC 7250 §1 leaves the binding of a key to its
    owner to the application, here a list of pins."""
    try:
        key = serialization.load_der_public_key(spki)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise BadCertificate(f"malformed raw public key: {exc}") from None
    if spki_of(key) not in pinned:
        raise BadCertificate("the peer's raw public key is not pinned")
    return key


# ---- certificate fingerprints (RFC 8122 §5) --------------------------------------------------

#: The hash functions a certificate fingerprint may name, by their names in IANA's "Hash
#: Function Textual Names" registry (which RFC 8122 §5's hash-func takes its names from),
#: in lower case; sha-256 is what WebRTC endpoints send.
FINGERPRINT_HASHES: Mapping[str, hashes.HashAlgorithm] = MappingProxyType(
    {
        "sha-1": hashes.SHA1(),
        "sha-224": hashes.SHA224(),
        "sha-256": hashes.SHA256(),
        "sha-384": hashes.SHA384(),
        "sha-512": hashes.SHA512(),
    }
)
#: Names of that registry refused: broken hash functions (RFC 6149 retires MD2, RFC 6151
#: explains MD5's collisions); a fingerprint under them binds nothing.
_BROKEN_FINGERPRINT_HASHES = frozenset({"md2", "md5"})
#: RFC 8122 §5: fingerprint = 2UHEX *(":" 2UHEX), read here in either case.
_HEX_PAIRS = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})*")
#: How much of a text that is not a fingerprint an error message quotes.
_QUOTED = 80


@frozen
class Fingerprint:
    """One certificate fingerprint (RFC 8122 §5): a hash function's registry name (lower
    case) and the digest of a DER certificate under it. ``str()`` gives RFC 8122's form,
    ``"sha-256 AB:CD:..."``."""

    hash_name: str
    digest: bytes

    def __str__(self) -> str:
        return f"{self.hash_name} {self.digest.hex(':').upper()}"


def _fingerprint_hash(name: str) -> hashes.HashAlgorithm:
    """The hash function ``name`` (already in lower case) names; UsageError saying why not."""
    if name in _BROKEN_FINGERPRINT_HASHES:
        raise UsageError(f"{name} is a broken hash function: use sha-256 for fingerprints")
    algorithm = FINGERPRINT_HASHES.get(name)
    if algorithm is None:
        known = ", ".join(FINGERPRINT_HASHES)
        raise UsageError(f"unknown fingerprint hash {name[:_QUOTED]!r}: one of {known}")
    return algorithm


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize()


def certificate_fingerprint(
    certificate: bytes | x509.Certificate, hash_name: str = "sha-256"
) -> str:
    """The fingerprint of ``certificate`` (DER bytes or a ``cryptography`` certificate) in
    RFC 8122 §5's form, the hash name in lower case, a space, then upper-case hex bytes
    joined by colons: ``"sha-256 AB:CD:..."``, what SDP's ``a=fingerprint:`` carries (the
    value to hand to a peer). ``hash_name`` is one of `FINGERPRINT_HASHES` (any case).
    UsageError for another hash, or bytes that are not a DER certificate (PEM: take
    ``load_certificate_chain(pem)[0]``)."""
    name = hash_name.lower() if hash_name.isascii() else hash_name
    algorithm = _fingerprint_hash(name)
    if isinstance(certificate, x509.Certificate):
        der = certificate.public_bytes(serialization.Encoding.DER)
    else:
        try:
            x509.load_der_x509_certificate(certificate)
        except (ValueError, x509.InvalidVersion, UnsupportedAlgorithm, TypeError) as exc:
            hint = " (for PEM, pass load_certificate_chain(pem)[0])"
            raise UsageError(f"not a DER certificate{hint}: {exc}") from None
        der = bytes(certificate)
    return str(Fingerprint(name, _digest(algorithm, der)))


def parse_fingerprint(text: str) -> Fingerprint:
    """A fingerprint written as RFC 8122 §5 does, ``"sha-256 AB:CD:..."``: a hash name of
    `FINGERPRINT_HASHES`, one space, the digest's bytes as hex pairs joined by colons, as
    many as the hash gives; the name and the hex in either case, nothing around them.
    UsageError saying what is wrong otherwise (md2 and md5 are refused as broken)."""
    if not isinstance(text, str):
        raise UsageError(f"a fingerprint is a str, not {type(text).__name__}")
    name, space, digits = text.partition(" ")
    if not space or not name or not name.isascii():
        raise UsageError(
            "a fingerprint is a hash name, a space and hex bytes joined by colons "
            f"(RFC 8122 §5), e.g. 'sha-256 AB:CD:...', not {text[:_QUOTED]!r}"
        )
    name = name.lower()
    algorithm = _fingerprint_hash(name)
    if _HEX_PAIRS.fullmatch(digits) is None:
        raise UsageError(
            f"a {name} fingerprint's digest is hex byte pairs joined by colons "
            f"('AB:CD:...'), not {digits[:_QUOTED]!r}"
        )
    digest = bytes.fromhex(digits.replace(":", ""))
    if len(digest) != algorithm.digest_size:
        raise UsageError(
            f"a {name} fingerprint has {algorithm.digest_size} bytes, not {len(digest)}"
        )
    return Fingerprint(name, digest)


@frozen
class Fingerprints:
    """The fingerprints a peer's end-entity certificate may have, grouped by hash function
    (each its registry name and the digests under it): what `verify_fingerprint` checks,
    made once per configuration by `parse_fingerprints`."""

    by_hash: tuple[tuple[str, frozenset[bytes]], ...]


def parse_fingerprints(texts: Iterable[str]) -> Fingerprints:
    """`parse_fingerprint` of each of ``texts`` (UsageError for the first bad one, or for
    one string given where a sequence of them is wanted), grouped for `verify_fingerprint`."""
    if isinstance(texts, str | bytes):
        raise UsageError("fingerprints come as a sequence of strings (a tuple), not one string")
    digests: dict[str, set[bytes]] = {}
    for text in texts:
        fingerprint = parse_fingerprint(text)
        digests.setdefault(fingerprint.hash_name, set()).add(fingerprint.digest)
    return Fingerprints(tuple((name, frozenset(found)) for name, found in digests.items()))


def verify_fingerprint(chain_der: Sequence[bytes], fingerprints: Fingerprints) -> x509.Certificate:
    """The peer's end-entity certificate (``chain_der[0]``, the DER bytes it sent), when it
    is readable and its digest under one of the hash functions of ``fingerprints`` is one
    of theirs (RFC 8122 §5: the certificate must match a fingerprint given); otherwise
    `BadCertificate` (bad_certificate), also for an empty chain.

    With fingerprints alone this is the whole check, as WebRTC endpoints make it (RFC 8827,
    RFC 8842): the fingerprint, exchanged out of band (SDP's ``a=fingerprint``), binds the
    certificate to the peer, so no chain is built, no name compared and no validity date
    read (the certificates are self-signed, their dates whatever their maker chose); the
    rest of the chain is not looked at. The handshake's signature (CertificateVerify, or a
    DTLS 1.2 server's signed ServerKeyExchange) still proves that the peer holds the
    certificate's key."""
    if not chain_der:
        raise BadCertificate("peer sent no certificate")
    der = chain_der[0]
    leaf = parse_peer_certificate(der)
    for name, digests in fingerprints.by_hash:
        if _digest(FINGERPRINT_HASHES[name], der) in digests:
            return leaf
    raise BadCertificate("the peer's certificate has none of the configured fingerprints")


def is_rsassa_pss(certificate: x509.Certificate) -> bool:
    """Whether the certificate's subjectPublicKeyInfo names id-RSASSA-PSS (RFC 4055 §1.2)
    rather than rsaEncryption: ``cryptography`` loads both as the same RSA key type, but
    they sign with different TLS 1.3 schemes (RFC 8446 §4.2.3)."""
    return certificate.public_key_algorithm_oid == PublicKeyAlgorithmOID.RSASSA_PSS


def _parse_peer_chain(chain_der: Sequence[bytes]) -> list[x509.Certificate]:
    # RFC 8446 §4.4.2.4 / RFC 5246 §7.4.2: an empty or unparsable chain is bad_certificate.
    if not chain_der:
        raise BadCertificate("peer sent no certificate")
    if len(chain_der) > MAX_CHAIN_DEPTH:
        raise BadCertificate(f"peer chain longer than {MAX_CHAIN_DEPTH} certificates")
    return [parse_peer_certificate(der) for der in chain_der]


def _check_validity(chain: Sequence[x509.Certificate], now: datetime.datetime) -> None:
    # RFC 5280 §6.1.3 (a)(2): each certificate must be valid at the verification time.
    for cert in chain:
        if now > cert.not_valid_after_utc:
            raise CertificateExpired(
                f"certificate {cert.subject.rfc4514_string()} expired "
                f"{cert.not_valid_after_utc.isoformat()}"
            )
        if now < cert.not_valid_before_utc:
            raise BadCertificate(
                f"certificate {cert.subject.rfc4514_string()} not valid before "
                f"{cert.not_valid_before_utc.isoformat()}"
            )


def _error_for(error: VerificationError) -> type[BadCertificate]:
    message = str(error).lower()
    if "issuer" in message or "candidates exhausted" in message:
        return UnknownCa
    return BadCertificate


def _builder(
    trust: TrustStore, now: datetime.datetime, ee_policy: ExtensionPolicy | None = None
) -> PolicyBuilder:
    builder = PolicyBuilder().store(trust.store()).time(now).max_chain_depth(MAX_CHAIN_DEPTH)
    return builder.extension_policies(
        ca_policy=_ca_policy(trust), ee_policy=ee_policy or ExtensionPolicy.webpki_defaults_ee()
    )


def _ca_policy(trust: TrustStore) -> ExtensionPolicy:
    """The Web PKI CA policy, except that a trust anchor's keyUsage is not checked: RFC 5280
    §6.1 takes an anchor as configured (§6.1.4 (n) checks keyUsage on intermediate
    certificates only), and a CA made by ``openssl req -x509`` has none (OpenSSL accepts
    it). Any other CA certificate still needs keyUsage with keyCertSign (§4.2.1.3)."""

    def key_usage(policy: Any, cert: x509.Certificate, usage: x509.KeyUsage | None) -> None:
        if usage is not None and usage.key_cert_sign:
            return
        if cert not in trust.certificates:
            raise ValueError("CA certificate without keyUsage keyCertSign")

    policy = ExtensionPolicy.webpki_defaults_ca()
    return policy.may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, key_usage)


def _is_anchor(leaf: x509.Certificate, trust: TrustStore) -> bool:
    """Whether the peer presented one of our trust anchors itself as its end-entity
    certificate (compared whole, DER for DER)."""
    return leaf in trust.certificates


@functools.cache
def _ee_policy(
    *, san_optional: bool, anchor: bool, eku_checked_here: bool = False
) -> ExtensionPolicy | None:
    """The end-entity extension policy: the Web PKI one (None), with relaxations.

    - ``san_optional``: for client certificates. Host-name checks (RFC 6125) apply to
      servers; device certificates without subjectAltName are common and OpenSSL accepts
      them.
    - ``anchor``: the end-entity certificate is exactly one of our trust anchors. RFC 5280
      §6.1 takes an anchor as configured, so it may be a CA certificate (basicConstraints
      cA, as ``openssl req -x509`` makes it; OpenSSL, GnuTLS and wolfSSL accept that) and a
      self-signed one may omit authorityKeyIdentifier (§4.2.1.1). Any other end-entity
      certificate asserting cA is still refused.
    - ``eku_checked_here``: the caller checks extendedKeyUsage itself.
    """
    relaxed: list[type[x509.ExtensionType]] = []
    if san_optional:
        relaxed.append(x509.SubjectAlternativeName)
    if anchor:
        relaxed += [x509.BasicConstraints, x509.AuthorityKeyIdentifier]
    if eku_checked_here:
        relaxed.append(x509.ExtendedKeyUsage)
    if not relaxed:
        return None
    policy = ExtensionPolicy.webpki_defaults_ee()
    for extension in relaxed:
        policy = policy.may_be_present(extension, Criticality.AGNOSTIC, None)
    return policy


def _has_subject_alt_name(leaf: x509.Certificate) -> bool:
    try:
        leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return False
    return True


def _verify_pinned_without_san(
    leaf: x509.Certificate,
    subject: x509.verification.Subject,
    trust: TrustStore,
    now: datetime.datetime,
) -> None:
    """A trust anchor presented as the server's certificate, without subjectAltName
    (``openssl req -x509`` adds none). ``cryptography``'s server verifier needs one, so its
    client verifier checks the rest, and two things are checked here: extendedKeyUsage, if
    present, allows serverAuth (RFC 5280 §4.2.1.12), and the name is the subject's
    commonName (RFC 6125 §6.4.4: with no subjectAltName a client may fall back to it, as
    OpenSSL's and GnuTLS's host checks do), compared as a DNS name, case-insensitively and
    without wildcards. Only for a pinned anchor: any other certificate needs a SAN."""
    policy = _ee_policy(san_optional=True, anchor=True, eku_checked_here=True)
    _builder(trust, now, policy).build_client_verifier().verify(leaf, [])
    try:
        usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and ExtendedKeyUsageOID.SERVER_AUTH not in usage:
        raise BadCertificate("server certificate's extendedKeyUsage does not allow serverAuth")
    names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    wanted = subject.value.lower() if isinstance(subject, x509.DNSName) else None
    if wanted is None or not any(str(n.value).lower() == wanted for n in names):
        raise BadCertificate(f"server certificate does not match {subject.value}")


def verify_server_chain(
    chain_der: Sequence[bytes],
    server_name: str,
    trust: TrustStore,
    now: datetime.datetime,
) -> x509.Certificate:
    """Verify the server's chain (leaf first, DER) for ``server_name`` (a DNS name or an IP
    address literal) at time ``now``; returns the leaf. Raises `BadCertificate`."""
    if not server_name:
        raise UsageError("verify_server_chain needs the server name the client asked for")
    subject: x509.verification.Subject
    try:
        subject = x509.IPAddress(ipaddress.ip_address(server_name.strip("[]")))
    except ValueError:
        subject = x509.DNSName(server_name.rstrip("."))
    chain = _parse_peer_chain(chain_der)
    now = _aware(now)
    try:
        # Inside the try: the messages of _check_validity read the subject, which
        # cryptography parses only then (an unreadable one is a malformed certificate).
        _check_validity(chain, now)
        anchor = _is_anchor(chain[0], trust)
        if anchor and not _has_subject_alt_name(chain[0]):
            _verify_pinned_without_san(chain[0], subject, trust, now)
            return chain[0]
        ee_policy = _ee_policy(san_optional=False, anchor=anchor)
        verifier = _builder(trust, now, ee_policy).build_server_verifier(subject)
        verifier.verify(chain[0], chain[1:])
    except VerificationError as exc:
        raise _error_for(exc)(f"server certificate: {exc}") from None
    except UNREADABLE_CERTIFICATE as exc:
        # A field load_der_x509_certificate left unparsed (cryptography parses some lazily)
        # that the verifier cannot read: malformed, as in _parse_peer_chain.
        raise BadCertificate(f"malformed server certificate: {exc}") from None
    return chain[0]


def verify_client_chain(
    chain_der: Sequence[bytes], trust: TrustStore, now: datetime.datetime
) -> x509.Certificate:
    """Verify a client's chain (leaf first, DER) at time ``now``; returns the leaf."""
    chain = _parse_peer_chain(chain_der)
    now = _aware(now)
    try:
        # Inside the try: the messages of _check_validity read the subject, which
        # cryptography parses only then (an unreadable one is a malformed certificate).
        _check_validity(chain, now)
        ee_policy = _ee_policy(san_optional=True, anchor=_is_anchor(chain[0], trust))
        verifier = _builder(trust, now, ee_policy).build_client_verifier()
        verifier.verify(chain[0], chain[1:])
    except VerificationError as exc:
        raise _error_for(exc)(f"client certificate: {exc}") from None
    except UNREADABLE_CERTIFICATE as exc:  # as in verify_server_chain
        raise BadCertificate(f"malformed client certificate: {exc}") from None
    return chain[0]


def verify_peer_chain(
    chain_der: Sequence[bytes],
    trust: TrustStore | None,
    fingerprints: Fingerprints | None,
    now: datetime.datetime,
    server_name: str | None = None,
) -> x509.Certificate:
    """A peer's X.509 chain (leaf first, DER) checked by what the configuration gives; its
    leaf. The one rule for every protocol version and both ends:

    - ``fingerprints``: the leaf must have one of them (`verify_fingerprint`);
    - ``trust``: the chain must lead to one of its anchors at ``now`` (`verify_server_chain`
      for ``server_name``, a server's; `verify_client_chain` without one, a client's);
    - both: both must pass (the fingerprint first: it costs a hash);
    - neither: only the leaf is read (the application asked for that by name: a client's
      ``insecure``); the callers that must not take that refuse X.509 before.

    An empty chain is `BadCertificate` in every case."""
    if fingerprints is not None:
        leaf = verify_fingerprint(chain_der, fingerprints)
        if trust is None:
            return leaf
    if trust is None:
        if not chain_der:
            raise BadCertificate("peer sent no certificate")
        return parse_peer_certificate(chain_der[0])
    if server_name is None:
        return verify_client_chain(chain_der, trust, now)
    return verify_server_chain(chain_der, server_name, trust, now)


def _aware(now: datetime.datetime) -> datetime.datetime:
    if now.tzinfo is None:
        raise UsageError("pass a timezone-aware datetime (e.g. datetime.now(timezone.utc))")
    return now.astimezone(datetime.UTC)


_KEY_TYPES = ("ecdsa-p256", "rsa-2048", "ed25519", "ed448", "mldsa44", "mldsa65", "mldsa87")
_MLDSA_KEYS: dict[str, type[MldsaPrivateKey]] = {
    "mldsa44": mldsa.MLDSA44PrivateKey,
    "mldsa65": mldsa.MLDSA65PrivateKey,
    "mldsa87": mldsa.MLDSA87PrivateKey,
}


def make_self_signed(
    common_name: str = "localhost",
    key_type: str = "ecdsa-p256",
    days: int = 365,
    *,
    now: datetime.datetime | None = None,
) -> tuple[bytes, bytes]:
    """A self-signed certificate and its key as (cert PEM, PKCS#8 key PEM), with SAN
    DNS:<common_name>, DNS:localhost, IP:127.0.0.1 and IP:::1, valid from ``now`` (default:
    the current time, the one clock read in this layer) for ``days`` days."""
    if key_type not in _KEY_TYPES:
        raise UsageError(f"key_type must be one of {', '.join(_KEY_TYPES)}, not {key_type!r}")
    if days < 1:
        raise UsageError("days must be at least 1")
    key: PrivateKey
    if key_type == "ecdsa-p256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif key_type == "rsa-2048":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif key_type == "ed448":
        key = ed448.Ed448PrivateKey.generate()
    elif key_type in _MLDSA_KEYS:
        key = _MLDSA_KEYS[key_type].generate()
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    start = _aware(now) if now is not None else datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    dns = dict.fromkeys([common_name, "localhost"])
    san: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    san += [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - datetime.timedelta(minutes=5))
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    hashed = isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    algorithm = hashes.SHA256() if hashed else None
    cert = builder.sign(key, algorithm)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem
