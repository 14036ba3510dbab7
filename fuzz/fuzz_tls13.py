"""atheris fuzz target for the TLS 1.3 engine (our client and server over a stream), for
long runs outside ``make test``.

    pip install atheris
    python fuzz/fuzz_tls13.py /tmp/corpus_tls13 -max_total_time=3600

An input replays one of the deterministic in-memory handshakes of tests/tls13_hostile.py
(plain with X25519MLKEM768, with a HelloRetryRequest, with client certificates, resumed, with
post-handshake authentication (a CertificateRequest after the handshake), with both
certificates compressed (CompressedCertificate, RFC 8879), with an external PSK in
psk_dhe_ke and in psk_ke mode, with raw public keys both ways (RFC 7250), with self-signed
certificates both ways checked by fingerprint alone (RFC 8122), and one per key exchange
group: x448, secp521r1, ffdhe2048, the other ML-KEM groups, and HelloRetryRequests to
ffdhe2048 and X25519MLKEM768) until one side has received a number of records, then gives
that side data made from the input, then the record that really came next:

    byte 0   which handshake (``NAMES``: their names, sorted)
    byte 1   bit 0: the server (1) or the client (0); bits 1-2: what the payload becomes
             0  bytes on the stream as they are (any records, or parts of them)
             1  a record of content type byte 3, protected as the peer would now
             2  a handshake message of type byte 3 in such a record
             3  the record that came next, its content XORed with the payload
    byte 2   after how many records received
    byte 4-  the payload

The contract is tests/test_tls13_fuzz.py's: each delivery succeeds, or raises a
`ProtocolError` with the connection closed and an alert, or `AlertReceived`. Anything else
is a finding. ``tests/test_fuzz_targets.py`` runs ``test_one_input`` over the seeds.
"""

from __future__ import annotations

import copy
import sys
from functools import cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from atheris_main import fuzz
from tls13_hostile import SCENARIOS, at_state, count_records, feed, inject

from dtlsgate.connection.stream import TlsConnection

NAMES = sorted(SCENARIOS)
RAW, RECORD, HANDSHAKE, XORED = range(4)


@cache
def points(name: str, target: str) -> int:
    """How many records ``target`` ("c" or "s") receives in the handshake ``name``."""
    return count_records(name, target)


def test_one_input(data: bytes) -> None:
    if len(data) < 4:
        return
    name = NAMES[data[0] % len(NAMES)]
    target = "s" if data[1] & 1 else "c"
    mode = (data[1] >> 1) % 4
    k = data[2] % (points(name, target) + 1)
    kind, payload = data[3], data[4:]
    conn, following = at_state(name, target, k)
    if mode == RAW:
        injected = payload
    elif mode == RECORD:
        injected = inject(conn, kind, payload[:0x4000])
    elif mode == HANDSHAKE:
        body = payload[:0x3FF0]
        injected = inject(conn, 22, bytes((kind,)) + len(body).to_bytes(3, "big") + body)
    elif following is None:
        return
    else:
        injected = xored(conn, following, payload)
    feed(conn, injected)
    if following is not None and not conn.closed:
        feed(conn, following)


def xored(conn: TlsConnection, record: bytes, mask: bytes) -> bytes:
    """``record`` with its content XORed with ``mask``: re-protected with the keys the
    connection reads with, so that the change reaches the handshake, not only the AEAD."""
    reader = conn.record_layer.read
    if reader is None or record[0] != 23:
        content = bytearray(record[5:])
        for i, b in enumerate(mask[: len(content)]):
            content[i] ^= b
        return record[:5] + bytes(content)
    content_type, content = copy.copy(reader).open(record[:5], record[5:])
    changed = bytearray(content)
    for i, b in enumerate(mask[: len(changed)]):
        changed[i] ^= b
    return inject(conn, content_type, bytes(changed))


def seeds() -> list[bytes]:
    """Every record of every handshake, at the point it is received, in mode 0 (as it
    is) and mode 3 (with an all-zero mask: the record itself)."""
    out = []
    for index, name in enumerate(NAMES):
        for side, target in ((0, "c"), (1, "s")):
            for k in range(points(name, target)):
                _, following = at_state(name, target, k)
                assert following is not None
                out.append(bytes((index, side | RAW << 1, k, 0)) + following)
                out.append(bytes((index, side | XORED << 1, k, 0)) + bytes(8))
    return out


def main() -> None:
    fuzz(test_one_input, seeds, warm_up=lambda: [points(n, side) for n in NAMES for side in "cs"])


if __name__ == "__main__":
    main()
