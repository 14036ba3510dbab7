"""100 DTLS 1.2 handshakes with real peers through a lossy proxy (20% drop, 10% duplicate,
30% reorder of handshake records): 50 `openssl s_client` and 50 `gnutls-cli` to our asyncio
server, all at once. (Our client's loss handling is covered by the seeded sans-I/O link in
test_dtls12_flight.py: `gnutls-serv` and `openssl s_server` serve one DTLS peer at a time.) Every one completes and every echoed byte is exact.
Towards `s_client` nothing is duplicated (it stalls on duplicates even with OpenSSL's own
server; see udp_proxy.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from peers import converse, end_input, openssl_dtls_client, process, read_line, require
from test_interop_dtls12 import make_cert
from udp_proxy import LossyProxy

from dtlsgate.config import ServerConfig
from dtlsgate.crypto.certs import load_certificate_chain, load_private_key
from dtlsgate.io import aio

pytestmark = [pytest.mark.interop, pytest.mark.slow]
HANDSHAKES = 50
CONCURRENCY = 50
# `gnutls-cli`'s bound. A peer whose flight is lost several times in a row backs off 1, 2,
# 4, 8, 16 s (RFC 6347 §4.2.4.1): a handshake may legitimately need over 30 s at 20% loss,
# more on a loaded CI machine running 50 peers at once. The deadline is a bound against
# hangs, not a target.
DEADLINE = 75
# `openssl s_client` answers our flight (ServerHello to ServerHelloDone) with its own
# (ClientKeyExchange, ChangeCipherSpec, Finished), resent on its timer (1 s doubling) and
# when ours arrives again; our server answers that flight's Finished with its last flight
# and answers each Finished resent (the other two, plaintext and forgeable once the
# handshake is done, are dropped, as OpenSSL's server does). Each side's tries come at 0, 1,
# 3, 7, 15, 31 and 63 s (RFC 6347 §4.2.4.1). Session 14 saw 'got ''' in 2 of 4 loaded runs;
# logged through the proxy (session 15), two causes: s_client blocking after its handshake
# (see -nbio below: 3 of 20 loaded runs), and, rarer, its Finished lost round after round
# (the proxy bounded loss per datagram and s_client resends its flight as three: in 750
# logged handshakes one took 64 s after our last flight, the next try after this deadline).
# udp_proxy now loses no message twice running: over 1,200 handshakes the longest took 18 s.
# The server still keeps a handshake through its seventh round, and each client is given
# that, the cookie exchange before it and the echo after it: a bound against hangs.
OPENSSL_ROUNDS = 7
OPENSSL_LAST_ROUND = 2 ** (OPENSSL_ROUNDS - 1) - 1  # 63 s after admission
OPENSSL_HANDSHAKE_TIMEOUT = OPENSSL_LAST_ROUND + 17  # the last round's answer, under load
OPENSSL_DEADLINE = OPENSSL_HANDSHAKE_TIMEOUT + 15  # + the cookie exchange, then the echo


class AioEchoServer:
    """Our asyncio server on its own thread and loop."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def echo(stream: aio.DtlsStream) -> None:
            while data := await stream.recv():
                stream.send(b"echo:" + data)

        async def main() -> None:
            self.server = await aio.serve(echo, "127.0.0.1", 0, self.config)
            self.port = self.server.address[1]
            self.ready.set()
            self.stopping = asyncio.Event()
            await self.stopping.wait()
            self.server.close()
            await self.server.wait_closed()

        self.loop.run_until_complete(main())

    def __enter__(self) -> AioEchoServer:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(10)


def check_impairment(proxy: LossyProxy) -> None:
    """The link really was as bad as announced (20% drop, 10% duplicate, 30% reorder of
    the handshake datagrams), give or take sampling noise, and it lost datagrams both ways:
    since every handshake completed, both sides retransmitted."""
    stats = proxy.stats
    assert stats.impaired > 300
    assert 0.15 <= stats.dropped / stats.impaired <= 0.25
    assert 0 < stats.dropped_downstream < stats.dropped
    assert stats.duplicated and stats.reordered / stats.impaired >= 0.15


def openssl_echo(port: int, i: int) -> str:
    line = f"message {i} " + "x" * (i % 50)
    args = openssl_dtls_client(port, "-quiet", "-no_ign_eof")  # non-blocking: see there
    started = time.monotonic()
    with process(args, seconds=OPENSSL_DEADLINE + 5) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(line.encode() + b"\n")
        proc.stdin.flush()
        got = read_line(proc.stdout, started + OPENSSL_DEADLINE)
        waited = time.monotonic() - started
        end_input(proc)
        if got == "echo:" + line:
            return "ok"
        # What a failure needs to be told apart: the deadline or s_client's own end, and
        # what s_client said on the way out (its stderr, once it has exited).
        code = proc.poll()
        said = proc.stderr.read()[-600:] if code is not None and proc.stderr else b""
    return f"{i}: got {got!r} after {waited:.1f} s, exit {code}, stderr {said!r}"


def test_openssl_clients_through_a_lossy_proxy(tmp_path: Path) -> None:
    require("openssl")
    cert, key = make_cert(tmp_path)
    config = ServerConfig(
        certificate_chain=load_certificate_chain(cert),
        private_key=load_private_key(key),
        handshake_timeout=OPENSSL_HANDSHAKE_TIMEOUT,
    )
    with (
        AioEchoServer(config) as server,
        LossyProxy(("127.0.0.1", server.port), seed=1, dup_downstream=False) as proxy,
        ThreadPoolExecutor(CONCURRENCY) as pool,
    ):
        results = list(pool.map(lambda i: openssl_echo(proxy.port, i), range(HANDSHAKES)))
    assert results == ["ok"] * HANDSHAKES
    check_impairment(proxy)


def gnutls_echo(port: int, cafile: Path, i: int) -> str:
    line = f"gnutls {i} " + "y" * (i % 40)
    args = ["gnutls-cli", "--udp", "-p", str(port), "127.0.0.1", "--x509cafile", str(cafile)]
    with process(args, seconds=DEADLINE + 5) as proc:
        out = converse(proc, ((line.encode() + b"\n", "echo:"),), DEADLINE)
    return "ok" if "echo:" + line in out.splitlines() else f"{i}: got {out[-600:]!r}"


def test_gnutls_clients_through_a_lossy_proxy(tmp_path: Path) -> None:
    require("gnutls-cli")
    cert, key = make_cert(tmp_path)
    config = ServerConfig(
        certificate_chain=load_certificate_chain(cert), private_key=load_private_key(key)
    )
    with (
        AioEchoServer(config) as server,
        LossyProxy(("127.0.0.1", server.port), seed=2) as proxy,
        ThreadPoolExecutor(CONCURRENCY) as pool,
    ):
        results = list(pool.map(lambda i: gnutls_echo(proxy.port, cert, i), range(HANDSHAKES)))
    assert results == ["ok"] * HANDSHAKES
    check_impairment(proxy)
