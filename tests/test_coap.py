"""dtlsgate.coap in one process: our aiocoap client transport against our aiocoap server
transport over coaps (PSK and certificates, block-wise both ways, observation, claims),
the errors a user sees, and bad input on an association.

The real peers (libcoap, tinydtls) are in tests/test_interop_coap.py.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from peers import free_udp_port

from dtlsgate import ClientConfig, ServerConfig, UsageError
from dtlsgate.io import aio
from dtlsgate.wire.enums import CipherSuite, ProtocolVersion, SignatureScheme

aiocoap = pytest.importorskip("aiocoap", reason="`make test` installs aiocoap (extra [coap])")

from aiocoap.credentials import CredentialsMissingError  # noqa: E402
from coap_helpers import (  # noqa: E402
    BIG,
    PSK,
    PSK_ENTRY,
    PSK_ID,
    make_certs,
    our_client,
    our_server,
    request,
)

from dtlsgate import coap  # noqa: E402


def test_installed_aiocoap_is_a_supported_version() -> None:
    """Fails, saying what to do, when aiocoap changes underneath dtlsgate.coap."""
    problems = coap.check_aiocoap()
    assert problems == [], (
        "dtlsgate.coap was tested with aiocoap "
        f"{', '.join(coap.SUPPORTED_AIOCOAP)}; installed: {coap.aiocoap_version()}. "
        "Run tests/test_coap.py and tests/test_interop_coap.py with it, then add it to "
        "SUPPORTED_AIOCOAP and the [coap] extra in pyproject.toml. Problems: " + "; ".join(problems)
    )


def test_an_untested_aiocoap_is_named_and_one_without_the_private_call_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``check_aiocoap()`` names an aiocoap release dtlsgate.coap was not tested with, and
    a missing private call; importing dtlsgate.coap warns about the first (the module still
    loads) and refuses the second with ImportError."""
    installed = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata,
        "version",
        lambda name: "9999.0" if name == "aiocoap" else installed(name),
    )
    untested = (
        "aiocoap 9999.0 is installed; dtlsgate.coap is tested with aiocoap "
        f"{', '.join(coap.SUPPORTED_AIOCOAP)} (pip install 'dtlsgate[coap]')"
    )
    assert coap.check_aiocoap() == [untested]
    with pytest.warns(RuntimeWarning) as warned:
        loaded = import_afresh(monkeypatch)
    assert [str(w.message) for w in warned] == [untested]
    assert callable(loaded.create_client_context)
    monkeypatch.delattr(aiocoap.Context, "_append_tokenmanaged_messagemanaged_transport")
    missing = "aiocoap 9999.0 has no Context._append_tokenmanaged_messagemanaged_transport"
    assert coap.check_aiocoap() == [untested, missing]
    with pytest.raises(ImportError) as caught:
        import_afresh(monkeypatch)
    assert str(caught.value) == f"dtlsgate.coap cannot attach to aiocoap: {untested}; {missing}"


