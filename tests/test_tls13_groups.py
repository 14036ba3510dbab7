"""TLS 1.3 key exchange groups: x448, secp521r1, the RFC 7919 FFDHE groups, ML-KEM alone and
the ECDHE-ML-KEM hybrids.

- known answers: the RFC 7919 primes recomputed from the formula that defines them; FFDHE's
  left-padded shared secret (RFC 8446 §7.4.1); the hybrids' share layouts and shared
  secrets (draft-ietf-tls-ecdhe-mlkem §3.1), which neither draft gives test vectors for,
  checked against a computation from scratch with ``cryptography``'s primitives;
- in-memory handshakes in every group, with and without a HelloRetryRequest, and through
  the stateless gate; the defaults (X25519MLKEM768 and X25519 shares, hybrid preferred);
- hostile shares of every group, each refused with illegal_parameter, sent as an alert.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, mlkem, x25519
from helpers import NOW, BadShareClient, client_config, events, pump, server_config

from dtlsgate.connection.stream import ClientConnection, ServerConnection
from dtlsgate.crypto import ffdhe
from dtlsgate.crypto import mlkem as our_mlkem
from dtlsgate.crypto.kex import (
    SUPPORTED_GROUPS,
    KeyShare,
    ecdhe_groups,
    public_length,
    respond,
    tls13_groups,
)
from dtlsgate.crypto.provider import DefaultProvider, DeterministicProvider
from dtlsgate.errors import IllegalParameter, ProtocolError, UsageError
from dtlsgate.events import DataReceived
from dtlsgate.gate.results import Reply, StreamAdmit
from dtlsgate.gate.stream import StatelessGate
from dtlsgate.wire.enums import AlertDescription, ExtensionType, NamedGroup
from dtlsgate.wire.extensions import decode_key_share_ch, decode_u16_list_ext
from dtlsgate.wire.messages import ClientHello

G = NamedGroup
NEW_GROUPS = [
    G.x448,
    G.secp521r1,
    G.ffdhe2048,
    G.ffdhe3072,
    G.ffdhe4096,
    G.ffdhe6144,
    G.ffdhe8192,
    G.X25519MLKEM768,
    G.SecP256r1MLKEM768,
    G.SecP384r1MLKEM1024,
    G.MLKEM768,
    G.MLKEM1024,
]


# ---- known answers ------------------------------------------------------------------------------


def _e_times_2_to(bits: int) -> int:
    """floor(e * 2^bits), from the series e = sum 1/k! in fixed point (64 guard bits)."""
    one = 1 << (bits + 64)
    total, term, k = 0, one, 0
    while term:
        total += term
        k += 1
        term //= k
    return total >> 64


# RFC 7919 Appendix A: the X of each group.
RFC7919_X = {
    G.ffdhe2048: 560316,
    G.ffdhe3072: 2625351,
    G.ffdhe4096: 5736041,
    G.ffdhe6144: 15705020,
    G.ffdhe8192: 10965728,
}


@pytest.mark.parametrize("group", list(RFC7919_X))
def test_ffdhe_primes_are_rfc7919s_formula(group: NamedGroup) -> None:
    """RFC 7919 Appendix A: p = 2^b - 2^{b-64} + {[2^{b-130} e] + X} * 2^64 - 1."""
    b = int(group.name[5:])
    p = (1 << b) - (1 << (b - 64)) + ((_e_times_2_to(b - 130) + RFC7919_X[group]) << 64) - 1
    assert ffdhe.prime(group) == p
    assert ffdhe.prime_length(group) == public_length(group) == b // 8


def test_ffdhe_shared_secret_keeps_its_leading_zero_byte() -> None:
    """RFC 8446 §7.4.1: Z is left-padded to the size of p. These two exponents (found by
    search) give a Z of 2039 bits: 255 bytes as an integer, 256 on the wire with a leading
    zero; TLS 1.2's rule (strip leading zeros) would give 255 and a different key."""
    group = G.ffdhe2048
    a = KeyShare.from_private_bytes(group, bytes([0xA5]) * 29)
    b = KeyShare.from_private_bytes(group, bytes([0xB3, 0x00]) + bytes([0x5A]) * 27)
    xa = int.from_bytes(bytes([0xA5]) * 29, "big") >> (29 * 8 - 225)
    xb = int.from_bytes(bytes([0xB3, 0x00]) + bytes([0x5A]) * 27, "big") >> (29 * 8 - 225)
    p = ffdhe.prime(group)
    z = pow(2, xa * xb, p)
    assert z.bit_length() == 2039
    assert a.public_bytes == pow(2, xa, p).to_bytes(256, "big")
    shared = a.exchange(b.public_bytes)
    assert shared == b.exchange(a.public_bytes) == z.to_bytes(256, "big")
    assert len(shared) == 256 and shared[0] == 0


