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

With no option it only replays (for ``valgrind --tool=callgrind``: run it with
``--prepare-only`` and without, same ``--count N``, and take the difference: N handshakes
of server work, the connection objects included).
``--profile`` prints cProfile's top functions with call counts, ``--opcodes`` the Python
bytecodes per handshake of the package's frames (as bench/opcodes.py), ``--time`` the
server seconds per handshake, best of 5 passes.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.connection.datagram13 import Dtls13ClientConnection, Dtls13ServerConnection
from dtlsgate.connection.stream import ClientConnection, ServerConnection
from dtlsgate.crypto import DeterministicProvider
from dtlsgate.crypto.certs import load_identity, make_self_signed
from dtlsgate.gate.cookie import CookieJar
from dtlsgate.gate.datagram import Dtls13Admit, Gate, Reply
from dtlsgate.handshake.tls13.common import DTLS_VERSIONS
from dtlsgate.handshake.tls13.server import ServerContext
from dtlsgate.wire.enums import CipherSuite, NamedGroup

NOW = 1_800_000_000.0
PEER = ("127.0.0.1", 4433)
CERT, KEY = make_self_signed("localhost", "ecdsa-p256")


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
        provider=DeterministicProvider(b"replay-server"),
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


class TlsServer:
    def __init__(self, config: ServerConfig) -> None:
        self.context = ServerContext(config)
        self.config = config

    def new(self) -> Callable[[list[bytes]], list[bytes]]:
        conn = ServerConnection(self.config, context=self.context)

        def feed(data: list[bytes]) -> list[bytes]:
            for d in data:
                conn.receive_data(d, NOW)
            return [conn.data_to_send()]

        return feed


class DtlsServer:
    def __init__(self, config: ServerConfig) -> None:
        self.gate = Gate(config)
        self.config = config
        # One context per config, as the listener shares the gate's.
        self.context = ServerContext(config, versions=DTLS_VERSIONS)

    def new(self) -> Callable[[list[bytes]], list[bytes]]:
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


def record(dtls: bool, count: int) -> list[Replay]:
    """Run ``count`` handshakes with real clients (seeds 0..count-1) against a server whose
    provider restarts from its seed for each, and keep the bytes."""
    replays = []
    for seed in range(count):
        server = (DtlsServer if dtls else TlsServer)(server_config(dtls)).new()
        replay: Replay = []
        if dtls:
            dclient = Dtls13ClientConnection(client_config(dtls, seed), PEER)
            dclient.connect(NOW)
            for _ in range(10):
                sent = [d for d, _ in dclient.datagrams_to_send()]
                if not sent:
                    break
                answer = server(sent)
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
                answer = server([data])
                replay.append(([data], answer))
                client.receive_data(answer[0], NOW)
            assert client.handshake_complete
        replays.append(replay)
    return replays


def prepare(dtls: bool, replays: list[Replay]) -> list[Callable[[list[bytes]], list[bytes]]]:
    """A fresh server per replay (its provider restarted from the seed), and its
    connection's feed: the configs, contexts and gates are made here, untimed."""
    servers = [(DtlsServer if dtls else TlsServer)(server_config(dtls)) for _ in replays]
    return [server.new() for server in servers]


def replay_all(dtls: bool, replays: list[Replay], check: bool = False) -> float:
    """Replay every handshake; the server seconds spent."""
    feeds = prepare(dtls, replays)
    spent = 0.0
    for feed, replay in zip(feeds, replays, strict=True):
        for sent, expected in replay:
            t = time.perf_counter()
            answer = feed(sent)
            spent += time.perf_counter() - t
            if check and answer != expected:
                raise SystemExit("the server's answer differs from the recorded one")
    return spent


def run(feeds: list[Callable[[list[bytes]], list[bytes]]], replays: list[Replay]) -> None:
    for feed, replay in zip(feeds, replays, strict=True):
        for sent, _ in replay:
            feed(sent)


def count_opcodes(run: Callable[[], Any]) -> collections.Counter[str]:
    ops: collections.Counter[str] = collections.Counter()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        filename = frame.f_code.co_filename
        if "/dtlsgate/" not in filename and filename != "<string>":
            return None
        key = f"{filename.rsplit('/src/', 1)[-1]}:{frame.f_code.co_name}"
        frame.f_trace_opcodes = True

        def local(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "opcode":
                ops[key] += 1
            return local

        return local

    sys.settrace(tracer)
    try:
        run()
    finally:
        sys.settrace(None)
    return ops


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
    replays = record(dtls, max(args.count, 1))[: args.count]
    replay_all(dtls, replays[:1], check=True)  # warm up, and check the wire bytes
    n = max(args.count, 1)
    if args.profile:
        feeds = prepare(dtls, replays)
        prof = cProfile.Profile()
        prof.runcall(run, feeds, replays)
        pstats.Stats(prof).sort_stats("tottime").print_stats(args.top)
    elif args.opcodes:
        feeds = prepare(dtls, replays)
        ops = count_opcodes(lambda: run(feeds, replays))
        print(f"{sum(ops.values()) / n:.0f} bytecodes per {args.mode} server handshake")
        for key, value in ops.most_common(args.top):
            print(f"  {value / n:7.0f}  {key}")
    elif args.time:
        best = min(replay_all(dtls, replays) for _ in range(5))
        print(f"{best / n * 1e6:.1f} us per {args.mode} server handshake (best of 5)")
    else:
        feeds = prepare(dtls, replays)
        if not args.prepare_only:
            run(feeds, replays)


if __name__ == "__main__":
    main()
