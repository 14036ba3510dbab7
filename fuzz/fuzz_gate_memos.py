"""atheris fuzz target, differential: the gates' remembered answers against fresh gates', for
long runs outside ``make test``.

    pip install atheris
    python fuzz/fuzz_gate_memos.py /tmp/corpus_memos -max_total_time=3600

The stateless gates answer most ClientHellos from a peek and from what they remember: the
DTLS 1.2 gate the offers it admitted (`Gate`), the DTLS 1.3 gate the server's choice per
offer and the ClientHello2s it admitted (`DtlsGate13`), the TLS 1.3 stream gate the same
(`StatelessGate`). A gate that remembers must judge every hello as a gate that has seen
nothing, which decodes everything in full: the same reply bytes, admission, drop reason or
alert. ``tests/`` pins this for a few hundred mutations each; this target runs it long, and
its two long-lived gates go on remembering whatever the inputs before got them to remember
(an attacker's sequence, not one mutation of a warm gate).

An input is one of the real hellos below (byte 0) changed by edits (the rest of the input,
four bytes each: what, where (two bytes), the byte), its lengths made to fit again unless
byte 0's top bit is set. It is judged by the long-lived gate and by a fresh gate on the same
config; their results' reprs must be equal. The hellos: ClientHello1 and ClientHello2 (with
the cookie of the gate's reply) of our DTLS 1.2, DTLS 1.3 and TLS 1.3 clients of several
kinds, and the DTLS 1.2 ClientHellos of `openssl s_client` and `gnutls-cli` in
``fuzz/corpus`` with cookies spliced in.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from atheris_main import fuzz
from helpers import CLIENT, NOW, SERVER, client_config, server_config
from test_tls13_stateless_peek import KINDS

from dtlsgate.config import ServerConfig
from dtlsgate.connection.datagram import DtlsClientConnection
from dtlsgate.connection.datagram13 import Dtls13ClientConnection
from dtlsgate.connection.stream import ClientConnection
from dtlsgate.crypto import DeterministicProvider
from dtlsgate.crypto.suites import CipherSuite
from dtlsgate.gate.datagram import Gate
from dtlsgate.gate.results import Reply
from dtlsgate.gate.stream import StatelessGate
from dtlsgate.wire.enums import NamedGroup

PSK = {b"id": b"k" * 32}
DTLS12_ONLY = (0xFEFD,)
DATAGRAM_CONFIG = server_config(psk=PSK)
DTLS12_CONFIG = server_config(psk=PSK, dtls_versions=DTLS12_ONLY)
STREAM_CONFIG = server_config(stateless=True, psk=PSK)
RAW = 0x80  # byte 0's top bit: the edited bytes as they are, lengths not made to fit

DTLS13_KINDS: list[dict[str, object]] = [
    {},
    {"groups": (NamedGroup.secp384r1, NamedGroup.x25519)},
    {"cipher_suites": (CipherSuite.TLS_AES_128_GCM_SHA256, CipherSuite.TLS_AES_256_GCM_SHA384)},
    {"alpn_protocols": (b"coap", b"h2"), "server_name": "example.com"},
    {"psk_identity": b"id", "psk": b"k" * 32},
    {"post_handshake_auth": True, "certificate_compression": ("zlib",)},
]
DTLS12_KINDS: list[dict[str, object]] = [
    {"dtls_versions": DTLS12_ONLY},
    {"dtls_versions": DTLS12_ONLY, "groups": (NamedGroup.x25519,)},
    {"dtls_versions": DTLS12_ONLY, "alpn_protocols": (b"coap",)},
    {"dtls_versions": DTLS12_ONLY, "psk_identity": b"id", "psk": b"k" * 32},
]
# The TLS 1.3 clients: the stream gate's own test's kinds.
TLS_KINDS = KINDS


def _datagram_hellos(
    make: Callable[[dict[str, object], bytes], DtlsClientConnection | Dtls13ClientConnection],
    kind: dict[str, object],
    config: ServerConfig,
) -> list[bytes]:
    """A datagram client's ClientHello1 and its ClientHello2 after a gate's reply (the
    reply's cookie verifies at any gate on ``config``, from CLIENT at NOW)."""
    hellos = []
    for seed in (b"one", b"two"):
        client = make(kind, seed)
        client.connect(NOW)
        ((hello1, _),) = client.datagrams_to_send()
        reply = Gate(config).receive(hello1, CLIENT, NOW)
        assert isinstance(reply, Reply), reply
        client.receive(reply.data, SERVER, NOW)
        ((hello2, _),) = client.datagrams_to_send()
        hellos += [hello1, hello2]
    return hellos


def _dtls13_client(kind: dict[str, object], seed: bytes) -> Dtls13ClientConnection:
    config = client_config(provider=DeterministicProvider(seed), **kind)  # type: ignore[arg-type]
    return Dtls13ClientConnection(config, SERVER)


def _dtls12_client(kind: dict[str, object], seed: bytes) -> DtlsClientConnection:
    config = client_config(provider=DeterministicProvider(seed), **kind)  # type: ignore[arg-type]
    return DtlsClientConnection(config, SERVER)


def _stream_hellos(kind: dict[str, object]) -> list[bytes]:
    hellos = []
    for seed in (b"one", b"two"):
        config = client_config(provider=DeterministicProvider(seed), **kind)  # type: ignore[arg-type]
        client = ClientConnection(config)
        client.start()
        hello1 = client.data_to_send()
        reply = StatelessGate(STREAM_CONFIG).receive(hello1, CLIENT, NOW)
        assert isinstance(reply, Reply), reply
        client.receive_data(reply.data, NOW)
        hellos += [hello1, client.data_to_send()]
    return hellos


def _captured_hellos() -> list[bytes]:
    """The captured DTLS 1.2 ClientHellos of OpenSSL and GnuTLS, each as it is and with a
    cookie of the DTLS 1.2 gate spliced in (`fuzz_gate.with_valid_cookie`, on its own gate:
    the same cookie key, so the cookie verifies here too)."""
    import fuzz_gate

    hellos = []
    for path in sorted((Path(__file__).resolve().parent / "corpus").glob("*.bin")):
        data = path.read_bytes()
        hellos += [data, fuzz_gate.with_valid_cookie(data)]
    return hellos


def samples() -> list[tuple[str, bytes]]:
    """(which gate, hello) for every real hello the inputs start from."""
    out = [
        ("datagram", h)
        for k in DTLS13_KINDS
        for h in _datagram_hellos(_dtls13_client, k, DATAGRAM_CONFIG)
    ]
    for kind in DTLS12_KINDS:
        hellos = _datagram_hellos(_dtls12_client, kind, DTLS12_CONFIG)
        out += [("datagram", h) for h in hellos] + [("dtls12", h) for h in hellos]
    out += [("dtls12", h) for h in _captured_hellos()]
    out += [("stream", h) for kind in TLS_KINDS for h in _stream_hellos(kind)]
    return out


FRESH: dict[str, Callable[[], Gate | StatelessGate]] = {
    "datagram": lambda: Gate(DATAGRAM_CONFIG),
    "dtls12": lambda: Gate(DTLS12_CONFIG),
    "stream": lambda: StatelessGate(STREAM_CONFIG),
}
SAMPLES = samples()
# The long-lived gates, warmed with every real hello of their kind.
WARM = {name: make() for name, make in FRESH.items()}
for _name, _hello in SAMPLES:
    WARM[_name].receive(_hello, CLIENT, NOW)
compared = {"alike": 0}


def edited(hello: bytes, edits: bytes, dtls: bool, fit: bool) -> bytes:
    """``hello`` with ``edits`` applied to its first record (after a TLS compatibility
    ChangeCipherSpec, if any), headers included: for each four bytes, set (0), insert (1) or
    delete (2) one byte at a position (two bytes, modulo the record's length). With ``fit``
    the record's length and its handshake message's (and, in DTLS, the fragment's: the
    message whole at its offset) are then made to fit the record as edited; the records
    after it are kept as they were."""
    at = 0 if dtls or hello[0] != 20 else 6
    header = 13 if dtls else 5
    end = at + header + int.from_bytes(hello[at + header - 2 : at + header], "big")
    record = bytearray(hello[at:end])
    for i in range(0, len(edits) - 3, 4):
        what, value = edits[i] % 3, edits[i + 3]
        where = int.from_bytes(edits[i + 1 : i + 3], "big") % (len(record) + (what == 1) or 1)
        if what == 1:
            record.insert(where, value)
        elif record and what == 0:
            record[where] = value
        elif record:
            del record[where]
    message_at = header + (12 if dtls else 4)
    if fit and len(record) >= message_at:
        record[header - 2 : header] = (len(record) - header).to_bytes(2, "big")
        length = (len(record) - message_at).to_bytes(3, "big")
        record[header + 1 : header + 4] = length
        if dtls:
            record[header + 9 : header + 12] = length
    return hello[:at] + bytes(record) + hello[end:]


def test_one_input(data: bytes) -> None:
    if len(data) < 1:
        return
    name, hello = SAMPLES[(data[0] & ~RAW) % len(SAMPLES)]
    changed = edited(hello, data[1:], dtls=name != "stream", fit=not data[0] & RAW)
    warm = WARM[name]
    got = repr(warm.receive(changed, CLIENT, NOW))
    expected = repr(FRESH[name]().receive(changed, CLIENT, NOW))
    reassembly = warm.reassembly if isinstance(warm, Gate) else None
    if reassembly is not None and len(reassembly) > 0:
        # A fragment of a cookie-less DTLS 1.3 ClientHello is held per address, and every
        # input comes from one address: the long-lived gate's table is emptied (as its
        # entries' deadline passing would), so that the next input meets an empty table
        # as the fresh gate does. What the gates remember stays.
        reassembly._expire(NOW + 3600)
    if got != expected:
        raise AssertionError(
            f"a remembering {name} gate judged\n{changed.hex()}\nas {got}\nnot {expected}"
        )
    compared["alike"] += 1


def seeds() -> list[bytes]:
    """Each real hello unchanged, and a few edits of each."""
    out = []
    for i in range(len(SAMPLES)):
        out += [bytes((i,)), bytes((i, 0, 0, 2, 0x7F)), bytes((i | RAW, 1, 0, 0, 0))]
    return out


def main() -> None:
    fuzz(test_one_input, seeds, warm_up=lambda: [test_one_input(s) for s in seeds()])


if __name__ == "__main__":
    main()
