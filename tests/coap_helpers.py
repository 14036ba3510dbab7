"""Shared by the CoAP tests: credentials, certificates, our server and client contexts, and
real CoAP peers run from asyncio under ``timeout``.

Every peer runs under GNU ``timeout`` (which leads its own process group; the group is killed
afterwards) and every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from peers import process

from dtlsgate.crypto.certs import make_self_signed

aiocoap = pytest.importorskip("aiocoap", reason="`make test` installs aiocoap (extra [coap])")

from dtlsgate import coap  # noqa: E402

PSK_ID = b"Client_identity"
PSK = b"secretPSK"
PSK_ENTRY = {"dtls": {"psk": PSK, "client-identity": PSK_ID}}
# One datagram holds at most a 1024-byte block: this needs block-wise transfer both ways.
BIG = b"".join(b"line %05d of a resource larger than one datagram\n" % i for i in range(120))
# Bounds on waits (generous: the machine is shared).
REQUEST_WAIT = 20.0


@dataclass(frozen=True)
class Certs:
    """Self-signed end-entity certificates that are their own trust anchors: the server's
    (SAN localhost, 127.0.0.1), a client's, and an unrelated one."""

    server: Path
    server_key: Path
    client: Path
    client_key: Path
    other: Path


def make_certs(directory: Path) -> Certs:
    paths = {}
    for name in ("server", "client", "other"):
        cert_pem, key_pem = make_self_signed("localhost" if name == "server" else name, days=30)
        paths[name] = directory / f"{name}.pem"
        paths[name + "_key"] = directory / f"{name}-key.pem"
        paths[name].write_bytes(cert_pem)
        paths[name + "_key"].write_bytes(key_pem)
    return Certs(
        paths["server"], paths["server_key"], paths["client"], paths["client_key"], paths["other"]
    )


@contextlib.asynccontextmanager
async def our_server(**kwargs: Any) -> AsyncIterator[tuple[Any, int]]:
    """``coap.create_server_context`` on 127.0.0.1 with the CLI's resource tree (/time
    notifies every 0.2 s); yields the context and its port."""
    from dtlsgate.io.coap_cli import build_site

    ctx = await coap.create_server_context(build_site(0.2), bind=("127.0.0.1", 0), **kwargs)
    try:
        yield ctx, coap.server_address(ctx)[1]
    finally:
        await asyncio.wait_for(ctx.shutdown(), 15)


@contextlib.asynccontextmanager
async def our_client(credentials: Any, **kwargs: Any) -> AsyncIterator[Any]:
    ctx = await coap.create_client_context(credentials, **kwargs)
    try:
        yield ctx
    finally:
        await asyncio.wait_for(ctx.shutdown(), 15)


async def request(
    ctx: Any, method: Any, uri: str, payload: bytes = b"", *, wait: float = REQUEST_WAIT
) -> Any:
    message = aiocoap.Message(code=method, uri=uri, payload=payload)
    return await asyncio.wait_for(ctx.request(message).response, wait)


# libcoap's clients print their log lines ("Dec 04 18:59:38.323 WARN ...") on stdout too.
LIBCOAP_LOG_LINE = re.compile(rb"^[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d\.\d+ ")
# What /time answers: an ISO 8601 UTC time.
TIME = re.compile(rb"^20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$")


@dataclass(frozen=True)
class Ran:
    returncode: int | None
    stdout: bytes
    stderr: bytes

    @property
    def payload_lines(self) -> list[bytes]:
        """The non-empty lines of stdout that are not libcoap log lines."""
        lines = self.stdout.splitlines()
        return [line for line in lines if line.strip() and not LIBCOAP_LOG_LINE.match(line)]

    @property
    def times(self) -> list[bytes]:
        """The /time answers in the output (libcoap's -w puts each on its own line)."""
        return [line for line in self.payload_lines if TIME.match(line)]


def _run_peer(args: list[str], seconds: float) -> Ran:
    with process(args, seconds=seconds, stdin=subprocess.DEVNULL) as proc:
        out, err = proc.communicate(timeout=seconds + 5)
    return Ran(proc.returncode, out, err)


async def run_peer(args: list[str], seconds: float = 20) -> Ran:
    """Run a peer under ``timeout`` and collect its output; its process group is killed
    when it has not ended in ``seconds``. On a thread, through `peers.process`, whose group
    kill cannot reach another program's group (`peers.start`): asyncio's child watcher
    reaps a process on its own thread before ``returncode`` is set, so a kill guarded by
    ``returncode is None`` could signal a process id already free for reuse."""
    return await asyncio.to_thread(_run_peer, args, seconds)


def coap_client_args(
    flavour: str, auth: str, certs: Certs | None, *extra: str, wait: int = 10
) -> list[str]:
    """``coap-client-<flavour>`` with PSK (-u/-k) or certificates (-c/-j and -C, which
    makes it verify our certificate), stopping after ``wait`` seconds (-B)."""
    args = [f"coap-client-{flavour}", "-B", str(wait)]
    if auth == "psk":
        args += ["-u", PSK_ID.decode(), "-k", PSK.decode()]
    else:
        assert certs is not None
        args += ["-c", str(certs.client), "-j", str(certs.client_key), "-C", str(certs.server)]
    return [*args, *extra]
