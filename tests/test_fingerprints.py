"""Certificate fingerprints (RFC 8122 §5, as WebRTC exchanges them): the text form, its
parser, the check of a peer's end-entity certificate against configured fingerprints, the
configs that carry them, and handshakes between our own ends in DTLS 1.2, DTLS 1.3 and
TLS 1.3, each direction: a self-signed certificate accepted by its fingerprint alone, a
mismatch refused with bad_certificate (which the other end receives), and a CA file with
fingerprints needing both. Against OpenSSL and GnuTLS: test_interop_fingerprints.py."""

from __future__ import annotations

import datetime
import re
from functools import lru_cache
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from helpers import (
    NOW,
    PROTOCOLS,
    client_config,
    credentials,
    events,
    pump,
    run_handshake,
    server_config,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.connection.stream import ClientConnection, ServerConnection
from dtlsgate.crypto import DeterministicProvider
from dtlsgate.crypto.certs import (
    FINGERPRINT_HASHES,
    Fingerprint,
    TrustStore,
    certificate_fingerprint,
    load_certificate_chain,
    load_private_key,
    make_self_signed,
    parse_fingerprint,
    parse_fingerprints,
    spki_of,
    verify_fingerprint,
    verify_peer_chain,
)
from dtlsgate.errors import BadCertificate, UnknownCa, UsageError
from dtlsgate.events import ClientCertificateReceived
from dtlsgate.gate.datagram import Gate
from dtlsgate.wire.enums import AlertDescription

A = AlertDescription
WHEN = datetime.datetime.fromtimestamp(NOW, datetime.UTC)
# cryptography's own digest names, to check ours against a computation that is not ours.
CRYPTOGRAPHY_HASHES = {
    "sha-1": hashes.SHA1(),
    "sha-224": hashes.SHA224(),
    "sha-256": hashes.SHA256(),
    "sha-384": hashes.SHA384(),
    "sha-512": hashes.SHA512(),
}


@lru_cache(maxsize=8)
def identity(name: str) -> tuple[x509.Certificate, Any, bytes]:
    """A self-signed certificate (ECDSA P-256, valid at ``NOW``) for ``name``: the
    certificate, its key, its DER."""
    cert_pem, key_pem = credentials("ecdsa-p256", name)
    cert = load_certificate_chain(cert_pem)[0]
    return cert, load_private_key(key_pem), cert.public_bytes(Encoding.DER)


def fingerprint_of(name: str, hash_name: str = "sha-256") -> str:
    return certificate_fingerprint(identity(name)[0], hash_name)


def certificate(name: str) -> dict[str, Any]:
    """The config arguments that present ``name``'s certificate."""
    cert, key, _ = identity(name)
    return {"certificate_chain": [cert], "private_key": key}


# ---- the text form (RFC 8122 §5) ---------------------------------------------------------

FORM = re.compile(r"(sha-1|sha-224|sha-256|sha-384|sha-512) [0-9A-F]{2}(:[0-9A-F]{2})*")


def test_the_table_of_fingerprint_hashes_is_read_only() -> None:
    # A module-level table every config's fingerprints are checked with: an application
    # cannot add a broken hash to it, or take sha-256 out, by assigning to it.
    with pytest.raises(TypeError):
        FINGERPRINT_HASHES["md5"] = hashes.MD5()  # type: ignore[index]
    assert sorted(FINGERPRINT_HASHES) == ["sha-1", "sha-224", "sha-256", "sha-384", "sha-512"]


@pytest.mark.parametrize("hash_name", sorted(FINGERPRINT_HASHES))
def test_a_fingerprint_is_the_digest_of_the_der_in_rfc_8122_form(hash_name: str) -> None:
    cert, _, der = identity("alice")
    text = certificate_fingerprint(cert, hash_name)
    assert FORM.fullmatch(text), text
    expected = cert.fingerprint(CRYPTOGRAPHY_HASHES[hash_name])
    assert text == f"{hash_name} " + ":".join(f"{b:02X}" for b in expected)
    assert certificate_fingerprint(der, hash_name.upper()) == text  # DER bytes, any case
    parsed = parse_fingerprint(text)
    assert parsed == Fingerprint(hash_name, expected) and str(parsed) == text


def test_the_default_hash_is_sha_256() -> None:
    assert certificate_fingerprint(identity("alice")[0]).startswith("sha-256 ")


def test_parsing_ignores_case_and_gives_the_canonical_form() -> None:
    text = fingerprint_of("alice")
    for variant in (text.lower(), text.upper(), "ShA-256 " + text.split(" ")[1].lower()):
        assert parse_fingerprint(variant) == parse_fingerprint(text)
        assert str(parse_fingerprint(variant)) == text


# 32 hex byte pairs, well formed: fixed, not a certificate's (made afresh per run), so that
# the parameters' test ids are the same in every process that collects them (pytest-xdist).
GOOD_DIGITS = ":".join(f"{b:02X}" for b in range(0x9E, 0x9E + 32))


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("md5 " + ":".join(["AB"] * 16), "md5 is a broken hash"),
        ("MD5 " + ":".join(["AB"] * 16), "md5 is a broken hash"),
        ("md2 " + ":".join(["AB"] * 16), "md2 is a broken hash"),
        ("sha256 " + GOOD_DIGITS, "unknown fingerprint hash 'sha256'"),
        ("shake128 " + GOOD_DIGITS, "unknown fingerprint hash"),
        ("sha-256", "a fingerprint is a hash name, a space"),
        ("", "a fingerprint is a hash name, a space"),
        (" sha-256 " + GOOD_DIGITS, "a fingerprint is a hash name, a space"),
        ("sha-256\t" + GOOD_DIGITS, "a fingerprint is a hash name, a space"),
        ("\u017fha-256 " + GOOD_DIGITS, "a fingerprint is a hash name, a space"),  # long s
        ("sha-256 ", "hex byte pairs"),
        ("sha-256  " + GOOD_DIGITS, "hex byte pairs"),
        ("sha-256 " + GOOD_DIGITS + "\n", "hex byte pairs"),
        ("sha-256 " + GOOD_DIGITS + ":", "hex byte pairs"),
        ("sha-256 :" + GOOD_DIGITS, "hex byte pairs"),
        ("sha-256 " + GOOD_DIGITS.replace(":", ""), "hex byte pairs"),
        ("sha-256 " + GOOD_DIGITS.replace(":", "::", 1), "hex byte pairs"),
        ("sha-256 " + GOOD_DIGITS.replace(":", "-"), "hex byte pairs"),
        ("sha-256 G" + GOOD_DIGITS[1:], "hex byte pairs"),
        ("sha-256 +" + GOOD_DIGITS[1:], "hex byte pairs"),
        ("sha-256 \uff11" + GOOD_DIGITS[1:], "hex byte pairs"),  # a fullwidth digit
        ("sha-256 A:" + GOOD_DIGITS[3:], "hex byte pairs"),
        ("sha-256 " + GOOD_DIGITS[3:], "has 32 bytes, not 31"),
        ("sha-256 " + GOOD_DIGITS + ":00", "has 32 bytes, not 33"),
        ("sha-1 " + GOOD_DIGITS, "has 20 bytes, not 32"),
    ],
)
def test_what_is_not_a_fingerprint_is_a_usage_error_saying_why(text: str, why: str) -> None:
    with pytest.raises(UsageError, match=re.escape(why)):
        parse_fingerprint(text)


