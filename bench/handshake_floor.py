"""How much of a DTLS 1.2 server handshake is the cryptography both servers must do.

The "floor" is the server's hashing, public-key and AEAD work for one handshake of
bench/handshake.py (ECDHE-ECDSA P-256, AES-128-GCM, EMS, cookie exchange, a session ticket
sent: the defaults), made by exactly the calls into ``cryptography``, ``hashlib`` (the
cookie jar's keyed BLAKE2s among them) and ``hmac`` that our server makes, in the same
order, with data of the same lengths, and no protocol code around them. ``CALLS`` below
lists them; ``--trace`` checks the list against our server: it counts every C-level call of
both under cProfile (and the ``AESGCM`` objects made, which cProfile does not see) and
prints them side by side. The lengths come from one real handshake of our server, recorded
at start-up: the transcript hashes that handshake's own messages.

Timing: each round runs ``--count`` handshakes of each of the three (floor, pyOpenSSL,
dtlsgate), ``--in-flight`` at a time in lockstep (four by default, as bench/handshake.py
drives them), all driven by pyOpenSSL clients in memory as in bench/handshake.py: only the
servers' calls are timed, and the floor's calls run where a server's would (after the
clients' step, before the untimed pyOpenSSL servers that produce the clients' next inputs).
The figures are the medians of per-round ratios. Each server runs its handshakes of a round
back to back, as bench/handshake.py's rounds do; ``--interleave`` runs a batch of each in
turn instead, so that a burst of load hits all three alike, but then each server meets
its caches as the other two left them, which costs our interpreted server more than the
others (bench/RESULTS.md, lead20). Before session 20 this bench ran one handshake of each
in turn: ``--in-flight 1 --interleave``.

What the figures say: any server doing this handshake in Python on top of ``cryptography``
spends at least the floor; pyOpenSSL's server spends the same OpenSSL work plus its C state
machine, wrappers and Python cookie callbacks. ``floor / pyOpenSSL`` (time) is the lowest
time any Python server can reach relative to pyOpenSSL; its inverse is the highest rate.

bench/handshake_floor_udp.py is the counterpart per server CPU-second over UDP, and
``bench/handshake_callgrind.py --floor`` counts the floor's instructions.

Usage: python bench/handshake_floor.py [--count N] [--rounds R] [--in-flight K] [--interleave]
                                       [--trace] [--list]
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import hashlib
import hmac
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from handshake import (
    IN_FLIGHT,
    OurServer,
    PyOpenSSLClient,
    PyOpenSSLServer,
    client_context,
    handshake,
    handshakes,
    in_batches,
    our_config,
    pyopenssl_server_context,
)
from OpenSSL import SSL

from dtlsgate.gate.datagram import Gate

X962 = serialization.Encoding.X962
UNCOMPRESSED = serialization.PublicFormat.UncompressedPoint
ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
sha256 = hashlib.sha256

# What the server makes per handshake, in order (the lengths are this handshake's: the
# transcript's messages as recorded, the others fixed by the protocol). Checked against our
# server by --trace.
CALLS = """\
ClientHello1 (the gate): the cookie minted
  1 cookie tag, keyed BLAKE2s from the jar's keyed state (made once per second): copy,
    update(peer 15), update(bound 35), digest
