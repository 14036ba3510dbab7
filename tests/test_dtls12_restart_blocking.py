"""Blocking server (`Listener.listen` + `accept`): a client that restarts from the same address
and port (RFC 6347 §4.2.8) gets a new association, and a stale copy of the old ClientHello
does not end the old one. Checked where each kind of reader meets the new ClientHello: the
listener's ``listen()`` (the server went back to listening), the old `DtlsSocket`'s
``recv()`` on the shared socket, and its ``recv()`` on a connected socket."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
from builders import client_hello, datagram
from test_dtls12_aio import configs
from test_dtls12_restart import echo, handshake_from, late_copy_answer, until

from dtlsgate.errors import StateError
from dtlsgate.io.blocking import DtlsSocket
from dtlsgate.io.listener import Listener


class BlockingEchoServer:
    """One thread: listen, accept, then echo up to ``echoes`` records of that peer before
    listening again. A connection whose ``recv()`` returned b"" is recorded and closed."""

    def __init__(self, config: Any, *, echoes: int, connected: bool = False) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.listener = Listener(self.sock, config)
        self.echoes = echoes
        self.connected = connected
        self.conns: list[DtlsSocket] = []
        self.ended: list[DtlsSocket] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 40
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                admitted = self.listener.listen()
                if admitted is None:
                    continue
                conn = self.listener.accept(*admitted, timeout=10, connected_socket=self.connected)
                self.conns.append(conn)
                self._echo(conn)
            except Exception as exc:  # recorded for the test to assert on
                self.errors.append(exc)

    def _echo(self, conn: DtlsSocket) -> None:
        echoed = 0
        while echoed < self.echoes and not self._stop.is_set():
            try:
                data = conn.recv(timeout=0.2)
            except TimeoutError:
                continue
            if not data:
                self.ended.append(conn)
                conn.close()
                return
            conn.send(b"echo:" + data)
            echoed += 1

    def __enter__(self) -> BlockingEchoServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(30)
        for conn in self.conns:
            conn.close()
        self.sock.close()


# echoes=1: the server is back in listen() when the client restarts; echoes=5: it waits in
# the old DtlsSocket's recv(), which reads the peer's datagrams itself.
READERS = [
    pytest.param(1, False, id="listen"),
    pytest.param(5, False, id="shared-socket-recv"),
    pytest.param(5, True, id="connected-socket-recv"),
]


@pytest.mark.parametrize(("echoes", "connected"), READERS)
def test_client_restarting_from_the_same_address_replaces_the_association(
    echoes: int, connected: bool
) -> None:
    server_config, _ = configs()
    with BlockingEchoServer(server_config, echoes=echoes, connected=connected) as server:
        first, _ = handshake_from(0, server.port)
        local_port = first.sock.getsockname()[1]
        assert echo(first, b"before") == b"echo:before"
        first.sock.close()  # the client crashes: no close_notify, its keys are gone
        second, _ = handshake_from(local_port, server.port)
        assert echo(second, b"after") == b"echo:after"
        old, new = server.conns
        assert old.peer == new.peer == ("127.0.0.1", local_port)
        assert old.recv(timeout=1) == b""  # as if the peer had sent close_notify
        with pytest.raises(StateError, match="restarted"):
            old.send(b"to nobody")
        old.close()  # sends nothing, and leaves the new association's route alone
        if echoes > 1:
            assert echo(second, b"still") == b"echo:still"
        else:
            assert server.listener._routes[new.peer] is new
        second.close()
    assert not server.errors, server.errors
    if echoes > 1:
        assert server.ended[0] is old


@pytest.mark.parametrize(("echoes", "connected"), READERS)
def test_stale_copy_of_the_old_client_hello_does_not_end_the_association(
    echoes: int, connected: bool
) -> None:
    server_config, _ = configs()
    with BlockingEchoServer(server_config, echoes=echoes, connected=connected) as server:
        dtls, sent = handshake_from(0, server.port)
        if echoes == 1:
            assert echo(dtls, b"first") == b"echo:first"  # the server listens again
        hellos = [d for d in sent if d[0] == 22 and d[13] == 1]
        assert len(hellos) >= 2  # ClientHello, then ClientHello with the cookie
        dtls.sock.send(hellos[-1])  # a delayed duplicate, cookie still valid
        deadline = time.monotonic() + 30  # a bound only
        # Judged by the gate (admitted: its cookie is valid), then ignored.
        while server.listener.gate.admits < 2 and time.monotonic() < deadline:
            if echoes > 1:
                echo(dtls, b"poke")  # the server's recv() reads the socket
            time.sleep(0.05)
        assert server.listener.gate.admits == 2
        if echoes > 1:
            # recv() reads the peer's datagrams in order and would have ended the
            # association at the copy: the echo of a later record shows it did not.
            assert echo(dtls, b"still here") == b"echo:still here"
        else:
            # listen() (one datagram per call: the socket has a timeout) takes a datagram
            # the gate drops, sent now, only once it went on past the copy without
            # returning it (returned, the server would be in accept() for 10 s): no fixed
            # wait for what listen() "would have returned by now".
            drops = sum(server.listener.gate.drops.values())
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
                other.sendto(b"not dtls", ("127.0.0.1", server.port))
                until(lambda: sum(server.listener.gate.drops.values()) > drops)
        [conn] = server.conns
        assert not server.ended
        assert not conn._replaced
        dtls.close()
    assert not server.errors, server.errors


@pytest.mark.parametrize(("echoes", "connected"), READERS)
def test_client_hello_without_cookie_from_an_established_peer_gets_a_hello_verify_request(
    echoes: int, connected: bool
) -> None:
    server_config, _ = configs()
    with BlockingEchoServer(server_config, echoes=echoes, connected=connected) as server:
        first, _ = handshake_from(0, server.port)
        local_port = first.sock.getsockname()[1]
        assert echo(first, b"before") == b"echo:before"
        first.sock.close()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            raw.bind(("127.0.0.1", local_port))
            raw.settimeout(5)
            raw.sendto(datagram(client_hello(random=bytes(32))), ("127.0.0.1", server.port))
            reply, _ = raw.recvfrom(2048)
        assert reply[0] == 22 and reply[13] == 3  # HelloVerifyRequest
        assert server.listener.gate.replies >= 2
        assert not server.ended  # no cookie yet: the old association stands
        assert server.listener.gate.admits == 1
    assert not server.errors, server.errors


def test_late_copy_of_a_closed_associations_client_hello_is_not_accepted() -> None:
    """A ClientHello copy arriving after its association completed and closed (its cookie
    still valid) is not returned by listen(): before, accept() ran a handshake with a
    client long gone until its timeout (test_dtls12_restart.py has the asyncio server's)."""
    server_config, _ = configs()
    with BlockingEchoServer(server_config, echoes=5) as server:
        dtls, sent = handshake_from(0, server.port)
        hellos = [d for d in sent if d[0] == 22 and d[13] == 1]
        assert echo(dtls, b"done") == b"echo:done"
        local = dtls.sock.getsockname()
        dtls.close()  # close_notify: the server's recv() returns b"" and it closes
        until(lambda: bool(server.ended))
        answer = late_copy_answer(local, server.port, hellos[-1])
        assert answer == b""
        assert server.listener.gate.admits == 2 and server.listener.finished_hellos.dropped == 1
        assert len(server.conns) == 1
    assert not server.errors, server.errors
