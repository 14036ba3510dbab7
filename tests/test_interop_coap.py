"""CoAP over DTLS against real CoAP peers, both directions (libcoap 4.3 on OpenSSL and on
GnuTLS, `apt-get install libcoap3-bin`; aiocoap's own tinydtls client):

- ``coap-client-openssl`` and ``coap-client-gnutls`` against our server (the CLI's resource
  tree): GET, PUT and GET of a resource larger than one datagram (block-wise, RFC 7959, both
  ways) and an observation (RFC 7641), with PSK and with certificates (client certificates
  required and verified; the clients verify ours);
- our aiocoap client against ``coap-server-openssl`` and ``coap-server-gnutls``, PSK and
  certificates;
- aiocoap's tinydtls client (PyPI DTLSSocket) against our server;
- the cookie exchange on the wire (tshark) for every client, and a flood of spoofed
  ClientHellos while CoAP clients are served;
- ``dtlsgate coap-server`` with the coap-client command of the README.

libcoap's clients exit 0 whether or not they got an answer: the tests check what they print.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from peers import Packet, announced_port, capture, free_port, process, require

from dtlsgate import ClientConfig, ServerConfig
from dtlsgate.wire.enums import ProtocolVersion

aiocoap = pytest.importorskip("aiocoap", reason="`make test` installs aiocoap (extra [coap])")

from coap_helpers import (  # noqa: E402
    BIG,
    PSK,
    PSK_ENTRY,
    PSK_ID,
    TIME,
    Certs,
    coap_client_args,
    make_certs,
    our_client,
    our_server,
    request,
    run_peer,
)

from dtlsgate import coap  # noqa: E402

pytestmark = pytest.mark.interop

CLIENT_HELLO, HELLO_VERIFY_REQUEST = 1, 3
HERE = Path(__file__).resolve().parent
HAVE_TINYDTLS = importlib.util.find_spec("DTLSSocket") is not None


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("coap-certs"))


def server_kwargs(auth: str, certs: Certs) -> dict[str, object]:
    """Our server: the PSK, or our certificate with client certificates required."""
    if auth == "psk":
        return {"credentials": {":client": PSK_ENTRY}}
    return {
        "certfile": str(certs.server),
        "keyfile": str(certs.server_key),
        "config": ServerConfig(verify_client="required", cafile=str(certs.client)),
    }


@pytest.mark.parametrize("auth", ["psk", "cert"])
@pytest.mark.parametrize("flavour", ["openssl", "gnutls"])
def test_libcoap_client_get_put_blockwise_and_observe(
    flavour: str, auth: str, certs: Certs, tmp_path: Path
) -> None:
    require(f"coap-client-{flavour}")
    big, got = tmp_path / "big.txt", tmp_path / "got.txt"
    big.write_bytes(BIG)

    async def main() -> None:
        async with our_server(**server_kwargs(auth, certs)) as (server, port):
            base = f"coaps://127.0.0.1:{port}"

            def client(*extra: str) -> list[str]:
                return coap_client_args(flavour, auth, certs, *extra)

            wkc = await run_peer(client(f"{base}/.well-known/core"))
            assert b"</time>;obs" in wkc.stdout and b"</echo>" in wkc.stdout, wkc
            # Block1 in 256-byte blocks, then Block2 (1024-byte blocks) to read it back.
            await run_peer(client("-m", "put", "-b", "256", "-f", str(big), f"{base}/echo"))
            await run_peer(client("-o", str(got), f"{base}/echo"))
            assert got.read_bytes() == BIG
            # Observe /time for 2 s: a notification every 0.2 s, each a different time.
            observed = await run_peer(client("-s", "2", "-w", f"{base}/time"))
            assert len(set(observed.times)) >= 4, observed
            info = [s.handshake_info for s in coap.dtls_server(server).peers.values()]
            assert all(i is not None and i.extended_master_secret for i in info)

    asyncio.run(main())


@pytest.mark.parametrize("flavour", ["openssl", "gnutls"])
def test_libcoap_client_without_the_right_certificates_gets_nothing(
    flavour: str, certs: Certs
) -> None:
    """Our server requires a client certificate; the client verifies ours: a client without
    a certificate, and a client trusting another CA, get no answer."""
    require(f"coap-client-{flavour}")

    async def main() -> None:
        async with our_server(**server_kwargs("cert", certs)) as (_, port):
            uri = f"coaps://127.0.0.1:{port}/time"
            no_cert = await run_peer(
                [f"coap-client-{flavour}", "-B", "3", "-C", str(certs.server), uri]
            )
            wrong_ca = await run_peer(
                [f"coap-client-{flavour}", "-B", "3", "-c", str(certs.client), "-j",
                 str(certs.client_key), "-C", str(certs.other), uri]
            )  # fmt: skip
            right = await run_peer(coap_client_args(flavour, "cert", certs, "-w", uri))
        assert no_cert.payload_lines == [] and wrong_ca.payload_lines == [], (no_cert, wrong_ca)
        assert len(right.times) == 1, right

    asyncio.run(main())


def rpk_pem(directory: Path, name: str) -> tuple[Path, bytes]:
    """A P-256 key as libcoap's ``-M`` takes it (PUBLIC KEY then PRIVATE KEY, PEM) and its
    SubjectPublicKeyInfo (DER)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from dtlsgate.crypto.certs import load_private_key, make_self_signed, spki_of

    _, key_pem = make_self_signed(name, "ecdsa-p256", days=1)
    key = load_private_key(key_pem)
    public = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    path = directory / f"{name}-rpk.pem"
    path.write_bytes(public + key_pem)
    return path, spki_of(key)