def _seed() -> bytes:
    return bytes(range(64))


def _scalar(n: int) -> bytes:
    return bytes([0x01]) + bytes(range(7, 7 + n - 1))


class Recorder(DefaultProvider):
    """A server provider whose ECDH key has a fixed scalar and which remembers the ML-KEM
    ciphertext it produced."""

    def __init__(self, scalar: bytes) -> None:
        self.scalar = scalar
        self.ciphertexts: list[bytes] = []

    def generate_key_share(self, group: NamedGroup) -> KeyShare:
        return KeyShare.from_private_bytes(group, self.scalar)

    def encapsulate(self, kem: Any, encapsulation_key: bytes) -> tuple[bytes, bytes]:
        ciphertext, shared = super().encapsulate(kem, encapsulation_key)
        self.ciphertexts.append(ciphertext)
        return ciphertext, shared


def test_x25519mlkem768_layout_and_secret_from_scratch() -> None:
    """draft-ietf-tls-ecdhe-mlkem §3.1: client share = ML-KEM-768 ek (1184) || X25519 (32);
    server share = ciphertext (1088) || X25519 (32); secret = ML-KEM ss || X25519 ss. No
    test vector exists in the draft: the parts are recomputed with cryptography directly."""
    c_scalar, s_scalar = bytes([0x11] * 32), bytes([0x22] * 32)
    client = KeyShare.from_private_bytes(G.X25519MLKEM768, _seed() + c_scalar)
    dk = mlkem.MLKEM768PrivateKey.from_seed_bytes(_seed())
    c_x = x25519.X25519PrivateKey.from_private_bytes(c_scalar)
    s_x = x25519.X25519PrivateKey.from_private_bytes(s_scalar)
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert (
        client.public_bytes
        == dk.public_key().public_bytes_raw() + c_x.public_key().public_bytes(*raw)
    )
    assert len(client.public_bytes) == public_length(G.X25519MLKEM768) == 1216
    server = Recorder(s_scalar)
    server_share, secret = respond(G.X25519MLKEM768, client.public_bytes, server)
    (ciphertext,) = server.ciphertexts
    assert len(ciphertext) == 1088 and len(server_share) == 1120
    assert server_share == ciphertext + s_x.public_key().public_bytes(*raw)
    expected = dk.decapsulate(ciphertext) + s_x.exchange(c_x.public_key())
    assert secret == expected and len(secret) == 64
    assert client.exchange(server_share) == expected


@pytest.mark.parametrize(
    ("group", "curve", "dk_class", "ct_length"),
    [
        (G.SecP256r1MLKEM768, ec.SECP256R1(), mlkem.MLKEM768PrivateKey, 1088),
        (G.SecP384r1MLKEM1024, ec.SECP384R1(), mlkem.MLKEM1024PrivateKey, 1568),
    ],
)
def test_nist_hybrid_layout_and_secret_from_scratch(
    group: NamedGroup, curve: Any, dk_class: Any, ct_length: int
) -> None:
    """draft-ietf-tls-ecdhe-mlkem §3.1: for the NIST-curve hybrids ECDH comes FIRST: client
    share = uncompressed point || ek, server share = point || ciphertext, secret = ECDH x ||
    ML-KEM ss (no test vectors in the draft; recomputed from scratch)."""
    size = curve.key_size // 8
    c_scalar, s_scalar = _scalar(size), bytes([0x02]) + bytes(range(9, 9 + size - 1))
    client = KeyShare.from_private_bytes(group, _seed() + c_scalar)
    dk = dk_class.from_seed_bytes(_seed())
    c_ec = ec.derive_private_key(int.from_bytes(c_scalar, "big"), curve)
    s_ec = ec.derive_private_key(int.from_bytes(s_scalar, "big"), curve)
    point = serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    assert client.public_bytes == c_ec.public_key().public_bytes(*point) + (
        dk.public_key().public_bytes_raw()
    )
    server = Recorder(s_scalar)
    server_share, secret = respond(group, client.public_bytes, server)
    (ciphertext,) = server.ciphertexts
    assert len(ciphertext) == ct_length
    assert server_share == s_ec.public_key().public_bytes(*point) + ciphertext
    expected = s_ec.exchange(ec.ECDH(), c_ec.public_key()) + dk.decapsulate(ciphertext)
    assert secret == expected and len(secret) == size + 32
    assert client.exchange(server_share) == expected