def test_a_fingerprint_is_text() -> None:
    for value in (b"sha-256 " + GOOD_DIGITS.encode(), 42, None):
        with pytest.raises(UsageError, match="a fingerprint is a str"):
            parse_fingerprint(value)  # type: ignore[arg-type]


def test_certificate_fingerprint_refuses_what_is_not_a_der_certificate() -> None:
    cert_pem, _ = credentials()
    with pytest.raises(UsageError, match=r"not a DER certificate.*load_certificate_chain"):
        certificate_fingerprint(cert_pem)
    for name in ("md5", "sha256", "shake256"):
        with pytest.raises(UsageError):
            certificate_fingerprint(identity("alice")[0], name)


# Texts near the form: a hash name (one of ours, md5, or noise) in any case, separators and
# digit runs of any length, so that both outcomes are common.
NEAR_FINGERPRINTS = st.builds(
    lambda name, sep, digits: name + sep + digits,
    st.sampled_from([*FINGERPRINT_HASHES, "md5", "SHA-256", "Sha-1", "sha-", ""]),
    st.sampled_from([" ", "  ", "\t", "", ":"]),
    st.from_regex(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){0,70}:?", fullmatch=True),
)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=200), NEAR_FINGERPRINTS))
def test_any_text_parses_to_what_formats_back_to_it_or_is_a_usage_error(text: str) -> None:
    try:
        parsed = parse_fingerprint(text)
    except UsageError:
        return
    assert str(parsed).lower() == text.lower()
    assert len(parsed.digest) == FINGERPRINT_HASHES[parsed.hash_name].digest_size


