"""The DTLS 1.3 record layer (RFC 9147 §4): unified header forms, record number encryption,
sequence number and epoch reconstruction, anti-replay, several records per datagram, and
invalid records dropped without an exception.

Published DTLS 1.3 test vectors: RFC 9147 has none (no record, key or mask examples), nor
has any RFC since. The primitives are checked against their own RFC/FIPS vectors (AES-ECB:
FIPS-197 Appendix C; ChaCha20 block function: RFC 8439 §2.3.2), and whole records against
an independent construction written here from the RFC 9147 text (HKDF-Expand-Label with the
"dtls13" prefix, AAD = header before record number encryption, nonce = IV XOR 64-bit
sequence number, mask from the first 16 ciphertext bytes).
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from hypothesis import given, settings
from hypothesis import strategies as st

from dtlsgate.crypto.aead import AeadAlgorithm
from dtlsgate.crypto.record_number import RecordNumberCipher
from dtlsgate.crypto.suites import SUITES, SuiteInfo
from dtlsgate.errors import StateError, UsageError
from dtlsgate.record.dtls13 import (
    EPOCH_APPLICATION,
    EPOCH_HANDSHAKE,
    EPOCH_PLAINTEXT,
    MAX_READ_EPOCHS,
    MAX_SEQUENCE_NUMBER,
    MAX_WRITE_EPOCHS,
    Dtls13Record,
    Dtls13RecordLayer,
    EpochKeys,
    RecordDrop,
    connection_id_of,
    next_traffic_secret,
    reconstruct_sequence_number,
)
from dtlsgate.wire.enums import CipherSuite, ContentType

TLS13_SUITES = [
    CipherSuite.TLS_AES_128_GCM_SHA256,
    CipherSuite.TLS_AES_256_GCM_SHA384,
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
    CipherSuite.TLS_AES_128_CCM_SHA256,
    CipherSuite.TLS_AES_128_CCM_8_SHA256,
]
APP = ContentType.APPLICATION_DATA
HS = ContentType.HANDSHAKE


def secret_for(suite: SuiteInfo, label: bytes) -> bytes:
    return hashlib.new(suite.hash.value, label).digest()


def pair(
    suite_id: CipherSuite = CipherSuite.TLS_AES_128_GCM_SHA256,
    epochs: tuple[int, ...] = (EPOCH_HANDSHAKE, EPOCH_APPLICATION),
    **form: object,
) -> tuple[Dtls13RecordLayer, Dtls13RecordLayer]:
    """A sender and a receiver sharing the keys of ``epochs`` (the sender ends in the last)."""
    suite = SUITES[suite_id]
    cid = form.pop("cid", b"")
    assert isinstance(cid, bytes)
    sender = Dtls13RecordLayer(write_connection_id=cid, **form)  # type: ignore[arg-type]
    receiver = Dtls13RecordLayer(read_connection_id=cid)
    for epoch in epochs:
        secret = secret_for(suite, b"epoch %d" % epoch)
        sender.install_write(epoch, EpochKeys.from_secret(suite, secret))
        receiver.install_read(epoch, EpochKeys.from_secret(suite, secret))
    return sender, receiver


# --- the primitives against their published vectors ---------------------------------------


def test_aes_mask_is_aes_ecb_fips197_vectors() -> None:
    sample = bytes.fromhex("00112233445566778899aabbccddeeff")
    aes128 = RecordNumberCipher(AeadAlgorithm.AES_128_GCM, bytes(range(16)))
    assert aes128.mask(sample) == bytes.fromhex("69c4e0d86a7b0430d8cdb78070b4c55a")  # C.1
    aes256 = RecordNumberCipher(AeadAlgorithm.AES_256_GCM, bytes(range(32)))
    assert aes256.mask(sample) == bytes.fromhex("8ea2b7ca516745bfeafc49904b496089")  # C.3
    ccm = RecordNumberCipher(AeadAlgorithm.AES_128_CCM_8, bytes(range(16)))
    assert ccm.mask(sample) == aes128.mask(sample)  # AES-based: the same AES-ECB


def test_every_aes_based_mask_is_aes_ecb_under_its_sn_key() -> None:
    # The mask cipher is made from AES128 / AES256 by the key's length: the same AES-ECB as
    # cryptography's AES of any key size, for every AES-based AEAD.
    sample = bytes(range(100, 116))
    for algorithm in AeadAlgorithm:
        if algorithm is AeadAlgorithm.CHACHA20_POLY1305:
            continue
        sn_key = bytes(range(7, 7 + algorithm.key_length))
        expected = Cipher(algorithms.AES(sn_key), modes.ECB()).encryptor().update(sample)
        assert RecordNumberCipher(algorithm, sn_key).mask(sample) == expected, algorithm


def test_chacha20_mask_is_the_block_function_rfc8439_vector() -> None:
    # RFC 8439 §2.3.2: key 00..1f, nonce 000000090000004a00000000, block counter 1. The
    # sample's first 4 bytes are the counter (serialised little-endian), the next 12 the nonce.
    sample = (1).to_bytes(4, "little") + bytes.fromhex("000000090000004a00000000")
    cipher = RecordNumberCipher(AeadAlgorithm.CHACHA20_POLY1305, bytes(range(32)))
    assert cipher.mask(sample) == bytes.fromhex("10f1e7e4d13b5915500fdd1fa32071c4")


def test_mask_needs_a_16_byte_sample_and_a_right_sized_key() -> None:
    cipher = RecordNumberCipher(AeadAlgorithm.AES_128_GCM, bytes(16))
    with pytest.raises(UsageError):
        cipher.mask(bytes(15))
    with pytest.raises(UsageError):
        RecordNumberCipher(AeadAlgorithm.CHACHA20_POLY1305, bytes(16))


# --- whole records against a construction written from the RFC text ------------------------


def expand_label(hash_name: str, secret: bytes, label: bytes, length: int) -> bytes:
    """HKDF-Expand-Label(secret, label, "", length) with the "dtls13" prefix (RFC 9147
    §5.9, RFC 8446 §7.1), written out with hmac: one or two HKDF-Expand blocks."""
    full = b"dtls13" + label
    info = length.to_bytes(2, "big") + bytes((len(full),)) + full + b"\x00"
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(secret, block + info + bytes((counter,)), hash_name).digest()
        out += block
        counter += 1
    return out[:length]


def reference_record(suite_id: CipherSuite, secret: bytes, seq: int, content: bytes) -> bytes:
    """A DTLSCiphertext record in epoch 3 with a 16-bit sequence number and a length, built
    from RFC 9147 §4 and §4.2.3 directly."""
    suite = SUITES[suite_id]
    key = expand_label(suite.hash.value, secret, b"key", suite.key_length)
    iv = expand_label(suite.hash.value, secret, b"iv", 12)
    sn_key = expand_label(suite.hash.value, secret, b"sn", suite.key_length)
    inner = content + bytes((APP,))
    header = bytes((0b00101111,)) + (seq & 0xFFFF).to_bytes(2, "big")
    header += (len(inner) + 16).to_bytes(2, "big")
    nonce = bytes(a ^ b for a, b in zip(iv, seq.to_bytes(12, "big"), strict=True))
    if suite.aead is AeadAlgorithm.CHACHA20_POLY1305:
        ciphertext = ChaCha20Poly1305(key).encrypt(nonce, inner, header)
        mask = Cipher(algorithms.ChaCha20(sn_key, ciphertext[:16]), None).encryptor()
        mask_bytes = mask.update(bytes(2))
    else:
        ciphertext = AESGCM(key).encrypt(nonce, inner, header)
        mask_bytes = Cipher(algorithms.AES(sn_key), modes.ECB()).encryptor().update(ciphertext[:16])
    masked = bytes(a ^ b for a, b in zip(header[1:3], mask_bytes, strict=False))
    return header[:1] + masked + header[3:] + ciphertext


@pytest.mark.parametrize(
    "suite_id",
    [
        CipherSuite.TLS_AES_128_GCM_SHA256,
        CipherSuite.TLS_AES_256_GCM_SHA384,
        CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
    ],
)
def test_records_match_the_rfc_construction(suite_id: CipherSuite) -> None:
    suite = SUITES[suite_id]
    secret = secret_for(suite, b"application")
    layer = Dtls13RecordLayer()
    layer.install_write(EPOCH_APPLICATION, EpochKeys.from_secret(suite, secret))
    for seq in range(3):
        record = layer.protect(APP, b"record %d" % seq)
        assert record == reference_record(suite_id, secret, seq, b"record %d" % seq)
    # The per-record send path makes the same bytes.
    record = layer.protect_application_data(b"record 3")
    assert record == reference_record(suite_id, secret, 3, b"record 3")
    receiver = Dtls13RecordLayer()
    receiver.install_read(EPOCH_APPLICATION, EpochKeys.from_secret(suite, secret))
    got = receiver.receive(reference_record(suite_id, secret, 0, b"from the reference"))
    assert got == [Dtls13Record(EPOCH_APPLICATION, 0, APP, b"from the reference")]


def test_keys_use_the_dtls13_label_prefix() -> None:
    """With "tls13 " keys (the TLS 1.3 prefix) nothing decrypts: the prefix matters."""
    suite = SUITES[CipherSuite.TLS_AES_128_GCM_SHA256]
    secret = secret_for(suite, b"prefix")
    sender = Dtls13RecordLayer()
    sender.install_write(EPOCH_APPLICATION, EpochKeys.from_secret(suite, secret))
    record = sender.protect(APP, b"x")
    assert record == reference_record(CipherSuite.TLS_AES_128_GCM_SHA256, secret, 0, b"x")
    tls_key = hmac.new(secret, b"", "sha256").digest()  # anything but the dtls13 derivation
    receiver = Dtls13RecordLayer()
    receiver.install_read(
        EPOCH_APPLICATION,
        EpochKeys.from_secret(suite, tls_key),
    )
    assert receiver.receive(record) == []
    assert receiver.drops[RecordDrop.AUTHENTICATION] == 1


# --- round trips and header forms -----------------------------------------------------------


@pytest.mark.parametrize("suite_id", TLS13_SUITES, ids=lambda s: s.name)
@pytest.mark.parametrize("sequence_bits", [8, 16])
@pytest.mark.parametrize("include_length", [True, False])
@pytest.mark.parametrize("cid", [b"", b"\xab\xcd"], ids=["no-cid", "cid"])
def test_round_trip(
    suite_id: CipherSuite, sequence_bits: int, include_length: bool, cid: bytes
) -> None:
    sender, receiver = pair(
        suite_id, sequence_bits=sequence_bits, include_length=include_length, cid=cid
    )
    for i, content in enumerate([b"", b"a", b"hello DTLS 1.3", bytes(range(256)) * 8]):
        record = sender.protect(APP, content)
        first = record[0]
        assert first >> 5 == 0b001
        assert bool(first & 0x10) == bool(cid)
        assert bool(first & 0x08) == (sequence_bits == 16)
        assert bool(first & 0x04) == include_length
        assert first & 0x03 == EPOCH_APPLICATION & 3
        assert record[1 : 1 + len(cid)] == cid
        header = 1 + len(cid) + sequence_bits // 8 + (2 if include_length else 0)
        assert len(record) - header >= 16  # the record number sample (CCM-8 pads)
        got = receiver.receive(record)
        assert got == [Dtls13Record(EPOCH_APPLICATION, i, APP, content)]
    assert not receiver.drops


def test_header_sizes_minimal_and_full() -> None:
    """RFC 9147 Figure 4: the minimal header is 2 bytes (8-bit sequence number, no length)
    and is the whole additional data; the full one here has a 2-byte CID, 16-bit sequence
    number and length: 7 bytes."""
    sender, _ = pair(sequence_bits=8, include_length=False)
    record = sender.protect(APP, b"x" * 10)
    assert len(record) == 2 + 11 + 16
    full, _ = pair(cid=b"\x01\x02")
    assert len(full.protect(APP, b"x" * 10)) == 7 + 11 + 16


def test_record_number_is_encrypted() -> None:
    sender, receiver = pair(sequence_bits=16)
    wire = [sender.protect(APP, b"same") for _ in range(50)]
    sequence_fields = [int.from_bytes(r[1:3], "big") for r in wire]
    assert sequence_fields != list(range(50))  # not the plain counter
    assert [r.sequence_number for d in wire for r in receiver.receive(d)] == list(range(50))


def test_padding_inside_the_encryption() -> None:
    sender, receiver = pair()
    record = sender.protect(HS, b"\x01\x02", padding=100)
    assert len(record) == 5 + 2 + 1 + 100 + 16
    assert receiver.receive(record) == [Dtls13Record(EPOCH_APPLICATION, 0, HS, b"\x01\x02")]


def test_several_records_in_one_datagram() -> None:
    sender, receiver = pair(epochs=())
    receiver_keys = []
    suite = SUITES[CipherSuite.TLS_AES_128_GCM_SHA256]
    plaintext = sender.protect(HS, b"server hello")
    for epoch in (EPOCH_HANDSHAKE, EPOCH_APPLICATION):
        secret = secret_for(suite, b"epoch %d" % epoch)
        sender.install_write(epoch, EpochKeys.from_secret(suite, secret))
        receiver_keys.append((epoch, EpochKeys.from_secret(suite, secret)))
    for epoch, keys in receiver_keys:
        receiver.install_read(epoch, keys)
    handshake = sender.protect(HS, b"finished", epoch=EPOCH_HANDSHAKE)
    app1 = sender.protect(APP, b"one")
    app2 = sender.protect(APP, b"two", include_length=False)  # the last one may omit it
    got = receiver.receive(plaintext + handshake + app1 + app2)
    assert got == [
        Dtls13Record(EPOCH_PLAINTEXT, 0, HS, b"server hello"),
        Dtls13Record(EPOCH_HANDSHAKE, 0, HS, b"finished"),
        Dtls13Record(EPOCH_APPLICATION, 0, APP, b"one"),
        Dtls13Record(EPOCH_APPLICATION, 1, APP, b"two"),
    ]


def test_invalid_record_in_the_middle_drops_only_itself() -> None:
    sender, receiver = pair()
    first, second, third = (sender.protect(APP, b"%d" % i) for i in range(3))
    broken = second[:-1] + bytes((second[-1] ^ 1,))
    got = receiver.receive(first + broken + third)
    assert [r.fragment for r in got] == [b"0", b"2"]
    assert receiver.drops == {RecordDrop.AUTHENTICATION: 1}
    assert receiver.auth_failures(EPOCH_APPLICATION) == 1


def test_record_without_length_swallows_the_rest() -> None:
    """A record without a length runs to the end of the datagram (RFC 9147 §4): a record
    placed after it becomes part of its ciphertext, which then fails to authenticate."""
    sender, receiver = pair()
    no_length = sender.protect(APP, b"first", include_length=False)
    after = sender.protect(APP, b"second")
    assert receiver.receive(no_length + after) == []
    assert receiver.drops == {RecordDrop.AUTHENTICATION: 1}


# --- DTLSPlaintext ----------------------------------------------------------------------------


def test_plaintext_records() -> None:
    layer = Dtls13RecordLayer()
    hello = layer.protect(HS, b"client hello")
    alert = layer.protect(ContentType.ALERT, b"\x02\x46")
    ack = layer.protect(ContentType.ACK, b"\x00\x00")
    # type, legacy_record_version {254, 253}, epoch 0, sequence 0, length 12 (RFC 9147 §4)
    assert hello == bytes.fromhex("16fefd0000000000000000000c") + b"client hello"
    assert alert[3:11] == (1).to_bytes(8, "big")
    got = Dtls13RecordLayer().receive(hello + alert + ack)
    assert [(r.epoch, r.sequence_number, r.content_type) for r in got] == [
        (0, 0, HS),
        (0, 1, ContentType.ALERT),
        (0, 2, ContentType.ACK),
    ]


def test_plaintext_legacy_version_is_ignored_and_epoch_must_be_0() -> None:
    layer = Dtls13RecordLayer()
    record = layer.protect(HS, b"hello")
    other_version = record[:1] + b"\xfe\xff" + record[3:]
    nonzero_epoch = record[:3] + b"\x00\x02" + record[5:]
    receiver = Dtls13RecordLayer()
    assert [r.fragment for r in receiver.receive(other_version)] == [b"hello"]
    assert receiver.receive(nonzero_epoch + record) == [Dtls13Record(0, 0, HS, b"hello")]
    assert receiver.drops == {RecordDrop.PLAINTEXT_EPOCH: 1}
    receiver.accept_plaintext = False
    assert receiver.receive(record) == []
    assert receiver.drops[RecordDrop.PLAINTEXT_REFUSED] == 1


def test_plaintext_record_longer_than_2_14_bytes_dropped() -> None:
    """RFC 8446 §5.1: a DTLSPlaintext fragment is at most 2^14 bytes; the record after a
    longer one in its datagram is still read."""
    record = Dtls13RecordLayer().protect(HS, b"hello")
    too_long = b"\x16\xfe\xfd" + bytes(8) + ((1 << 14) + 1).to_bytes(2, "big") + bytes(1 << 14 | 1)
    receiver = Dtls13RecordLayer()
    assert receiver.receive(too_long + record) == [Dtls13Record(0, 0, HS, b"hello")]
    assert receiver.drops == {RecordDrop.TOO_LONG: 1}


def test_plaintext_application_data_is_not_a_dtls13_record() -> None:
    """RFC 9147 §4.1: 23 (DTLS 1.2 application data) is neither a DTLSPlaintext type nor
    001xxxxx: rejected, with the rest of the datagram."""
    receiver = Dtls13RecordLayer()
    valid = Dtls13RecordLayer().protect(HS, b"hello")
    dtls12_record = bytes.fromhex("17fefd00010000000000000003") + b"abc"
    assert receiver.receive(dtls12_record + valid) == []
    assert receiver.drops == {RecordDrop.NOT_A_RECORD: 1}


def test_plaintext_misuse() -> None:
    layer = Dtls13RecordLayer()
    with pytest.raises(UsageError):
        layer.protect(APP, b"data before keys")
    with pytest.raises(UsageError):
        layer.protect(HS, bytes(1 << 14 | 1))


# --- sequence number and epoch reconstruction -------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "low", "bits", "full"),
    [
        (0, 0, 8, 0),
        (0, 5, 8, 5),
        (5, 250, 8, 250),  # no negative candidate: 250, not -6
        (255, 0, 8, 256),  # the low bits wrapped
        (256, 255, 8, 255),  # a late record from before the wrap
        (300, 44, 8, 300),
        (300, 200, 8, 200),  # 300 - 100 is closer than 300 + 156
        (128, 0, 8, 256),  # equally close (0 and 256): the newer
        (0x10000, 0xFFFF, 16, 0xFFFF),
        (0xFFFF, 0x0000, 16, 0x10000),
        (0x123456, 0x3456, 16, 0x123456),
        (0x12FFFE, 0x0001, 16, 0x130001),
        (MAX_SEQUENCE_NUMBER, 0xFF, 8, MAX_SEQUENCE_NUMBER),
        (MAX_SEQUENCE_NUMBER, 0x00, 8, MAX_SEQUENCE_NUMBER - 0xFF),  # never above 2^64 - 1
    ],
)
def test_reconstruct_sequence_number(expected: int, low: int, bits: int, full: int) -> None:
    assert reconstruct_sequence_number(expected, low, bits) == full


@given(
    st.integers(0, MAX_SEQUENCE_NUMBER),
    st.sampled_from([8, 16]),
    st.integers(-(1 << 15), (1 << 15)),
)
def test_reconstruct_finds_every_number_within_half_a_window(
    expected: int, bits: int, offset: int
) -> None:
    half = 1 << (bits - 1)
    actual = expected + offset
    if not -half < offset < half or not 0 <= actual <= MAX_SEQUENCE_NUMBER:
        return
    got = reconstruct_sequence_number(expected, actual & ((1 << bits) - 1), bits)
    assert got == actual


def closest_candidate(expected: int, low: int, bits: int) -> int:
    """RFC 9147 §4.2.2 as written: of the numbers with these low bits in [0, 2^64 - 1], the
    one closest to ``expected``, the larger of two equally close."""
    window = 1 << bits
    base = (expected & ~(window - 1)) | low
    valid = [v for v in (base - window, base, base + window) if 0 <= v <= MAX_SEQUENCE_NUMBER]
    return min(valid, key=lambda v: (abs(v - expected), -v))


@given(
    st.one_of(
        st.integers(0, 1 << 20),
        st.integers(MAX_SEQUENCE_NUMBER - (1 << 20), MAX_SEQUENCE_NUMBER + 1),
        st.integers(0, MAX_SEQUENCE_NUMBER + 1),
    ),
    st.sampled_from([8, 16]),
    st.data(),
)
def test_reconstruct_is_the_closest_candidate(
    expected: int, bits: int, data: st.DataObject
) -> None:
    # Every low value, at the edges of the 64-bit space too (expected is one above the
    # highest deprotected, so up to 2^64).
    low = data.draw(st.integers(0, (1 << bits) - 1))
    assert reconstruct_sequence_number(expected, low, bits) == closest_candidate(
        expected, low, bits
    )


def test_reconstruct_ties_and_window_edges_exhaustively_in_8_bits() -> None:
    for expected in [*range(0, 1024), *range(MAX_SEQUENCE_NUMBER - 1023, MAX_SEQUENCE_NUMBER + 2)]:
        for low in range(256):
            assert reconstruct_sequence_number(expected, low, 8) == closest_candidate(
                expected, low, 8
            )


def test_8_bit_sequence_numbers_through_the_low_bits_wrap() -> None:
    sender, receiver = pair(sequence_bits=8)
    records = [sender.protect(APP, b"%d" % i) for i in range(600)]
    got = [r.sequence_number for d in records for r in receiver.receive(d)]
    assert got == list(range(600))


def test_reordered_records_across_the_wrap() -> None:
    sender, receiver = pair(sequence_bits=8)
    records = [sender.protect(APP, b"%d" % i) for i in range(300)]
    for d in records[:250]:
        receiver.receive(d)
    # 252..270 arrive before 250 and 251: the low bits wrap at 256 in between.
    late = [
        r.sequence_number for d in records[252:271] + records[250:252] for r in receiver.receive(d)
    ]
    assert late == [*range(252, 271), 250, 251]


def test_a_gap_beyond_half_the_window_is_lost() -> None:
    """With 8-bit sequence numbers, a record more than 128 ahead of the expected one is
    reconstructed 256 too low: it fails authentication and is dropped (§4.2.2 has the
    receiver use the closest value; senders pick 16 bits when they may get that far ahead)."""
    sender, receiver = pair(sequence_bits=8)
    records = [sender.protect(APP, b"%d" % i) for i in range(300)]
    for record in records[:151]:
        assert receiver.receive(record)
    # Expected 151: the low bits of 290 (34) are read as 34, 117 back, not 290, 139 ahead.
    assert receiver.receive(records[290]) == []
    assert receiver.drops == {RecordDrop.AUTHENTICATION: 1}
    assert receiver.receive(records[200])[0].sequence_number == 200


def test_epoch_from_the_low_bits_and_key_update() -> None:
    suite = SUITES[CipherSuite.TLS_CHACHA20_POLY1305_SHA256]
    sender, receiver = Dtls13RecordLayer(), Dtls13RecordLayer()
    secret = secret_for(suite, b"c ap traffic")
    records = []
    for epoch in range(EPOCH_HANDSHAKE, EPOCH_HANDSHAKE + 6):  # 2, 3, then KeyUpdates 4..7
        keys_secret = secret if epoch > EPOCH_HANDSHAKE else secret_for(suite, b"hs")
        sender.install_write(epoch, EpochKeys.from_secret(suite, keys_secret))
        receiver.install_read(epoch, EpochKeys.from_secret(suite, keys_secret))
        records.append(sender.protect(APP if epoch > 2 else HS, b"epoch %d" % epoch))
        if epoch > EPOCH_HANDSHAKE:
            secret = next_traffic_secret(suite, secret)
    assert receiver.read_epochs == (4, 5, 6, 7)  # at most four kept
    assert [r.epoch for r in receiver.receive(b"".join(records[2:]))] == [4, 5, 6, 7]
    # Epochs 2 and 3 are gone: their low bits now name epochs 6 and 7, whose keys differ.
    assert receiver.receive(records[0] + records[1]) == []
    assert receiver.drops == {RecordDrop.AUTHENTICATION: 2}


def test_newest_epoch_with_the_low_bits_opens_and_discarded_epochs_drop() -> None:
    # Epochs 2 and 6 share their low bits (RFC 9147 §4.2.2): a record naming them is opened
    # under the newer, whichever was installed first; a discarded epoch is unknown at once.
    suite = SUITES[CipherSuite.TLS_AES_128_GCM_SHA256]
    old, new = EpochKeys.from_secret(suite, b"o" * 32), EpochKeys.from_secret(suite, b"n" * 32)
    senders = {2: Dtls13RecordLayer(), 6: Dtls13RecordLayer()}
    senders[2].install_write(2, old)
    senders[6].install_write(6, new)
    record2, record6 = senders[2].protect(APP, b"two"), senders[6].protect(APP, b"six")
    for order in ((2, 6), (6, 2)):
        receiver = Dtls13RecordLayer()
        for epoch in order:
            receiver.install_read(epoch, old if epoch == 2 else new)
        assert receiver.receive(record6) == [Dtls13Record(6, 0, APP, b"six")]
        assert receiver.receive(record2) == []
        assert receiver.drops == {RecordDrop.AUTHENTICATION: 1}
        receiver.discard_read(6)
        assert receiver.receive(record2) == [Dtls13Record(2, 0, APP, b"two")]
        receiver.discard_read(2)
        assert receiver.receive(record6) == []
        assert receiver.drops[RecordDrop.UNKNOWN_EPOCH] == 1


@pytest.mark.parametrize(
    "order", [(2, 3, 4, 5, 6, 7), (7, 6, 5, 4, 3, 2), (2, 9, 3, 4, 5, 10), (5, 2, 8, 3, 7, 4)]
)
def test_read_epochs_kept_are_the_newest_four_in_any_order(order: tuple[int, ...]) -> None:
    # Installed in ascending order (a connection's usual case) or not, the layer keeps the
    # four newest epochs, and a record naming its epoch by the low bits is opened under
    # the newest kept epoch with those bits (RFC 9147 §4.2.2).
    suite = SUITES[CipherSuite.TLS_AES_128_GCM_SHA256]
    receiver = Dtls13RecordLayer()
    for count, epoch in enumerate(order, 1):
        receiver.install_read(epoch, EpochKeys.from_secret(suite, bytes((epoch,)) * 32))
        assert receiver.read_epochs == tuple(sorted(order[:count])[-MAX_READ_EPOCHS:])
    for epoch in order:
        sender = Dtls13RecordLayer()
        sender.install_write(epoch, EpochKeys.from_secret(suite, bytes((epoch,)) * 32))
        newest = max((e for e in receiver.read_epochs if e % 4 == epoch % 4), default=None)
        got = receiver.receive(sender.protect(APP, b"x"))
        assert [r.epoch for r in got] == ([epoch] if epoch == newest else [])


def test_write_epochs_kept_are_the_newest_four() -> None:
    # Retransmissions go in the epoch of the original (RFC 9147 §4.2.1): the four newest
    # write epochs stay usable, plaintext epoch 0 among them until it is the fifth.
    suite = SUITES[CipherSuite.TLS_AES_128_GCM_SHA256]
    sender = Dtls13RecordLayer()
    installed = [EPOCH_PLAINTEXT]
    for epoch in range(EPOCH_HANDSHAKE, EPOCH_HANDSHAKE + 6):
        sender.install_write(epoch, EpochKeys.from_secret(suite, bytes((epoch,)) * 32))
        installed.append(epoch)
        for old in installed:
            if old in installed[-MAX_WRITE_EPOCHS:]:
                assert sender.protect(HS, b"again", epoch=old)
            else:
                with pytest.raises(StateError):
                    sender.protect(HS, b"again", epoch=old)


def test_unknown_epoch_dropped() -> None:
    sender, _ = pair(epochs=(EPOCH_HANDSHAKE,))
    receiver = Dtls13RecordLayer()
    assert receiver.receive(sender.protect(HS, b"x")) == []
    assert receiver.drops == {RecordDrop.UNKNOWN_EPOCH: 1}


def test_retransmission_in_an_older_write_epoch() -> None:
    sender, receiver = pair()
    old = sender.protect(HS, b"finished again", epoch=EPOCH_HANDSHAKE)
    assert receiver.receive(old) == [Dtls13Record(EPOCH_HANDSHAKE, 0, HS, b"finished again")]
    assert sender.next_write_sequence(EPOCH_HANDSHAKE) == 1
    assert sender.next_write_sequence() == 0  # the application epoch is untouched


# --- anti-replay ---------------------------------------------------------------------------


def test_replayed_record_dropped() -> None:
    sender, receiver = pair()
    record = sender.protect(APP, b"once")
    assert len(receiver.receive(record)) == 1
    assert receiver.receive(record) == []
    assert receiver.drops == {RecordDrop.REPLAY: 1}


def test_window_accepts_reordering_and_rejects_too_old() -> None:
    sender, receiver = pair()
    records = [sender.protect(APP, b"%d" % i) for i in range(100)]
    receiver.receive(records[99])
    assert [r.sequence_number for r in receiver.receive(records[50])] == [50]  # in the window
    assert receiver.receive(records[20]) == []  # 79 behind the highest: left of the window
    assert receiver.receive(records[50]) == []  # seen
    assert receiver.drops == {RecordDrop.REPLAY: 2}


def test_forged_records_do_not_move_the_window() -> None:
    sender, receiver = pair()
    records = [sender.protect(APP, b"%d" % i) for i in range(3)]
    forged = bytearray(records[2])
    forged[-1] ^= 0xFF
    receiver.receive(bytes(forged))
    assert [r.sequence_number for r in receiver.receive(b"".join(records))] == [0, 1, 2]


# --- tampering and invalid records ------------------------------------------------------------


@pytest.mark.parametrize("suite_id", TLS13_SUITES, ids=lambda s: s.name)
def test_every_flipped_bit_position_is_dropped(suite_id: CipherSuite) -> None:
    sender, _ = pair(suite_id, cid=b"\x07")
    record = sender.protect(APP, b"tamper with me")
    for i in range(len(record)):
        for bit in (0x01, 0x80):
            tampered = bytearray(record)
            tampered[i] ^= bit
            _, receiver = pair(suite_id, cid=b"\x07")
            assert receiver.receive(bytes(tampered)) == [], (i, bit)


def test_short_ciphertext_dropped() -> None:
    _, receiver = pair()
    # 001 C=0 S=1 L=1 epoch 3, sequence, length 15, 15 bytes.
    record = bytes((0b00101111,)) + b"\x00\x00" + (15).to_bytes(2, "big") + bytes(15)
    assert receiver.receive(record) == []
    assert receiver.drops == {RecordDrop.SHORT: 1}


def test_truncated_headers_dropped() -> None:
    sender, receiver = pair(cid=b"\x01\x02\x03")
    record = sender.protect(APP, b"whole")
    for cut in range(len(record)):
        assert receiver.receive(record[:cut]) == []
    assert receiver.receive(record)  # the whole one still opens


def test_connection_id_checks() -> None:
    sender, receiver = pair(cid=b"\x01\x02")
    good = sender.protect(APP, b"good")
    other_cid = pair(cid=b"\x09\x09")[0].protect(APP, b"other")
    # A record with a CID not ours: it and the rest of the datagram are discarded (§4).
    assert receiver.receive(other_cid + good) == []
    assert receiver.drops == {RecordDrop.CONNECTION_ID: 1}
    # Without a CID once one is negotiated: dropped; the next record is still read.
    no_cid_sender, _ = pair()
    assert [r.fragment for r in receiver.receive(no_cid_sender.protect(APP, b"x") + good)] == [
        b"good"
    ]
    # A CID nobody negotiated: no way to frame what follows.
    plain_receiver = pair()[1]
    assert plain_receiver.receive(good) == []
    assert plain_receiver.drops == {RecordDrop.CONNECTION_ID: 1}


def seal_inner(layer_keys: EpochKeys, inner: bytes, seq: int = 0) -> bytes:
    """A record of epoch 3 around an arbitrary DTLSInnerPlaintext (16-bit seq, length)."""
    header = bytes((0b00101111,)) + seq.to_bytes(2, "big")
    header += (len(inner) + layer_keys.tag_length).to_bytes(2, "big")
    ciphertext = layer_keys.seal(seq, inner, header)
    mask = layer_keys.record_number.mask(ciphertext[:16])
    masked = bytes(a ^ b for a, b in zip(header[1:3], mask, strict=False))
    return header[:1] + masked + header[3:] + ciphertext


@pytest.mark.parametrize(
    ("inner", "reason"),
    [
        (bytes(20), RecordDrop.INNER_TYPE),  # all padding: no content type
        (b"abc" + bytes((99,)) + bytes(10), RecordDrop.INNER_TYPE),  # unknown type
        (b"abc" + bytes((ContentType.CHANGE_CIPHER_SPEC,)), RecordDrop.INNER_TYPE),
        (bytes((ContentType.HANDSHAKE,)) + bytes(3), RecordDrop.EMPTY),
        (bytes(1 << 14 | 1) + bytes((APP,)), RecordDrop.TOO_LONG),
    ],
)
def test_bad_inner_plaintext_dropped(inner: bytes, reason: RecordDrop) -> None:
    suite = SUITES[CipherSuite.TLS_AES_128_GCM_SHA256]
    secret = secret_for(suite, b"inner")
    receiver = Dtls13RecordLayer()
    receiver.install_read(EPOCH_APPLICATION, EpochKeys.from_secret(suite, secret))
    assert receiver.receive(seal_inner(EpochKeys.from_secret(suite, secret), inner)) == []
    assert receiver.drops == {reason: 1}


def test_ciphertext_outside_its_bounds_is_left_to_the_general_path_which_drops_it() -> None:
    """RFC 9147 §4.2.3 and RFC 8446 §5.2: a DTLSCiphertext body holds at least the 16-byte
    record number sample and at most 2^14 + 256 bytes. The hot path leaves either to the
    general path (nothing counted, nothing marked), which drops it with its reason."""
    _, receiver = pair()
    # 001 C=0 S=1 L=1 epoch 3, a 16-bit sequence number, the length, the body.
    for size, reason in ((15, RecordDrop.SHORT), ((1 << 14) + 257, RecordDrop.TOO_LONG)):
        record = bytes((0b00101111,)) + b"\x00\x00" + size.to_bytes(2, "big") + bytes(size)
        assert receiver.open_application_data(record) is False
        assert receiver.drops.get(reason) is None
        assert receiver.receive(record) == []
        assert receiver.drops[reason] == 1


def test_hot_path_drops_application_data_longer_than_2_14_bytes() -> None:
    """RFC 8446 §5.2: an authenticated DTLSInnerPlaintext whose content is over 2^14 bytes
    is dropped by the hot path as by the general one, the window not moved."""
    suite = SUITES[CipherSuite.TLS_AES_128_GCM_SHA256]
    keys = EpochKeys.from_secret(suite, secret_for(suite, b"inner"))
    receiver = Dtls13RecordLayer()
    receiver.install_read(EPOCH_APPLICATION, keys)
    record = seal_inner(keys, bytes(1 << 14 | 1) + bytes((APP,)))
    assert receiver.open_application_data(record) is True
    assert receiver.drops == {RecordDrop.TOO_LONG: 1}
    assert receiver.highest_sequence(EPOCH_APPLICATION) == -1


def test_connection_id_of_reads_only_a_unified_header_with_its_c_bit() -> None:
    """RFC 9147 §4, §9: routing reads a CID only from a DTLSCiphertext header (001CSLEE)
    with the C bit set; a DTLSPlaintext record or a header without the bit carries none."""
    with_cid, _ = pair(cid=b"\x01\x02")
    without, _ = pair()
    assert connection_id_of(with_cid.protect(APP, b"x"), 2) == b"\x01\x02"
    assert connection_id_of(without.protect(APP, b"x"), 2) is None
    assert connection_id_of(Dtls13RecordLayer().protect(HS, b"hello"), 2) is None


def test_empty_application_data_is_a_record() -> None:
    suite = SUITES[CipherSuite.TLS_AES_128_GCM_SHA256]
    secret = secret_for(suite, b"inner")
    receiver = Dtls13RecordLayer()
    receiver.install_read(EPOCH_APPLICATION, EpochKeys.from_secret(suite, secret))
    record = seal_inner(EpochKeys.from_secret(suite, secret), bytes((APP,)) + bytes(16))
    assert receiver.receive(record) == [Dtls13Record(EPOCH_APPLICATION, 0, APP, b"")]


# --- usage errors ------------------------------------------------------------------------------


def test_usage_errors() -> None:
    suite = SUITES[CipherSuite.TLS_AES_128_GCM_SHA256]
    keys = EpochKeys.from_secret(suite, bytes(32))
    with pytest.raises(UsageError):
        Dtls13RecordLayer(sequence_bits=12)
    layer = Dtls13RecordLayer()
    layer.install_write(EPOCH_APPLICATION, keys)
    with pytest.raises(UsageError):
        layer.install_write(EPOCH_HANDSHAKE, keys)  # epochs only go up
    with pytest.raises(UsageError):
        layer.install_read(EPOCH_PLAINTEXT, keys)
    layer.install_read(EPOCH_APPLICATION, keys)
    with pytest.raises(UsageError):
        layer.install_read(EPOCH_APPLICATION, keys)
    with pytest.raises(UsageError):
        layer.protect(ContentType.CHANGE_CIPHER_SPEC, b"\x01")  # not in DTLS 1.3 (§5)
    with pytest.raises(UsageError):
        layer.protect(APP, b"x", padding=(1 << 14) + 256)


# --- random input never raises -------------------------------------------------------------------


def fuzz_receiver() -> tuple[Dtls13RecordLayer, list[bytes]]:
    sender, receiver = pair(cid=b"\x01")
    sender_short, _ = pair(sequence_bits=8, include_length=False, cid=b"\x01")
    seeds = [
        sender.protect(APP, b"seed"),
        sender.protect(HS, b"seed", epoch=EPOCH_HANDSHAKE),
        sender_short.protect(APP, b"short"),
        Dtls13RecordLayer().protect(HS, b"plain"),
    ]
    return receiver, seeds


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    receiver, _ = fuzz_receiver()
    for record in receiver.receive(data):
        assert isinstance(record, Dtls13Record)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_records_never_raise(data: st.DataObject) -> None:
    receiver, seeds = fuzz_receiver()
    datagram = bytearray(b"".join(data.draw(st.lists(st.sampled_from(seeds), max_size=4))))
    for _ in range(data.draw(st.integers(0, 4))):
        if not datagram:
            break
        i = data.draw(st.integers(0, len(datagram) - 1))
        datagram[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(datagram)))
    receiver.receive(bytes(datagram[:cut]) + data.draw(st.binary(max_size=20)))


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("length", [True, False])
def test_header_first_byte_follows_epoch_form_and_connection_id(bits: int, length: bool) -> None:
    """RFC 9147 §4: ``001CSLEE``, the CID after it; prepared per write epoch, and again when
    the write CID changes (RFC 9147 §9: a new one from the peer)."""
    sender, receiver = pair(sequence_bits=bits, include_length=length)
    form = 0x20 | (0x08 if bits == 16 else 0) | (0x04 if length else 0)
    assert sender.protect(APP, b"x")[0] == form | 3
    assert sender.protect(HS, b"x", epoch=EPOCH_HANDSHAKE)[0] == form | 2
    sender.write_connection_id = b"ab"
    record = sender.protect(APP, b"x")
    assert record[0] == form | 0x10 | 3 and record[1:3] == b"ab"
    record = sender.protect(HS, b"x", epoch=EPOCH_HANDSHAKE)
    assert record[0] == form | 0x10 | 2 and record[1:3] == b"ab"
    receiver.read_connection_id = b"ab"
    assert [r.fragment for r in receiver.receive(record)] == [b"x"]
    sender.write_connection_id = b""
    assert sender.protect(APP, b"x")[0] == form | 3


# --- the per-record hot path (open_application_data) ----------------------------------------


@pytest.mark.parametrize("suite_id", TLS13_SUITES, ids=lambda s: s.name)
@pytest.mark.parametrize("sequence_bits", [8, 16])
@pytest.mark.parametrize("include_length", [True, False])
@pytest.mark.parametrize("cid", [b"", b"\xab\xcd"], ids=["no-cid", "cid"])
def test_hot_path_opens_each_header_form(
    suite_id: CipherSuite, sequence_bits: int, include_length: bool, cid: bytes
) -> None:
    sender, receiver = pair(
        suite_id, sequence_bits=sequence_bits, include_length=include_length, cid=cid
    )
    contents = [b"", b"a", b"hello DTLS 1.3", bytes(range(256)) * 8]
    records = [sender.protect_application_data(content) for content in contents]
    tag_length = SUITES[suite_id].aead.tag_length
    for seq, record, content in zip([3, 2, 1, 0], records[::-1], contents[::-1], strict=True):
        if len(content) + 1 + tag_length < 16:
            # CCM-8: padded up to the record number sample; handed over as a record.
            opened = receiver.open_application_data(record)
            assert opened == Dtls13Record(EPOCH_APPLICATION, seq, APP, content)
        else:
            assert receiver.open_application_data(record) == content
    assert receiver.highest_sequence(EPOCH_APPLICATION) == 3
    assert not receiver.drops
    # Each record once: a copy is dropped after deprotection (RFC 9147 §4.5.1).
    assert receiver.open_application_data(records[1]) is True
    assert receiver.drops == {RecordDrop.REPLAY: 1}


def test_hot_path_counts_a_forged_record_once_and_does_not_move_the_window() -> None:
    sender, receiver = pair()
    records = [sender.protect_application_data(b"%d" % i) for i in range(2)]
    forged = bytearray(records[1])
    forged[-1] ^= 1
    assert receiver.open_application_data(bytes(forged)) is True
    assert receiver.drops == {RecordDrop.AUTHENTICATION: 1}
    assert receiver.auth_failures(EPOCH_APPLICATION) == 1
    assert receiver.highest_sequence(EPOCH_APPLICATION) == -1
    assert receiver.open_application_data(records[1]) == b"1"
    assert receiver.open_application_data(records[0]) == b"0"


def test_hot_path_hands_over_records_of_other_types_deprotected_once() -> None:
    sender, receiver = pair()
    key_update = sender.protect(HS, b"key update")
    padded = sender.protect(APP, b"padded", padding=3)  # its type is not the last byte
    got = [receiver.open_application_data(d) for d in (key_update, padded)]
    assert got == [
        Dtls13Record(EPOCH_APPLICATION, 0, HS, b"key update"),
        Dtls13Record(EPOCH_APPLICATION, 1, APP, b"padded"),
    ]
    assert receiver.open_application_data(key_update) is True  # marked: a replay now
    empty = sender.protect(APP, b"", padding=20)
    assert receiver.open_application_data(empty) == Dtls13Record(EPOCH_APPLICATION, 2, APP, b"")
    assert receiver.drops == {RecordDrop.REPLAY: 1}


def test_hot_path_leaves_everything_else_to_the_general_path_untouched() -> None:
    sender, receiver = pair(epochs=(EPOCH_HANDSHAKE, EPOCH_APPLICATION))
    others = [
        sender.protect(APP, b"handshake epoch", epoch=EPOCH_HANDSHAKE),  # not an app epoch
        sender.protect(APP, b"one") + sender.protect(APP, b"two"),  # two records
        b"\x17\xfe\xfd" + bytes(10),  # DTLSPlaintext
        b"",
    ]
    first, _ = pair(cid=b"\x01\x02")  # a CID the receiver has none of
    others.append(first.protect_application_data(b"cid"))
    short = sender.protect_application_data(b"short")
    others.append(short[:-1])  # its length field no longer matches
    for datagram in others:
        assert receiver.open_application_data(datagram) is False, datagram
    assert not receiver.drops
    assert receiver.highest_sequence(EPOCH_APPLICATION) == -1  # nothing marked
    # A receiver with CIDs leaves a record without one (RFC 9147 §9: once negotiated, every
    # record carries one) to the general path, which drops it.
    _, with_cid = pair(cid=b"\x01\x02")
    assert with_cid.open_application_data(short) is False
    assert with_cid.receive(short) == []
    assert with_cid.drops == {RecordDrop.CONNECTION_ID: 1}
    # The general path then takes each as before: the first two open.
    got = [r.fragment for d in others[:2] for r in receiver.receive(d)]
    assert got == [b"handshake epoch", b"one", b"two"]