ClientHello2 (the gate, then the connection's server flight)
  2 cookie tag again (verified), hmac.compare_digest
  3 os.urandom(32): the server random
  4 transcript: hashlib.sha256(b''), then each message as the next one is added:
    update(ClientHello2 162), (ServerHello 71), (Certificate 479), (ServerKeyExchange 156)
  5 ECDHE: ec.generate_private_key(SECP256R1()), .public_key(), .public_bytes(X962,
    UncompressedPoint)
  6 ECDSA P-256 SHA-256 sign of 133 bytes (the randoms and the ECDHE parameters) with the
    configuration's loaded key
The client's flight (ClientKeyExchange, ChangeCipherSpec, Finished)
  7 transcript: update(ServerHelloDone 12); session hash: update(ClientKeyExchange 78),
    digest (the newest message hashed into the running state: no copy)
  8 ECDH: EllipticCurvePublicKey.from_encoded_point(SECP256R1(), 65 bytes),
    .exchange(ECDH(), peer)
  9 extended master secret: HMAC key states (2 x bytes.translate, 2 x hashlib.sha256 of 64
    bytes), P_SHA256 for 48 bytes: 2 blocks = 4 HMACs
 10 key block, 40 bytes: key states from the master secret (the same again), 2 blocks =
    4 HMACs (each HMAC: 2 copy, 2 update, 2 digest of hashlib states)
 11 AESGCM(16-byte key) x 2: the read and write keys of epoch 1
 12 AESGCM.decrypt of the client's Finished (24 + 16 bytes, 13 bytes of AAD)
 13 transcript: digest (the same messages); client verify_data: 1 block = 2 HMACs;
    hmac.compare_digest
 14 the session ticket: os.urandom(12), AES-256-GCM encrypt of 72 bytes (the ticket key's
    AESGCM object is made once per key epoch, not per handshake)
 15 transcript: update(Finished 24), update(NewSessionTicket 123), digest; server
    verify_data: 1 block = 2 HMACs
 16 AESGCM.encrypt of our Finished (24 bytes, 13 bytes of AAD); our Finished is not
    hashed (nothing uses the transcript after it)
In all: 1 P-256 key generation, 1 point decoding and check, 1 ECDH, 1 ECDSA signature;
2 keyed BLAKE2s cookie tags; 12 HMAC-SHA256 (the PRF, on hashlib's: 6 P_hash blocks);
5 hashlib SHA-256 objects made (1 transcript, 4 HMAC key states) and 83 calls on them
(24 copy, 32 update, 27 digest); 3 transcript digests, 1,105 bytes hashed in all;
2 AES-128-GCM objects made; 3 AES-GCM operations (1 decrypt, 2 encrypt); 2 os.urandom."""

# The cookie MAC's input after format|timestamp, fed in two parts: the peer, the bound fields.
COOKIE_PEER, COOKIE_BOUND = 15, 35
IPAD = bytes(b ^ 0x36 for b in range(256))
OPAD = bytes(b ^ 0x5C for b in range(256))


def record_handshake(
    config: Any, gate: Gate
) -> tuple[list[bytes], list[list[bytes]], list[list[bytes]]]:
    """One real handshake of our server with a pyOpenSSL client: the plaintext handshake
    messages in the transcript's order (ClientHello2, ServerHello, Certificate,
    ServerKeyExchange, ServerHelloDone, ClientKeyExchange, NewSessionTicket), and each
    side's flights (lists of datagrams), the client's first."""
    client, server = PyOpenSSLClient(client_context()), OurServer(config, gate)
    client_flights: list[list[bytes]] = []
    server_flights: list[list[bytes]] = []
    to_server = client.step([])
    for _ in range(20):
        client_flights.append(to_server)
        to_client = server.feed(to_server)
        server_flights.append(to_client)
        to_server = client.step(to_client)
        if server.done and not to_server:
            break
    # (flight index, 0 for the client's and 1 for ours, the message): epoch-0 handshake
    # records, each one whole message here; flight 0 (ClientHello1, HelloVerifyRequest) is
    # not in the transcript.
    found: list[tuple[int, int, bytes]] = []
    for side, flights in enumerate((client_flights, server_flights)):
        for index, flight in enumerate(flights[1:], 1):
            for datagram in flight:
                at = 0
                while at < len(datagram):
                    length = int.from_bytes(datagram[at + 11 : at + 13], "big")
                    if datagram[at] == 22 and datagram[at + 3 : at + 5] == b"\0\0":
                        found.append((index, side, datagram[at + 13 : at + 13 + length]))
                    at += 13 + length
    messages = [m for _, _, m in sorted(found, key=lambda f: f[:2])]
    return messages, client_flights, server_flights


class Floor:
    """The server's cryptography for one handshake, in three steps (one per client flight
    that makes the server work), each call as our server makes it."""

    def __init__(self, signing_key: ec.EllipticCurvePrivateKey, messages: list[bytes]) -> None:
        self.signing_key = signing_key
        hello2, server_hello, certificate, key_exchange, done, client_kx, ticket = messages
        self.server_flight_messages = (hello2, server_hello, certificate, key_exchange)
        self.server_hello_done, self.client_key_exchange = done, client_kx
        self.new_session_ticket = ticket
        self.finished = os.urandom(24)  # a Finished message: 12-byte header + verify_data
        self.client_random = os.urandom(32)
        peer = ec.generate_private_key(ec.SECP256R1()).public_key()
        self.peer_public = peer.public_bytes(X962, UNCOMPRESSED)
        # The cookie jar's keyed state for the current second (made once per second).
        self.cookie_keyed = hashlib.blake2s(key=os.urandom(32), digest_size=16)
        self.cookie_keyed.update(b"\x02\0\0\0\0")
        self.cookie_peer, self.cookie_bound = os.urandom(COOKIE_PEER), os.urandom(COOKIE_BOUND)
        # The read key: the key block's first 16 bytes differ every run (the ECDH secret
        # does), so the read AESGCM is made from a fixed key of the same length, for which
        # a peer's Finished record is sealed here: its decryption then succeeds, as ours does.
        self.read_key = os.urandom(16)
        self.nonce = os.urandom(4) + bytes(8)
        self.sealed_finished = AESGCM(self.read_key).encrypt(self.nonce, self.finished, bytes(13))
        self.ticket_aead = AESGCM(os.urandom(32))  # once per key epoch
        self.ticket_plain = os.urandom(72)
        # The key generation as dtlsgate.crypto.kex calls it: through a partial made once
        # (so neither side's call shows in --trace: cProfile sees no call made from C).
        self.generate_key = functools.partial(ec.generate_private_key, ec.SECP256R1())
        self.ephemeral: ec.EllipticCurvePrivateKey | None = None
        self.transcript: Any = None

    def cookie_tag(self) -> bytes:
        mac = self.cookie_keyed.copy()
        mac.update(self.cookie_peer)
        mac.update(self.cookie_bound)
        return mac.digest()

    def hello1(self) -> None:
        self.cookie = self.cookie_tag()

    def hello2(self) -> None:
        hmac.compare_digest(self.cookie_tag(), self.cookie)
        server_random = os.urandom(32)
        transcript = self.transcript = sha256(b"")
        for message in self.server_flight_messages:
            transcript.update(message)
        self.ephemeral = self.generate_key()
        public = self.ephemeral.public_key().public_bytes(X962, UNCOMPRESSED)
        signed = self.client_random + server_random + b"\x03\x00\x17\x41" + public
        self.signing_key.sign(signed, ECDSA_SHA256)

    def client_flight(self) -> None:
        transcript, ephemeral = self.transcript, self.ephemeral
        assert ephemeral is not None
        transcript.update(self.server_hello_done)
        transcript.update(self.client_key_exchange)
        session_hash = transcript.digest()
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), self.peer_public)
        premaster = ephemeral.exchange(ec.ECDH(), peer)
        master = p_hash(premaster, b"extended master secret" + session_hash, 48)
        randoms = self.client_random + self.client_random
        keyed = _Keyed(master)  # keys the key block and both Finished
        block = keyed.p_hash(b"key expansion" + randoms, 40)
        read, write = AESGCM(self.read_key), AESGCM(block[16:32])
        nonce = self.nonce
        read.decrypt(nonce, self.sealed_finished, bytes(13))
        expected = keyed.p_hash(b"client finished" + transcript.digest(), 12)
        hmac.compare_digest(expected, self.finished[12:])
        ticket_nonce = os.urandom(12)
        self.ticket_aead.encrypt(ticket_nonce, self.ticket_plain, b"\x01\0\0\0\0")
        transcript.update(self.finished)
        transcript.update(self.new_session_ticket)
        keyed.p_hash(b"server finished" + transcript.digest(), 12)
        write.encrypt(nonce, self.finished, bytes(13))


class _Keyed:
    """HMAC-SHA256's two keyed states (as dtlsgate.crypto.hashes.KeyedHmac)."""

    def __init__(self, key: bytes) -> None:
        key = key.ljust(64, b"\0")
        self.inner, self.outer = sha256(key.translate(IPAD)), sha256(key.translate(OPAD))

    def p_hash(self, seed: bytes, length: int) -> bytes:
        inner, outer = self.inner, self.outer
        out = b""
        a = seed
        while len(out) < length:
            h = inner.copy()
            h.update(a)
            o = outer.copy()
            o.update(h.digest())
            a = o.digest()
            h = inner.copy()
            h.update(a + seed)
            o = outer.copy()
            o.update(h.digest())
            out += o.digest()
        return out[:length]