def test_a_fingerprint_list_is_a_sequence_of_strings() -> None:
    with pytest.raises(UsageError, match="not one string"):
        parse_fingerprints(fingerprint_of("alice"))
    with pytest.raises(UsageError, match="hex byte pairs"):
        parse_fingerprints([fingerprint_of("alice"), "sha-256 nope"])


# ---- the check of a peer's chain ----------------------------------------------------------


def test_the_end_entity_certificate_must_have_one_of_the_fingerprints() -> None:
    cert, _, der = identity("alice")
    _, _, bob = identity("bob")
    by_sha256 = parse_fingerprints([fingerprint_of("bob"), fingerprint_of("alice")])
    assert verify_fingerprint([der], by_sha256) == cert
    # Any of the configured hashes: a sha-1 fingerprint alone matches too.
    assert verify_fingerprint([der], parse_fingerprints([fingerprint_of("alice", "sha-1")]))
    with pytest.raises(BadCertificate) as refused:
        verify_fingerprint([bob], parse_fingerprints([fingerprint_of("alice")]))
    assert refused.value.alert == A.bad_certificate
    # Only chain[0] counts: the fingerprinted certificate further down does not.
    with pytest.raises(BadCertificate):
        verify_fingerprint([bob, der], parse_fingerprints([fingerprint_of("alice")]))


def test_an_empty_or_unreadable_chain_is_bad_certificate() -> None:
    fingerprints = parse_fingerprints([fingerprint_of("alice")])
    for chain in ([], [b""], [b"\x30\x03\x02\x01\x00"], [identity("alice")[2][:-1]]):
        with pytest.raises(BadCertificate) as refused:
            verify_fingerprint(chain, fingerprints)
        assert refused.value.alert == A.bad_certificate


def _mutated_der(draw: st.DrawFn) -> bytes:
    der = identity("alice")[2]
    at = draw(st.integers(0, len(der) - 1))
    return der[:at] + bytes([draw(st.integers(0, 255))]) + der[at + 1 :]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=600), st.composite(_mutated_der)()))
def test_any_bytes_from_the_peer_are_its_fingerprinted_certificate_or_bad_certificate(
    data: bytes,
) -> None:
    # A peer's Certificate entry is network input: whatever it holds, the check returns the
    # certificate whose fingerprint is configured, or refuses with bad_certificate; no
    # other exception escapes (a DER that cryptography cannot read included).
    cert, _, der = identity("alice")
    fingerprints = parse_fingerprints([fingerprint_of("alice"), fingerprint_of("alice", "sha-1")])
    if data == der:
        assert verify_fingerprint([data], fingerprints) == cert
        return
    with pytest.raises(BadCertificate) as refused:
        verify_fingerprint([data], fingerprints)
    assert refused.value.alert == A.bad_certificate


