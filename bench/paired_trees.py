"""Two source trees' DTLS 1.2 server handshakes, timed alternately in one process: the
paired comparison a speed change is judged by on a shared machine.

Each tree's ``src/dtlsgate`` is copied to a scratch directory as a package of another name
(``dtlsgate_a``, ``dtlsgate_b``: every ``dtlsgate`` word in its sources rewritten), so both
import side by side. One pyOpenSSL client (memory BIOs, ECDHE-ECDSA P-256, AES-128-GCM,
EMS, the cookie exchange) drives each server in turn, in batches that alternate which tree
goes first; only the server's calls are timed (the gate, then a DtlsServerConnection, on
the gate's prepared context when the tree has one). Prints the median of the per-batch
ratios B/A of time per handshake, and its quartiles. Works on trees from session 4 on
(the older layout: ``dtlsgate.gate``, ``dtlsgate.cookie``, ``dtlsgate.dtls``).

``--echo``: the echo loop of bench/throughput.py instead (1,200-byte application data
records: ``receive``, ``next_event``, ``send``, ``datagrams_to_send``), one established
connection per tree and a pyOpenSSL server as the third party, in batches of ``--size``
records that rotate which goes first; prints B/A time per record and each tree's
throughput over pyOpenSSL's (medians of the per-batch ratios).

``--group x25519``: both trees' servers on X25519 instead of P-256 (pyOpenSSL's client
offers both).

Usage: python bench/paired_trees.py TREE_A TREE_B [--batches N] [--size K] [--echo] [--group G]
  (a tree: a directory holding src/dtlsgate, e.g. ``git worktree add`` or ``git archive``)
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from handshake import PEER, PyOpenSSLServer, client_context, pyopenssl_server_context, read_all
from OpenSSL import SSL

MAX_STEPS = 10  # a handshake is 4 client flights
_WORD = re.compile(r"\bdtlsgate\b")


def renamed_copy(tree: Path, tag: str, scratch: Path) -> str:
    """Copy ``tree``'s package as ``dtlsgate_<tag>`` under ``scratch``; its name."""
    name = f"dtlsgate_{tag}"
    target = scratch / tag / name
    shutil.copytree(tree / "src" / "dtlsgate", target)
    for path in target.rglob("*.py"):
        path.write_text(_WORD.sub(name, path.read_text()))
    sys.path.insert(0, str(scratch / tag))
    return name


class Server:
    """One tree's gate and server connections for one config."""

    def __init__(self, tree: Path, tag: str, scratch: Path, group: str = "secp256r1") -> None:
        package = renamed_copy(tree, tag, scratch)

        def module(*names: str) -> ModuleType:
            for name in names:
                with contextlib.suppress(ModuleNotFoundError):
                    return importlib.import_module(f"{package}.{name}")
            raise ModuleNotFoundError(names[0])

        certs, config = module("crypto.certs"), module("config")
        cookie, enums = module("gate.cookie", "cookie"), module("wire.enums")
        gate = module("gate.datagram", "gate")
        self.connection: Any = module("connection.datagram", "dtls").DtlsServerConnection
        cert, key = certs.make_self_signed("localhost", "ecdsa-p256")
        identity = certs.load_identity(cert, key)
        self.config = config.ServerConfig(
            cookie_jar=cookie.CookieJar(bytes(range(32))),
            certificate_chain=list(identity.chain),
            private_key=identity.private_key,
            groups=(enums.NamedGroup[group],),
        )
        self.gate = gate.Gate(self.config)
        self.admit, self.reply = gate.Admit, gate.Reply
        context = getattr(self.gate, "dtls12_context", None)  # this branch on
        self.kwargs = {} if context is None else {"context": context}

    def handshake(self, ctx: SSL.Context) -> float:
        """One handshake; the seconds spent in the server's calls."""
        client = SSL.Connection(ctx, None)
        client.set_connect_state()
        conn: Any = None
        spent = 0.0
        incoming: list[bytes] = []
        for _ in range(MAX_STEPS):
            for d in incoming:
                client.bio_write(d)
            with contextlib.suppress(SSL.WantReadError):
                client.do_handshake()
            outgoing = read_all(client)
            if not outgoing:
                break
            start = time.perf_counter()
            now = time.time()
            incoming = []
            for d in outgoing:
                if conn is None:
                    result = self.gate.receive(d, PEER, now)
                    if type(result) is self.reply:
                        incoming.append(result.data)
                    elif type(result) is self.admit:
                        conn = self.connection(result, self.config, **self.kwargs)
                        conn.start(now)
                else:
                    conn.receive(d, PEER, now)
            if conn is not None:
                incoming += [d for d, _ in conn.datagrams_to_send()]
            spent += time.perf_counter() - start
        if conn is None or not conn.handshake_complete:
            raise RuntimeError("the handshake did not complete")
        return spent


RECORD = 1200