def p_hash(secret: bytes, seed: bytes, length: int) -> bytes:
    return _Keyed(secret).p_hash(seed, length)


# When a server's feed gets the client's flight number i (0: ClientHello1), the floor's step.
def floor_steps(floor: Floor) -> tuple[Callable[[], None], ...]:
    return (floor.hello1, floor.hello2, floor.client_flight)


def floor_handshakes(floors: list[Floor], sctx: SSL.Context, cctx: SSL.Context) -> float:
    """Real handshakes between pyOpenSSL peers (untimed), one per floor, in lockstep as
    bench/handshake.py's ``handshakes``, give the clients' steps; each floor's step runs,
    timed, where a server's work would: after the clients' step that made the flight, the
    floors' steps back to back, before the (untimed) pyOpenSSL servers answering them."""
    pairs = [(PyOpenSSLServer(sctx), PyOpenSSLClient(cctx)) for _ in floors]
    steps = [floor_steps(floor) for floor in floors]
    to_server = [client.step([]) for _, client in pairs]
    live = list(range(len(pairs)))
    spent = 0.0
    for step in range(20):
        if step < len(steps[0]):
            start = time.perf_counter()
            for i in live:
                steps[i][step]()
            spent += time.perf_counter() - start
        still = []
        for i in live:
            server, client = pairs[i]
            to_server[i] = client.step(server.feed(to_server[i]))
            if not server.done or to_server[i]:
                still.append(i)
        live = still
        if not live:
            return spent
    raise RuntimeError("handshake did not complete")


