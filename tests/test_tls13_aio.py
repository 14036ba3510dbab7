"""asyncio serve_tls / connect_tls: echo over real loopback TCP, stateful and stateless."""

from __future__ import annotations

import asyncio
import logging
import socket
import weakref
from typing import Any

import pytest
from helpers import client_config, cycle_collector_off, eventually, server_config
from peers import require

from dtlsgate import connect_tls, serve_tls
from dtlsgate.errors import ProtocolError
from dtlsgate.io.aio_tls import limits_of


@pytest.mark.parametrize("stateless", [False, True])
def test_echo(stateless: bool) -> None:
    async def main() -> bytes:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            line = await reader.readline()
            writer.write(b"echo:" + line)
            await writer.drain()
            writer.close()

        server = await serve_tls(echo, "127.0.0.1", 0, server_config(stateless=stateless))
        port = server.sockets[0].getsockname()[1]
        reader, writer = await connect_tls("127.0.0.1", port, client_config())
        assert writer.get_extra_info("tls").hello_retry is stateless
        writer.write(b"hello\n")
        await writer.drain()
        answer = await reader.readline()
        writer.close()
        server.close()
        await server.wait_closed()
        return answer

    assert asyncio.run(asyncio.wait_for(main(), 20)) == b"echo:hello\n"


def test_resumption_over_asyncio() -> None:
    async def main() -> tuple[bool, bool]:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        scfg = server_config()
        server = await serve_tls(echo, "127.0.0.1", 0, scfg)
        port = server.sockets[0].getsockname()[1]
        resumed = []
        ticket = None
        for _ in range(2):
            reader, writer = await connect_tls(
                "127.0.0.1", port, client_config(session_ticket=ticket)
            )
            resumed.append(writer.get_extra_info("tls").resumed)
            writer.write(b"hello\n")
            await writer.drain()
            assert await reader.readline() == b"hello\n"  # our ticket came before the echo
            ticket = writer.get_extra_info("session_tickets")[-1]
            writer.close()
        server.close()
        await server.wait_closed()
        return resumed[0], resumed[1]

    assert asyncio.run(asyncio.wait_for(main(), 20)) == (False, True)


@pytest.mark.parametrize("stateless", [False, True])
def test_silent_client_is_dropped_after_the_handshake_timeout(stateless: bool) -> None:
    """A peer that connects and sends nothing (or half a ClientHello) does not hold its
    connection forever: the server closes it after ``handshake_timeout``."""

    async def main() -> tuple[list[str], bytes, bytes]:
        failures: list[str] = []
        server = await serve_tls(
            lambda r, w: None,
            "127.0.0.1",
            0,
            server_config(stateless=stateless),
            on_handshake_failure=lambda exc: failures.append(type(exc).__name__),
            handshake_timeout=0.3,
        )
        port = server.sockets[0].getsockname()[1]
        silent_reader, silent_writer = await asyncio.open_connection("127.0.0.1", port)
        partial_reader, partial_writer = await asyncio.open_connection("127.0.0.1", port)
        partial_writer.write(
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
        )  # a ClientHello begins
        await partial_writer.drain()
        silent = await asyncio.wait_for(silent_reader.read(), 5)  # b"" once the server closed
        partial = await asyncio.wait_for(partial_reader.read(), 5)
        silent_writer.close()
        partial_writer.close()
        server.close()
        await server.wait_closed()
        return failures, silent, partial

    failures, silent, partial = asyncio.run(asyncio.wait_for(main(), 20))
    assert failures == ["TimeoutError", "TimeoutError"]
    assert silent == b"" and partial == b""


def test_client_gives_up_on_a_silent_server() -> None:
    async def main() -> None:
        closed_by_client = asyncio.Event()

        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Until the client gives up and closes its socket; then ours closes too, which
            # Server.wait_closed waits for from Python 3.12.1 on (it hung there before).
            await reader.read()
            closed_by_client.set()
            writer.close()

        server = await asyncio.start_server(mute, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(TimeoutError):
                await connect_tls("127.0.0.1", port, client_config(), handshake_timeout=0.3)
            # The client that gave up closed its socket: nothing left open behind the error.
            await asyncio.wait_for(closed_by_client.wait(), 10)
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(asyncio.wait_for(main(), 20))


# A finished connection is freed by reference counting alone, on either side: a reference
# cycle (say a transport and its protocol holding each other) would leave every connection,
# with its keys, buffers and futures, to the cyclic collector, which at many handshakes a
# second costs the server CPU. The collector is off; weak references watch what is left.


@pytest.mark.parametrize("stateless", [False, True])
def test_a_finished_server_connection_is_freed_without_the_cycle_collector(
    stateless: bool,
) -> None:
    async def main() -> list[bool]:
        watched: list[weakref.ref[Any]] = []
        ended = asyncio.Event()

        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            watched.extend(
                weakref.ref(x) for x in (reader, writer, writer.get_extra_info("tls_connection"))
            )
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()
            ended.set()

        server = await serve_tls(echo, "127.0.0.1", 0, server_config(stateless=stateless))
        port = server.sockets[0].getsockname()[1]
        reader, writer = await connect_tls("127.0.0.1", port, client_config())
        writer.write(b"hello\n")
        assert await reader.readline() == b"hello\n"
        assert await reader.read() == b""
        writer.close()
        await asyncio.wait_for(ended.wait(), 10)
        # The server's connection_lost comes a loop turn or two later.
        await eventually(lambda: limits_of(server).associations == 0)
        await asyncio.sleep(0)  # the handler's task ends (it already returned)
        server.close()
        await server.wait_closed()
        return [w() is None for w in watched]

    with cycle_collector_off():
        assert asyncio.run(asyncio.wait_for(main(), 20)) == [True, True, True]


def test_a_finished_client_connection_is_freed_without_the_cycle_collector() -> None:
    async def main() -> list[bool]:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.readline())
            await writer.drain()
            writer.close()

        server = await serve_tls(echo, "127.0.0.1", 0, server_config())
        port = server.sockets[0].getsockname()[1]
        reader, writer = await connect_tls("127.0.0.1", port, client_config())
        writer.write(b"hello\n")
        assert await reader.readline() == b"hello\n"
        assert await reader.read() == b""
        writer.close()
        await writer.wait_closed()
        watched = [
            weakref.ref(x) for x in (reader, writer, writer.get_extra_info("tls_connection"))
        ]
        del reader, writer
        server.close()
        await server.wait_closed()
        return [w() is None for w in watched]

    with cycle_collector_off():
        assert asyncio.run(asyncio.wait_for(main(), 20)) == [True, True, True]


