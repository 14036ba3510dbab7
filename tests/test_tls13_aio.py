"""asyncio serve_tls / connect_tls: echo over real loopback TCP, stateful and stateless."""

from __future__ import annotations

import asyncio

import pytest
from tls13_helpers import client_config, server_config

from dtlsgate import connect_tls, serve_tls


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