def import_afresh(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Import dtlsgate.io.coap again, so that its import-time check runs again; the module
    the other tests use is put back when the test ends."""
    import dtlsgate.io

    monkeypatch.setattr(dtlsgate.io, "coap", dtlsgate.io.coap)
    monkeypatch.delitem(sys.modules, "dtlsgate.io.coap")
    return importlib.import_module("dtlsgate.io.coap")


def test_psk_get_put_blockwise_and_observe() -> None:
    async def main() -> None:
        credentials = {":the-client": PSK_ENTRY}
        async with our_server(credentials=credentials) as (server, port):
            base = f"coaps://127.0.0.1:{port}"
            async with our_client({f"{base}/*": PSK_ENTRY}) as client:
                wkc = await request(client, aiocoap.GET, f"{base}/.well-known/core")
                assert wkc.code == aiocoap.CONTENT
                assert b"</time>" in wkc.payload and b"</echo>" in wkc.payload
                # Block1 (RFC 7959 §2.5) on the way in, Block2 on the way out.
                put = await request(client, aiocoap.PUT, f"{base}/echo", BIG)
                assert put.code == aiocoap.CHANGED
                got = await request(client, aiocoap.GET, f"{base}/echo")
                assert got.payload == BIG
                info = got.remote.dtls_info
                assert info.psk_identity == PSK_ID
                # Every request went over one association, behind the gate.
                assert len(coap.dtls_server(server).peers) == 1
                notes = await observe(client, f"{base}/time", 3)
                assert len(set(notes)) == 4

    asyncio.run(main())


async def observe(client: Any, uri: str, count: int) -> list[bytes]:
    """RFC 7641: register, then take ``count`` notifications; returns every payload."""
    req = client.request(aiocoap.Message(code=aiocoap.GET, uri=uri, observe=0))
    first = await asyncio.wait_for(req.response, 20)
    assert first.opt.observe is not None, "the server did not accept the registration"
    payloads = [first.payload]

    async def take() -> None:
        async for note in req.observation:
            payloads.append(note.payload)
            if len(payloads) > count:
                break

    await asyncio.wait_for(take(), 20)
    req.observation.cancel()
    return payloads


def test_the_server_sees_the_psk_credential_label_as_claim() -> None:
    """aiocoap's server credentials: each ``dtls`` entry is a PSK, and its label is the
    request's authenticated claim (as aiocoap's tinydtls server reports it)."""
    from aiocoap import resource

    class WhoAmI(resource.Resource):  # type: ignore[misc]
        async def render_get(self, request: Any) -> Any:
            claims = list(request.remote.authenticated_claims)
            return aiocoap.Message(payload=repr(claims).encode())

    async def main() -> None:
        site = resource.Site()
        site.add_resource(["whoami"], WhoAmI())
        other = {"dtls": {"psk": b"other key", "client-identity": b"other"}}
        ctx = await coap.create_server_context(
            site, bind=("127.0.0.1", 0), credentials={":alice": PSK_ENTRY, ":bob": other}
        )
        port = coap.server_address(ctx)[1]
        try:
            for entry, label in ((PSK_ENTRY, ":alice"), (other, ":bob")):
                async with our_client({f"coaps://127.0.0.1:{port}/*": entry}) as client:
                    got = await request(client, aiocoap.GET, f"coaps://127.0.0.1:{port}/whoami")
                    assert got.payload == repr([label]).encode()
        finally:
            await ctx.shutdown()

    asyncio.run(main())


def test_each_end_names_the_other_and_a_client_knows_no_local_address() -> None:
    """A remote's ``uri_base`` is its peer's coaps:// base; the server also knows its own
    (``uri_base_local``), the client does not: aiocoap's AnonymousHost, as for its other
    clients whose local address is unknown."""
    from aiocoap import resource
    from aiocoap.error import AnonymousHost

    class Where(resource.Resource):  # type: ignore[misc]
        async def render_get(self, request: Any) -> Any:
            remote = request.remote
            return aiocoap.Message(payload=f"{remote.uri_base} {remote.uri_base_local}".encode())

    async def main() -> None:
        site = resource.Site()
        site.add_resource(["where"], Where())
        ctx = await coap.create_server_context(
            site, bind=("127.0.0.1", 0), credentials={":c": PSK_ENTRY}
        )
        port = coap.server_address(ctx)[1]
        try:
            async with our_client({f"coaps://127.0.0.1:{port}/*": PSK_ENTRY}) as client:
                got = await request(client, aiocoap.GET, f"coaps://127.0.0.1:{port}/where")
                remote = got.remote
                assert remote.uri_base == f"coaps://127.0.0.1:{port}"
                for local in ("hostinfo_local", "uri_base_local"):
                    with pytest.raises(AnonymousHost, match="local address of a coaps client"):
                        getattr(remote, local)
                (client_peer,) = coap.dtls_server(ctx).peers
                client_base = f"coaps://127.0.0.1:{client_peer[1]}"  # type: ignore[index]
                assert got.payload.decode() == f"{client_base} coaps://127.0.0.1:{port}"
        finally:
            await ctx.shutdown()

    asyncio.run(main())


def test_a_server_context_makes_coaps_requests_with_its_client_credentials() -> None:
    """A context made by ``create_server_context`` also requests: its server transport
    leaves every request to its client transport, which takes the coaps:// ones
    (``client_credentials``) and leaves the rest, which no transport of it takes."""
    from aiocoap.error import NoRequestInterface

    async def main() -> None:
        async with our_server(credentials={":c": PSK_ENTRY}) as (other, other_port):
            base = f"coaps://127.0.0.1:{other_port}"
            async with our_server(
                credentials={":c": PSK_ENTRY}, client_credentials={f"{base}/*": PSK_ENTRY}
            ) as (ctx, _):
                put = await request(ctx, aiocoap.PUT, f"{base}/echo", b"from a server")
                assert put.code == aiocoap.CHANGED
                got = await request(ctx, aiocoap.GET, f"{base}/echo")
                assert got.payload == b"from a server"
                assert len(coap.dtls_server(other).peers) == 1
                assert not coap.dtls_server(ctx).peers  # its own server had no part in it
                with pytest.raises(NoRequestInterface):
                    await request(ctx, aiocoap.GET, f"coap://127.0.0.1:{other_port}/echo")

    asyncio.run(main())


def test_certificates_both_ways_with_a_client_certificate(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)

    async def main() -> None:
        config = ServerConfig(verify_client="required", cafile=str(certs.client))
        async with our_server(
            certfile=str(certs.server), keyfile=str(certs.server_key), config=config
        ) as (_, port):
            base = f"coaps://localhost:{port}"
            client_config = ClientConfig()
            client_config.load_cert_chain(str(certs.client), str(certs.client_key))
            credentials = {f"{base}/*": {"tlscert": {"certfile": str(certs.server)}}}
            async with our_client(credentials, config=client_config) as client:
                got = await request(client, aiocoap.PUT, f"{base}/echo", BIG)
                assert got.code == aiocoap.CHANGED
                got = await request(client, aiocoap.GET, f"{base}/echo")
                assert got.payload == BIG
                # Our ends speak DTLS 1.3 by default: a TLS 1.3 suite, the certificate
                # the signature's; DTLS 1.2 would pick an ECDHE-ECDSA suite.
                info = got.remote.dtls_info
                assert info.version == ProtocolVersion.DTLS13
                assert info.cipher_suite in (
                    CipherSuite.TLS_AES_128_GCM_SHA256,
                    CipherSuite.TLS_AES_256_GCM_SHA384,
                    CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
                )
                assert info.signature_scheme == SignatureScheme.ecdsa_secp256r1_sha256
                assert info.peer_certificates
                assert info.cipher_suite not in (
                    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                    CipherSuite.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
                    CipherSuite.TLS_ECDHE_ECDSA_WITH_AES_128_CCM,
                )
            # Without the client certificate the server refuses the handshake: in DTLS 1.2
            # before the client is connected; in DTLS 1.3 with certificate_required after
            # the client's Finished, which ends the association its request went out on.
            async with our_client(credentials) as client:
                with pytest.raises((coap.DtlsConnectError, coap.DtlsConnectionClosed)):
                    await request(client, aiocoap.GET, f"{base}/time")

    asyncio.run(main())


def test_a_server_certificate_from_another_ca_fails_the_request_clearly(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)

    async def main() -> None:
        async with our_server(certfile=str(certs.server), keyfile=str(certs.server_key)) as (
            _,
            port,
        ):
            base = f"coaps://localhost:{port}"
            credentials = {f"{base}/*": {"tlscert": {"certfile": str(certs.other)}}}
            async with our_client(credentials) as client:
                with pytest.raises(coap.DtlsConnectError) as caught:
                    await request(client, aiocoap.GET, f"{base}/time")
                assert f"coaps://localhost:{port}: DTLS handshake failed" in str(caught.value)
            # No credential for the URI: the ClientConfig given applies, here its cafile.
            async with our_client(None, config=ClientConfig(cafile=str(certs.server))) as client:
                got = await request(client, aiocoap.GET, f"{base}/time")
                assert got.code == aiocoap.CONTENT

    asyncio.run(main())


def raw_key_files(directory: Path, name: str) -> tuple[Path, bytes]:
    """A P-256 private key (PEM file) and its SubjectPublicKeyInfo (DER), for RFC 7250."""
    from dtlsgate.crypto.certs import load_private_key, make_self_signed, spki_of

    _, key_pem = make_self_signed(name, "ecdsa-p256", days=1)
    path = directory / f"{name}-key.pem"
    path.write_bytes(key_pem)
    return path, spki_of(load_private_key(key_pem))


@pytest.mark.parametrize(
    "version", [ProtocolVersion.DTLS13, ProtocolVersion.DTLS12], ids=["dtls13", "dtls12"]
)
def test_raw_public_keys_both_ways(tmp_path: Path, version: ProtocolVersion) -> None:
    """RFC 7250 over coaps: each side presents a bare key and pins the other's, through
    the ServerConfig / ClientConfig (aiocoap 0.4.17's credentials have no raw public key
    entry); a key the other side has not pinned is refused."""
    server_key, server_spki = raw_key_files(tmp_path, "server")
    client_key, client_spki = raw_key_files(tmp_path, "client")
    other_key, _ = raw_key_files(tmp_path, "other")

    def client_config(key: Path, pins: tuple[bytes, ...]) -> ClientConfig:
        config = ClientConfig(pinned_keys=pins, dtls_versions=(version,))
        config.load_raw_public_key(str(key))
        return config

    async def main() -> None:
        config = ServerConfig(verify_client="required", pinned_keys=(client_spki,))
        config.load_raw_public_key(str(server_key))
        async with our_server(config=config) as (_, port):
            base = f"coaps://127.0.0.1:{port}"
            ours = client_config(client_key, (server_spki,))
            async with our_client(None, config=ours) as client:
                got = await request(client, aiocoap.GET, f"{base}/.well-known/core")
                assert got.code == aiocoap.CONTENT and b"</time>" in got.payload
                info = got.remote.dtls_info
                assert info.version == version
                assert info.peer_raw_public_key == server_spki
                assert info.peer_certificates == ()
            # A client key the server has not pinned: bad_certificate from the server.
            async with our_client(None, config=client_config(other_key, (server_spki,))) as c:
                with pytest.raises((coap.DtlsConnectError, coap.DtlsConnectionClosed)):
                    await request(c, aiocoap.GET, f"{base}/time")
            # A server key the client has not pinned: the client refuses it.
            async with our_client(None, config=client_config(client_key, (client_spki,))) as c:
                with pytest.raises(coap.DtlsConnectError, match="raw public key is not pinned"):
                    await request(c, aiocoap.GET, f"{base}/time")

    asyncio.run(main())


def test_a_wrong_psk_fails_the_request_and_the_next_request_retries() -> None:
    async def main() -> None:
        async with our_server(credentials={":c": PSK_ENTRY}) as (_, port):
            base = f"coaps://127.0.0.1:{port}"
            wrong = {"dtls": {"psk": b"not the key", "client-identity": PSK_ID}}
            async with our_client({f"{base}/*": wrong}, handshake_timeout=3) as client:
                # DTLS 1.3: the server finds the PSK binder wrong and says so at once
                # (decrypt_error); over DTLS 1.2 it would drop the Finished it cannot
                # decrypt, and the handshake would time out.
                with pytest.raises(coap.DtlsConnectError, match="decrypt_error"):
                    await request(client, aiocoap.GET, f"{base}/time")
                # The failed association is not kept: fixing the credentials is enough.
                client.client_credentials.load_from_dict({f"{base}/*": PSK_ENTRY})
                got = await request(client, aiocoap.GET, f"{base}/time")
                assert got.code == aiocoap.CONTENT

    asyncio.run(main())


def test_usage_errors() -> None:
    async def main() -> None:
        with pytest.raises(UsageError, match="needs credentials"):
            await coap.create_server_context(None, bind=("127.0.0.1", 0))
        with pytest.raises(UsageError, match="keyfile needs a certfile"):
            await coap.create_server_context(
                None, bind=("127.0.0.1", 0), credentials={":c": PSK_ENTRY}, keyfile="k.pem"
            )
        with pytest.raises(UsageError, match="would take coaps://"):
            await coap.create_client_context(transports=["tinydtls"])
        for timeout in (0, -1.0):
            with pytest.raises(UsageError, match="handshake_timeout must be positive"):
                await coap.create_client_context(handshake_timeout=timeout)
        plain = await aiocoap.Context.create_client_context(transports=["udp6"])
        try:
            with pytest.raises(UsageError, match="not a context made by"):
                coap.server_address(plain)
        finally:
            await plain.shutdown()
        async with our_client({"coaps://elsewhere/*": PSK_ENTRY}) as client:
            with pytest.raises(CredentialsMissingError):
                await request(client, aiocoap.GET, "coaps://127.0.0.1:9/time")

    asyncio.run(main())


def test_a_credential_of_another_kind_fails_the_request_before_any_handshake() -> None:
    """aiocoap credentials that are neither ``dtls`` nor ``tlscert`` (here ``any-of``, a
    list of other entries) match the URI but say nothing dtlsgate.coap can use:
    CredentialsMissingError saying so, and the server never sees a datagram."""

    async def main() -> None:
        async with our_server(credentials={":c": PSK_ENTRY}) as (server, port):
            base = f"coaps://127.0.0.1:{port}"
            async with our_client({f"{base}/*": {"any-of": [":c"]}}) as client:
                with pytest.raises(CredentialsMissingError) as caught:
                    await request(client, aiocoap.GET, f"{base}/time")
            assert str(caught.value) == (
                f"the credentials for {base}/time are neither 'dtls' (PSK) nor 'tlscert' "
                "(a CA file), the kinds dtlsgate.coap uses"
            )
            assert coap.dtls_server(server).gate.replies == 0

    asyncio.run(main())


def test_a_credentials_map_given_is_the_one_used() -> None:
    """A ``CredentialsMap`` passed in is the context's own, not a copy: entries loaded into
    it after the context was made apply to the next request (as aiocoap's own contexts'
    ``client_credentials`` do); on the server, its ``dtls`` entries are the PSKs."""
    from aiocoap.credentials import CredentialsMap

    async def main() -> None:
        server_credentials = CredentialsMap()
        server_credentials.load_from_dict({":c": PSK_ENTRY})
        async with our_server(credentials=server_credentials) as (_, port):
            base = f"coaps://127.0.0.1:{port}"
            credentials = CredentialsMap()
            async with our_client(credentials) as client:
                assert client.client_credentials is credentials
                credentials.load_from_dict({f"{base}/*": PSK_ENTRY})
                got = await request(client, aiocoap.GET, f"{base}/time")
                assert got.code == aiocoap.CONTENT
                assert got.remote.dtls_info.psk_identity == PSK_ID

    asyncio.run(main())


def test_a_client_context_with_aiocoap_transports_for_other_schemes() -> None:
    """``transports=["udp6"]``: aiocoap's own UDP transport takes coap:// (here to
    aiocoap's own server), dtlsgate.coap coaps://, in one context."""
    from dtlsgate.io.coap_cli import build_site

    async def main() -> None:
        plain_port = free_udp_port()
        plain = await aiocoap.Context.create_server_context(
            build_site(0.2), bind=("127.0.0.1", plain_port), transports=["udp6"]
        )
        try:
            async with our_server(credentials={":c": PSK_ENTRY}) as (_, port):
                base = f"coaps://127.0.0.1:{port}"
                async with our_client({f"{base}/*": PSK_ENTRY}, transports=["udp6"]) as client:
                    put = await request(
                        client, aiocoap.PUT, f"coap://127.0.0.1:{plain_port}/echo", b"plain"
                    )
                    assert put.code == aiocoap.CHANGED and put.remote.scheme == "coap"
                    got = await request(client, aiocoap.GET, f"{base}/time")
                    assert got.code == aiocoap.CONTENT
                    assert isinstance(got.remote, coap.DtlsRemote)
        finally:
            await asyncio.wait_for(plain.shutdown(), 15)

    asyncio.run(main())


