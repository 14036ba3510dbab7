"""Half-open handshakes against our servers (issue 10 part 1), over real UDP and TCP on
loopback with real ``openssl s_client`` clients.

An attacker that owns its addresses passes the cookie exchange 2,000 times and then goes
silent: (a) from 2,000 ports of one address, (b) from 2,000 addresses (127.1.x.y: Linux
routes all of 127/8 to lo). Then 20 legitimate clients connect at once while those
handshakes are held: every one must complete and get its line echoed, and what the server
holds must stay within the configured bounds. Before the admission table, 256 held
handshakes (about 183 s each) refused every new client: in (a) the 20 clients come from the
attacker's own address (a NAT shared with an attacker), in (b) each from an address of its
own (-bind), since a table full of one-handshake addresses evicts from the busiest address.

The same for the TLS 1.3 stateless server over TCP (``s_client -tls1_3 -no_middlebox``:
OpenSSL 3.0 aborts a stateless exchange in middlebox-compatibility mode, PEERS.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from builders import client_hello, datagram, with_cookie
from helpers import client_config as tls_client_config
from peers import converse, openssl_dtls_client, process, require
from test_interop_dtls12 import make_cert
from test_interop_dtls12_loss import AioEchoServer

from dtlsgate.config import ServerConfig
from dtlsgate.connection.datagram import DtlsServerConnection
from dtlsgate.connection.stream import ClientConnection, ServerConnection
from dtlsgate.crypto.certs import load_certificate_chain, load_private_key
from dtlsgate.io.aio_tls import serve_tls

pytestmark = [pytest.mark.interop, pytest.mark.slow]
HALF_OPEN = 2000
LEGIT = 20
BATCH = 100  # attacker sockets opened at once: keeps descriptors and socket buffers bounded
ONE_ADDRESS = ["127.0.0.1"] * HALF_OPEN
MANY_ADDRESSES = [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(HALF_OPEN)]
# Connection objects the server may hold after the flood: the default max_handshakes (256)
# and the legitimate clients (whose connections may not have been collected yet).
HELD_BOUND = 256 + LEGIT


def config(tmp_path: Path, **kw: object) -> tuple[ServerConfig, Path]:
    cert, key = make_cert(tmp_path)
    chain, private = load_certificate_chain(cert), load_private_key(key)
    return ServerConfig(certificate_chain=chain, private_key=private, **kw), cert  # type: ignore[arg-type]


# ---- the attacker --------------------------------------------------------------------------


def replies(socks: dict[socket.socket, bytes], seconds: float) -> dict[socket.socket, bytes]:
    """The first datagram each socket receives within ``seconds`` (bounded wait)."""
    got: dict[socket.socket, bytes] = {}
    by_fd = {sock.fileno(): sock for sock in socks}
    poll = select.poll()  # select() stops at descriptor 1024
    for fd in by_fd:
        poll.register(fd, select.POLLIN)
    deadline = time.monotonic() + seconds
    while len(got) < len(socks) and (left := deadline - time.monotonic()) > 0:
        for fd, _ in poll.poll(left * 1000):
            poll.unregister(fd)
            with contextlib.suppress(OSError):
                got[by_fd[fd]] = by_fd[fd].recv(2048)
    return got


def dtls_half_open(sources: list[str], port: int, held: list[socket.socket]) -> int:
    """For each source address, a UDP socket that sends a ClientHello, reads the
    HelloVerifyRequest, sends the ClientHello with the cookie and then stays silent (kept
    open in ``held``). Returns how many cookie exchanges completed."""
    server = ("127.0.0.1", port)
    done = 0
    for start in range(0, len(sources), BATCH):
        firsts: dict[socket.socket, bytes] = {}
        for source in sources[start : start + BATCH]:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            held.append(sock)
            sock.bind((source, 0))
            firsts[sock] = datagram(client_hello(random=os.urandom(32)))
        answers: dict[socket.socket, bytes] = {}
        for _ in range(4):  # a ClientHello or its answer may be lost under load: resend
            missing = {s: d for s, d in firsts.items() if s not in answers}
            for sock, first in missing.items():
                sock.sendto(first, server)
            answers.update(replies(missing, 1.0))
        for sock, reply in answers.items():
            if len(reply) > 28 and reply[13] == 3:  # a HelloVerifyRequest
                cookie = reply[28 : 28 + reply[27]]
                sock.sendto(with_cookie(firsts[sock], cookie), server)
                done += 1
    return done


def tls_half_open(sources: list[str], port: int, held: list[socket.socket]) -> int:
    """For each source address, a TCP connection that sends ClientHello1, reads the
    HelloRetryRequest, sends ClientHello2 with the cookie and then stays silent."""
    done = 0
    for start in range(0, len(sources), BATCH):
        batch = []
        for source in sources[start : start + BATCH]:
            sock = socket.socket()
            sock.bind((source, 0))
            sock.settimeout(5.0)
            try:
                sock.connect(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            held.append(sock)
            client = ClientConnection(tls_client_config(middlebox_compat=False))
            client.start(time.time())
            sock.sendall(client.data_to_send())
            batch.append((sock, client))
        for sock, client in batch:
            with contextlib.suppress(OSError):
                for _ in range(8):  # until ClientHello2 is ready (the HRR may come in parts)
                    data = sock.recv(65536)
                    if not data:
                        break
                    client.receive_data(data, time.time())
                    if out := client.data_to_send():
                        sock.sendall(out)
                        done += 1
                        break
    return done


# ---- the legitimate clients ----------------------------------------------------------------


def openssl_clients(client: list[str], binds: list[str | None]) -> list[str]:
    """``client`` (an ``openssl s_client`` command) started together, one per entry of ``binds`` (a local
    address to bind, or None): each sends "ping" and keeps its input open until its echo
    comes back (or its output ends, or 40 s pass), then ends it (close_notify); returns
    each one's output. Not a fixed time with input open: on a loaded machine 20 handshakes
    at once can take longer than any window, and a client whose input closed first leaves
    without its echo."""
    with contextlib.ExitStack() as stack:
        procs = []
        for bind in binds:
            line = [*client, "-quiet", "-no_ign_eof", *(["-bind", f"{bind}:0"] if bind else [])]
            procs.append(stack.enter_context(process(line, seconds=45, stderr=subprocess.STDOUT)))

        def until_echo(proc: subprocess.Popen[bytes]) -> str:
            return converse(proc, ((b"ping\n", "echo:ping"),), seconds=40)

        with ThreadPoolExecutor(len(procs)) as pool:
            return list(pool.map(until_echo, procs))


def legit_binds(shared: bool) -> list[str | None]:
    return [None] * LEGIT if shared else [f"127.2.0.{i + 1}" for i in range(LEGIT)]


def instances(kind: type) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is kind)


# ---- DTLS 1.2: our asyncio server ----------------------------------------------------------


@pytest.mark.parametrize("sources", [ONE_ADDRESS, MANY_ADDRESSES], ids=["one", "many"])
def test_dtls_half_open_flood_does_not_lock_clients_out(tmp_path: Path, sources: list[str]) -> None:
    require("openssl")
    server_config, _ = config(tmp_path)
    held: list[socket.socket] = []
    with AioEchoServer(server_config) as server:
        try:
            before = instances(DtlsServerConnection)
            admitted = dtls_half_open(sources, server.port, held)
            assert admitted >= HALF_OPEN * 9 // 10, admitted
            client = openssl_dtls_client(server.port)
            outputs = openssl_clients(client, legit_binds(sources is ONE_ADDRESS))
            completed = sum("echo:ping" in out for out in outputs)
            assert completed == LEGIT, [o[-300:] for o in outputs if "echo:ping" not in o]
            # What the server holds stayed bounded (the attack's connections evicted).
            dtls = server.server
            limit = server_config.max_handshakes
            assert dtls.handshakes_in_progress <= limit
            assert (
                dtls.admission.count(("127.0.0.1", 0)) <= server_config.max_handshakes_per_address
            )
            assert instances(DtlsServerConnection) - before <= HELD_BOUND
            assert dtls.admission.evicted_per_address + dtls.admission.evicted_when_full >= (
                admitted - limit
            )
        finally:
            for sock in held:
                sock.close()


# ---- TLS 1.3 over TCP: our stateless asyncio server ---------------------------------------


@contextlib.contextmanager
def tls_echo_server(server_config: ServerConfig) -> Iterator[tuple[asyncio.Server, int]]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, object] = {}

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(b"echo:" + data)
                await writer.drain()
        writer.close()

    async def main() -> None:
        server = await serve_tls(echo, "127.0.0.1", 0, server_config, backlog=4096)
        box["server"], box["port"] = server, server.sockets[0].getsockname()[1]
        stopping = box["stopping"] = asyncio.Event()
        ready.set()
        await stopping.wait()
        server.close()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield box["server"], box["port"]  # type: ignore[misc]
    finally:
        loop.call_soon_threadsafe(box["stopping"].set)  # type: ignore[attr-defined]
        thread.join(10)
        assert not thread.is_alive()
        loop.close()


@pytest.mark.parametrize("sources", [ONE_ADDRESS, MANY_ADDRESSES], ids=["one", "many"])
def test_tls13_stateless_half_open_flood_stays_bounded_and_clients_get_in(
    tmp_path: Path, sources: list[str]
) -> None:
    require("openssl")
    server_config, cert = config(tmp_path, stateless=True)
    held: list[socket.socket] = []
    with tls_echo_server(server_config) as (server, port):
        try:
            before = instances(ServerConnection)
            admitted = tls_half_open(sources, port, held)
            assert admitted >= HALF_OPEN * 9 // 10, admitted
            client = ["openssl", "s_client", "-tls1_3", "-connect", f"127.0.0.1:{port}"]
            client += ["-no_middlebox", "-CAfile", str(cert)]
            outputs = openssl_clients(client, legit_binds(sources is ONE_ADDRESS))
            completed = sum("echo:ping" in out for out in outputs)
            assert completed == LEGIT, [o[-300:] for o in outputs if "echo:ping" not in o]
            # Before issue 10 the server kept every admitted connection for 30 s.
            assert instances(ServerConnection) - before <= HELD_BOUND
            from dtlsgate.io.aio_tls import limits_of  # (imported here: absent before issue 10)

            limits = limits_of(server)
            assert limits.handshakes_in_progress <= server_config.max_handshakes
            assert limits.admission.count("127.0.0.1") <= server_config.max_handshakes_per_address
        finally:
            for sock in held:
                sock.close()
