"""DTLS 1.2 record protection: nonces per AEAD, anti-replay window, silent drops."""

from __future__ import annotations

import pytest

from dtlsgate.crypto import DefaultProvider, suite_info
from dtlsgate.errors import StateError
from dtlsgate.record.dtls12 import REPLAY_WINDOW_SIZE, CipherState, RecordLayer, ReplayWindow
from dtlsgate.wire.enums import CipherSuite
from dtlsgate.wire.record import DtlsRecord, split_dtls_records

SUITES = [
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    CipherSuite.TLS_PSK_WITH_AES_128_CCM_8,
    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CCM,
]


def pair(suite: CipherSuite) -> tuple[RecordLayer, RecordLayer]:
    info = suite_info(suite)
    provider = DefaultProvider()
    key = bytes(range(info.key_length))
    iv = bytes(range(100, 100 + info.fixed_iv_length))
    sender, receiver = RecordLayer(), RecordLayer()
    sender.install_write(1, CipherState(info, provider.aead_primitive(info.aead, key), iv))
    receiver.install_read(1, CipherState(info, provider.aead_primitive(info.aead, key), iv))
    sender.write_epoch = 1
    return sender, receiver


def parse(datagram: bytes) -> DtlsRecord:
    (record,) = split_dtls_records(datagram)
    return record


def with_(record: DtlsRecord, **changes: object) -> DtlsRecord:
    return record._replace(**changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("suite", SUITES)
def test_protect_open_and_explicit_nonce(suite: CipherSuite) -> None:
    sender, receiver = pair(suite)
    info = suite_info(suite)
    record = parse(sender.protect(23, b"payload"))
    assert (record.epoch, record.sequence_number) == (1, 0)
    # GCM/CCM carry epoch||seq as the 8-byte explicit nonce; ChaCha20 carries none.
    fragment = record.fragment
    assert len(fragment) == info.record_iv_length + len(b"payload") + info.tag_length
    if info.record_iv_length:
        assert fragment[:8] == (1 << 48).to_bytes(8, "big")
    assert receiver.open(record) == b"payload"


def test_a_record_of_an_epoch_without_keys_is_refused_not_sent_in_plaintext() -> None:
    records = RecordLayer()
    assert not records.can_write(1)
    with pytest.raises(StateError):
        records.protect(22, b"finished", 1)
    flight: list[bytes] = []
    with pytest.raises(StateError):
        records.write_handshake(flight, b"finished", 1)
    assert flight == []
    assert records.next_write_sequence(1) == 0  # nothing was used up
    sender, _ = pair(SUITES[0])
    assert len(sender.protect(22, b"finished", 1)) > 13 + len(b"finished")  # keyed: sealed


@pytest.mark.parametrize("suite", SUITES)
def test_tampered_replayed_and_unknown_epoch_records_are_dropped(suite: CipherSuite) -> None:
    sender, receiver = pair(suite)
    record = parse(sender.protect(23, b"x" * 20))
    fragment = record.fragment
    flipped = fragment[:-1] + bytes([fragment[-1] ^ 1])
    assert receiver.open(with_(record, fragment=flipped)) is None
    assert receiver.open(record) is not None
    assert receiver.open(record) is None  # replay
    assert receiver.open(with_(record, epoch=2, sequence_number=0)) is None
    # The header is authenticated: another content type does not open.
    other = parse(sender.protect(23, b"y"))
    assert receiver.open(with_(other, content_type=21)) is None


def test_replay_window_accept_checks_and_marks_in_one() -> None:
    w = ReplayWindow()
    seqs = (5, 3, 70, 5, 69, 69, 6, 200, 137, 136)
    assert [w.accept(s) for s in seqs] == [
        *(True, True, True),
        False,  # 65 below the highest: outside the window
        *(True, False),  # in the window, then its replay
        False,  # 64 below: outside
        *(True, True),
        False,  # 64 below 200
    ]
    assert w.is_replay(137) and not w.is_replay(138)


def test_replay_window_slides_over_64_records() -> None:
    w = ReplayWindow()
    for seq in (5, 3, 70):
        assert not w.is_replay(seq)
        w.accept(seq)
    assert w.is_replay(70) and not w.is_replay(69)
    assert w.is_replay(5)  # 65 below the highest: outside the window
    assert not w.is_replay(70 - REPLAY_WINDOW_SIZE + 1)
    w.accept(200)
    assert w.is_replay(70) and not w.is_replay(199)


def test_plaintext_record_longer_than_2_14_bytes_is_dropped() -> None:
    """RFC 6347 §4.1 (RFC 5246 §6.2.1): a DTLSPlaintext fragment is at most 2^14 bytes; an
    epoch-0 record over that is dropped silently, one of exactly that length is read."""
    records = RecordLayer()
    largest = DtlsRecord(22, 0xFEFD, 0, 7, bytes(1 << 14))
    assert records.open(largest) == bytes(1 << 14)
    assert records.open(with_(largest, fragment=bytes((1 << 14) + 1))) is None
