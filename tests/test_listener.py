"""The blocking Listener on real UDP sockets (IPv4 and IPv6), and the CLI's listen."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import client_hello, datagram, with_cookie
from helpers import FENCE, one_cpu
from peers import announced_port, process, read_line

from dtlsgate import Admit, CookieJar, Listener, ServerConfig, UsageError


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


FAMILIES = [
    pytest.param(socket.AF_INET, "127.0.0.1", id="ipv4"),
    pytest.param(
        socket.AF_INET6,
        "::1",
        id="ipv6",
        marks=pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback"),
    ),
]


@pytest.mark.parametrize(("family", "host"), FAMILIES)
def test_listen_answers_then_admits(family: int, host: str) -> None:
    server = socket.socket(family, socket.SOCK_DGRAM)
    client = socket.socket(family, socket.SOCK_DGRAM)
    server.bind((host, 0))
    client.bind((host, 0))
    server.settimeout(5)
    client.settimeout(5)
    listener = Listener(server, ServerConfig(cookie_jar=CookieJar(bytes(32))))
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(listener.listen()))
    thread.start()
    try:
        first = datagram(client_hello())
        client.sendto(b"garbage", server.getsockname())  # dropped along the way
        client.sendto(first, server.getsockname())
        reply, source = client.recvfrom(2048)
        assert source[:2] == server.getsockname()[:2]
        assert reply[13] == 3  # HelloVerifyRequest
        client.sendto(with_cookie(first, reply[-21:]), server.getsockname())
        thread.join(10)
    finally:
        server.close()
        client.close()
    assert not thread.is_alive()
    [(peer, admit)] = result  # type: ignore[misc]
    assert isinstance(admit, Admit)
    assert peer[:2] == admit.peer[:2]
    assert listener.gate.replies == 1 and listener.gate.admits == 1
    assert sum(listener.gate.drops.values()) == 1


def test_nonblocking_listen_returns_none_when_nothing_waits() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        assert Listener(sock).listen() is None
        sock.setblocking(True)
        sock.settimeout(0.05)
        assert Listener(sock).listen() is None


def test_stream_socket_is_refused() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(UsageError):
        Listener(sock)


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "dtlsgate", "listen"],
        [str(Path(sys.executable).parent / "dtlsgate"), "listen"],
    ],
    ids=["python-m", "entry-point"],
)
def test_cli_prints_one_line_per_admission(command: list[str]) -> None:
    with process(
        [*command, "--host", "127.0.0.1", "--port", "0"], seconds=30, stdin=subprocess.DEVNULL
    ) as proc:
        port = announced_port(proc, "listening on ")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            client.bind(("127.0.0.1", 0))
            first = datagram(client_hello())
            client.sendto(first, ("127.0.0.1", port))
            reply, _ = client.recvfrom(2048)
            cookie = reply[-21:]
            client.sendto(with_cookie(first, cookie), ("127.0.0.1", port))
            line = read_line(proc.stdout, time.monotonic() + 10)
            assert line == f"admitted 127.0.0.1:{client.getsockname()[1]} cookie={cookie.hex()}"


@contextlib.contextmanager
def loopback_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A non-blocking server socket and a client socket (30 s timeout: a bound only, each
    read waits for a datagram that must come) on 127.0.0.1. The test's thread stays on one
    CPU meanwhile, for `fence` (`one_cpu`)."""
    with (
        one_cpu(),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client,
    ):
        server.bind(("127.0.0.1", 0))
        client.bind(("127.0.0.1", 0))
        server.setblocking(False)
        client.settimeout(30)
        yield server, client