def test_libcoap_gnutls_client_with_raw_public_keys(tmp_path: Path) -> None:
    """RFC 7250 with ``coap-client-gnutls -M``: our server presents a raw key and requires
    the client's, pinned; an unpinned client key gets no answer (bad_certificate)."""
    require("coap-client-gnutls")
    server_file, _ = rpk_pem(tmp_path, "server")
    client_file, client_spki = rpk_pem(tmp_path, "client")
    other_file, _ = rpk_pem(tmp_path, "other")

    async def main() -> None:
        config = ServerConfig(verify_client="required", pinned_keys=(client_spki,))
        config.load_raw_public_key(str(server_file))
        async with our_server(config=config) as (server, port):
            uri = f"coaps://127.0.0.1:{port}/time"
            # Observed for 2 s: the association lasts long enough to look at it.
            args = ["coap-client-gnutls", "-B", "5", "-s", "2", "-w", "-M", str(client_file), uri]
            peer = asyncio.ensure_future(run_peer(args))
            peers = coap.dtls_server(server).peers
            # Bounded by the peer's own run (`run_peer`: 20 s under `timeout`), not 10 s.
            while not (peers or peer.done()):
                await asyncio.sleep(0.1)
            infos = [s.handshake_info for s in peers.values()]
            pinned = await peer
            unpinned = await run_peer(["coap-client-gnutls", "-B", "3", "-M", str(other_file), uri])
        assert len(set(pinned.times)) >= 4, pinned
        assert [i.peer_raw_public_key for i in infos if i is not None] == [client_spki]
        assert unpinned.payload_lines == [], unpinned

    asyncio.run(main())


async def request_when_up(client: object, method: object, uri: str, payload: bytes = b"") -> object:
    """The first request waits for the peer server to be up (bounded: 60 s; its start-up
    is a process's, which a loaded machine stretches)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return await request(client, method, uri, payload)
        except coap.DtlsConnectError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.3)


@pytest.mark.parametrize("auth", ["psk", "cert"])
@pytest.mark.parametrize("flavour", ["openssl", "gnutls"])
def test_our_client_against_libcoap_server(flavour: str, auth: str, certs: Certs) -> None:
    require(f"coap-server-{flavour}")
    port = free_port(socket.SOCK_DGRAM, socket.SOCK_STREAM, count=2)
    args = [f"coap-server-{flavour}", "-A", "127.0.0.1", "-p", str(port), "-d", "4"]
    if auth == "psk":
        args += ["-k", PSK.decode()]
        host, entry, config = "127.0.0.1", PSK_ENTRY, None
    else:
        # -C: the server requires a client certificate and verifies it.
        args += ["-c", str(certs.server), "-j", str(certs.server_key), "-C", str(certs.client)]
        host, entry = "localhost", {"tlscert": {"certfile": str(certs.server)}}
        config = ClientConfig()
        config.load_cert_chain(str(certs.client), str(certs.client_key))
    base = f"coaps://{host}:{port + 1}"

    async def main() -> None:
        async with our_client({f"{base}/*": entry}, config=config) as client:
            wkc = await request_when_up(client, aiocoap.GET, f"{base}/.well-known/core")
            assert b"</time>" in wkc.payload
            put = await request(client, aiocoap.PUT, f"{base}/example_data", BIG)
            assert put.code in (aiocoap.CREATED, aiocoap.CHANGED), put
            got = await request(client, aiocoap.GET, f"{base}/example_data")
            assert got.payload == BIG
            info = got.remote.dtls_info
            assert (info.psk_identity == PSK_ID) if auth == "psk" else info.peer_certificates

    with process(args, seconds=40, stdin=subprocess.DEVNULL):
        asyncio.run(main())


def tinydtls_client_args(port: int, tmp_path: Path, *extra: str) -> list[str]:
    """aiocoap's command line client, which takes coaps:// to tinydtls (DTLSSocket)."""
    credentials = tmp_path / "credentials.json"
    entry = {
        "dtls": {"psk": {"ascii": PSK.decode()}, "client-identity": {"ascii": PSK_ID.decode()}}
    }
    credentials.write_text(json.dumps({f"coaps://127.0.0.1:{port}/*": entry}))
    client = str(Path(sys.executable).with_name("aiocoap-client"))
    return [client, "--credentials", str(credentials), *extra]