def test_a_fingerprint_alone_reads_no_dates_and_no_names() -> None:
    """The out-of-band fingerprint is the binding: a certificate long expired, for another
    name, not chained to anything, is accepted when its fingerprint is configured."""
    then = datetime.datetime.fromtimestamp(NOW - 3 * 365 * 86400, datetime.UTC)
    cert_pem, _ = make_self_signed("somebody.example", days=1, now=then)
    cert = load_certificate_chain(cert_pem)[0]
    der = cert.public_bytes(Encoding.DER)
    fingerprints = parse_fingerprints([certificate_fingerprint(cert)])
    assert verify_peer_chain([der], None, fingerprints, WHEN, "localhost") == cert


def test_with_trust_anchors_and_fingerprints_both_must_pass() -> None:
    alice, _, alice_der = identity("alice")
    trust_alice = TrustStore((alice,))
    trust_bob = TrustStore((identity("bob")[0],))
    alice_fp = parse_fingerprints([fingerprint_of("alice")])
    bob_fp = parse_fingerprints([fingerprint_of("bob")])
    assert verify_peer_chain([alice_der], trust_alice, alice_fp, WHEN, "localhost") == alice
    assert verify_peer_chain([alice_der], trust_alice, alice_fp, WHEN) == alice  # a client's
    with pytest.raises(BadCertificate) as refused:
        verify_peer_chain([alice_der], trust_alice, bob_fp, WHEN, "localhost")
    assert refused.value.alert == A.bad_certificate
    with pytest.raises(UnknownCa):
        verify_peer_chain([alice_der], trust_bob, alice_fp, WHEN, "localhost")
    with pytest.raises(BadCertificate):  # the name is still checked with trust anchors
        verify_peer_chain([alice_der], trust_alice, alice_fp, WHEN, "example.com")


# ---- the configs ----------------------------------------------------------------------------


@pytest.mark.parametrize("make", [server_config, client_config], ids=["server", "client"])
def test_a_config_with_a_bad_fingerprint_is_a_usage_error(make: Any) -> None:
    for bad in (("sha-256 AB",), ("md5 " + ":".join(["00"] * 16),), fingerprint_of("alice")):
        with pytest.raises(UsageError):
            make(certificate_fingerprints=bad)


def test_fingerprints_are_parsed_once_per_config_and_again_when_they_change() -> None:
    config = server_config(certificate_fingerprints=[fingerprint_of("alice")])
    assert config.certificate_fingerprints == (fingerprint_of("alice"),)  # a tuple now
    parsed = config.peer_fingerprints()
    assert parsed is not None and parsed is config.peer_fingerprints()
    config.certificate_fingerprints = (fingerprint_of("bob"),)
    assert config.peer_fingerprints() == parse_fingerprints([fingerprint_of("bob")])
    config.certificate_fingerprints = ("sha-256 nope",)
    with pytest.raises(UsageError):
        config.check_can_serve()
    assert server_config().peer_fingerprints() is None
    client = client_config(certificate_fingerprints=(fingerprint_of("bob"),))
    assert client.peer_fingerprints() is client.peer_fingerprints()


def test_a_gates_contexts_share_the_configs_parsed_fingerprints() -> None:
    config = server_config(
        verify_client="required", certificate_fingerprints=(fingerprint_of("alice"),)
    )
    gate = Gate(config)
    parsed = config.peer_fingerprints()
    assert gate.dtls12_context.fingerprints is parsed
    assert gate.dtls13_context.fingerprints is parsed


def test_fingerprints_stand_in_for_client_cas_and_contradict_insecure() -> None:
    config = fingerprint_server(certificate_fingerprints=(fingerprint_of("alice"),))
    config.verify_client = "required"
    config.check_can_serve()  # no cafile needed
    with pytest.raises(UsageError, match="certificate_fingerprints"):
        ServerConfig(verify_client="required")
    config.certificate_fingerprints = ()
    with pytest.raises(UsageError, match="certificate_fingerprints"):
        config.check_can_serve()
    with pytest.raises(UsageError, match="insecure"):
        ClientConfig(insecure=True, certificate_fingerprints=(fingerprint_of("alice"),))