@pytest.mark.parametrize(
    ("group", "dk_class"), [(G.MLKEM768, mlkem.MLKEM768PrivateKey), (G.MLKEM1024, None)]
)
def test_pure_mlkem_shares_are_the_key_and_the_ciphertext(group: NamedGroup, dk_class: Any) -> None:
    """draft-ietf-tls-mlkem §4.2: client share = ek, server share = ct, secret = ss."""
    dk_class = dk_class or mlkem.MLKEM1024PrivateKey
    client = KeyShare.from_private_bytes(group, _seed())
    dk = dk_class.from_seed_bytes(_seed())
    assert client.public_bytes == dk.public_key().public_bytes_raw()
    ciphertext, secret = respond(group, client.public_bytes, DefaultProvider())
    assert secret == dk.decapsulate(ciphertext) == client.exchange(ciphertext)
    assert len(secret) == 32


def test_secp521r1_and_x448_agree_with_cryptography() -> None:
    c_scalar, s_scalar = _scalar(66), bytes([0x01]) + bytes(range(40, 105))
    client = KeyShare.from_private_bytes(G.secp521r1, c_scalar)
    share, secret = respond(G.secp521r1, client.public_bytes, Recorder(s_scalar))
    c_ec = ec.derive_private_key(int.from_bytes(c_scalar, "big"), ec.SECP521R1())
    s_ec = ec.derive_private_key(int.from_bytes(s_scalar, "big"), ec.SECP521R1())
    assert len(client.public_bytes) == len(share) == 133 and share[0] == 4
    assert secret == s_ec.exchange(ec.ECDH(), c_ec.public_key()) == client.exchange(share)
    assert len(secret) == 66
    a, b = KeyShare.generate(G.x448), DeterministicProvider(5).generate_key_share(G.x448)
    assert a.exchange(b.public_bytes) == b.exchange(a.public_bytes)


@pytest.mark.parametrize("group", NEW_GROUPS)
def test_deterministic_shares_repeat_in_every_group(group: NamedGroup) -> None:
    first = DeterministicProvider(9).generate_key_share(group)
    assert first.public_bytes == DeterministicProvider(9).generate_key_share(group).public_bytes
    assert first.public_bytes != DeterministicProvider(10).generate_key_share(group).public_bytes
    assert len(first.public_bytes) == public_length(group)


def test_group_lists() -> None:
    assert set(NEW_GROUPS) | {G.x25519, G.secp256r1, G.secp384r1} == set(SUPPORTED_GROUPS)
    # TLS 1.2 / DTLS 1.2 ECDHE keeps only the curves.
    assert ecdhe_groups(tuple(SUPPORTED_GROUPS)) == (
        G.x25519,
        G.secp256r1,
        G.secp384r1,
        G.x448,
        G.secp521r1,
    )
    with pytest.raises(UsageError, match="supported: X25519MLKEM768"):
        tls13_groups((G.x25519, 0x0200))
    with pytest.raises(UsageError):
        ClientConnection(client_config(groups=(0x9999,)))


# ---- handshakes ----------------------------------------------------------------------------------


def handshake(
    client_groups: tuple[int, ...] | None, server_groups: tuple[int, ...] | None = None
) -> tuple[ClientConnection, ServerConnection]:
    client = ClientConnection(client_config(groups=client_groups))
    server = ServerConnection(server_config(groups=server_groups))
    client.start(NOW)
    pump(client, server)
    assert client.info is not None and server.info is not None
    return client, server