def fence(sender: socket.socket) -> None:
    """Wait until every datagram ``sender`` has sent so far on loopback is in its
    receiver's queue: a last datagram sent to a socket of our own, and received (in order
    behind the others: `one_cpu`; a fixed sleep before reading, 0.2 s here before, was a
    guess at the delay)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as witness:
        witness.bind(("127.0.0.1", 0))
        witness.settimeout(30)  # a bound only
        sender.sendto(FENCE, witness.getsockname())
        assert witness.recvfrom(16)[0] == FENCE


def test_batched_reads_keep_unjudged_datagrams_for_the_next_call() -> None:
    """An Admit in the middle of a batch returns at once; the datagrams read after it stay
    (at most LISTEN_BATCH - 1 of them) and are judged by the next listen()."""
    from dtlsgate.io.listener import LISTEN_BATCH

    jar = CookieJar(bytes(32))
    with loopback_pair() as (server, client):
        listener = Listener(server, ServerConfig(cookie_jar=jar))
        first = datagram(client_hello())
        cookie = jar.mint(client.getsockname(), time.time(), _bound(first))
        client.sendto(first, server.getsockname())
        client.sendto(with_cookie(first, cookie), server.getsockname())
        for _ in range(LISTEN_BATCH + 5):
            client.sendto(first, server.getsockname())
        fence(client)  # all of them wait in the server's socket: one batch holds 32
        admitted = listener.listen()
        assert admitted is not None and admitted[1].cookie == cookie
        assert listener.gate.replies == 1
        assert len(listener._unread) == LISTEN_BATCH - 2
        assert listener.listen() is None  # judges the rest, then finds the socket empty
        assert listener.gate.replies == 1 + LISTEN_BATCH + 5
        assert not listener._unread


def _bound(hello_datagram: bytes) -> bytes:
    """The ClientHello fields a cookie binds (those before it, RFC 6347 §4.2.1)."""
    body = hello_datagram[25:]
    return body[: 2 + 32 + 1 + body[34]]


def test_an_error_mid_batch_keeps_the_unjudged_datagrams() -> None:
    """An exception out of the gate (here a cookie_generate callback that fails once)
    propagates; the datagrams read after the one that raised are judged by the next call."""
    from dtlsgate.io.listener import LISTEN_BATCH

    calls: list[object] = []

    def generate(peer: object) -> bytes:
        calls.append(peer)
        if len(calls) == 2:
            raise RuntimeError("cookie service down")
        return b"c"

    config = ServerConfig(cookie_generate=generate, cookie_verify=lambda peer, cookie: False)
    with loopback_pair() as (server, client):
        listener = Listener(server, config)
        first = datagram(client_hello())
        for _ in range(5):
            client.sendto(first, server.getsockname())
        fence(client)  # all five in one batch
        with pytest.raises(RuntimeError, match="cookie service down"):
            listener.listen()
        assert len(listener._unread) == 3
        assert listener.listen() is None
        assert not listener._unread
        assert listener.gate.replies == 4  # the reply judged before the error is not sent
        # What the server sent to the client, counted up to a datagram it sends last: a
        # reply sent before it arrives before it (the same CPU's backlog, in order), so no
        # wait for silence on the wall clock.
        server.sendto(FENCE, client.getsockname())
        replies = 0
        while client.recvfrom(2048)[0] != FENCE:
            replies += 1
        assert replies == 3
        assert LISTEN_BATCH >= 5


def test_one_at_a_time_answers_each_datagram_before_reading_the_next() -> None:
    """batch=1: a datagram after an Admit stays in the socket for the next listen()."""
    jar = CookieJar(bytes(32))
    with loopback_pair() as (server, client):
        listener = Listener(server, ServerConfig(cookie_jar=jar), batch=1)
        first = datagram(client_hello())
        cookie = jar.mint(client.getsockname(), time.time(), _bound(first))
        for data in (b"garbage", first, with_cookie(first, cookie), first):
            client.sendto(data, server.getsockname())
        fence(client)  # all four wait in the server's socket
        admitted = listener.listen()
        assert admitted is not None and admitted[1].cookie == cookie
        assert (listener.gate.replies, sum(listener.gate.drops.values())) == (1, 1)
        assert not listener._unread
        assert client.recvfrom(2048)[0][13] == 3  # the first HelloVerifyRequest
        assert listener.listen() is None
        assert listener.gate.replies == 2
        assert client.recvfrom(2048)[0][13] == 3