def test_a_failed_handshake_is_freed_without_the_cycle_collector() -> None:
    """The same for a handshake that failed, on the client (it refuses the server's name)
    and on the server (the client's alert): their errors, kept in the reader and the
    handshake future, must not keep frames that hold the connection (a cycle)."""

    async def main() -> list[bool]:
        watched: list[weakref.ref[Any]] = []
        failed = asyncio.Event()

        def on_failure(exc: BaseException) -> None:
            watched.append(weakref.ref(exc))
            failed.set()

        server = await serve_tls(
            lambda r, w: None, "127.0.0.1", 0, server_config(), on_handshake_failure=on_failure
        )
        port = server.sockets[0].getsockname()[1]
        try:
            await connect_tls("127.0.0.1", port, client_config(server_name="other.example"))
        except ProtocolError as exc:
            watched.append(weakref.ref(exc))
        await asyncio.wait_for(failed.wait(), 10)
        # The server's connection_lost comes a loop turn or two later.
        await eventually(lambda: limits_of(server).handshakes_in_progress == 0)
        server.close()
        await server.wait_closed()
        return [w() is None for w in watched]

    with cycle_collector_off():
        assert asyncio.run(asyncio.wait_for(main(), 20)) == [True, True]


def test_flow_control_both_ways_carries_everything() -> None:
    """1 MiB through a small socket buffer: the client's ``drain()`` waits until the
    transport's buffer went down (pause_writing, then resume_writing); the server handler's
    ``readexactly`` lets its reader's buffer grow past the reader's limit, which pauses the
    TCP transport's reading and resumes it while the read goes on. Every byte arrives."""
    size = 1 << 20

    async def main() -> tuple[bool, bytes]:
        async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.readexactly(size)
            marker = await reader.readexactly(len(b"after drain"))
            writer.write(b"%d %d %s" % (len(data), data.count(0), marker))
            await writer.drain()
            writer.close()

        server = await serve_tls(count, "127.0.0.1", 0, server_config())
        sending = socket.socket()
        sending.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sending.connect(server.sockets[0].getsockname())
        # With sock=, asyncio wants host and port None (connect_tls types them str, int).
        reader, writer = await connect_tls(None, None, client_config(), sock=sending)  # type: ignore[arg-type]
        writer.write(bytes(size))
        drained = asyncio.ensure_future(writer.drain())
        await asyncio.sleep(0)
        waited = not drained.done()  # over the high-water mark: drain() waits
        await asyncio.wait_for(drained, 10)  # the server has not answered: resumed writing
        writer.write(b"after drain")
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        server.close()
        await server.wait_closed()
        return waited, answer

    waited, answer = asyncio.run(asyncio.wait_for(main(), 30))
    assert waited and answer == b"%d %d after drain" % (size, size)


def test_a_plain_function_as_the_callback_and_no_handshake_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``client_connected_cb`` may be a plain function, as with ``asyncio.start_server``;
    ``connect_tls(..., handshake_timeout=None)`` waits without a deadline. The stream cannot
    write an end of file (TLS 1.3 has close_notify instead)."""

    def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        writer.close()

    async def main() -> tuple[bytes, bool]:
        server = await serve_tls(hello, "127.0.0.1", 0, server_config())
        port = server.sockets[0].getsockname()[1]
        reader, writer = await connect_tls(
            "127.0.0.1", port, client_config(), handshake_timeout=None
        )
        can_write_eof = writer.can_write_eof()
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        server.close()
        await server.wait_closed()
        return answer, can_write_eof

    with caplog.at_level(logging.WARNING):
        assert asyncio.run(asyncio.wait_for(main(), 20)) == (b"hello", False)
    assert not [r for r in caplog.records if r.name == "asyncio"], caplog.records


@pytest.mark.interop
def test_stateless_server_refuses_a_tls12_client_with_protocol_version() -> None:
    """``openssl s_client -tls1_2`` against ``serve_tls`` with ``stateless``: the alert
    protocol_version, the connection closed, ``on_handshake_failure`` told why."""
    require("openssl")

    async def main() -> tuple[list[BaseException], str]:
        failures: list[BaseException] = []
        server = await serve_tls(
            lambda r, w: None,
            "127.0.0.1",
            0,
            server_config(stateless=True),
            on_handshake_failure=failures.append,
        )
        port = server.sockets[0].getsockname()[1]
        args = ["openssl", "s_client", "-tls1_2", "-connect", f"127.0.0.1:{port}"]
        proc = await asyncio.create_subprocess_exec(
            "timeout",
            "20",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)  # it ends: we closed
        server.close()
        await server.wait_closed()
        return failures, stderr.decode()

    failures, stderr = asyncio.run(asyncio.wait_for(main(), 30))
    assert "alert protocol version" in stderr, stderr
    assert [type(exc) for exc in failures] == [ConnectionError], failures
    assert str(failures[0]) == "client does not offer (D)TLS 1.3"