# Mutated requests that share a token replace one another; aiocoap cancels the replaced
# request's rendering before it started and warns that its coroutine was never awaited.
@pytest.mark.filterwarnings("ignore:coroutine 'Context._render_to_pipe' was never awaited")
def test_garbage_in_an_association_is_ignored_and_the_association_still_serves() -> None:
    """Records that are no CoAP message (empty, truncated, random, a Uri-Path that is not
    UTF-8, which aiocoap's decoder raises UnicodeDecodeError for) and 300 seeded mutations
    of a request are dropped or answered; a request after them on the same association is
    answered."""

    async def main() -> None:
        async with our_server(credentials={":c": PSK_ENTRY}) as (server, port):
            config = ClientConfig(psk_identity=PSK_ID, psk=PSK)
            stream = await aio.connect("127.0.0.1", port, config, timeout=20)
            try:
                bad_utf8 = bytes([0x40, 0x01, 0x00, 0x05, 0xB2, 0xFF, 0xFE])  # GET /%FF%FE
                for junk in (b"", b"\x40", b"\xff" * 7, bytes(range(200)), bad_utf8):
                    stream.send(junk)
                for i, junk in enumerate(mutations(300)):
                    stream.send(junk)
                    if i % 50 == 49:  # a burst past the socket's receive buffer would be lost
                        await asyncio.sleep(0.05)
                get = aiocoap.Message(code=aiocoap.GET, uri_path=["echo"])
                get.mtype, get.mid, get.token = aiocoap.CON, FINAL_MID, b"tk"
                answer = await answer_to(stream, get.encode())
                assert (answer.token, answer.code) == (b"tk", aiocoap.CONTENT)
                assert len(coap.dtls_server(server).peers) == 1
            finally:
                stream.close()

    asyncio.run(main())


