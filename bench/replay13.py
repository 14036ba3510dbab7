"""TLS 1.3 and DTLS 1.3 server handshakes replayed from recorded client bytes: a deterministic
measure of the server's own work (no client in the process being measured).

Both sides run with seeded `DeterministicProvider`s, so every handshake of a run is the same
bytes. ``record`` runs the client once per handshake and keeps what it sent; the measured
phase then builds a fresh server per handshake and feeds it only those bytes (checking that
it answers with the recorded bytes, so a change that altered the wire would fail here too).
The setups are those of bench/tls13.py (stream: X25519, ECDSA P-256, TLS_AES_128_GCM_SHA256,
no tickets, the shared `ServerContext`) and bench/handshake.py's DTLS 1.3 part (the gate's
stateless HelloRetryRequest, then `Dtls13ServerConnection.from_admit`, P-256, ACKs), with
one `ServerContext` per config shared by the connections, as the listener shares its gate's.

    python bench/replay13.py {tls,dtls} [--count N] [--profile | --opcodes | --time]

With no option it only replays, checking every answer (for ``valgrind --tool=callgrind``:
run it with ``--prepare-only`` and without, same ``--count N``, and take the difference: N
handshakes of server work, the connection objects and the comparisons included).
``--profile`` prints cProfile's top functions with call counts, ``--opcodes`` the Python
bytecodes per handshake of the package's frames (as bench/opcodes.py), ``--time`` the
server seconds per handshake, best of 5 passes.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections.abc import Callable

from opcount import count_opcodes

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.connection.datagram13 import Dtls13ClientConnection, Dtls13ServerConnection
from dtlsgate.connection.stream import ClientConnection, ServerConnection
from dtlsgate.crypto import DeterministicProvider
from dtlsgate.crypto.certs import load_identity, make_self_signed
from dtlsgate.crypto.kex import KeyShare
from dtlsgate.crypto.provider import DefaultProvider
from dtlsgate.crypto.signatures import PrivateKey
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.gate.datagram import Dtls13Admit, Gate, Reply
from dtlsgate.handshake.tls13.common import DTLS_VERSIONS
from dtlsgate.handshake.tls13.server import ServerContext
from dtlsgate.wire.enums import CipherSuite, NamedGroup, SignatureScheme

NOW = 1_800_000_000.0
PEER = ("127.0.0.1", 4433)
CERT, KEY = make_self_signed("localhost", "ecdsa-p256")
SERVER_SEED = b"replay-server"


class ReplayProvider(DefaultProvider):
    """A `DeterministicProvider`'s randomness, key shares and signatures, restarted from the
    seed for each handshake: one config (and so one `ServerContext`, as a deployed server
    has) serves every replay, and each handshake draws the bytes it drew when recorded."""

    def __init__(self) -> None:
        self.current = DeterministicProvider(SERVER_SEED)

    def restart(self) -> None:
        self.current = DeterministicProvider(SERVER_SEED)

    def random(self, n: int) -> bytes:
        return self.current.random(n)

    def generate_key_share(self, group: NamedGroup) -> KeyShare:
        return self.current.generate_key_share(group)

    def sign(
        self, key: PrivateKey, scheme: SignatureScheme, data: bytes, *, tls13: bool = True
    ) -> bytes:
        return self.current.sign(key, scheme, data, tls13=tls13)


def server_config(dtls: bool) -> ServerConfig:
    ident = load_identity(CERT, KEY)
    return ServerConfig(
        certificate_chain=list(ident.chain),
        private_key=ident.private_key,
        groups=(NamedGroup.secp256r1,) if dtls else (NamedGroup.x25519,),
        cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,),
        cookie_jar=CookieJar(bytes(32)),
        # bench/tls13.py: no tickets (as Python's ssl there); bench/handshake.py: the default.
        **({} if dtls else {"session_tickets": 0}),
        provider=ReplayProvider(),
    )


def client_config(dtls: bool, seed: int) -> ClientConfig:
    return ClientConfig(
        server_name=None if dtls else "localhost",
        cafile=None,
        insecure=True,
        groups=(NamedGroup.secp256r1,) if dtls else (NamedGroup.x25519,),
        cipher_suites=(CipherSuite.TLS_AES_128_GCM_SHA256,),
        dtls_versions=(0xFEFC,),
        provider=DeterministicProvider(seed),
    )


# A replay: [(bytes to the server, bytes it must answer)] per server call.
Replay = list[tuple[list[bytes], list[bytes]]]
Feed = Callable[[list[bytes]], list[bytes]]


class TlsServer:
    """bench/tls13.py's server: one config, one `ServerContext`, a connection per handshake."""

    def __init__(self) -> None:
        self.config = server_config(False)
        self.context = ServerContext(self.config)

    def new(self) -> Feed:
        self.config.provider.restart()
        conn = ServerConnection(self.config, context=self.context)

        def feed(data: list[bytes]) -> list[bytes]:
            for d in data:
                conn.receive_data(d, NOW)
            return [conn.data_to_send()]

        return feed