def make_floor(config: Any, gate: Gate) -> Floor:
    assert isinstance(config.private_key, ec.EllipticCurvePrivateKey)
    return Floor(config.private_key, record_handshake(config, gate)[0])


# ---- --trace: the floor's calls against our server's ---------------------------------------

_CRYPTO_WORDS = (
    "blake2",
    "hash",
    "HASH",
    "sha256",
    "AESGCM",
    "ec.",
    "ECPrivate",
    "ECPublic",
    "urandom",
    "translate",
)


def traced_calls(run: Callable[[], None], count: int, made: dict[str, int]) -> dict[str, float]:
    """The C-level crypto calls per handshake of ``count`` runs, by cProfile's names."""
    profiler = cProfile.Profile()
    before = dict(made)
    for _ in range(count):
        run_profiled(profiler, run)
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    calls: dict[str, float] = {}
    for (filename, _, function), (_, n, *_rest) in stats.items():
        if filename == "~" and any(w in function for w in _CRYPTO_WORDS):
            calls[function] = n / count
    for name, n in made.items():
        calls[f"{name}(key) objects made"] = (n - before.get(name, 0)) / count
    return calls


def run_profiled(profiler: cProfile.Profile, run: Callable[[], None]) -> None:
    global PROFILER
    PROFILER = profiler
    run()


def trace(config: Any, gate: Gate, count: int) -> bool:
    """Count both sides' calls; print them side by side; True when they agree."""
    import dtlsgate.crypto.aead as aead_module

    made = {"AESGCM": 0}
    real_aesgcm = AESGCM

    def counting_aesgcm(key: bytes) -> AESGCM:
        made["AESGCM"] += 1
        return real_aesgcm(key)

    cctx, sctx = client_context(), pyopenssl_server_context()
    floor = make_floor(config, gate)

    class ProfiledServer(OurServer):
        def feed(self, datagrams: list[bytes]) -> list[bytes]:
            PROFILER.enable()
            try:
                return super().feed(datagrams)
            finally:
                PROFILER.disable()

    def ours() -> None:
        handshake(ProfiledServer(config, gate), PyOpenSSLClient(cctx))

    def floors() -> None:
        steps = [profiled(PROFILER, s) for s in floor_steps(floor)]
        client, server = PyOpenSSLClient(cctx), PyOpenSSLServer(sctx)
        to_server = client.step([])
        for step in range(20):
            if step < len(steps):
                steps[step]()
            to_client = server.feed(to_server)
            to_server = client.step(to_client)
            if server.done and not to_server:
                return

    # dtlsgate.crypto.aead keeps each algorithm's constructor in a table made at import.
    real_constructors = dict(aead_module._CONSTRUCTORS)
    for algorithm, make in real_constructors.items():
        if make is real_aesgcm:
            aead_module._CONSTRUCTORS[algorithm] = counting_aesgcm
    aead_module.AESGCM = counting_aesgcm  # type: ignore[attr-defined,assignment]
    globals()["AESGCM"] = counting_aesgcm
    try:
        ours()  # warm the gate's and context's once-per-config work
        theirs = traced_calls(ours, count, made)
        mine = traced_calls(floors, count, made)
    finally:
        aead_module.AESGCM = real_aesgcm  # type: ignore[attr-defined]
        aead_module._CONSTRUCTORS.update(real_constructors)
        globals()["AESGCM"] = real_aesgcm
    print(f"C-level crypto calls per handshake ({count} handshakes each, cProfile):")
    print(f"  {'dtlsgate':>8} {'floor':>7}  call")
    agree = True
    for name in sorted(set(theirs) | set(mine)):
        a, b = theirs.get(name, 0.0), mine.get(name, 0.0)
        mark = "" if a == b else "   <- differs"
        agree = agree and a == b
        print(f"  {a:8.2f} {b:7.2f}  {name}{mark}")
    print("the floor makes the same calls" if agree else "the floor's calls DIFFER")
    return agree