FINAL_MID = 0xBEEF


async def answer_to(stream: aio.DtlsStream, request: bytes) -> Any:
    """Send a CON request until the answer with its message ID comes (as CoAP retransmits,
    RFC 7252 §4.2), skipping other messages; bounded in time and in messages."""
    deadline = asyncio.get_running_loop().time() + 20
    stream.send(request)
    for _ in range(2000):
        left = deadline - asyncio.get_running_loop().time()
        try:
            data = await asyncio.wait_for(stream.recv(), min(1.0, max(left, 0.01)))
        except TimeoutError:
            assert left > 0, "no answer in 20 s"
            stream.send(request)
            continue
        answer = aiocoap.Message.decode(data)
        if answer.mid == FINAL_MID:
            return answer
    raise AssertionError("no answer among 2000 messages")


def mutations(count: int) -> list[bytes]:
    """Seeded mutations of a CoAP request (bytes replaced, truncated), none with FINAL_MID."""
    rng = random.Random(16)
    request = aiocoap.Message(code=aiocoap.PUT, uri_path=["echo"], payload=b"payload")
    request.mtype, request.mid, request.token = aiocoap.NON, 1, b"tok"
    encoded = request.encode()
    out = []
    while len(out) < count:
        data = bytearray(encoded)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            del data[rng.randrange(len(data)) :]
        if bytes(data[2:4]) != FINAL_MID.to_bytes(2, "big"):
            out.append(bytes(data))
    return out