class Echo:
    """One established server connection (a tree's or pyOpenSSL's) and its pyOpenSSL
    client, which makes the records the server echoes."""

    def __init__(self, server: Server | None, ctx: SSL.Context) -> None:
        self.client = SSL.Connection(ctx, None)
        self.client.set_connect_state()
        self.payload = bytes(range(256)) * (RECORD // 256) + bytes(RECORD % 256)
        if server is None:
            self.ours = None
            self.theirs = PyOpenSSLServer(pyopenssl_server_context())
            incoming: list[bytes] = []
            for _ in range(MAX_STEPS):
                for d in incoming:
                    self.client.bio_write(d)
                with contextlib.suppress(SSL.WantReadError):
                    self.client.do_handshake()
                outgoing = read_all(self.client)
                if not outgoing:
                    break
                incoming = self.theirs.feed(outgoing)
            if not self.theirs.done:
                raise RuntimeError("the pyOpenSSL handshake did not complete")
            return
        self.theirs = None
        self.ours = self._our_handshake(server)

    def _our_handshake(self, server: Server) -> Any:
        conn: Any = None
        incoming: list[bytes] = []
        now = time.time()
        for _ in range(MAX_STEPS):
            for d in incoming:
                self.client.bio_write(d)
            with contextlib.suppress(SSL.WantReadError):
                self.client.do_handshake()
            outgoing = read_all(self.client)
            if not outgoing:
                break
            incoming = []
            for d in outgoing:
                if conn is None:
                    result = server.gate.receive(d, PEER, now)
                    if type(result) is server.reply:
                        incoming.append(result.data)
                    elif type(result) is server.admit:
                        conn = server.connection(result, server.config, **server.kwargs)
                        conn.start(now)
                else:
                    conn.receive(d, PEER, now)
            if conn is not None:
                incoming += [d for d, _ in conn.datagrams_to_send()]
        if conn is None or not conn.handshake_complete:
            raise RuntimeError("the handshake did not complete")
        while conn.next_event() is not None:
            pass
        return conn

    def records(self, count: int) -> list[bytes]:
        out: list[bytes] = []
        for _ in range(count):
            self.client.send(self.payload)
            out += read_all(self.client)
        return out

    def run(self, count: int) -> float:
        """Seconds the server spends echoing ``count`` records."""
        records = self.records(count)
        if self.ours is not None:
            conn, now = self.ours, time.time()
            start = time.perf_counter()
            for record in records:
                conn.receive(record, PEER, now)
                conn.send(conn.next_event().data)
                conn.datagrams_to_send()
            return time.perf_counter() - start
        assert self.theirs is not None
        ssl = self.theirs.conn
        start = time.perf_counter()
        for record in records:
            ssl.bio_write(record)
            ssl.send(ssl.recv(65535))
            ssl.bio_read(65535)
        return time.perf_counter() - start


def echo(a: Server, b: Server, batches: int, size: int) -> None:
    ctx = client_context()
    parties = {"a": Echo(a, ctx), "b": Echo(b, ctx), "p": Echo(None, ctx)}
    for party in parties.values():
        party.run(size)
    order = ["a", "b", "p"]
    ratios, over_a, over_b = [], [], []
    for i in range(batches):
        per = {tag: parties[tag].run(size) for tag in order[i % 3 :] + order[: i % 3]}
        ratios.append(per["b"] / per["a"])
        over_a.append(per["p"] / per["a"])
        over_b.append(per["p"] / per["b"])
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    print(f"echo, {RECORD}-byte records, {batches} batches of {size}, rotating order")
    print(
        f"B/A time per record: median {statistics.median(ratios):.3f}, quartiles {q1:.3f}-{q3:.3f}"
    )
    print(f"A throughput / pyOpenSSL: median {statistics.median(over_a):.3f}")
    print(f"B throughput / pyOpenSSL: median {statistics.median(over_b):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--size", type=int, default=25)
    parser.add_argument("--echo", action="store_true", help="time the echo loop instead")
    parser.add_argument("--group", default="secp256r1", help="our servers' ECDHE group")
    args = parser.parse_args()
    ctx = client_context()
    with tempfile.TemporaryDirectory() as scratch:
        a = Server(args.a, "a", Path(scratch), args.group)
        b = Server(args.b, "b", Path(scratch), args.group)
        if args.echo:
            echo(a, b, args.batches, args.size)
            return
        for server in (a, b):
            for _ in range(20):
                server.handshake(ctx)
        ratios, times_a, times_b = [], [], []
        for i in range(args.batches):
            per: dict[str, float] = {}
            for tag, server in (("a", a), ("b", b)) if i % 2 == 0 else (("b", b), ("a", a)):
                per[tag] = sum(server.handshake(ctx) for _ in range(args.size)) / args.size
            times_a.append(per["a"])
            times_b.append(per["b"])
            ratios.append(per["b"] / per["a"])
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    print(f"A {args.a}: median {statistics.median(times_a) * 1e6:.0f} us per handshake")
    print(f"B {args.b}: median {statistics.median(times_b) * 1e6:.0f} us per handshake")
    print(
        f"B/A time per handshake: median {statistics.median(ratios):.3f}, "
        f"quartiles {q1:.3f}-{q3:.3f} ({args.batches} batches of {args.size}, alternating)"
    )


if __name__ == "__main__":
    main()
