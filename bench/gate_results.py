"""Every `Gate.judge` result over real DTLS 1.3 ClientHellos and mutations, to compare trees.

Seven ClientHellos from our DTLS 1.3 client (default; other groups; other suites; ALPN and
server_name; an external PSK; post_handshake_auth and certificate compression; a record
size limit and one group), each with 400 seeded byte mutations (set, cut, insert), judged
by five gates (default; P-256 preferred, so the HRR asks for a share; ALPN; an external
PSK; DTLS 1.3 only), all with one fixed cookie key: 14,035 results. Then the
HelloVerifyRequest path: the DTLS 1.2 ClientHellos of ``openssl s_client`` and
``gnutls-cli`` (captured), each with 400 seeded mutations anywhere in the datagram (its
record and handshake headers too), judged by the default gate from one address; for each
one answered with a HelloVerifyRequest, its ClientHello2 (the cookie put in, message_seq
and record sequence number 1) judged as well (an `Admit`, or why not): 1,308 more results,
456 of them admits. Then the TLS 1.3 stream gate (`StatelessGate`, OpenSSL's
``SSL_stateless``): eight ClientHellos from our TLS 1.3 client (default; other groups;
other suites; ALPN and server_name; an external PSK; post_handshake_auth and certificate
compression; a record size limit and one group; no compatibility mode, so an empty
session_id), each with MUTATIONS seeded mutations of its record (set, cut, insert), judged
by five stream gates (default; P-256 preferred; ALPN; an external PSK; an application
cookie) from distinct addresses (`refitted`: mostly the message body mutated, its
lengths made to fit); and for each base a gate answers with a
HelloRetryRequest, the client's ClientHello2 judged twice and then with a quarter of
MUTATIONS mutations, from the client's address (`StreamAdmit`, `Refuse` or `Drop`). Writes
their ``repr`` as a JSON list to OUT and prints its SHA-256 (and the stream gate's part's
alone); run it on two trees (``PYTHONPATH=old/src``) and diff the lists.

Usage: python bench/gate_results.py OUT [MUTATIONS]
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers import NOW, SERVER, client_config, server_config

from dtlsgate import CookieJar, Gate
from dtlsgate.connection.datagram13 import Dtls13ClientConnection
from dtlsgate.connection.stream import ClientConnection
from dtlsgate.gate.results import Reply
from dtlsgate.gate.stream import StatelessGate


def hello(**kwargs: object) -> bytes:
    client = Dtls13ClientConnection(client_config(**kwargs), SERVER)  # type: ignore[arg-type]
    client.connect(NOW)
    ((datagram, _),) = client.datagrams_to_send()
    return datagram


def main() -> None:
    out = sys.argv[1]
    mutations = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    bases = [
        hello(),
        hello(groups=(23, 29)),
        hello(groups=(29, 23, 24), cipher_suites=(0x1302, 0x1301, 0x1303)),
        hello(alpn_protocols=(b"coap", b"h2"), server_name="example.com"),
        hello(psk_identity=b"id", psk=b"k" * 32),
        hello(key_type="ed25519", post_handshake_auth=True, certificate_compression=("zlib",)),
        hello(record_size_limit=1024, groups=(24,)),
    ]
    rng = random.Random(13)
    inputs = []
    for base in bases:
        inputs.append(base)
        # mostly after the record and handshake headers
        inputs.extend(mutated(base, rng, 25) for _ in range(mutations))
    key = bytes(32)
    configs = [
        server_config(cookie_jar=CookieJar(key)),
        server_config(cookie_jar=CookieJar(key), groups=(23, 29)),
        server_config(cookie_jar=CookieJar(key), alpn_protocols=(b"coap",)),
        server_config(cookie_jar=CookieJar(key), psk={b"id": b"k" * 32}),
        server_config(cookie_jar=CookieJar(key), dtls_versions=(0xFEFC,)),
    ]
    results = []
    for config in configs:
        gate = Gate(config)
        for i, data in enumerate(inputs):
            results.append(repr(gate.judge(data, ("10.0.0.1", 1000 + i), NOW)))
    results += dtls12_results(key, rng, mutations)
    stream = stream_results(key, random.Random(14), mutations)
    results += stream
    Path(out).write_text(json.dumps(results))
    digest = hashlib.sha256("\n".join(results).encode()).hexdigest()
    print(f"{len(bases)} hellos, {len(inputs)} inputs, {len(results)} results, sha256 {digest}")
    digest = hashlib.sha256("\n".join(stream).encode()).hexdigest()
    print(f"of them the stream gate's: {len(stream)} results, sha256 {digest}")


def mutated(base: bytes, rng: random.Random, at_least: int) -> bytes:
    """``base`` with one byte set, one to three cut or one or two inserted, mostly at or
    after ``at_least``."""
    data = bytearray(base)
    kind = rng.randrange(3)
    at = rng.randrange(at_least, len(data))
    if rng.random() < 0.1:
        at = rng.randrange(len(data))
    if kind == 0:
        data[at] = rng.randrange(256)
    elif kind == 1:
        del data[at : at + rng.randrange(1, 4)]
    else:
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3)))
    return bytes(data)


def refitted(record: bytes, rng: random.Random) -> bytes:
    """A TLS record of one ClientHello (after a compatibility ChangeCipherSpec or not) with
    its message's body `mutated`, the handshake and record headers' lengths made to fit:
    the body's own framing is what is judged. Nine times in ten; else the record mutated as
    it is, headers and all."""
    if rng.random() < 0.1:
        return mutated(record, rng, 0)
    ccs = record[:6] if record[0] == 20 else b""
    body = mutated(record[len(ccs) + 9 :], rng, 0)
    message = record[len(ccs) + 5 : len(ccs) + 6] + len(body).to_bytes(3, "big") + body
    return ccs + record[len(ccs) : len(ccs) + 3] + len(message).to_bytes(2, "big") + message


def stream_results(key: bytes, rng: random.Random, mutations: int) -> list[str]:
    """The TLS 1.3 stream gate's results (module docstring)."""
    client_kwargs: list[dict[str, object]] = [
        {},
        {"groups": (23, 29)},
        {"groups": (29, 23, 24), "cipher_suites": (0x1302, 0x1301, 0x1303)},
        {"alpn_protocols": (b"coap", b"h2"), "server_name": "example.com"},
        {"psk_identity": b"id", "psk": b"k" * 32},
        {"key_type": "ed25519", "post_handshake_auth": True, "certificate_compression": ("zlib",)},
        {"record_size_limit": 1024, "groups": (24,)},
        {"middlebox_compat": False},
    ]
    gate_kwargs: list[dict[str, object]] = [
        {},
        {"groups": (23, 29)},
        {"alpn_protocols": (b"coap",)},
        {"psk": {b"id": b"k" * 32}},
        {
            "stateless_cookie_generate": lambda peer: b"app:" + repr(peer).encode(),
            "stateless_cookie_verify": lambda peer, cookie: cookie == b"app:" + repr(peer).encode(),
        },
    ]
    gates = [
        StatelessGate(server_config(stateless=True, cookie_jar=CookieJar(key), **kwargs))
        for kwargs in gate_kwargs
    ]
    peer = ("192.0.2.7", 443)
    results = []
    for kwargs in client_kwargs:
        base = tls_client(kwargs).data_to_send()
        inputs = [base] + [refitted(base, rng) for _ in range(mutations)]
        for gate in gates:
            for i, data in enumerate(inputs):
                results.append(repr(gate.receive(data, ("10.0.0.2", 2000 + i), NOW)))
        for gate in gates:
            client = tls_client(kwargs)
            retry = gate.receive(client.data_to_send(), peer, NOW)
            if type(retry) is not Reply:
                continue
            client.receive_data(retry.data, NOW)
            hello2 = client.data_to_send()
            inputs = [hello2, hello2] + [refitted(hello2, rng) for _ in range(mutations // 4)]
            for data in inputs:
                results.append(repr(gate.receive(data, peer, NOW + 1)))
    return results


def tls_client(kwargs: dict[str, object]) -> ClientConnection:
    """Our TLS 1.3 client with ``client_config(**kwargs)``, its ClientHello1 sent."""
    client = ClientConnection(client_config(**kwargs))  # type: ignore[arg-type]
    client.start()
    return client


def dtls12_results(key: bytes, rng: random.Random, mutations: int) -> list[str]:
    """The HelloVerifyRequest path's results (module docstring)."""
    data_dir = Path(__file__).resolve().parent.parent / "tests" / "data"
    bases = [
        bytes.fromhex((data_dir / name).read_text().strip())
        for name in ("openssl_dtls12_client_hello.hex", "gnutls_dtls12_client_hello.hex")
    ]
    gate = Gate(server_config(cookie_jar=CookieJar(key)))
    peer = ("192.0.2.1", 5684)
    results = []
    for base in bases:
        inputs = [base]
        for _ in range(mutations):
            data = bytearray(base)
            at = rng.randrange(len(data))
            if rng.random() < 0.7:
                data[at] = rng.randrange(256)
            else:
                del data[at : at + rng.randrange(1, 4)]
            inputs.append(bytes(data))
        for data in inputs:
            result = gate.judge(data, peer, NOW)
            results.append(repr(result))
            if type(result) is bytes:
                second = client_hello2(data, result[28:])
                results.append(repr(gate.judge(second, peer, NOW)) if second else "no CH2")
    return results


def client_hello2(first: bytes, cookie: bytes) -> bytes | None:
    """``first`` (one record, one whole ClientHello) with ``cookie`` in its cookie field,
    its lengths grown to match, message_seq 1 and record sequence number 1; None when
    ``first`` is not that shape. Byte by byte, so that it reads alike on both trees."""
    if len(first) < 13 + 12 + 35:
        return None
    record_length = int.from_bytes(first[11:13], "big")
    length = int.from_bytes(first[14:17], "big")
    if record_length != 12 + length or first[19:25] != b"\0\0\0" + first[14:17]:
        return None
    body = first[25 : 25 + length]
    cookie_at = 35 + body[34] if len(body) > 34 else len(body)
    if cookie_at >= len(body) or body[cookie_at]:
        return None  # no room for the cookie's length byte, or a cookie already
    body = body[:cookie_at] + bytes((len(cookie),)) + cookie + body[cookie_at + 1 :]
    n = len(body).to_bytes(3, "big")
    handshake = first[13:14] + n + b"\0\1" + b"\0\0\0" + n + body
    header = first[:5] + (1).to_bytes(6, "big") + len(handshake).to_bytes(2, "big")
    return header + handshake + first[25 + length :]


if __name__ == "__main__":
    main()