PROFILER = cProfile.Profile()


def profiled(profiler: cProfile.Profile, step: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        profiler.enable()
        try:
            step()
        finally:
            profiler.disable()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument(
        "--in-flight", type=int, default=IN_FLIGHT, help="handshakes in lockstep (see above)"
    )
    parser.add_argument("--interleave", action="store_true", help="a batch of each in turn")
    parser.add_argument("--trace", action="store_true", help="check the calls against ours")
    parser.add_argument("--list", action="store_true", help="print the calls and stop")
    args = parser.parse_args()
    if args.in_flight < 1:
        parser.error("--in-flight must be at least 1")
    if args.list:
        print(CALLS)
        return
    config = our_config()
    gate = Gate(config)
    if args.trace:
        sys.exit(0 if trace(config, gate, args.count) else 1)
    cctx, sctx = client_context(), pyopenssl_server_context()
    floors = [make_floor(config, gate) for _ in range(args.in_flight)]
    runs: dict[str, list[float]] = {"floor": [], "pyopenssl": [], "dtlsgate": []}
    # Each name's batch of ``size`` handshakes, timed inside the server: its seconds.
    batches: dict[str, Callable[[int], float]] = {
        "floor": lambda size: floor_handshakes(floors[:size], sctx, cctx),
        "pyopenssl": lambda size: handshakes(
            [(PyOpenSSLServer(sctx), PyOpenSSLClient(cctx)) for _ in range(size)]
        ),
        "dtlsgate": lambda size: handshakes(
            [(OurServer(config, gate), PyOpenSSLClient(cctx)) for _ in range(size)]
        ),
    }
    n = args.count
    for _ in range(args.rounds):
        spent = dict.fromkeys(runs, 0.0)
        sizes = in_batches(n, args.in_flight)
        if args.interleave:  # a batch of each in turn
            for size in sizes:
                for name, batch in batches.items():
                    spent[name] += batch(size)
        else:  # each server's handshakes back to back
            for name, batch in batches.items():
                for size in sizes:
                    spent[name] += batch(size)
        for name, total in spent.items():
            runs[name].append(total / n)
    us = {name: statistics.median(values) * 1e6 for name, values in runs.items()}
    floor_ratio = [f / p for f, p in zip(runs["floor"], runs["pyopenssl"], strict=True)]
    ours_ratio = [p / d for p, d in zip(runs["pyopenssl"], runs["dtlsgate"], strict=True)]
    print(f"DTLS 1.2 server handshake, time per handshake, {n} x {args.rounds} rounds")
    print("(ECDHE-ECDSA P-256, AES-128-GCM, EMS, cookie, ticket; pyOpenSSL clients in memory,")
    print(f" {args.in_flight} in flight{', a batch of each in turn' if args.interleave else ''})")
    print("the floor's calls per handshake (--list for the whole list): 1 P-256 key generation,")
    print("1 point decoding, 1 ECDH, 1 ECDSA sign, 2 BLAKE2s cookie tags, 12 HMAC-SHA256 (PRF),")
    print("3 transcript digests over 1,105 bytes, 2 AESGCM objects, 3 AES-GCM ops, 2 urandom")
    print(f"  cryptography floor      {us['floor']:6.0f} us")
    for name, label in (("pyopenssl", "pyOpenSSL server"), ("dtlsgate", "dtlsgate server")):
        print(f"  {label:22s}  {us[name]:6.0f} us   floor + {us[name] - us['floor']:.0f} us")
    q = statistics.quantiles(floor_ratio, n=4)
    print(
        f"  floor / pyOpenSSL (time) = {statistics.median(floor_ratio):.2f}"
        f" (quartiles {q[0]:.2f}-{q[2]:.2f}): the best rate any Python server can reach is"
        f" {1 / statistics.median(floor_ratio):.2f}x pyOpenSSL's"
    )
    print(f"  dtlsgate / pyOpenSSL rate = {statistics.median(ours_ratio):.2f} (median of rounds)")


if __name__ == "__main__":
    main()