@pytest.mark.parametrize("group", NEW_GROUPS)
def test_handshake_in_each_group(group: NamedGroup) -> None:
    client, server = handshake((group,))
    assert client.info is not None and server.info is not None
    assert client.info.group is server.info.group is group
    assert not client.info.hello_retry
    client.send(b"ping")
    server.receive_data(client.data_to_send(), NOW)
    assert b"ping" in [e.data for e in events(server) if isinstance(e, DataReceived)]


@pytest.mark.parametrize("group", NEW_GROUPS)
def test_hello_retry_to_each_group(group: NamedGroup) -> None:
    """The client sends an X25519 share only; the server accepts only ``group``: a
    HelloRetryRequest names it, and ClientHello2 carries its share (RFC 8446 §4.1.4)."""
    client, server = handshake((G.x25519, group), (group,))
    assert client.info is not None and server.info is not None
    assert client.info.group is server.info.group is group
    assert client.info.hello_retry and server.info.hello_retry


@pytest.mark.parametrize("group", [G.X25519MLKEM768, G.ffdhe3072, G.MLKEM1024])
def test_stateless_gate_with_each_kind_of_group(group: NamedGroup) -> None:
    scfg = server_config(stateless=True, groups=(group,))
    gate = StatelessGate(scfg)
    client = ClientConnection(client_config(groups=(G.x25519, group)))
    client.start(NOW)
    reply = gate.receive(client.data_to_send(), "peer", NOW)
    client.receive_data(reply.data, NOW)  # type: ignore[union-attr]
    admit = gate.receive(client.data_to_send(), "peer", NOW)
    assert isinstance(admit, StreamAdmit)
    server = ServerConnection.from_admit(scfg, admit, NOW)
    pump(server, client)
    assert client.info is not None and server.info is not None
    assert client.info.group is server.info.group is group


def _first_client_hello(config: Any) -> ClientHello:
    client = ClientConnection(config)
    client.start(NOW)
    record = client.data_to_send()
    return ClientHello.decode(record[5 + 4 :], dtls=False)


def test_default_client_offers_x25519mlkem768_and_x25519_shares() -> None:
    """The first ClientHello has two shares, X25519MLKEM768 (1216 bytes) then X25519, and
    supported_groups lists every group; it fits one record."""
    hello = _first_client_hello(client_config())
    shares = decode_key_share_ch(hello.get(ExtensionType.key_share) or b"")
    assert [(s.group, len(s.key_exchange)) for s in shares] == [
        (G.X25519MLKEM768, 1216),
        (G.x25519, 32),
    ]
    groups = decode_u16_list_ext(hello.get(ExtensionType.supported_groups) or b"")
    assert tuple(groups) == SUPPORTED_GROUPS


def test_default_handshake_is_x25519mlkem768_without_retry() -> None:
    client, server = handshake(None)
    assert client.info is not None and server.info is not None
    assert client.info.group is server.info.group is G.X25519MLKEM768
    assert not client.info.hello_retry


def test_server_prefers_the_hybrid_and_configuration_sets_the_order() -> None:
    # A client listing X25519 first but supporting the hybrid: the server asks for it.
    client, _ = handshake((G.x25519, G.X25519MLKEM768))
    assert client.info is not None and client.info.group is G.X25519MLKEM768
    assert client.info.hello_retry
    # A server configured for X25519 first takes the default client's X25519 share.
    client, _ = handshake(None, (G.x25519, G.X25519MLKEM768))
    assert client.info is not None and client.info.group is G.x25519
    assert not client.info.hello_retry


def test_dtls12_ignores_tls13_only_groups() -> None:
    """A config shared with DTLS 1.2, listing ML-KEM and FFDHE first: the DTLS 1.2 client
    offers only the curves, and the server's ECDHE ServerKeyExchange names secp384r1."""
    from helpers import Link, make_pair
    from helpers import client_config as dtls_client_config
    from helpers import server_config as dtls_server_config

    class Recording(Link):
        seen: list[bytes] = []

        def carry(self, datagrams: list[bytes]) -> list[bytes]:
            self.seen.extend(datagrams)
            return super().carry(datagrams)

    groups = (G.X25519MLKEM768, G.ffdhe2048, G.MLKEM768, G.secp384r1, G.x25519)
    pair = make_pair(dtls_server_config(groups=groups), dtls_client_config(groups=groups))
    link = Recording()
    assert pair.run(link) and pair.completed()
    wire = b"".join(link.seen)
    # The ClientHello's supported_groups (type 10): a 4-byte list, secp384r1 then x25519.
    assert b"\x00\x0a\x00\x06\x00\x04\x00\x18\x00\x1d" in wire
    # The ServerKeyExchange's ECParameters: named_curve (3), secp384r1, a 97-byte point.
    assert b"\x03\x00\x18\x61\x04" in wire


