"""DTLS 1.2 record protection: nonces per AEAD, anti-replay window, silent drops."""

from __future__ import annotations

import pytest

from dtlsgate.crypto import DefaultProvider, suite_info
from dtlsgate.dtls.record import REPLAY_WINDOW_SIZE, CipherState, RecordLayer, ReplayWindow
from dtlsgate.wire.buffer import Reader
from dtlsgate.wire.enums import CipherSuite
from dtlsgate.wire.record import DtlsRecordHeader

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
    sender.install_write(1, CipherState(info, provider.aead(info.aead, key), iv))
    receiver.install_read(1, CipherState(info, provider.aead(info.aead, key), iv))
    sender.write_epoch = 1
    return sender, receiver


def parse(record: bytes) -> tuple[DtlsRecordHeader, bytes]:
    r = Reader(record)
    header = DtlsRecordHeader.decode(r)
    return header, r.read(header.length)


@pytest.mark.parametrize("suite", SUITES)
def test_protect_open_and_explicit_nonce(suite: CipherSuite) -> None:
    sender, receiver = pair(suite)
    info = suite_info(suite)
    record = sender.protect(23, b"payload")
    header, fragment = parse(record)
    assert (header.epoch, header.sequence_number) == (1, 0)
    # GCM/CCM carry epoch||seq as the 8-byte explicit nonce; ChaCha20 carries none.
    assert len(fragment) == info.record_iv_length + len(b"payload") + info.tag_length
    if info.record_iv_length:
        assert fragment[:8] == (1 << 48).to_bytes(8, "big")
    plain = receiver.open(header, fragment)
    assert plain is not None and plain.data == b"payload"


@pytest.mark.parametrize("suite", SUITES)
def test_tampered_replayed_and_unknown_epoch_records_are_dropped(suite: CipherSuite) -> None:
    sender, receiver = pair(suite)
    header, fragment = parse(sender.protect(23, b"x" * 20))
    flipped = fragment[:-1] + bytes([fragment[-1] ^ 1])
    assert receiver.open(header, flipped) is None
    assert receiver.open(header, fragment) is not None
    assert receiver.open(header, fragment) is None  # replay
    wrong_epoch = DtlsRecordHeader(23, header.version, 2, 0, header.length)
    assert receiver.open(wrong_epoch, fragment) is None
    # The header is authenticated: another content type does not open.
    other_type = DtlsRecordHeader(21, header.version, 1, 1, header.length)
    assert receiver.open(other_type, parse(sender.protect(23, b"y"))[1]) is None


def test_replay_window_slides_over_64_records() -> None:
    w = ReplayWindow()
    for seq in (5, 3, 70):
        assert not w.is_replay(seq)
        w.mark(seq)
    assert w.is_replay(70) and not w.is_replay(69)
    assert w.is_replay(5)  # 65 below the highest: outside the window
    assert not w.is_replay(70 - REPLAY_WINDOW_SIZE + 1)
    w.mark(200)
    assert w.is_replay(70) and not w.is_replay(199)
