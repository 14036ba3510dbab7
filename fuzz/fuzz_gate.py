"""atheris fuzz target for the gate and the wire codecs, for long runs outside ``make test``.

    pip install atheris
    python fuzz/fuzz_gate.py fuzz/corpus -max_total_time=3600

Each input is judged by the gate twice: as it is, and as a second ClientHello carrying a
valid cookie (the first 2 bytes choose where the rest is spliced in), so the Admit path and
the full ClientHello codec are reached too. Any exception other than the expected results
is a finding. ``tests/test_fuzz_targets.py`` runs ``test_one_input`` over the corpus.
"""

from __future__ import annotations

import contextlib
import sys

from dtlsgate.config import ServerConfig
from dtlsgate.errors import ProtocolError
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.gate.datagram import Admit, Drop, Gate, Reply
from dtlsgate.wire.buffer import Reader
from dtlsgate.wire.extensions import Context, decode_extensions
from dtlsgate.wire.messages import ClientHello, HelloVerifyRequest, ServerHello

PEER = ("192.0.2.9", 5684)
NOW = 2_000_000_000.0
GATE = Gate(ServerConfig(cookie_jar=CookieJar(bytes(32))))


def judge(data: bytes) -> Reply | Admit | Drop:
    result = GATE.receive(data, PEER, NOW)
    if type(result) not in (Reply, Admit, Drop):
        raise AssertionError(f"gate returned {result!r}")
    if isinstance(result, Reply) and len(result.data) > len(data):
        raise AssertionError("reply larger than its datagram")
    return result


def with_valid_cookie(data: bytes) -> bytes:
    """``data`` with the cookie field of its ClientHello (if it has one that parses far
    enough) replaced by a cookie the gate minted for it."""
    first = judge(data)
    if not isinstance(first, Reply):
        return data
    cookie = first.data[-21:]
    sid_at = 13 + 12 + 2 + 32
    cookie_at = sid_at + 1 + data[sid_at]
    old = data[cookie_at]
    body = data[:cookie_at] + bytes((len(cookie),)) + cookie + data[cookie_at + 1 + old :]
    grow = len(cookie) - old
    # Fix the record and handshake lengths for the new cookie length.
    record_length = int.from_bytes(data[11:13], "big") + grow
    length = int.from_bytes(data[14:17], "big") + grow
    fragment_length = int.from_bytes(data[22:25], "big") + grow
    if not (0 <= record_length < 1 << 16 and 0 <= length < 1 << 24 and fragment_length >= 0):
        return data
    return (
        body[:11]
        + record_length.to_bytes(2, "big")
        + body[13:14]
        + length.to_bytes(3, "big")
        + body[17:22]
        + fragment_length.to_bytes(3, "big")
        + body[25:]
    )


def test_one_input(data: bytes) -> None:
    judge(data)
    judge(with_valid_cookie(data))
    for decode in (
        lambda b: ClientHello.decode(b, dtls=True),
        lambda b: ClientHello.decode(b, dtls=False),
        lambda b: ServerHello.decode(b),
        HelloVerifyRequest.decode,
        lambda b: decode_extensions(Reader(b), Context.ENCRYPTED_EXTENSIONS),
    ):
        with contextlib.suppress(ProtocolError):
            decode(data)


def main() -> None:
    import atheris  # type: ignore[import-not-found]

    atheris.instrument_all()  # coverage feedback for the already imported dtlsgate modules
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