# ---- hostile shares ------------------------------------------------------------------------------


def _ecdh_bad(group: NamedGroup) -> list[bytes]:
    n = public_length(group)
    if group in (G.x25519, G.x448):
        return [bytes(n)]  # u = 0: an all-zero shared secret (RFC 7748 §6)
    half = (n - 1) // 2
    return [
        b"\x04" + b"\x01" * half + b"\x02" * half,  # not on the curve
        b"\x03" + b"\x01" * (n - 1),  # not the uncompressed form
    ]


def _good(group: NamedGroup) -> bytes:
    return KeyShare.generate(group).public_bytes


def bad_client_shares(group: NamedGroup) -> list[bytes]:
    """Malformed client key_exchange values of ``group``."""
    n = public_length(group)
    good = _good(group)
    values = [good[:-1], good + b"\x00"]
    if group in ffdhe.FFDHE_GROUPS:
        p = ffdhe.prime(group)
        values += [y.to_bytes(n, "big") for y in (0, 1, p - 1, p, (1 << (8 * n)) - 1)]
    elif group in our_mlkem.KEMS:
        values.append(b"\x01\x0d\x00" + good[3:])  # coefficient 3329 = q: FIPS 203 §7.2
    elif group in our_mlkem.HYBRIDS:
        hybrid = our_mlkem.HYBRIDS[group]
        ecdh_length = public_length(hybrid.ecdh)
        first = ecdh_length if hybrid.ecdh_first else hybrid.kem.ek_length
        ek, point = our_mlkem.split(good, first, hybrid.ecdh_first)
        assert len(ek) == hybrid.kem.ek_length and len(point) == ecdh_length
        bad_ek = b"\x01\x0d\x00" + ek[3:]
        values.append(our_mlkem.join(bad_ek, point, hybrid.ecdh_first))
        for bad_point in _ecdh_bad(hybrid.ecdh):
            values.append(our_mlkem.join(ek, bad_point, hybrid.ecdh_first))
    else:
        values += _ecdh_bad(group)
    return values


def _alert_sent(data: bytes, alert: AlertDescription) -> bool:
    return data[:1] == b"\x15" and data[5:7] == bytes((2, alert))


BAD_CLIENT_CASES = [(g, i) for g in NEW_GROUPS for i in range(len(bad_client_shares(g)))]


@pytest.mark.parametrize(("group", "index"), BAD_CLIENT_CASES)
def test_malformed_client_share_is_illegal_parameter(group: NamedGroup, index: int) -> None:
    value = bad_client_shares(group)[index]
    client = ClientConnection(client_config(groups=(group,), provider=BadShareClient(value)))
    server = ServerConnection(server_config())
    client.start(NOW)
    with pytest.raises(ProtocolError) as info:
        server.receive_data(client.data_to_send(), NOW)
    assert info.value.alert is AlertDescription.illegal_parameter
    assert _alert_sent(server.data_to_send(), AlertDescription.illegal_parameter)


