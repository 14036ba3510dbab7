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
