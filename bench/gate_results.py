"""Every `Gate.judge` result over real DTLS 1.3 ClientHellos and mutations, to compare trees.

Seven ClientHellos from our DTLS 1.3 client (default; other groups; other suites; ALPN and
server_name; an external PSK; post_handshake_auth and certificate compression; a record
size limit and one group), each with 400 seeded byte mutations (set, cut, insert), judged
by five gates (default; P-256 preferred, so the HRR asks for a share; ALPN; an external
PSK; DTLS 1.3 only), all with one fixed cookie key: 14,035 results. Writes their ``repr``
as a JSON list to OUT and prints its SHA-256; run it on two trees (``PYTHONPATH=old/src``)
and diff the lists.

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
        for _ in range(mutations):
            data = bytearray(base)
            kind = rng.randrange(3)
            at = rng.randrange(25, len(data))  # mostly after the record and handshake headers
            if rng.random() < 0.1:
                at = rng.randrange(len(data))
            if kind == 0:
                data[at] = rng.randrange(256)
            elif kind == 1:
                del data[at : at + rng.randrange(1, 4)]
            else:
                data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 3)))
            inputs.append(bytes(data))
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
    Path(out).write_text(json.dumps(results))
    digest = hashlib.sha256("\n".join(results).encode()).hexdigest()
    print(f"{len(bases)} hellos, {len(inputs)} inputs, {len(results)} results, sha256 {digest}")


if __name__ == "__main__":
    main()