class DtlsServer:
    """bench/handshake.py's DTLS 1.3 server: one gate; the connections of its admits."""

    def __init__(self) -> None:
        self.config = server_config(True)
        self.gate = Gate(self.config)
        self.context = ServerContext(self.config, versions=DTLS_VERSIONS)

    def new(self) -> Feed:
        self.config.provider.restart()
        conn: list[Dtls13ServerConnection] = []

        def feed(data: list[bytes]) -> list[bytes]:
            out: list[bytes] = []
            for d in data:
                if not conn:
                    result = self.gate.receive(d, PEER, NOW)
                    if type(result) is Reply:
                        out.append(result.data)
                    elif type(result) is Dtls13Admit:
                        made = Dtls13ServerConnection.from_admit(
                            result, self.config, context=self.context
                        )
                        conn.append(made)
                        conn[0].start(NOW)
                else:
                    conn[0].receive(d, PEER, NOW)
            if conn:
                out += [d for d, _ in conn[0].datagrams_to_send()]
            return out

        return feed


def make_server(dtls: bool) -> TlsServer | DtlsServer:
    return DtlsServer() if dtls else TlsServer()


def record(dtls: bool, count: int) -> list[Replay]:
    """Run ``count`` handshakes with real clients (seeds 0..count-1) and keep the bytes."""
    server = make_server(dtls)
    replays = []
    for seed in range(count):
        feed = server.new()
        replay: Replay = []
        if dtls:
            dclient = Dtls13ClientConnection(client_config(dtls, seed), PEER)
            dclient.connect(NOW)
            for _ in range(10):
                sent = [d for d, _ in dclient.datagrams_to_send()]
                if not sent:
                    break
                answer = feed(sent)
                replay.append((sent, answer))
                for d in answer:
                    dclient.receive(d, PEER, NOW)
            assert dclient.handshake_complete
        else:
            client = ClientConnection(client_config(dtls, seed))
            client.start(NOW)
            for _ in range(5):
                data = client.data_to_send()
                if not data:
                    break
                answer = feed([data])
                replay.append(([data], answer))
                client.receive_data(answer[0], NOW)
            assert client.handshake_complete
        replays.append(replay)
    return replays


def replay_all(server: TlsServer | DtlsServer, replays: list[Replay], check: bool = False) -> float:
    """Replay every handshake (a new connection each); the server seconds spent."""
    spent = 0.0
    for replay in replays:
        t = time.perf_counter()
        feed = server.new()
        spent += time.perf_counter() - t
        for sent, expected in replay:
            t = time.perf_counter()
            answer = feed(sent)
            spent += time.perf_counter() - t
            if check and answer != expected:
                raise SystemExit("the server's answer differs from the recorded one")
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("tls", "dtls"))
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--top", type=int, default=30)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--profile", action="store_true")
    what.add_argument("--opcodes", action="store_true")
    what.add_argument("--time", action="store_true")
    what.add_argument("--prepare-only", action="store_true")
    args = parser.parse_args()
    dtls = args.mode == "dtls"
    n = max(args.count, 1)
    replays = record(dtls, n)
    server = make_server(dtls)
    # Warm up (the first handshake of a config prepares what the config's handshakes
    # share) and check the wire bytes.
    replay_all(server, replays[:1], check=True)
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(replay_all, server, replays)
        pstats.Stats(prof).sort_stats("tottime").print_stats(args.top)
    elif args.opcodes:
        _, ops = count_opcodes(lambda: replay_all(server, replays))
        print(f"{sum(ops.values()) / n:.0f} bytecodes per {args.mode} server handshake")
        for key, value in ops.most_common(args.top):
            print(f"  {value / n:7.0f}  {key}")
    elif args.time:
        best = min(replay_all(server, replays) for _ in range(5))
        print(f"{best / n * 1e6:.1f} us per {args.mode} server handshake (best of 5)")
    elif not args.prepare_only:
        replay_all(server, replays, check=True)


if __name__ == "__main__":
    main()
