"""atheris fuzz target for the DTLS 1.2 handshake after the gate, server and client side,
for long runs outside ``make test``.

    pip install atheris
    python fuzz/fuzz_dtls12.py fuzz/corpus_dtls12 -max_total_time=3600

An input replays one of nine deterministic in-memory handshakes (tests/dtls12_hostile.py
``CONFIGS``; flights split by a 256-byte MTU): certificates; certificates with a client
certificate; ECDHE_PSK; plain PSK with AES-128-CCM-8; a session resumed from a ticket; one
resumed by session ID from the server's cache; raw public keys (RFC 7250) both ways, pinned;
self-signed certificates both ways checked by fingerprint alone (RFC 8122); use_srtp
(DTLS-SRTP, RFC 5764). It replays up to a point, then hands one side a datagram made from
the rest of the input, and finally lets the handshake run on:

    byte 0   which handshake (``NAMES``: the configurations' names, sorted)
    byte 1   after how many delivered datagrams (records, with bit 3 of byte 2)
    byte 2   bit 0: the server (1) or the client (0); bits 1-2: what the payload becomes
             0  the datagram itself (any number of records, or none)
             1  a handshake message of type byte 3, at the side's next message_seq, epoch 0
             2  the same, protected in epoch 1 with the peer's keys once it has them
             3  a record of content type byte 3 protected in epoch 1 (epoch 0 before)
             bit 3: deliver one record per step instead of one datagram (`RecordDriver`),
             which stops between two messages of one datagram too (a PSK client after the
             ServerHello, before the ServerKeyExchange)
    byte 4-  the payload

Mode 2 and 3 reach the code behind record protection (Finished, alerts, application data,
post-handshake messages), which mutated ciphertext never does. The contract checked is the
one tests/test_dtls12_fuzz.py checks: the datagram is dropped silently with every buffer
within its limit, or a `ProtocolError` comes out having sent exactly its alert, or
`AlertReceived`; the rest of the handshake then yields nothing else either. Anything else is
a finding. ``tests/test_fuzz_targets.py`` runs ``test_one_input`` over the corpus.
"""

from __future__ import annotations

import contextlib
import sys
from functools import cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from atheris_main import fuzz
from dtls12_hostile import (
    CONFIGS,
    Driver,
    RecordDriver,
    as_datagram,
    deliver,
    full_run,
    legal_types,
)

from dtlsgate.errors import AlertReceived, ProtocolError
from dtlsgate.wire.record import encode_dtls_record

NAMES = sorted(CONFIGS)
DTLS12 = 0xFEFD
RAW, HANDSHAKE_EPOCH0, HANDSHAKE_EPOCH1, RECORD_EPOCH1 = range(4)
BY_RECORD = 8  # byte 2, bit 3


@cache
def points(name: str, by_record: bool = False) -> int:
    """How many datagrams (``by_record``: records) the unperturbed handshake ``name``
    delivers in all."""
    reference = full_run(CONFIGS[name], RecordDriver if by_record else Driver)
    return len(reference.captured["server"]) + len(reference.captured["client"])


def test_one_input(data: bytes) -> str | None:
    """Run one input; return what happened to the injected datagram (None: not injected)."""
    if len(data) < 4:
        return None
    name = NAMES[data[0] % len(NAMES)]
    by_record = bool(data[2] & BY_RECORD)
    point = data[1] % (points(name, by_record) + 1)
    side = "server" if data[2] & 1 else "client"
    mode = (data[2] >> 1) % 4
    kind, payload = data[3], data[4:]
    driver = (RecordDriver if by_record else Driver)(CONFIGS[name]).run(point)
    conn, peer = driver.side(side)
    if conn is None or conn.closed:
        return None
    peer_has_keys = peer is not None and peer.record_layer.can_write(1)
    illegal = False
    if mode == RAW:
        datagram = payload
    elif mode in (HANDSHAKE_EPOCH0, HANDSHAKE_EPOCH1):
        epoch = 1 if mode == HANDSHAKE_EPOCH1 and peer_has_keys else 0
        datagram = as_datagram(conn, peer, kind, payload, epoch)
        # As in tests/test_dtls12_fuzz.py: a type the state table does not allow must be
        # refused with unexpected_message (after the handshake, only protected ones reach it).
        illegal = kind not in legal_types(conn) and (not conn.handshake_complete or epoch == 1)
    elif peer_has_keys:
        assert peer is not None
        datagram = peer.record_layer.protect(kind, payload[:0x3FFF], 1)
    else:
        datagram = encode_dtls_record(kind, DTLS12, 0, 7000, payload[:0xFFFF])
    outcome = deliver(conn, peer, datagram, illegal_type=illegal)
    # The injected datagram may have spoiled the handshake: an alert then, never a crash.
    with contextlib.suppress(ProtocolError, AlertReceived):
        driver.finish()
    return outcome


def seeds() -> list[bytes]:
    """Inputs that deliver, at every point of every handshake, the datagram that comes next
    (as it is, mode 0), and each handshake message it carries again in mode 1 and 2: real
    records and messages for the fuzzer to mutate."""
    out = []
    for index, name in enumerate(NAMES):
        for by_record in (False, True):
            driver = (RecordDriver if by_record else Driver)(CONFIGS[name])
            for point in range(points(name, by_record)):
                to_server = bool(driver.to_server)
                datagram = (driver.to_server or driver.to_client)[0]
                side = (1 if to_server else 0) | (BY_RECORD if by_record else 0)
                out.append(bytes((index, point, side | RAW << 1, 0)) + datagram)
                if datagram[0] == 22 and datagram[3:5] == b"\x00\x00" and len(datagram) >= 25:
                    body = datagram[25 : 13 + int.from_bytes(datagram[11:13], "big")]
                    for mode in (HANDSHAKE_EPOCH0, HANDSHAKE_EPOCH1):
                        out.append(bytes((index, point, side | mode << 1, datagram[13])) + body)
                driver.step()
    return out


def main() -> None:
    fuzz(
        test_one_input,
        seeds,
        warm_up=lambda: [points(name, by_record) for name in NAMES for by_record in (False, True)],
    )


if __name__ == "__main__":
    main()
