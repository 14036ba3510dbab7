"""A wolfSSL DTLS 1.3 client that tells its traffic secrets, for tests that decrypt a real
DTLS 1.3 session with dtlsgate's record layer.

wolfSSL's example client cannot export TLS 1.3 secrets, so this drives the library built by
scripts/build-wolfssl.sh (with HAVE_SECRET_CALLBACK) through ctypes: connect, send one
message, read one reply, close. Run it as a process under ``timeout`` (a stuck handshake
must not hang the test run):

    python wolfssl_dtls13_client.py TREE PORT CAFILE SUITE MESSAGE [CID_HEX]

It prints one JSON object: the secrets by wolfSSL's names (hex), the reply, and errors.
"""

from __future__ import annotations

import ctypes
import json
import socket
import struct
import sys
from pathlib import Path

# enum Tls13Secret in wolfssl/ssl.h (5.5.4), in order from 0.
SECRET_NAMES = (
    "CLIENT_EARLY_TRAFFIC_SECRET",
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET",
    "CLIENT_TRAFFIC_SECRET",
    "SERVER_TRAFFIC_SECRET",
    "EARLY_EXPORTER_SECRET",
    "EXPORTER_SECRET",
)
SUCCESS = 1
SecretCallback = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_int,
    ctypes.POINTER(ctypes.c_ubyte),
    ctypes.c_int,
    ctypes.c_void_p,
)


def load(tree: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(tree / "src" / ".libs" / "libwolfssl.so"))
    for name in ("wolfDTLSv1_3_client_method", "wolfSSL_CTX_new", "wolfSSL_new"):
        getattr(lib, name).restype = ctypes.c_void_p
    lib.wolfSSL_CTX_new.argtypes = [ctypes.c_void_p]
    lib.wolfSSL_new.argtypes = [ctypes.c_void_p]
    int_calls = (
        "wolfSSL_CTX_load_verify_locations",
        "wolfSSL_CTX_set_cipher_list",
        "wolfSSL_dtls_set_peer",
        "wolfSSL_set_fd",
        "wolfSSL_set_tls13_secret_cb",
        "wolfSSL_connect",
        "wolfSSL_write",
        "wolfSSL_read",
        "wolfSSL_get_error",
        "wolfSSL_shutdown",
        "wolfSSL_dtls_cid_use",
        "wolfSSL_dtls_cid_set",
        "wolfSSL_free",
        "wolfSSL_CTX_free",
    )
    for name in int_calls:
        getattr(lib, name).restype = ctypes.c_int
    return lib


def main() -> None:
    tree, port, cafile, suite, message = sys.argv[1:6]
    cid = bytes.fromhex(sys.argv[6]) if len(sys.argv) > 6 else b""
    lib = load(Path(tree))
    secrets: dict[str, str] = {}

    def on_secret(_ssl: object, ident: int, secret: object, size: int, _ctx: object) -> int:
        data = ctypes.string_at(ctypes.cast(secret, ctypes.c_void_p).value or 0, size)
        secrets[SECRET_NAMES[ident] if ident < len(SECRET_NAMES) else str(ident)] = data.hex()
        return 0

    callback = SecretCallback(on_secret)
    result: dict[str, object] = {"secrets": secrets}
    lib.wolfSSL_Init()
    ctx = ctypes.c_void_p(lib.wolfSSL_CTX_new(ctypes.c_void_p(lib.wolfDTLSv1_3_client_method())))
    assert lib.wolfSSL_CTX_load_verify_locations(ctx, cafile.encode(), None) == SUCCESS
    assert lib.wolfSSL_CTX_set_cipher_list(ctx, suite.encode()) == SUCCESS
    ssl = ctypes.c_void_p(lib.wolfSSL_new(ctx))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    peer = struct.pack("=H", socket.AF_INET) + struct.pack("!H", int(port))
    peer += socket.inet_aton("127.0.0.1") + bytes(8)  # struct sockaddr_in
    assert lib.wolfSSL_dtls_set_peer(ssl, peer, len(peer)) == SUCCESS
    assert lib.wolfSSL_set_fd(ssl, sock.fileno()) == SUCCESS
    assert lib.wolfSSL_set_tls13_secret_cb(ssl, callback, None) == SUCCESS
    if cid:
        assert lib.wolfSSL_dtls_cid_use(ssl) == SUCCESS
        assert lib.wolfSSL_dtls_cid_set(ssl, cid, len(cid)) == SUCCESS
    ret = lib.wolfSSL_connect(ssl)
    if ret != SUCCESS:
        result["error"] = f"wolfSSL_connect: {lib.wolfSSL_get_error(ssl, ret)}"
    else:
        data = message.encode()
        assert lib.wolfSSL_write(ssl, data, len(data)) == len(data)
        buffer = ctypes.create_string_buffer(1024)
        got = lib.wolfSSL_read(ssl, buffer, len(buffer))
        result["reply"] = buffer.raw[: max(got, 0)].decode(errors="replace")
        lib.wolfSSL_shutdown(ssl)
    lib.wolfSSL_free(ssl)
    lib.wolfSSL_CTX_free(ctx)
    sock.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
