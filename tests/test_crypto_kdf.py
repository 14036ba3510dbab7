"""Key derivation vectors: the TLS 1.3 key schedule against RFC 8448 §3 (Simple 1-RTT
Handshake) and §4 (resumption PSK / binder key), the TLS 1.2 PRF against the P_SHA256 and
P_SHA384 vectors published on the IETF TLS list, and the TLS 1.2 derivations built on it."""

from __future__ import annotations

import functools
import hashlib
import hmac

import pytest

from dtlsgate.crypto import keyschedule, prf
from dtlsgate.crypto.hashes import Hash, TranscriptHash, message_hash
from dtlsgate.crypto.kex import KeyShare
from dtlsgate.crypto.keyschedule import (
    DTLS13_LABEL_PREFIX,
    KeySchedule,
    hkdf_expand_label,
    hkdf_extract,
)
from dtlsgate.crypto.suites import SUITES, KeyExchange, SuiteInfo, suite_info
from dtlsgate.errors import StateError, UsageError
from dtlsgate.wire.enums import CipherSuite, NamedGroup


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", "").replace("\n", ""))


# ---- RFC 8448 §3, TLS_AES_128_GCM_SHA256, x25519 -------------------------------------------
CLIENT_PRIVATE = h("49af42ba7f7994852d713ef2784bcbcaa7911de26adc5642cb634540e7ea5005")
CLIENT_PUBLIC = h("99381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c")
SERVER_PRIVATE = h("b1580eeadf6dd589b8ef4f2d5652578cc810e9980191ec8d058308cea216a21e")
SERVER_PUBLIC = h("c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e751f0f")
ECDHE_SECRET = h("8bd4054fb55b9d63fdfbacf9f04b9f0d35e6d63f537563efd46272900f89492d")
EARLY_SECRET = h("33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a")
DERIVED_FOR_HANDSHAKE = h("6f2615a108c702c5678f54fc9dbab69716c076189c48250cebeac3576c3611ba")
HANDSHAKE_SECRET = h("1dc826e93606aa6fdc0aadc12f741b01046aa6b99f691ed221a9f0ca043fbeac")
HASH_CH_SH = h("860c06edc07858ee8e78f0e7428c58edd6b43f2ca3e6e95f02ed063cf0e1cad8")
C_HS_TRAFFIC = h("b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21")
S_HS_TRAFFIC = h("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
C_FINISHED_KEY = h("b80ad01015fb2f0bd65ff7d4da5d6bf83f84821d1f87fdc7d3c75b5a7b42d9c4")
S_FINISHED_KEY = h("008d3b66f816ea559f96b537e885c31fc068bf492c652f01f288a1d8cdc19fc8")
DERIVED_FOR_MASTER = h("43de77e0c77713859a944db9db2590b53190a65b3ee2e4f12dd7a0bb7ce254b4")
MASTER_SECRET = h("18df06843d13a08bf2a449844c5f8a478001bc4d4c627984d5a41da8d0402919")
HASH_CH_SF = h("9608102a0f1ccc6db6250b7b7e417b1a000eaada3daae4777a7686c9ff83df13")
C_AP_TRAFFIC = h("9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5")
S_AP_TRAFFIC = h("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643")
EXP_MASTER = h("fe22f881176eda18eb8f44529e6792c50c9a3f89452f68d8ae311b4309d3cf50")
HASH_CH_CF = h("209145a96ee8e2a122ff810047cc952684658d6049e86429426db87c54ad143d")
RES_MASTER = h("7df235f2031d2a051287d02b0241b0bfdaf86cc856231f2d5aba46c434ec196c")
# §3 NewSessionTicket nonce 00 00 -> the PSK that §4 uses as its early-secret IKM.
RESUMPTION_PSK = h("4ecd0eb6ec3b4d87f5d6028f922ca4c5851a277fd41311c9e62d2c9492e1c4f3")
# §4: early secret from that PSK and its "res binder" key.
EARLY_SECRET_PSK = h("9b2188e9b2fc6d64d71dc329900e20bb41915000f678aa839cbb797cb7d8332c")
RES_BINDER_KEY = h("69fe131a3bbad5d63c64eebcc30e395b9d8107726a13d074e389dbc8a4e47256")


def rfc8448_schedule() -> KeySchedule:
    return KeySchedule.for_suite(suite_info(CipherSuite.TLS_AES_128_GCM_SHA256))


def test_rfc8448_x25519_shared_secret() -> None:
    client = KeyShare.from_private_bytes(NamedGroup.x25519, CLIENT_PRIVATE)
    server = KeyShare.from_private_bytes(NamedGroup.x25519, SERVER_PRIVATE)
    assert client.public_bytes == CLIENT_PUBLIC
    assert server.public_bytes == SERVER_PUBLIC
    assert client.exchange(SERVER_PUBLIC) == ECDHE_SECRET
    assert server.exchange(CLIENT_PUBLIC) == ECDHE_SECRET


def test_rfc8448_early_and_derived_secrets() -> None:
    ks = rfc8448_schedule()
    assert ks.early_secret == EARLY_SECRET
    assert hkdf_extract(Hash.SHA256, None, None) == EARLY_SECRET
    assert ks.derive(ks.early_secret, b"derived", Hash.SHA256.empty_digest()) == (
        DERIVED_FOR_HANDSHAKE
    )


def test_rfc8448_handshake_secrets_and_keys() -> None:
    ks = rfc8448_schedule()
    assert ks.enter_handshake(ECDHE_SECRET) == HANDSHAKE_SECRET
    c_hs = ks.client_handshake_traffic_secret(HASH_CH_SH)
    s_hs = ks.server_handshake_traffic_secret(HASH_CH_SH)
    assert c_hs == C_HS_TRAFFIC
    assert s_hs == S_HS_TRAFFIC
    assert ks.finished_key(c_hs) == C_FINISHED_KEY
    assert ks.finished_key(s_hs) == S_FINISHED_KEY
    assert ks.traffic_keys(s_hs) == (
        h("3fce516009c21727d0f2e4e86ee403bc"),
        h("5d313eb2671276ee13000b30"),
    )
    assert ks.traffic_keys(c_hs) == (
        h("dbfaa693d1762c5b666af5d950258d01"),
        h("5bd3c71b836e0b76bb73265f"),
    )
    # verify_data is HMAC(finished_key, transcript hash) (RFC 8446 §4.4.4).
    transcript = hashlib.sha256(b"anything").digest()
    assert ks.finished_verify_data(s_hs, transcript) == hmac.digest(
        S_FINISHED_KEY, transcript, "sha256"
    )


def test_rfc8448_master_and_application_secrets() -> None:
    ks = rfc8448_schedule()
    ks.enter_handshake(ECDHE_SECRET)
    assert ks.derive(HANDSHAKE_SECRET, b"derived", Hash.SHA256.empty_digest()) == (
        DERIVED_FOR_MASTER
    )
    assert ks.enter_master() == MASTER_SECRET
    c_ap = ks.client_application_traffic_secret(HASH_CH_SF)
    s_ap = ks.server_application_traffic_secret(HASH_CH_SF)
    assert c_ap == C_AP_TRAFFIC
    assert s_ap == S_AP_TRAFFIC
    assert ks.exporter_master_secret(HASH_CH_SF) == EXP_MASTER
    assert ks.resumption_master_secret(HASH_CH_CF) == RES_MASTER
    assert ks.traffic_keys(s_ap) == (
        h("9f02283b6c9c07efc26bb9f2ac92e356"),
        h("cf782b88dd83549aadf1e984"),
    )
    assert ks.traffic_keys(c_ap) == (
        h("17422dda596ed5d9acd890e3c63f5051"),
        h("5b78923dee08579033e523d9"),
    )
    # Each stage's keyed secret is let go once the handshake is past its last use; a
    # derivation after that still gives the RFC's values.
    assert ks.client_handshake_traffic_secret(HASH_CH_SH) == C_HS_TRAFFIC
    assert ks.server_application_traffic_secret(HASH_CH_SF) == S_AP_TRAFFIC
    assert ks.exporter_master_secret(HASH_CH_SF) == EXP_MASTER
    assert ks.resumption_master_secret(HASH_CH_CF) == RES_MASTER


def test_rfc8448_resumption_psk_and_binder_key() -> None:
    ks = rfc8448_schedule()
    assert ks.resumption_psk(RES_MASTER, b"\x00\x00") == RESUMPTION_PSK
    resumed = KeySchedule.for_suite(
        suite_info(CipherSuite.TLS_AES_128_GCM_SHA256), psk=RESUMPTION_PSK
    )
    assert resumed.early_secret == EARLY_SECRET_PSK
    assert resumed.binder_key(external=False) == RES_BINDER_KEY
    assert resumed.binder_key(external=True) != RES_BINDER_KEY


def test_hkdf_expand_label_info_layout() -> None:
    # RFC 8448 §3 prints the info for "c hs traffic": 00 20 12 "tls13 c hs traffic" 20 hash.
    info = h("0020 12") + b"tls13 c hs traffic" + b"\x20" + HASH_CH_SH
    expected = hmac.digest(HANDSHAKE_SECRET, info + b"\x01", "sha256")
    assert hkdf_expand_label(Hash.SHA256, HANDSHAKE_SECRET, b"c hs traffic", HASH_CH_SH, 32) == (
        expected
    )
    assert expected == C_HS_TRAFFIC


def test_hkdf_expand_label_two_blocks_and_checks() -> None:
    # Output longer than one hash (an exporter's 40 bytes): RFC 5869 §2.3's T(1) || T(2),
    # computed here with the standard library's HMAC.
    info = h("0028 0e") + b"tls13 exporter" + b"\x20" + HASH_CH_SH
    t1 = hmac.digest(EXP_MASTER, info + b"\x01", "sha256")
    t2 = hmac.digest(EXP_MASTER, t1 + info + b"\x02", "sha256")
    out = hkdf_expand_label(Hash.SHA256, EXP_MASTER, b"exporter", HASH_CH_SH, 40)
    assert out == (t1 + t2)[:40]
    # The HkdfLabel checks (RFC 8446 §7.1) hold on every call, not only the first: a
    # rejected head is never kept.
    for _ in range(2):
        with pytest.raises(UsageError):
            hkdf_expand_label(Hash.SHA256, EXP_MASTER, b"x" * 250, b"", 32)
        with pytest.raises(UsageError):
            hkdf_expand_label(Hash.SHA256, EXP_MASTER, b"key", bytes(256), 32)
        with pytest.raises(UsageError):
            hkdf_expand_label(Hash.SHA256, EXP_MASTER, b"key", b"", 0x10000)


def test_hkdf_label_heads_kept_do_not_grow() -> None:
    # Exporter labels come from the application: however many it uses, no HkdfLabel head
    # is kept for them (the prepared table holds the key schedule's own labels).
    ks = rfc8448_schedule()
    tables = keyschedule._PREPARED.values()
    kept = sum(len(t.label_heads) for t in tables)
    for i in range(300):
        ks.export(EXP_MASTER, f"EXPORTER-label-{i}".encode(), b"", 16)
    assert sum(len(t.label_heads) for t in tables) == kept


@pytest.mark.parametrize("dtls", [False, True])
@pytest.mark.parametrize("suite", [CipherSuite.TLS_AES_256_GCM_SHA384, None])
def test_handshakes_build_no_hkdf_label_head(dtls: bool, suite: CipherSuite | None) -> None:
    """Every HKDF-Expand-Label of a TLS 1.3 or DTLS 1.3 handshake, its tickets and a
    resumption with one finds its head prepared (counted: no head is built per handshake),
    and the derivations from the prepared heads are the ones built at each use."""
    from helpers import NOW, calls_to, client_config, events, make_pair13, pair, pump, server_config

    from dtlsgate.connection.stream import ClientConnection, ServerConnection
    from dtlsgate.events import SessionTicketReceived

    suites = (suite,) if suite is not None else ()
    server_cfg = server_config(cipher_suites=suites)
    with calls_to(keyschedule._label_head) as counts:
        if dtls:
            run = make_pair13(server_cfg, client_config())
            assert run.run() and run.completed()
            tickets = [e for e in run.client_events if isinstance(e, SessionTicketReceived)]
        else:
            client, server = pair(server_cfg, client_config())
            assert client.handshake_complete and server.handshake_complete
            tickets = [e for e in events(client) if isinstance(e, SessionTicketReceived)]
        assert tickets
        resumed_cfg = client_config(session_ticket=tickets[0].ticket)
        if dtls:
            resumed = make_pair13(server_cfg, resumed_cfg)
            assert resumed.run() and resumed.completed()
            info = resumed.client.info
        else:
            client = ClientConnection(resumed_cfg)
            client.start(NOW)
            pump(client, ServerConnection(server_cfg))
            info = client.info
        assert info is not None and info.resumed
    assert list(counts.values()) == [0]
    info13 = suite_info(suite or CipherSuite.TLS_AES_128_GCM_SHA256)
    ks = KeySchedule.for_suite(info13, dtls=dtls)
    prefix = ks.label_prefix
    for label, context, length in keyschedule._schedule_labels(
        info13.hash.digest_size, info13.key_length
    ):
        assert ks.expand_label(EXP_MASTER, label, bytes(context), length) == hkdf_expand_label(
            info13.hash, EXP_MASTER, label, bytes(context), length, prefix
        )


def test_dtls13_label_prefix() -> None:
    # RFC 9147 §5.9: the label is "dtls13" + label, with no space.
    info = h("0010 09") + b"dtls13key" + b"\x00"
    expected = hmac.digest(S_HS_TRAFFIC, info + b"\x01", "sha256")[:16]
    ks = KeySchedule.for_suite(suite_info(CipherSuite.TLS_AES_128_GCM_SHA256), dtls=True)
    assert ks.label_prefix == DTLS13_LABEL_PREFIX
    key, iv = ks.traffic_keys(S_HS_TRAFFIC)
    assert key == expected
    assert key != h("3fce516009c21727d0f2e4e86ee403bc")
    assert len(iv) == 12
    sn_info = h("0010 08") + b"dtls13sn" + b"\x00"
    assert ks.record_keys(S_HS_TRAFFIC) == (
        key,
        iv,
        hmac.digest(S_HS_TRAFFIC, sn_info + b"\x01", "sha256")[:16],
    )


@pytest.mark.parametrize("dtls", [False, True])
@pytest.mark.parametrize("prepared", [True, False])
def test_record_keys_are_the_three_labels(dtls: bool, prepared: bool) -> None:
    # The key, iv and sn_key under one keyed secret (and from the inputs prepared per suite),
    # and the finished key, are HKDF-Expand-Label's, for every TLS 1.3 suite; a schedule of a hash and key length
    # that no suite has (prepared=False) derives them label by label.
    prefix = DTLS13_LABEL_PREFIX if dtls else keyschedule.TLS13_LABEL_PREFIX
    for info in (i for i in SUITES.values() if i.is_tls13):
        n = info.key_length if prepared else 24
        ks = KeySchedule(info.hash, n, label_prefix=prefix)
        secret = bytes(range(info.hash.digest_size))
        expected = [
            hkdf_expand_label(info.hash, secret, label, b"", length, prefix)
            for label, length in ((b"key", n), (b"iv", 12), (b"sn", n))
        ]
        assert list(ks.record_keys(secret)) == expected
        assert list(ks.traffic_keys(secret)) == expected[:2]
        size = info.hash.digest_size
        finished = hkdf_expand_label(info.hash, secret, b"finished", b"", size, prefix)
        assert ks.finished_key(secret) == finished


def _expected_traffic_keys(
    info: SuiteInfo, secret: bytes, prefix: bytes
) -> tuple[list[bytes], bytes]:
    """key, iv, sn_key and the finished key of ``secret`` by HKDF-Expand-Label itself."""
    n, size = info.key_length, info.hash.digest_size
    keys = [
        hkdf_expand_label(info.hash, secret, label, b"", length, prefix)
        for label, length in ((b"key", n), (b"iv", 12), (b"sn", n))
    ]
    return keys, hkdf_expand_label(info.hash, secret, b"finished", b"", size, prefix)


@pytest.mark.parametrize("dtls", [False, True])
def test_handshake_traffic_secrets_keyed_once_give_the_same_keys(dtls: bool) -> None:
    # A handshake traffic secret is keyed once for its Finished key and its record keys,
    # in either order (a server's own secret: Finished first; the peer's: record keys
    # first); a third use, and the same secret handed in as another bytes object, still
    # derive HKDF-Expand-Label's values.
    prefix = DTLS13_LABEL_PREFIX if dtls else keyschedule.TLS13_LABEL_PREFIX
    for info in (i for i in SUITES.values() if i.is_tls13):
        ks = KeySchedule(info.hash, info.key_length, label_prefix=prefix)
        ks.enter_handshake(bytes(range(32)))
        th = info.hash.digest(b"ClientHello..ServerHello")
        server = ks.server_handshake_traffic_secret(th)
        client = ks.client_handshake_traffic_secret(th)
        server_keys, server_finished = _expected_traffic_keys(info, server, prefix)
        client_keys, client_finished = _expected_traffic_keys(info, client, prefix)
        # Interleaved, as a handshake does: both secrets are held keyed at once.
        assert ks.finished_key(server) == server_finished
        assert list(ks.traffic_keys(client)) == client_keys[:2]
        assert list(ks.record_keys(server)) == server_keys
        assert ks.finished_key(client) == client_finished
        assert ks.finished_key(bytes(bytearray(server))) == server_finished
        assert list(ks.record_keys(client)) == client_keys


def _derive_secret(hash: Hash, prefix: bytes, secret: bytes, label: bytes, context: bytes) -> bytes:
    return hkdf_expand_label(hash, secret, label, context, hash.digest_size, prefix)


@pytest.mark.parametrize("dtls", [False, True])
def test_derived_secrets_are_derive_secret_for_every_suite(dtls: bool) -> None:
    # The secrets derived under a keyed secret from the heads prepared per suite and prefix
    # are Derive-Secret's (RFC 8446 §7.1), written out from HKDF-Expand-Label.
    prefix = DTLS13_LABEL_PREFIX if dtls else keyschedule.TLS13_LABEL_PREFIX
    for info in (i for i in SUITES.values() if i.is_tls13):
        hash = info.hash
        ks = KeySchedule(hash, info.key_length, label_prefix=prefix)
        th = hash.digest(b"transcript")
        hs = ks.enter_handshake(bytes(range(32)))
        derive = functools.partial(_derive_secret, hash, prefix)
        assert ks.client_handshake_traffic_secret(th) == derive(hs, b"c hs traffic", th)
        assert ks.server_handshake_traffic_secret(th) == derive(hs, b"s hs traffic", th)
        ms = ks.enter_master()
        assert ms == hkdf_extract(hash, derive(hs, b"derived", hash.empty_digest()), None)
        assert ks.client_application_traffic_secret(th) == derive(ms, b"c ap traffic", th)
        assert ks.server_application_traffic_secret(th) == derive(ms, b"s ap traffic", th)
        assert ks.exporter_master_secret(th) == derive(ms, b"exp master", th)
        assert ks.resumption_master_secret(th) == derive(ms, b"res master", th)


def test_next_traffic_secret_and_exporter() -> None:
    ks = rfc8448_schedule()
    info = h("0020 11") + b"tls13 traffic upd" + b"\x00"
    assert ks.next_traffic_secret(C_AP_TRAFFIC) == hmac.digest(
        C_AP_TRAFFIC, info + b"\x01", "sha256"
    )
    inner = ks.derive(EXP_MASTER, b"EXPERIMENTAL", Hash.SHA256.empty_digest())
    out = ks.export(EXP_MASTER, b"EXPERIMENTAL", b"ctx", 40)
    assert len(out) == 40
    assert out == hkdf_expand_label(
        Hash.SHA256, inner, b"exporter", hashlib.sha256(b"ctx").digest(), 40
    )


def test_key_schedule_order_is_enforced() -> None:
    ks = rfc8448_schedule()
    with pytest.raises(StateError):
        ks.enter_master()
    with pytest.raises(StateError):
        ks.client_handshake_traffic_secret(HASH_CH_SH)
    ks.enter_handshake(ECDHE_SECRET)
    with pytest.raises(StateError):
        ks.enter_handshake(ECDHE_SECRET)
    with pytest.raises(StateError):
        ks.client_application_traffic_secret(HASH_CH_SF)
    with pytest.raises(UsageError):
        KeySchedule.for_suite(suite_info(CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256))


def test_sha384_schedule_lengths() -> None:
    ks = KeySchedule.for_suite(suite_info(CipherSuite.TLS_AES_256_GCM_SHA384))
    assert len(ks.early_secret) == 48
    ks.enter_handshake(bytes(32))
    secret = ks.server_handshake_traffic_secret(bytes(48))
    key, iv = ks.traffic_keys(secret)
    assert (len(secret), len(key), len(iv)) == (48, 32, 12)


# ---- transcript ------------------------------------------------------------------------------


def test_transcript_hash_incremental_and_copy() -> None:
    t = TranscriptHash(Hash.SHA256)
    t.update(b"client hello")
    fork = t.copy()
    t.update(b"server hello")
    assert t.digest() == hashlib.sha256(b"client helloserver hello").digest()
    assert fork.digest() == hashlib.sha256(b"client hello").digest()
    assert t.digest() == t.digest()  # digest does not finish the transcript


def test_message_hash_after_hello_retry() -> None:
    ch1 = b"\x01\x00\x00\x03abc"
    digest = hashlib.sha384(ch1).digest()
    assert message_hash(Hash.SHA384, ch1) == b"\xfe\x00\x00\x30" + digest
    t = TranscriptHash.after_hello_retry(Hash.SHA384, ch1)
    t.update(b"hrr")
    assert t.digest() == hashlib.sha384(b"\xfe\x00\x00\x30" + digest + b"hrr").digest()


# ---- TLS 1.2 PRF: vectors posted to the IETF TLS WG list (msg03416), also in mbedTLS ----------


def test_prf_sha256_vector() -> None:
    out = prf.prf(
        Hash.SHA256,
        h("9bbe436ba940f017b17652849a71db35"),
        b"test label",
        h("a0ba9f936cda311827a6f796ffd5198c"),
        100,
    )
    assert out == h(
        "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a"
        "6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab"
        "4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701"
        "87347b66"
    )


def test_prf_sha384_vector() -> None:
    out = prf.prf(
        Hash.SHA384,
        h("b80b733d6ceefcdc71566ea48e5567df"),
        b"test label",
        h("cd665cf6a8447dd6ff8b27555edb7465"),
        148,
    )
    assert out == h(
        "7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cd"
        "e9ca0faa60be9fe34f82b1233c9146a0e534cb400fed2700884f9dc236f80edd"
        "8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d918425"
        "9b5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236a3e52655c9e9aee6"
        "91c8f3a26854308d5eaa3be85e0990703d73e56f"
    )


CR = bytes(range(32))
SR = bytes(range(32, 64))
PMS = b"\x03\x03" + bytes(46)


def test_master_secrets_and_finished() -> None:
    ms = prf.master_secret(Hash.SHA256, PMS, CR, SR)
    assert ms == prf.prf(Hash.SHA256, PMS, b"master secret", CR + SR, 48)
    session_hash = hashlib.sha256(b"transcript").digest()
    ems = prf.extended_master_secret(Hash.SHA256, PMS, session_hash)
    assert ems == prf.prf(Hash.SHA256, PMS, b"extended master secret", session_hash, 48)
    assert ems != ms
    client = prf.verify_data(Hash.SHA256, ms, True, session_hash)
    server = prf.verify_data(Hash.SHA256, ms, False, session_hash)
    assert client == prf.prf(Hash.SHA256, ms, b"client finished", session_hash, 12)
    assert len(server) == 12
    assert client != server
    with pytest.raises(UsageError):
        prf.master_secret(Hash.SHA256, PMS, CR[:31], SR)


@pytest.mark.parametrize(
    ("suite", "lengths"),
    [
        (CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, (16, 4)),
        (CipherSuite.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, (32, 4)),
        (CipherSuite.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, (32, 12)),
        (CipherSuite.TLS_PSK_WITH_AES_128_CCM_8, (16, 4)),
    ],
)
def test_key_block_layout(suite: CipherSuite, lengths: tuple[int, int]) -> None:
    info = suite_info(suite)
    ms = bytes(48)
    k, iv = lengths
    block = prf.prf(info.hash, ms, b"key expansion", SR + CR, 2 * (k + iv))
    client_key, server_key, client_iv, server_iv = prf.key_block(info, ms, CR, SR)
    assert client_key + server_key + client_iv + server_iv == block
    assert (len(client_key), len(server_iv)) == (k, iv)


def test_psk_premaster_secret() -> None:
    # RFC 4279 §2: N zero bytes for plain PSK; RFC 5489 §2: the ECDHE secret for ECDHE_PSK.
    assert prf.psk_premaster_secret(b"\xaa\xbb") == h("0002 0000 0002 aabb")
    assert prf.psk_premaster_secret(b"\xaa", b"\x01\x02\x03") == h("0003 010203 0001 aa")


def test_tls12_exporter() -> None:
    ms = bytes(range(48))
    assert prf.export_keying_material(Hash.SHA256, ms, b"EXPORTER", CR, SR, None, 20) == (
        prf.prf(Hash.SHA256, ms, b"EXPORTER", CR + SR, 20)
    )
    assert prf.export_keying_material(Hash.SHA256, ms, b"EXPORTER", CR, SR, b"c", 20) == (
        prf.prf(Hash.SHA256, ms, b"EXPORTER", CR + SR + b"\x00\x01c", 20)
    )


# ---- suite table -----------------------------------------------------------------------------


def test_suite_table_covers_every_suite_but_the_scsvs() -> None:
    scsvs = {CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV, CipherSuite.TLS_FALLBACK_SCSV}
    assert set(SUITES) == set(CipherSuite) - scsvs
    with pytest.raises(UsageError):
        suite_info(CipherSuite.TLS_FALLBACK_SCSV)
    with pytest.raises(UsageError):
        suite_info(0x0005)


def test_suite_table_entries() -> None:
    gcm = suite_info(CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
    assert (gcm.hash, gcm.key_exchange, gcm.key_length, gcm.fixed_iv_length) == (
        Hash.SHA384,
        KeyExchange.ECDHE_ECDSA,
        32,
        4,
    )
    assert gcm.record_iv_length == 8
    chacha = suite_info(CipherSuite.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256)
    assert (chacha.fixed_iv_length, chacha.record_iv_length) == (12, 0)
    assert chacha.key_exchange is KeyExchange.ECDHE_PSK
    assert not chacha.uses_certificate
    ccm8 = suite_info(CipherSuite.TLS_AES_128_CCM_8_SHA256)
    assert (ccm8.is_tls13, ccm8.tag_length, ccm8.fixed_iv_length) == (True, 8, 12)
    for info in SUITES.values():
        if info.is_tls13:
            assert (info.fixed_iv_length, info.record_iv_length) == (12, 0)
        else:
            assert info.fixed_iv_length + info.record_iv_length == 12