# ---- handshakes between our own ends ------------------------------------------------------


def fingerprint_server(**kwargs: Any) -> ServerConfig:
    """A server presenting "server"'s self-signed certificate."""
    return server_config(None, **certificate("server"), **kwargs)


def fingerprint_client(**kwargs: Any) -> ClientConfig:
    """A client with no CA file and no server name: fingerprints only (unless given)."""
    kwargs.setdefault("provider", DeterministicProvider(b"client"))
    return ClientConfig(**kwargs)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_client_accepts_the_servers_certificate_by_its_fingerprint(protocol: str) -> None:
    client = fingerprint_client(certificate_fingerprints=(fingerprint_of("server"),))
    ran = run_handshake(protocol, fingerprint_server(), client)
    on_client, on_server = ran.completed("client"), ran.completed("server")
    assert on_client is not None and on_server is not None, ran.raised
    assert on_client.peer_certificates[0] == identity("server")[2]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_server_accepts_the_clients_certificate_by_its_fingerprint(protocol: str) -> None:
    server = fingerprint_server(
        verify_client="required", certificate_fingerprints=(fingerprint_of("client"),)
    )
    client = fingerprint_client(
        certificate_fingerprints=(fingerprint_of("server"),), **certificate("client")
    )
    ran = run_handshake(protocol, server, client)
    on_server = ran.completed("server")
    assert on_server is not None and ran.completed("client") is not None, ran.raised
    assert on_server.peer_certificates[0] == identity("client")[2]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_server_certificate_of_another_fingerprint_gets_bad_certificate(protocol: str) -> None:
    client = fingerprint_client(certificate_fingerprints=(fingerprint_of("someone else"),))
    ran = run_handshake(protocol, fingerprint_server(), client)
    assert ran.refused("client") == [A.bad_certificate]
    assert ran.alerts_received("server") == [A.bad_certificate]
    assert ran.completed("client") is None and ran.completed("server") is None


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_client_certificate_of_another_fingerprint_gets_bad_certificate(protocol: str) -> None:
    server = fingerprint_server(
        verify_client="required", certificate_fingerprints=(fingerprint_of("someone else"),)
    )
    client = fingerprint_client(
        certificate_fingerprints=(fingerprint_of("server"),), **certificate("client")
    )
    ran = run_handshake(protocol, server, client)
    assert ran.refused("server") == [A.bad_certificate]
    assert ran.alerts_received("client") == [A.bad_certificate]
    assert ran.completed("server") is None
    if protocol == "dtls12":
        # In (D)TLS 1.3 the client's handshake is complete once its Finished is out (RFC
        # 8446 §4.4.4), before the server has judged its certificate; not in DTLS 1.2.
        assert ran.completed("client") is None


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_optional_client_certificates_by_fingerprint(protocol: str) -> None:
    """verify_client="optional": a client without a certificate gets in; one with a
    certificate of another fingerprint does not."""
    server = fingerprint_server(
        verify_client="optional", certificate_fingerprints=(fingerprint_of("client"),)
    )
    server_fp = (fingerprint_of("server"),)
    ran = run_handshake(protocol, server, fingerprint_client(certificate_fingerprints=server_fp))
    on_server = ran.completed("server")
    assert on_server is not None and on_server.peer_certificates == (), ran.raised
    stranger = fingerprint_client(certificate_fingerprints=server_fp, **certificate("stranger"))
    ran = run_handshake(protocol, server, stranger)
    assert ran.refused("server") == [A.bad_certificate] and ran.completed("server") is None


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("trusted", "fingerprinted", "alert"),
    [
        ("server", "server", None),
        ("server", "someone else", A.bad_certificate),
        ("someone else", "server", A.unknown_ca),
    ],
    ids=["both", "ca-only", "fingerprint-only"],
)
def test_a_client_with_a_cafile_and_fingerprints_needs_both(
    protocol: str, trusted: str, fingerprinted: str, alert: int | None
) -> None:
    client = fingerprint_client(
        cafile=credentials("ecdsa-p256", trusted)[0].decode(),
        server_name="localhost",
        certificate_fingerprints=(fingerprint_of(fingerprinted),),
    )
    ran = run_handshake(protocol, fingerprint_server(), client)
    if alert is None:
        assert ran.completed("client") is not None, ran.raised
    else:
        assert ran.refused("client") == [alert] and ran.completed("client") is None
        assert ran.alerts_received("server") == [alert]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("trusted", "fingerprinted", "alert"),
    [
        ("client", "client", None),
        ("client", "someone else", A.bad_certificate),
        ("someone else", "client", A.unknown_ca),
    ],
    ids=["both", "ca-only", "fingerprint-only"],
)
def test_a_server_with_client_cas_and_fingerprints_needs_both(
    protocol: str, trusted: str, fingerprinted: str, alert: int | None
) -> None:
    server = fingerprint_server(
        verify_client="required",
        cafile=credentials("ecdsa-p256", trusted)[0].decode(),
        certificate_fingerprints=(fingerprint_of(fingerprinted),),
    )
    client = fingerprint_client(
        certificate_fingerprints=(fingerprint_of("server"),), **certificate("client")
    )
    ran = run_handshake(protocol, server, client)
    if alert is None:
        assert ran.completed("server") is not None, ran.raised
    else:
        assert ran.refused("server") == [alert] and ran.completed("server") is None
        assert ran.alerts_received("client") == [alert]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pinned_keys_and_fingerprints_take_both_certificate_types(protocol: str) -> None:
    """RFC 7250 §4.1: a client with pins and fingerprints offers X.509 besides raw public
    keys (pins alone offer raw keys only), and checks an X.509 certificate by fingerprint."""
    client = fingerprint_client(
        pinned_keys=(spki_of(identity("someone else")[1]),),
        certificate_fingerprints=(fingerprint_of("server"),),
    )
    ran = run_handshake(protocol, fingerprint_server(), client)
    on_client = ran.completed("client")
    assert on_client is not None, ran.raised
    assert on_client.peer_certificates[0] == identity("server")[2]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_server_with_fingerprints_asks_for_x509_from_a_client_offering_both(
    protocol: str,
) -> None:
    """RFC 7250 §4.2: a client offering RawPublicKey and X.509 in client_certificate_type
    gets X.509 chosen by a server with fingerprints alone, which checks the certificate."""
    server = fingerprint_server(
        verify_client="required", certificate_fingerprints=(fingerprint_of("client"),)
    )
    client = fingerprint_client(
        certificate_fingerprints=(fingerprint_of("server"),),
        raw_public_key=True,
        **certificate("client"),
    )
    ran = run_handshake(protocol, server, client)
    on_server = ran.completed("server")
    assert on_server is not None, ran.raised
    assert on_server.peer_raw_public_key is None
    assert on_server.peer_certificates[0] == identity("client")[2]


def test_tls13_post_handshake_authentication_by_fingerprint() -> None:
    """RFC 8446 §4.6.2 with fingerprints instead of client CAs: the certificate the client
    gives later is checked the same way."""
    for fingerprinted, accepted in (("client", True), ("someone else", False)):
        server = ServerConnection(
            fingerprint_server(certificate_fingerprints=(fingerprint_of(fingerprinted),))
        )
        client = ClientConnection(
            fingerprint_client(
                certificate_fingerprints=(fingerprint_of("server"),),
                post_handshake_auth=True,
                **certificate("client"),
            )
        )
        client.start()
        pump(client, server)
        events(client)
        events(server)
        server.request_client_certificate()
        if accepted:
            pump(server, client)
            assert events(server) == [ClientCertificateReceived((identity("client")[2],))]
        else:
            with pytest.raises(BadCertificate):
                pump(server, client)
            assert server.closed
