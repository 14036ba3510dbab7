"""A fleet of `dtlsgate serve` processes sharing a cookie master key: one server's
HelloVerifyRequest cookie is verified by another process (DESIGN.md: cookies, fleet).

`--workers N` gives its processes one master key, but on one port the kernel pins each client
address to one worker, so a test cannot make one worker verify another's cookie. Here two
servers run on two ports behind a balancer that sends a client's first flight (its first
ClientHello, and any copy of it the client sends again when its timer fires first on a
loaded machine) to server A and every later datagram to server B, from one upstream
address (so both servers see the same peer, as behind a load balancer that does not pin
clients). With a shared `--master-key`, B admits the ClientHello carrying A's cookie and answers it with a ServerHello; with
different keys B refuses the cookie and sends a HelloVerifyRequest of its own (which
`openssl s_client` ignores, retransmitting the refused ClientHello until it gives up: a
fleet must share its key; our client answers the second HelloVerifyRequest).
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from test_dtls12_cli import dtlsgate_serve, run_connect
from test_interop_dtls12 import PSK_HEX, PSK_ID, run_s_client

pytestmark = pytest.mark.interop

HANDSHAKE = 22
CLIENT_HELLO = 1
HELLO_VERIFY_REQUEST = 3
SERVER_HELLO = 2
KEY_A = "11" * 32
KEY_B = "22" * 32
PSK = ("--psk", f"{PSK_ID}:{PSK_HEX}")


def is_first_client_hello(datagram: bytes) -> bool:
    """Whether the datagram starts with an epoch-0 ClientHello of message_seq 0: the
    client's first flight, or the same flight again (RFC 6347 §4.2.4)."""
    head = datagram[:19]
    return (
        len(head) == 19
        and head[0] == HANDSHAKE
        and head[3:5] == b"\0\0"  # epoch 0
        and head[13] == CLIENT_HELLO
        and head[17:19] == b"\0\0"  # message_seq 0
    )


class Balancer:
    """UDP on loopback: a client's first flight goes to ``first``, the rest to ``rest``,
    all from one upstream socket per client. Records which server sent what back."""

    def __init__(self, first: int, rest: int) -> None:
        self.servers = (("127.0.0.1", first), ("127.0.0.1", rest))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.replies: list[tuple[int, bytes]] = []  # (server index, datagram)
        self._up: dict[tuple[str, int], socket.socket] = {}
        self._client_of: dict[socket.socket, tuple[str, int]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.sock, *self._client_of], [], [], 0.05)
            for s in ready:
                data, addr = s.recvfrom(65535)
                if s is self.sock:
                    up = self._up.get(addr)
                    if up is None:
                        up = self._up[addr] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                        up.bind(("127.0.0.1", 0))
                        self._client_of[up] = addr
                    up.sendto(data, self.servers[0 if is_first_client_hello(data) else 1])
                else:
                    self.replies.append((self.servers.index(addr), data))
                    self.sock.sendto(data, self._client_of[s])

    @contextmanager
    def running(self) -> Iterator[Balancer]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(10)
            for s in [self.sock, *self._up.values()]:
                s.close()


def handshake_types(datagram: bytes) -> list[int]:
    """The handshake message types of the datagram's epoch-0 handshake records."""
    types, pos = [], 0
    while pos + 13 <= len(datagram):
        length = int.from_bytes(datagram[pos + 11 : pos + 13], "big")
        if datagram[pos] == HANDSHAKE and datagram[pos + 3 : pos + 5] == b"\x00\x00":
            types.append(datagram[pos + 13])
        pos += 13 + length
    return types


@contextmanager
def fleet(tmp_path: Path, key_a: str, key_b: str) -> Iterator[Balancer]:
    with ExitStack() as stack:
        port_a = stack.enter_context(dtlsgate_serve(tmp_path, *PSK, "--master-key", key_a))
        port_b = stack.enter_context(dtlsgate_serve(tmp_path, *PSK, "--master-key", key_b))
        yield stack.enter_context(Balancer(port_a, port_b).running())


def replies_from(balancer: Balancer, server: int) -> list[list[int]]:
    return [handshake_types(d) for i, d in balancer.replies if i == server]


def only_hello_verify_requests(replies: list[list[int]]) -> bool:
    """One HelloVerifyRequest per datagram, at least one (a ClientHello sent again before
    the answer came is answered again)."""
    return bool(replies) and all(types == [HELLO_VERIFY_REQUEST] for types in replies)


def test_a_cookie_minted_by_one_server_is_admitted_by_another_with_the_same_key(
    tmp_path: Path,
) -> None:
    with fleet(tmp_path, KEY_A, KEY_A) as balancer:
        extra = ["-psk", PSK_HEX, "-psk_identity", PSK_ID, "-cipher", "PSK-AES128-CCM8"]
        got = run_s_client(balancer.port, extra, b"across the fleet")
    assert got == "across the fleet"
    # A saw only ClientHello1 (and any copy of it) and answered with HelloVerifyRequests;
    # B's first answer continues the handshake: the cookie from A verified in another process.
    assert only_hello_verify_requests(replies_from(balancer, 0))
    from_b = replies_from(balancer, 1)
    assert from_b and from_b[0][0] == SERVER_HELLO
    assert HELLO_VERIFY_REQUEST not in {t for types in from_b for t in types}


def test_a_server_with_another_key_refuses_the_cookie(tmp_path: Path) -> None:
    with fleet(tmp_path, KEY_A, KEY_B) as balancer:
        # DTLS 1.2: a server refusing the cookie answers with its own HelloVerifyRequest.
        # (DTLS 1.3 has no second HelloRetryRequest: a fleet must share the key.)
        done = run_connect(balancer.port, b"across the fleet\n", *PSK, "--dtls1_2")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"across the fleet\n"
    assert only_hello_verify_requests(replies_from(balancer, 0))
    # B refused A's cookie with a HelloVerifyRequest of its own (once per copy of the
    # ClientHello carrying A's cookie); our client answered it and B admitted the
    # ClientHello carrying B's cookie.
    from_b = replies_from(balancer, 1)
    answers = [types for types in from_b if types != [HELLO_VERIFY_REQUEST]]
    assert from_b[0] == [HELLO_VERIFY_REQUEST] and answers[0][:1] == [SERVER_HELLO], from_b