def test_an_observation_ends_with_an_error_when_the_server_goes_away() -> None:
    from dtlsgate.io.coap_cli import build_site

    async def main() -> None:
        server = await coap.create_server_context(
            build_site(0.2), bind=("127.0.0.1", 0), credentials={":c": PSK_ENTRY}
        )
        base = f"coaps://127.0.0.1:{coap.server_address(server)[1]}"
        async with our_client({f"{base}/*": PSK_ENTRY}) as client:
            req = client.request(aiocoap.Message(code=aiocoap.GET, uri=f"{base}/time", observe=0))
            await asyncio.wait_for(req.response, 20)
            await asyncio.wait_for(server.shutdown(), 15)  # close_notify to the client
            with pytest.raises(coap.DtlsConnectionClosed):
                await asyncio.wait_for(_drain(req.observation), 20)

    asyncio.run(main())


async def _drain(observation: Any) -> None:
    async for _ in observation:
        pass


def test_cli_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from dtlsgate.io import coap_cli

    assert coap_cli.main(["--psk", "no-colon", "--port", "0"]) == 2
    assert "--psk wants IDENTITY:KEY" in capsys.readouterr().err
    assert coap_cli.main(["--psk-hex", "id:zz", "--port", "0"]) == 2
    assert "--psk wants IDENTITY:HEX" in capsys.readouterr().err
    assert coap_cli.main(["--interval", "0"]) == 2
    assert coap_cli.main(["--cert", "/nonexistent/cert.pem"]) == 2


def test_without_aiocoap_the_import_and_the_cli_say_what_to_install() -> None:
    import subprocess
    import sys

    hide = "import sys; sys.modules['aiocoap'] = None; "
    imported = subprocess.run(
        [sys.executable, "-c", hide + "import dtlsgate.coap"], capture_output=True, timeout=60
    )
    assert imported.returncode == 1
    assert b"dtlsgate.coap needs aiocoap: pip install 'dtlsgate[coap]'" in imported.stderr
    cli = subprocess.run(
        [
            sys.executable,
            "-c",
            hide + "from dtlsgate.io.cli import main; sys.exit(main(['coap-server']))",
        ],
        capture_output=True,
        timeout=60,
    )
    assert cli.returncode == 2
    assert b"needs aiocoap: pip install 'dtlsgate[coap]'" in cli.stderr
