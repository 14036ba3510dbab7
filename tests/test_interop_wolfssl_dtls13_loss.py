"""wolfSSL's DTLS 1.3 client to our asyncio server (the gate's stateless HelloRetryRequest,
then the association) through tests/udp_proxy.py: 20% loss, 10% duplication, 30%
reordering of every DTLS 1.3 datagram of the handshake (plaintext and unified-header
records alike), with and without a one-way latency of 1.2 s (above the initial
retransmission timeout of 1 s, RFC 9147 §5.8.2, as issue 12 asks). Every handshake
completes on both ends, the data arrives exactly and the ends go quiet afterwards.

wolfSSL's example client writes its one line once and waits for the answer: DTLS does not
retransmit application data (RFC 9147 §5.8), so a lost copy would never arrive. The proxy
therefore impairs the handshake only: the server switches impairment off when its
handshake completes, before the client's data (our own clients retry their data instead:
tests/test_interop_dtls13_loss.py impairs everything)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
from pathlib import Path

import pytest
from peers import wolfssl_tree
from test_interop_dtls12 import make_cert
from udp_proxy import LossyProxy

from dtlsgate.config import ServerConfig
from dtlsgate.crypto.certs import load_certificate_chain, load_private_key
from dtlsgate.io import aio
from dtlsgate.wire.enums import ProtocolVersion

pytestmark = [pytest.mark.interop, pytest.mark.slow]
CLIENTS = 2


class Server:
    """Our asyncio server on its own thread; ``on_established`` runs at each completed
    handshake (before the handler reads), and what each association received is kept."""

    def __init__(self, config: ServerConfig, on_established: object) -> None:
        self.config = config
        self.on_established = on_established
        self.received: list[tuple[int, bytes]] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def echo(stream: aio.DtlsStream) -> None:
            assert stream.handshake_info is not None
            self.on_established()  # type: ignore[operator]
            data = await stream.recv()
            self.received.append((stream.handshake_info.version, data))
            stream.send(b"echo:" + data)
            await stream.recv()  # until the client closes (or the association is dropped)

        async def main() -> None:
            server = await aio.serve(echo, "127.0.0.1", 0, self.config)
            self.port = server.address[1]
            self.ready.set()
            self.stopping = asyncio.Event()
            await self.stopping.wait()
            server.close()
            await server.wait_closed()

        self.loop.run_until_complete(main())

    def __enter__(self) -> Server:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(10)

    def timer(self, seconds: float) -> threading.Event:
        """An event set by a timer on the server's loop, set now ``seconds`` ahead: once it
        is set, every timer of the server due before it (a retransmission) has fired, and
        sent what it sends, however late a loaded machine ran the loop."""
        fired = threading.Event()
        self.loop.call_soon_threadsafe(self.loop.call_later, seconds, fired.set)
        return fired


def crossed(proxy: LossyProxy) -> tuple[int, int]:
    """How many datagrams the proxy forwarded so far: towards the server, towards the client."""
    return len(proxy.stats.upstream_times), len(proxy.stats.downstream_times)


@pytest.mark.parametrize(("latency", "seed"), [(0.0, 31), (1.2, 32)])
def test_wolfssl_client_to_our_server_over_a_lossy_link(
    tmp_path: Path, latency: float, seed: int
) -> None:
    tree = wolfssl_tree()
    cert, key = make_cert(tmp_path)
    config = ServerConfig(
        certificate_chain=load_certificate_chain(cert), private_key=load_private_key(key)
    )
    args = {"seed": seed, "loss": 0.2, "dup": 0.1, "reorder": 0.3, "latency": latency}
    outputs = []
    impaired = dropped = 0
    # Each client has its own proxy and server, kept until the end: after a client ended and
    # what was on its way arrived (its proxy quiet both ways for 20 turns of its loop, 1 s
    # on an idle machine: `LossyProxy.wait_quiet`), its proxy's counts are taken, and they
    # must not move until each server has run a timer set 3 s after the last client's counts
    # and each proxy is quiet again (the earlier ones' windows are longer, each containing
    # the later clients' runs: no client waits out a window of its own). Neither is a
    # sleep: a loaded machine that runs the server or the proxy late stretches both.
    settled = []
    with contextlib.ExitStack() as stack:
        for i in range(CLIENTS):
            proxy = LossyProxy(("127.0.0.1", 0), impair_dtls13=True, **{**args, "seed": seed + i})

            def handshake_done(proxy: LossyProxy = proxy) -> None:
                proxy.impair_dtls13 = False

            server = stack.enter_context(Server(config, handshake_done))
            proxy.upstream = ("127.0.0.1", server.port)
            stack.enter_context(proxy)
            wolf = ["./examples/client/client", "-u", "-v", "4", "-p", str(proxy.port)]
            done = subprocess.run(
                ["timeout", "90", *wolf, "-A", str(cert)],
                cwd=tree,
                capture_output=True,
                check=False,
            )
            outputs.append(done.stdout.decode(errors="replace"))
            proxy.wait_quiet()
            settled.append((server, proxy, crossed(proxy)))
        # Quiet afterwards: nothing more crosses a proxy, either way, once its client ended
        # (our server does not go on resending to it): a resend due in the next 3 s has been
        # sent once the server's 3 s timer fired, and has crossed once the proxy is quiet.
        timers = [server.timer(3) for server, _, _ in settled]
        for fired in timers:
            assert fired.wait(300), "a server's loop did not run its 3 s timer in 300 s"
        for _, proxy, _ in settled:
            proxy.wait_quiet()
        for server, proxy, before in settled:
            assert crossed(proxy) == before
            impaired += proxy.stats.impaired
            dropped += proxy.stats.dropped
            assert server.received == [(ProtocolVersion.DTLS13, b"hello wolfssl!")], outputs
    for out in outputs:
        assert "SSL version is DTLSv1.3" in out, out
        assert "echo:hello wolfssl!" in out, out  # exactly our answer, once
    assert dropped and impaired
