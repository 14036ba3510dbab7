"""How many ClientHellos a stateless listener answers per second, over real UDP sockets.

Three servers of the same shape on loopback, measured in one run and interleaved round by
round so that machine noise hits them alike:

- ``bare``: a Python ``recvfrom``/``sendto`` loop that answers each datagram with a fixed
  datagram the size of our HelloVerifyRequest: the ceiling for any Python listener;
- ``dtlsgate``: ``Listener.listen()`` (the gate, with the default cookie jar);
- ``pyopenssl``: pyOpenSSL's ``Connection.DTLSv1_listen()`` on a memory BIO, cookie
  callbacks in Python (the same jar's cookies), recvfrom/sendto around it.

All three read the socket the way ``Listener.listen()`` does (one datagram at a time, or up
to LISTEN_BATCH waiting datagrams, judge them all, then send the replies), with the same
system calls (``recvfrom`` of a fresh bytes object, ``sendto``), so they differ only in what
they do per datagram.

Each round first fills the server socket's receive buffer with N distinct ClientHellos
(captured from ``openssl s_client -dtls1_2``, each with its own random), then times the
server draining it on a non-blocking socket. Only the server loop is timed, on one core,
with no client competing for the CPU. Figures are ratios; the absolute rates are printed for
context only (this machine is noisy).

Also: the gate alone, in-process without sockets, in HelloVerifyRequests per second.

``--cpu-time`` times each round by the server thread's CPU time (``time.thread_time``: user
and system time, the kernel's work in its system calls included) instead of the wall clock,
so that time spent waiting for a core while other work runs on the machine is not counted
(bench/RESULTS.md, listen14: at load averages of 5-15 a 1% step showed in eight of nine
alternated CPU-time pairs, and not in the wall-clock runs, which spread by 0.06 for one
tree).

Usage: python bench/listen.py [--count N] [--rounds R] [--cpu-time]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from dtlsgate import CookieJar, Gate, Listener, Reply, ServerConfig
from dtlsgate.io.listener import LISTEN_BATCH

ROOT = Path(__file__).resolve().parent.parent
HELLO = bytes.fromhex(
    (ROOT / "tests" / "data" / "openssl_dtls12_client_hello.hex").read_text().strip()
)
RANDOM_AT = 13 + 12 + 2  # record header, handshake header, client_version
MASTER_KEY = bytes(range(32))
MAX_DATAGRAM = 65507


def distinct_hellos(count: int) -> list[bytes]:
    hellos = []
    template = bytearray(HELLO)
    for i in range(count):
        template[RANDOM_AT : RANDOM_AT + 4] = i.to_bytes(4, "big")
        hellos.append(bytes(template))
    return hellos


def make_server_socket(rcvbuf: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:  # root may exceed net.core.rmem_max
        sock.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)  # SO_RCVBUFFORCE
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def read_batch(sock: socket.socket, size: int) -> list[tuple[bytes, object]]:
    """Up to ``size`` waiting datagrams, read the way Listener.listen() reads them."""
    recvfrom = sock.recvfrom
    batch: list[tuple[bytes, object]] = []
    try:
        batch.append(recvfrom(MAX_DATAGRAM))
        for _ in range(size - 1):
            batch.append(recvfrom(MAX_DATAGRAM, socket.MSG_DONTWAIT))
    except BlockingIOError:
        pass
    return batch


def bare_loop(sock: socket.socket, reply: bytes, size: int) -> int:
    if size == 1:
        return bare_one_at_a_time(sock, reply)
    sendto = sock.sendto
    handled = 0
    while True:
        batch = read_batch(sock, size)
        for _data, peer in batch:
            sendto(reply, peer)
        handled += len(batch)
        if len(batch) < size:
            return handled


def bare_one_at_a_time(sock: socket.socket, reply: bytes) -> int:
    """Listener.listen() with batch=1 reads, judges and answers each datagram in turn."""
    recvfrom, sendto = sock.recvfrom, sock.sendto
    handled = 0
    while True:
        try:
            _data, peer = recvfrom(MAX_DATAGRAM)
        except BlockingIOError:
            return handled
        sendto(reply, peer)
        handled += 1


def dtlsgate_loop(listener: Listener) -> int:
    before = listener.gate.stats["reply"]
    assert listener.listen() is None
    return listener.gate.stats["reply"] - before


def make_pyopenssl_loop(size: int) -> Callable[[socket.socket], int] | None:
    try:
        from OpenSSL import SSL
    except ImportError:
        return None
    jar = CookieJar(MASTER_KEY)
    current: list[object] = [None]

    def generate(_conn: object) -> bytes:
        return jar.mint(current[0], time.time())  # type: ignore[arg-type]

    def verify(_conn: object, cookie: bytes) -> bool:
        return jar.verify(current[0], time.time(), cookie) is not None  # type: ignore[arg-type]

    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.set_cookie_generate_callback(generate)
    ctx.set_cookie_verify_callback(verify)
    conn = SSL.Connection(ctx, None)
    conn.set_accept_state()

    def loop(sock: socket.socket) -> int:
        if size == 1:
            return one_at_a_time(sock)
        sendto = sock.sendto
        handled = 0
        while True:
            batch = read_batch(sock, size)
            replies = []
            for data, peer in batch:
                current[0] = peer
                conn.bio_write(data)
                try:  # noqa: SIM105 (as cheap as the gate's listener loop)
                    conn.DTLSv1_listen()
                except SSL.WantReadError:
                    pass
                replies.append((conn.bio_read(MAX_DATAGRAM), peer))
            for reply, peer in replies:
                sendto(reply, peer)
            handled += len(batch)
            if len(batch) < size:
                return handled

    def one_at_a_time(sock: socket.socket) -> int:
        recvfrom, sendto = sock.recvfrom, sock.sendto
        handled = 0
        while True:
            try:
                data, peer = recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                return handled
            current[0] = peer
            conn.bio_write(data)
            try:  # noqa: SIM105
                conn.DTLSv1_listen()
            except SSL.WantReadError:
                pass
            sendto(conn.bio_read(MAX_DATAGRAM), peer)
            handled += 1

    return loop


def fill(client: socket.socket, server_address: tuple[str, int], hellos: list[bytes]) -> None:
    for hello in hellos:
        client.sendto(hello, server_address)


def one_round(
    name: str,
    run: Callable[[socket.socket], int],
    hellos: list[bytes],
    rcvbuf: int,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    server = make_server_socket(rcvbuf)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    try:
        fill(client, server.getsockname(), hellos)
        start = clock()
        handled = run(server)
        elapsed = clock() - start
    finally:
        server.close()
        client.close()
    if handled != len(hellos):
        sys.exit(f"{name}: handled {handled} of {len(hellos)} (receive buffer too small?)")
    return handled / elapsed


def gate_alone(hellos: list[bytes], clock: Callable[[], float] = time.perf_counter) -> float:
    gate = Gate(ServerConfig(cookie_jar=CookieJar(MASTER_KEY)))
    peer = ("127.0.0.1", 40000)
    now = time.time()
    start = clock()
    for hello in hellos:
        result = gate.receive(hello, peer, now)
    elapsed = clock() - start
    assert type(result) is Reply
    return len(hellos) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="ClientHellos per round")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument(
        "--cpu-time", action="store_true", help="time rounds by CPU time, not the wall clock"
    )
    args = parser.parse_args()
    clock = time.thread_time if args.cpu_time else time.perf_counter
    hellos = distinct_hellos(args.count)
    rcvbuf = 64 << 20
    config = ServerConfig(cookie_jar=CookieJar(MASTER_KEY))
    reply_size = len(Gate(config).receive(hellos[0], ("127.0.0.1", 1), time.time()).data)  # type: ignore[union-attr]
    bare_reply = bytes(reply_size)

    print(
        f"stateless listen over UDP loopback: {args.count} ClientHellos x {args.rounds} rounds"
        + (", timed by CPU time" if args.cpu_time else "")
    )
    print(f"(HelloVerifyRequest {reply_size} bytes; ClientHello {len(HELLO)} bytes)")
    alone: list[float] = []
    for size, shape in ((1, "one datagram at a time"), (LISTEN_BATCH, "in batches")):
        contenders: dict[str, Callable[[socket.socket], int]] = {
            "bare": lambda s, n=size: bare_loop(s, bare_reply, n),  # type: ignore[misc]
            "dtlsgate": lambda s, n=size: dtlsgate_loop(Listener(s, config, batch=n)),  # type: ignore[misc]
        }
        pyopenssl = make_pyopenssl_loop(size)
        if pyopenssl is not None:
            contenders["pyopenssl"] = pyopenssl
        rates: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, run in contenders.items():
                rates[name].append(one_round(name, run, hellos, rcvbuf, clock))
            alone.append(gate_alone(hellos, clock) / rates["bare"][-1])
        report(f"read {shape} (batch={size}): receive, judge, reply", rates)
    print(
        f"gate alone, in-process (no sockets): {statistics.median(alone):.3f}"
        " x the bare UDP loop's rate (median over all rounds)"
    )


def report(title: str, rates: dict[str, list[float]]) -> None:
    # Ratios are taken within each round (the contenders ran back to back), then the median
    # over rounds: slow drifts of the machine's speed cancel out.
    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(rates[a], rates[b], strict=True))

    print(title)
    for name, values in rates.items():
        print(
            f"  {name:10s} median {statistics.median(values):8.0f}/s  best {max(values):8.0f}/s"
            f"  = {ratio(name, 'bare'):.3f} x bare"
        )
    if "pyopenssl" in rates:
        print(f"  dtlsgate / pyopenssl = {ratio('dtlsgate', 'pyopenssl'):.3f}")


if __name__ == "__main__":
    main()
