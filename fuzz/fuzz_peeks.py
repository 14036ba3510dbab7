"""atheris fuzz target, differential: the gates' ClientHello peeks against the full decoders,
for long runs outside ``make test``.

    pip install atheris
    python fuzz/fuzz_peeks.py /tmp/corpus_peeks -max_total_time=1800

The gates read a ClientHello by fixed offsets (`peek_client_hello_record` and
`peek_client_hello` for DTLS 1.2, `peek_client_hello13` for DTLS 1.3 and TLS 1.3) and
decode it in full only when they must. Wherever the full decoders accept a ClientHello the
peeks must read the same fields, and the DTLS 1.2 peeks must refuse what the full decoder
refuses. The checks are the tests' own (`tests/test_client_hello_peek.py`'s
`record_agrees` and `agree`, `tests/test_client_hello13_peek.py`'s
`check_against_full_decoders`); this target gives them inputs for hours instead of a
thousand.

An input is one of `fuzz_gate_memos`' 80 real hellos (byte 0), edited as that target edits
them (the rest of the input; lengths made to fit unless byte 0's top bit is set), or, with
byte 0 of 0xFF, the rest of the input as a datagram of its own. A DTLS datagram goes to the
DTLS 1.2 record peek; the body of its first record (or of a TLS record) to the DTLS 1.2 body
peek and to the DTLS or TLS form of `peek_client_hello13`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from atheris_main import fuzz
from fuzz_gate_memos import RAW, SAMPLES, edited
from test_client_hello13_peek import check_against_full_decoders
from test_client_hello_peek import agree, record_agrees

OWN = 0xFF  # byte 0: the rest of the input is the datagram, no real hello under it


def test_one_input(data: bytes) -> None:
    if not data:
        return
    if data[0] == OWN:
        datagram, dtls = data[1:], True
    else:
        name, hello = SAMPLES[(data[0] & ~RAW) % len(SAMPLES)]
        dtls = name != "stream"
        datagram = edited(hello, data[1:], dtls=dtls, fit=not data[0] & RAW)
    if dtls:
        record_agrees(datagram)
        body = datagram[25 : 13 + int.from_bytes(datagram[11:13], "big")]
        agree(body)
    else:
        at = 6 if datagram[:1] == b"\x14" else 0  # after a compatibility ChangeCipherSpec
        body = datagram[at + 9 : at + 5 + int.from_bytes(datagram[at + 3 : at + 5], "big")]
    # Only where the full decoders accept it is the DTLS 1.3 / TLS 1.3 peek asked at all
    # (it may answer a ClientHello they refuse: the gate decodes those in full later).
    check_against_full_decoders(body, dtls)


def seeds() -> list[bytes]:
    out = [bytes((i,)) for i in range(len(SAMPLES))]
    out += [bytes((i, 0, 0, 30, 0)) for i in range(len(SAMPLES))]
    out.append(bytes((OWN,)) + SAMPLES[0][1])
    return out


def main() -> None:
    fuzz(test_one_input, seeds, warm_up=lambda: [test_one_input(s) for s in seeds()])


if __name__ == "__main__":
    main()
