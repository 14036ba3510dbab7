"""How much of a DTLS 1.2 server handshake is the cryptography both servers must do.

The "floor" is the server's public-key, hash and AEAD work for one handshake of
bench/handshake.py (ECDHE-ECDSA P-256, AES-128-GCM, EMS), done by the same ``cryptography``
calls our server makes, with no protocol code around them: P-256 key generation and point
encoding, an ECDSA signature over the randoms and parameters (server flight); point decoding,
ECDH, the 13 HMAC-SHA256 of the TLS 1.2 PRF, three transcript hashes, two AES-GCM keys and two
records (client flight -> Finished). It is timed in the same place as the servers are in
bench/handshake.py: between the steps of a pyOpenSSL client in memory, so that the caches are
as cold as there. Next to it, the pyOpenSSL server's and our server's whole time.

What the figures say: any server doing this handshake in Python on top of ``cryptography``
spends at least the floor; pyOpenSSL's server spends the floor (the same OpenSSL work) plus
its C state machine, wrappers and Python cookie callbacks. The difference between our
server and the floor is our Python; matching pyOpenSSL's rate would need that to shrink to
pyOpenSSL's own overhead above the floor.

Usage: python bench/handshake_floor.py [--count N] [--rounds R]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from handshake import (
    OurServer,
    PyOpenSSLClient,
    PyOpenSSLServer,
    client_context,
    handshake,
    our_config,
    pyopenssl_server_context,
)
from OpenSSL import SSL

from dtlsgate.gate.datagram import Gate

X962 = serialization.Encoding.X962
UNCOMPRESSED = serialization.PublicFormat.UncompressedPoint
PRF_HMACS = 13  # master secret 2 blocks, key block 2 blocks, two Finished 1 block each
TRANSCRIPT_HASHES = 3  # session hash (EMS), client Finished, server Finished
TRANSCRIPT = os.urandom(1500)  # about this handshake's transcript


class Floor:
    def __init__(self, signing_key: ec.EllipticCurvePrivateKey) -> None:
        self.signing_key = signing_key
        peer = ec.generate_private_key(ec.SECP256R1()).public_key()
        self.peer_public = peer.public_bytes(X962, UNCOMPRESSED)
        self.ephemeral: ec.EllipticCurvePrivateKey | None = None

    def server_flight(self) -> None:
        self.ephemeral = ec.generate_private_key(ec.SECP256R1())
        public = self.ephemeral.public_key().public_bytes(X962, UNCOMPRESSED)
        signed = os.urandom(64) + b"\x03\x00\x17" + bytes((len(public),)) + public
        self.signing_key.sign(signed, ec.ECDSA(hashes.SHA256()))

    def client_flight(self) -> None:
        assert self.ephemeral is not None
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), self.peer_public)
        shared = self.ephemeral.exchange(ec.ECDH(), peer)
        inner, outer = hashlib.sha256(b"\x36" * 64), hashlib.sha256(b"\x5c" * 64)
        for _ in range(PRF_HMACS):
            h = inner.copy()
            h.update(shared)
            o = outer.copy()
            o.update(h.digest())
            o.digest()
        for _ in range(TRANSCRIPT_HASHES):
            hashlib.sha256(TRANSCRIPT).digest()
        read, write = AESGCM(shared[:16]), AESGCM(shared[16:])
        finished = write.encrypt(bytes(12), bytes(16), b"aad")
        read.encrypt(bytes(12), finished[:16], b"aad")


def floor_handshake(floor: Floor, sctx: SSL.Context, cctx: SSL.Context) -> float:
    """A real handshake between pyOpenSSL peers (untimed) gives the client's steps; the
    floor's server-flight and client-flight work run, timed, where our server's would."""
    client, server = PyOpenSSLClient(cctx), PyOpenSSLServer(sctx)
    spent = 0.0
    to_server = client.step([])
    for step in range(20):
        to_client = server.feed(to_server)
        start = time.perf_counter()
        if step == 1:
            floor.server_flight()
        elif step == 2:
            floor.client_flight()
        spent += time.perf_counter() - start
        to_server = client.step(to_client)
        if server.done and not to_server:
            return spent
    raise RuntimeError("handshake did not complete")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    config = our_config()
    gate = Gate(config)
    cctx, sctx = client_context(), pyopenssl_server_context()
    assert isinstance(config.private_key, ec.EllipticCurvePrivateKey)
    floor = Floor(config.private_key)
    runs: dict[str, list[float]] = {"floor": [], "pyopenssl": [], "dtlsgate": []}
    for _ in range(args.rounds):
        n = args.count
        runs["floor"].append(sum(floor_handshake(floor, sctx, cctx) for _ in range(n)) / n)
        runs["pyopenssl"].append(
            sum(handshake(PyOpenSSLServer(sctx), PyOpenSSLClient(cctx)) for _ in range(n)) / n
        )
        runs["dtlsgate"].append(
            sum(handshake(OurServer(config, gate), PyOpenSSLClient(cctx)) for _ in range(n)) / n
        )
    us = {name: statistics.median(values) * 1e6 for name, values in runs.items()}
    print(f"DTLS 1.2 server handshake, time per handshake, {args.count} x {args.rounds} rounds")
    print("(ECDHE-ECDSA P-256, AES-128-GCM, EMS; between a pyOpenSSL client's steps)")
    floor = us["floor"]
    print(f"  cryptography floor      {floor:6.0f} us")
    for name, label in (("pyopenssl", "pyOpenSSL server"), ("dtlsgate", "dtlsgate server")):
        print(f"  {label:22s}  {us[name]:6.0f} us   floor + {us[name] - floor:.0f} us")
    print(
        f"  floor / pyOpenSSL = {floor / us['pyopenssl']:.2f}"
        f"   dtlsgate / pyOpenSSL rate = {us['pyopenssl'] / us['dtlsgate']:.2f}"
    )


if __name__ == "__main__":
    main()
