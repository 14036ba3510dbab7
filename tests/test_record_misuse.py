"""One exception for one misuse, whichever record layer (DTLS 1.2's and DTLS 1.3's): a
record asked for in an epoch that has no keys yet is a `StateError` (errors.py: a call in
a state where it makes no sense, as a send before the handshake), never sent in
plaintext; content over 2^14 bytes is a `UsageError` (a bad argument)."""

from __future__ import annotations

import pytest
from test_dtls12_record import SUITES as DTLS12_SUITES
from test_dtls12_record import pair as dtls12_pair

from dtlsgate.crypto.suites import SUITES
from dtlsgate.errors import StateError, UsageError
from dtlsgate.record.dtls12 import RecordLayer
from dtlsgate.record.dtls13 import EPOCH_APPLICATION, Dtls13RecordLayer, EpochKeys
from dtlsgate.wire.enums import CipherSuite, ContentType

APP = ContentType.APPLICATION_DATA
HANDSHAKE = ContentType.HANDSHAKE
LAYERS = ["dtls12", "dtls13"]


def keyless(version: str) -> RecordLayer | Dtls13RecordLayer:
    """A record layer as a connection has it before its handshake: epoch 0 only."""
    return RecordLayer() if version == "dtls12" else Dtls13RecordLayer()


@pytest.mark.parametrize("version", LAYERS)
def test_application_data_before_the_keys_is_a_state_error(version: str) -> None:
    layer = keyless(version)
    with pytest.raises(StateError, match="no keys to protect application data with") as caught:
        layer.protect_application_data(b"data before keys")
    assert not isinstance(caught.value, UsageError)


@pytest.mark.parametrize("version", LAYERS)
@pytest.mark.parametrize("epoch", [1, 3, 7])
def test_a_record_of_an_epoch_without_keys_is_a_state_error(version: str, epoch: int) -> None:
    layer = keyless(version)
    with pytest.raises(StateError, match=f"no keys to write records of epoch {epoch} with"):
        layer.protect(HANDSHAKE, b"finished", epoch=epoch)


def test_content_over_2_14_bytes_is_a_usage_error_in_both() -> None:
    dtls12, _ = dtls12_pair(DTLS12_SUITES[0])  # keyed: epoch 1
    dtls13 = Dtls13RecordLayer()
    keys = EpochKeys.from_secret(SUITES[CipherSuite.TLS_AES_128_GCM_SHA256], bytes(32))
    dtls13.install_write(EPOCH_APPLICATION, keys)
    too_long = bytes((1 << 14) + 1)
    for layer in (dtls12, dtls13):
        with pytest.raises(UsageError):
            layer.protect(APP, too_long)
        with pytest.raises(UsageError):
            layer.protect_application_data(too_long)
    with pytest.raises(UsageError):  # DTLS 1.2's plaintext epoch: over its length field
        RecordLayer().protect(HANDSHAKE, bytes(1 << 16), epoch=0)


@pytest.mark.parametrize("version", LAYERS)
def test_application_data_in_the_plaintext_epoch_is_a_usage_error(version: str) -> None:
    """Epoch 0 has no protection (RFC 5246 §6.1, RFC 9147 §4): application data asked for
    in it is refused, in both layers, not written in plaintext."""
    layer = keyless(version)
    with pytest.raises(UsageError, match="cannot be sent in plaintext"):
        layer.protect(APP, b"secret", epoch=0)
    if version == "dtls12":  # the default epoch before the keys is 0 too
        with pytest.raises(UsageError, match="cannot be sent in plaintext"):
            layer.protect(APP, b"secret")