@pytest.mark.skipif(
    not HAVE_TINYDTLS,
    reason="DTLSSocket (tinydtls) did not build or is not installed (make .venv/.interop-stamp)",
)
def test_aiocoap_tinydtls_client_against_our_server(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(BIG)

    async def main() -> None:
        async with our_server(credentials={":client": PSK_ENTRY}) as (_server, port):
            base = f"coaps://127.0.0.1:{port}"
            put = await run_peer(
                tinydtls_client_args(
                    port, tmp_path, "-m", "PUT", "--payload", f"@{big}", f"{base}/echo"
                )
            )
            assert put.returncode == 0, put
            got = await run_peer(tinydtls_client_args(port, tmp_path, f"{base}/echo"))
            assert got.returncode == 0 and got.stdout.rstrip(b"\n") == BIG.rstrip(b"\n"), got

    asyncio.run(main())


def check_cookie_exchange(packets: list[Packet], port: int, clients: int) -> None:
    """Each client's first ClientHello (empty cookie) got a HelloVerifyRequest, and the
    client came back with exactly that cookie."""
    client_ports: list[int] = []
    for p in packets:
        if (
            p.dst_port == port
            and CLIENT_HELLO in p.handshake_types
            and p.src_port not in client_ports
        ):
            client_ports.append(p.src_port)
    assert len(client_ports) == clients, f"{len(client_ports)} clients seen, {clients} ran"
    for client_port in client_ports:
        hellos = [
            p for p in packets if p.src_port == client_port and CLIENT_HELLO in p.handshake_types
        ]
        hvrs = [
            p
            for p in packets
            if p.dst_port == client_port and HELLO_VERIFY_REQUEST in p.handshake_types
        ]
        assert hellos[0].cookies in ((), (b"",)), f"client {client_port}: first hello has a cookie"
        assert hvrs, f"no HelloVerifyRequest to the client on port {client_port}"
        (cookie,) = hvrs[0].cookies
        assert any(h.cookies == (cookie,) for h in hellos[1:]), (
            f"client {client_port} did not return the cookie"
        )


def test_cookie_exchange_on_the_wire_for_every_client(certs: Certs, tmp_path: Path) -> None:
    require("coap-client-openssl", "coap-client-gnutls", "tshark")
    ran = []

    async def main(port: int) -> None:
        base = f"coaps://127.0.0.1:{port}"
        for flavour in ("openssl", "gnutls"):
            for auth in ("psk", "cert"):
                out = await run_peer(coap_client_args(flavour, auth, certs, "-w", f"{base}/time"))
                assert len(out.times) == 1, (flavour, auth, out)
                ran.append(f"{flavour}-{auth}")
        # Our client speaks DTLS 1.3 by default, whose cookie travels in a HelloRetryRequest
        # (tests/test_dtls13_gate.py); pinned to DTLS 1.2 here, it meets the
        # HelloVerifyRequest this test looks for on the wire.
        dtls12 = ClientConfig(dtls_versions=(ProtocolVersion.DTLS12,))
        async with our_client({f"{base}/*": PSK_ENTRY}, config=dtls12) as client:
            assert (await request(client, aiocoap.GET, f"{base}/time")).payload
            ran.append("aiocoap-dtlsgate")
        if HAVE_TINYDTLS:
            out = await run_peer(tinydtls_client_args(port, tmp_path, f"{base}/time"))
            assert out.returncode == 0 and len(out.times) == 1, out
            ran.append("aiocoap-tinydtls")

    async def serve_and_capture() -> tuple[list[Packet], int]:
        kwargs = server_kwargs("cert", certs) | server_kwargs("psk", certs)
        async with our_server(**kwargs) as (_, port):
            with capture(port, seconds=60) as packets:
                await main(port)
            return packets, port

    packets, port = asyncio.run(serve_and_capture())
    check_cookie_exchange(packets, port, len(ran))


# The flood keeps the server busy but not its socket full (hello_flood.py: at most 64
# ClientHellos unanswered at a time), so the kernel drops none of a client's datagrams. Sent
# open loop, the flood made the kernel drop about half of all datagrams to the server's port
# (more under load), and a libcoap client whose handshake lost five transmissions gave up:
# libcoap allows four retransmissions per handshake whatever -B says (one round in 20 under
# two busy loops, with a 20 s flood). Each client may still wait this long for its answer
# (which ends the wait): the rest of its handshake runs on a loaded machine.
FLOODED_WAIT = 60


def udp_drops(port: int) -> int:
    """The kernel's count of datagrams dropped at the UDP socket bound to ``port`` (its
    receive queue full), from /proc/net/udp: for the message of a failing test."""
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port:
            return int(fields[-1])
    return -1


def test_flood_of_spoofed_client_hellos_while_coap_clients_are_served() -> None:
    """ClientHellos from 200 other loopback addresses, as fast as the server answers them,
    for 3 s and at least 5,000 of them, while libcoap clients and our client make requests:
    every request is answered, the flood's sources get HelloVerifyRequests, and the server
    keeps nothing for them."""
    require("coap-client-openssl", "coap-client-gnutls")

    async def main() -> None:
        async with our_server(credentials={":client": PSK_ENTRY}) as (server, port):
            base = f"coaps://127.0.0.1:{port}"
            flood = await asyncio.create_subprocess_exec(
                "timeout", "-s", "KILL", "30", sys.executable, str(HERE / "hello_flood.py"),
                str(port), "5000", "3", "200", stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert flood.stdout is not None
            started = await asyncio.wait_for(flood.stdout.readline(), 20)
            assert started == b"flooding\n", started
            unanswered: list[object] = []
            ours = {f"{base}/*": PSK_ENTRY}
            async with our_client(ours, handshake_timeout=FLOODED_WAIT) as client:
                # Rounds until the flood ends (at least 4, at most 100).
                for i in range(100):
                    if i >= 4 and flood.returncode is not None:
                        break
                    flavour = ("openssl", "gnutls")[i % 2]
                    args = coap_client_args(
                        flavour, "psk", None, "-w", f"{base}/time", wait=FLOODED_WAIT
                    )
                    began = time.monotonic()
                    out = await run_peer(args, seconds=FLOODED_WAIT + 10)
                    if len(out.times) != 1:
                        took = time.monotonic() - began
                        unanswered.append((i, flavour, f"{took:.1f} s", udp_drops(port), out))
                    uri, ping = f"{base}/echo", b"ping %d" % i
                    got = await request(client, aiocoap.POST, uri, ping, wait=FLOODED_WAIT + 10)
                    if got.payload != ping:
                        unanswered.append((i, "aiocoap", got))
                    peers = coap.dtls_server(server).peers
                    assert all(peer[0] == "127.0.0.1" for peer in peers), list(peers)
            report, _ = await asyncio.wait_for(flood.communicate(), 40)
            sent, replies = (int(word) for word in report.split()[1::2])
            assert not unanswered, (unanswered, report)
            assert sent >= 5000 and replies > 0, report

    asyncio.run(main())


def test_cli_coap_server_and_the_readme_coap_client_command() -> None:
    require("coap-client-openssl")
    args = [
        sys.executable,
        "-m",
        "dtlsgate",
        "coap-server",
        "--psk",
        "Client_identity:secretPSK",
        "--port",
        "0",
    ]
    with process(args, seconds=40, stdin=subprocess.DEVNULL) as proc:
        port = announced_port(proc, "serving coaps on 127.0.0.1:")
        # The README's command, with the port the server chose.
        readme = [
            "coap-client-openssl",
            "-B",
            "10",
            "-u",
            "Client_identity",
            "-k",
            "secretPSK",
            f"coaps://127.0.0.1:{port}/time",
        ]
        out = subprocess.run(["timeout", "20", *readme], capture_output=True, timeout=30)
        assert TIME.match(out.stdout.strip()), out
        wkc = subprocess.run(
            ["timeout", "20", *readme[:-1], f"coaps://127.0.0.1:{port}/.well-known/core"],
            capture_output=True,
            timeout=30,
        )
        assert b"</time>;obs" in wkc.stdout and b"</echo>" in wkc.stdout, wkc
