"""Shared helpers for the TLS 1.3 tests: credentials, configs and in-memory pairs."""

from __future__ import annotations

import functools
import time
from typing import Any

from dtlsgate.config import ClientConfig, ServerConfig
from dtlsgate.connection.stream import ClientConnection, ServerConnection, TlsConnection
from dtlsgate.crypto.certs import load_identity, make_self_signed

NOW = time.time()


@functools.cache
def credentials(key_type: str = "ecdsa-p256") -> tuple[bytes, bytes]:
    return make_self_signed("localhost", key_type)


def server_config(key_type: str = "ecdsa-p256", **kw: Any) -> ServerConfig:
    cert, key = credentials(key_type)
    ident = load_identity(cert, key)
    return ServerConfig(certificate_chain=list(ident.chain), private_key=ident.private_key, **kw)


def client_config(key_type: str = "ecdsa-p256", **kw: Any) -> ClientConfig:
    cert, _ = credentials(key_type)
    kw.setdefault("server_name", "localhost")
    if not kw.get("insecure"):  # an insecure client verifies nothing: no cafile (refused)
        kw.setdefault("cafile", cert)
    return ClientConfig(**kw)


def pump(a: TlsConnection, b: TlsConnection, rounds: int = 6) -> None:
    """Move bytes both ways until both are quiet (bounded)."""
    for _ in range(rounds):
        ab = a.data_to_send()
        if ab:
            b.receive_data(ab, NOW)
        ba = b.data_to_send()
        if ba:
            a.receive_data(ba, NOW)
        if not ab and not ba:
            return


def pair(
    server_cfg: ServerConfig | None = None, client_cfg: ClientConfig | None = None
) -> tuple[ClientConnection, ServerConnection]:
    client = ClientConnection(client_cfg or client_config())
    server = ServerConnection(server_cfg or server_config())
    client.start()
    pump(client, server)
    return client, server


def events(conn: TlsConnection) -> list[Any]:
    out = []
    while (e := conn.next_event()) is not None:
        out.append(e)
    return out