class BadShareServer(DefaultProvider):
    """A server provider that spoils its share: ``spoil`` maps (group, share) to the
    malformed one; ML-KEM ciphertexts go through ``spoil_ct``."""

    def __init__(
        self,
        spoil: Callable[[NamedGroup, bytes], bytes] | None = None,
        spoil_ct: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.spoil = spoil
        self.spoil_ct = spoil_ct

    def generate_key_share(self, group: NamedGroup) -> KeyShare:
        share = KeyShare.generate(group)
        if self.spoil is not None:
            share.public_bytes = self.spoil(group, share.public_bytes)
        return share

    def encapsulate(self, kem: Any, encapsulation_key: bytes) -> tuple[bytes, bytes]:
        ciphertext, shared = super().encapsulate(kem, encapsulation_key)
        if self.spoil_ct is not None:
            ciphertext = self.spoil_ct(ciphertext)
        return ciphertext, shared


def bad_server_providers(group: NamedGroup) -> list[BadShareServer]:
    """Servers whose key_exchange in ``group`` is malformed."""
    out = [
        BadShareServer(spoil_ct=lambda ct: ct[:-1]),
        BadShareServer(spoil_ct=lambda ct: ct + b"\x00"),
    ]
    if group in our_mlkem.KEMS:
        return out
    ecdh = our_mlkem.HYBRIDS[group].ecdh if group in our_mlkem.HYBRIDS else group
    if group not in our_mlkem.HYBRIDS:
        out = [
            BadShareServer(lambda g, s: s[:-1]),
            BadShareServer(lambda g, s: s + b"\x00"),
        ]
    if ecdh in ffdhe.FFDHE_GROUPS:
        p, n = ffdhe.prime(ecdh), ffdhe.prime_length(ecdh)
        for y in (0, 1, p - 1, p):
            out.append(BadShareServer(lambda g, s, y=y: y.to_bytes(n, "big")))
    else:
        for bad in _ecdh_bad(ecdh):
            out.append(BadShareServer(lambda g, s, bad=bad: bad))
    return out


BAD_SERVER_CASES = [(g, i) for g in NEW_GROUPS for i in range(len(bad_server_providers(g)))]


@pytest.mark.parametrize(("group", "index"), BAD_SERVER_CASES)
def test_malformed_server_share_is_illegal_parameter(group: NamedGroup, index: int) -> None:
    """The client checks the server's share: length (an ML-KEM ciphertext of the wrong
    size), the ECDH point or FFDHE value (RFC 8446 §4.2.8.1/2, draft-ietf-tls-mlkem §4.2)."""
    provider = bad_server_providers(group)[index]
    client = ClientConnection(client_config(groups=(group,)))
    server = ServerConnection(server_config(provider=provider))
    client.start(NOW)
    server.receive_data(client.data_to_send(), NOW)
    with pytest.raises(ProtocolError) as info:
        client.receive_data(server.data_to_send(), NOW)
    assert info.value.alert is AlertDescription.illegal_parameter
    assert _alert_sent(client.data_to_send(), AlertDescription.illegal_parameter)


def test_key_share_exchange_never_raises_anything_else() -> None:
    """Every group, every length from 0 to a few past the right one, at a few fill bytes:
    a secret or IllegalParameter, nothing else (the exchange and the server's respond)."""
    provider = DeterministicProvider(3)
    for group in NEW_GROUPS:
        share = provider.generate_key_share(group)
        n = public_length(group)
        for length in (0, 1, n - 1, n, n + 1):
            for fill in (0x00, 0x04, 0xFF):
                value = bytes([fill]) * length
                for call in (share.exchange, lambda v, g=group: respond(g, v, provider)):
                    with contextlib.suppress(IllegalParameter):
                        call(value)


def _in_two_records(record: bytes, at: int) -> bytes:
    """A handshake record's content split into two records (RFC 8446 §5.1 allows it)."""
    body = record[5:]
    return b"".join(
        bytes((22, 3, 1)) + len(part).to_bytes(2, "big") + part for part in (body[:at], body[at:])
    )


def test_a_client_hello_with_the_hybrid_share_split_across_records() -> None:
    """The default ClientHello (about 1.5 KB) in two records, cut inside the X25519MLKEM768
    share: the server and the stateless gate reassemble it."""
    client = ClientConnection(client_config())
    client.start(NOW)
    hello = client.data_to_send()
    assert 1400 < len(hello) < 1 << 14
    server = ServerConnection(server_config())
    server.receive_data(_in_two_records(hello, 700), NOW)
    client.receive_data(server.data_to_send(), NOW)
    pump(client, server)
    assert server.info is not None and server.info.group is G.X25519MLKEM768
    gate = StatelessGate(server_config(stateless=True))
    reply = gate.receive(_in_two_records(hello, 700), "peer", NOW)
    assert isinstance(reply, Reply)
