"""Cheaper ways to make a DTLS 1.2 server handshake's cryptography calls? Each group below is
one piece of bench/handshake_floor.py's list, done the way our server does it ("now") and
by the other routes ``cryptography``, ``hashlib`` and CPython offer for the same result.

Timing: every round times each variant of a group over ``--count`` calls, the variants'
order alternating, and the figure is the median over ``--rounds`` of the per-round ratio to
"now" (time per call: median of the rounds). ``--op GROUP/VARIANT --count N`` instead runs
one variant N times and stops, for instruction counts under callgrind (run with two N and
take the difference):

    for n in 100 1100; do valgrind --tool=callgrind --callgrind-out-file=cg.$n \\
        .venv/bin/python bench/crypto_calls.py --op prf/builtin-sha256 --count $n; done

Every variant is checked to give the same output as "now" where the output is
deterministic (PRF, transcript) before it is timed.

Usage: python bench/crypto_calls.py [--count N] [--rounds R] [--group NAME] [--op G/V]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import importlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.asymmetric import ec, utils, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import pkcs12

from dtlsgate.crypto.hashes import Hash, KeyedHmac

# CPython's own SHA-256 (``_sha2`` from 3.12, ``_sha256`` before; hashlib's is OpenSSL's).
_builtin_sha2: Any = importlib.import_module("_sha2" if sys.version_info >= (3, 12) else "_sha256")
builtin_sha256: Callable[[bytes], Any] = _builtin_sha2.sha256

X962 = serialization.Encoding.X962
UNCOMPRESSED = serialization.PublicFormat.UncompressedPoint
RAW = serialization.Encoding.Raw
RAW_FORMAT = serialization.PublicFormat.Raw
IPAD = bytes(b ^ 0x36 for b in range(256))
OPAD = bytes(b ^ 0x5C for b in range(256))

PREMASTER = os.urandom(32)
SESSION_HASH = os.urandom(32)
RANDOMS = os.urandom(64)
# The transcript's messages as our server hashes them (bench/handshake_floor.py's trace):
# ClientHello2 ... ServerHelloDone, ClientKeyExchange, the client's Finished, the ticket.
MESSAGES = [os.urandom(n) for n in (162, 71, 479, 156, 12, 78, 24, 123)]
SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
SIGNED = os.urandom(133)  # randoms + ECDHE params
PEER_P256 = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(X962, UNCOMPRESSED)
PEER_X25519 = x25519.X25519PrivateKey.generate().public_key().public_bytes(RAW, RAW_FORMAT)
KEY16 = os.urandom(16)
NONCE = os.urandom(12)
FINISHED = os.urandom(24)
AAD = os.urandom(13)
PREPARED_GCM = AESGCM(KEY16)


# ---- the TLS 1.2 PRF of one handshake: EMS (48), key block (40), two Finished (12) -------


def prf_with(new: Callable[[bytes], object]) -> Callable[[], bytes]:
    """P_SHA256 written out over copies of two keyed hash states made by ``new`` (our
    KeyedHmac's shape), for hashlib's constructor or CPython's builtin one."""

    def keyed(key: bytes) -> tuple[object, object]:
        key = key.ljust(64, b"\0")
        return new(key.translate(IPAD)), new(key.translate(OPAD))

    def p_hash(states: tuple[object, object], seed: bytes, length: int) -> bytes:
        inner, outer = states
        out = b""
        a = seed
        while len(out) < length:
            h = inner.copy()  # type: ignore[attr-defined]
            h.update(a)
            o = outer.copy()  # type: ignore[attr-defined]
            o.update(h.digest())
            a = o.digest()
            h = inner.copy()  # type: ignore[attr-defined]
            h.update(a + seed)
            o = outer.copy()  # type: ignore[attr-defined]
            o.update(h.digest())
            out += o.digest()
        return out[:length]

    def run() -> bytes:
        master = p_hash(keyed(PREMASTER), b"extended master secret" + SESSION_HASH, 48)
        states = keyed(master)
        block = p_hash(states, b"key expansion" + RANDOMS, 40)
        c = p_hash(states, b"client finished" + SESSION_HASH, 12)
        s = p_hash(states, b"server finished" + SESSION_HASH, 12)
        return block + c + s

    return run


def prf_now() -> bytes:
    """Our server's code: dtlsgate.crypto.hashes.KeyedHmac.p_hash."""
    master = KeyedHmac(Hash.SHA256, PREMASTER).p_hash(b"extended master secret" + SESSION_HASH, 48)
    keyed = KeyedHmac(Hash.SHA256, master)
    block = keyed.p_hash(b"key expansion" + RANDOMS, 40)
    c = keyed.p_hash(b"client finished" + SESSION_HASH, 12)
    s = keyed.p_hash(b"server finished" + SESSION_HASH, 12)
    return block + c + s


def prf_one_shot() -> bytes:
    """Each HMAC by ``hmac.digest`` (hashlib's C one-call HMAC, OpenSSL's HMAC)."""

    def p_hash(key: bytes, seed: bytes, length: int) -> bytes:
        out = b""
        a = seed
        while len(out) < length:
            a = hmac.digest(key, a, "sha256")
            out += hmac.digest(key, a + seed, "sha256")
        return out[:length]

    master = p_hash(PREMASTER, b"extended master secret" + SESSION_HASH, 48)
    block = p_hash(master, b"key expansion" + RANDOMS, 40)
    c = p_hash(master, b"client finished" + SESSION_HASH, 12)
    s = p_hash(master, b"server finished" + SESSION_HASH, 12)
    return block + c + s


def prf_cryptography() -> bytes:
    """Each HMAC a ``copy()`` of a keyed ``cryptography`` HMAC."""

    def p_hash(keyed: crypto_hmac.HMAC, seed: bytes, length: int) -> bytes:
        out = b""
        a = seed
        while len(out) < length:
            h = keyed.copy()
            h.update(a)
            a = h.finalize()
            h = keyed.copy()
            h.update(a + seed)
            out += h.finalize()
        return out[:length]

    sha = hashes.SHA256()
    pre = crypto_hmac.HMAC(PREMASTER, sha)
    master = p_hash(pre, b"extended master secret" + SESSION_HASH, 48)
    keyed = crypto_hmac.HMAC(master, sha)
    block = p_hash(keyed, b"key expansion" + RANDOMS, 40)
    c = p_hash(keyed, b"client finished" + SESSION_HASH, 12)
    s = p_hash(keyed, b"server finished" + SESSION_HASH, 12)
    return block + c + s


# ---- the transcript: one state, a copy for the session hash and our Finished ----------------


def transcript_with(new: Callable[[], object]) -> Callable[[], bytes]:
    def run() -> bytes:
        t = new()
        t.update(b"")  # type: ignore[attr-defined]
        for m in MESSAGES[:5]:
            t.update(m)  # type: ignore[attr-defined]
        s = t.copy()  # type: ignore[attr-defined]
        s.update(MESSAGES[5])
        session = s.digest()
        t.update(MESSAGES[5])  # type: ignore[attr-defined]
        client = t.digest()  # type: ignore[attr-defined]
        t.update(MESSAGES[6])  # type: ignore[attr-defined]
        s = t.copy()  # type: ignore[attr-defined]
        s.update(MESSAGES[7])
        server = s.digest()
        t.update(MESSAGES[7])  # type: ignore[attr-defined]
        return bytes(session + client + server)

    return run


def transcript_one_shot() -> bytes:
    """No running state: three one-shot hashes over the kept messages."""
    data = b"".join(MESSAGES[:6])
    session = hashlib.sha256(data).digest()
    client = session
    server = hashlib.sha256(data + MESSAGES[6] + MESSAGES[7]).digest()
    return session + client + server


# ---- ECDHE, the server's side: generate, encode, decode the peer's point, exchange -----------


def ecdhe_p256() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    key.public_key().public_bytes(X962, UNCOMPRESSED)
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), PEER_P256)
    return key.exchange(ec.ECDH(), peer)


CURVE = ec.SECP256R1()
ECDH = ec.ECDH()


def ecdhe_p256_prepared() -> bytes:
    """The same with the curve and ECDH parameter objects made once."""
    key = ec.generate_private_key(CURVE)
    key.public_key().public_bytes(X962, UNCOMPRESSED)
    return key.exchange(ECDH, ec.EllipticCurvePublicKey.from_encoded_point(CURVE, PEER_P256))


def ecdhe_x25519() -> bytes:
    key = x25519.X25519PrivateKey.generate()
    key.public_key().public_bytes(RAW, RAW_FORMAT)
    return key.exchange(x25519.X25519PublicKey.from_public_bytes(PEER_X25519))


def p256_keygen() -> object:
    return ec.generate_private_key(CURVE).public_key().public_bytes(X962, UNCOMPRESSED)


def x25519_keygen() -> object:
    return x25519.X25519PrivateKey.generate().public_key().public_bytes(RAW, RAW_FORMAT)


# ---- other routes to the same ECDHE (ecdhe13): does any give keys that OpenSSL's provider
# need not import at each exchange? (callgrind: count evp_pkey_export_to_provider and
# EC_GROUP_check_named_curve per call; bench/callgrind_calls.py)

N_P256 = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
DER = serialization.Encoding.DER
# The DER heads that put a raw value in a SubjectPublicKeyInfo or a PKCS #8 structure, taken
# from cryptography's own encodings of a key (the value is the last 65 or 32 bytes).
P256_SPKI_HEAD = (
    ec.generate_private_key(CURVE)
    .public_key()
    .public_bytes(DER, serialization.PublicFormat.SubjectPublicKeyInfo)[:-65]
)
X25519_SPKI_HEAD = (
    x25519.X25519PrivateKey.generate()
    .public_key()
    .public_bytes(DER, serialization.PublicFormat.SubjectPublicKeyInfo)[:-32]
)
X25519_PKCS8_HEAD = x25519.X25519PrivateKey.generate().private_bytes(
    DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)[:-32]
P256_OID = bytes.fromhex("06082a8648ce3d030107")
# Fixed blobs of one key (not fresh per call: these rows only show whether the key a loader
# gives is still a legacy one, exported at each exchange).
_BLOB_KEY = ec.generate_private_key(CURVE)
P256_ENCRYPTED_PEM = _BLOB_KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.TraditionalOpenSSL,
    serialization.BestAvailableEncryption(b"pw"),
)
P256_PKCS12 = pkcs12.serialize_key_and_certificates(
    None, _BLOB_KEY, None, None, serialization.NoEncryption()
)


def p256_scalar() -> int:
    """A scalar uniform in [1, n-1] from urandom (rejection: redrawn with probability 2^-32)."""
    while True:
        value = int.from_bytes(os.urandom(32), "big")
        if 0 < value < N_P256:
            return value


def sec1_der(scalar: int) -> bytes:
    """RFC 5915 ECPrivateKey with the curve's OID and no public key (the loader computes it)."""
    body = b"\x02\x01\x01\x04\x20" + scalar.to_bytes(32, "big") + b"\xa0\x0a" + P256_OID
    return b"\x30" + bytes([len(body)]) + body


def p256_tail(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Our server's use of the key: its public point encoded, ECDH with the peer's point."""
    key.public_key().public_bytes(X962, UNCOMPRESSED)
    return key.exchange(ECDH, ec.EllipticCurvePublicKey.from_encoded_point(CURVE, PEER_P256))


def p256_peer_der() -> bytes:
    key = ec.generate_private_key(CURVE)
    key.public_key().public_bytes(X962, UNCOMPRESSED)
    peer = serialization.load_der_public_key(P256_SPKI_HEAD + PEER_P256)
    return key.exchange(ECDH, peer)  # type: ignore[arg-type]


def p256_peer_numbers() -> bytes:
    key = ec.generate_private_key(CURVE)
    key.public_key().public_bytes(X962, UNCOMPRESSED)
    x, y = int.from_bytes(PEER_P256[1:33], "big"), int.from_bytes(PEER_P256[33:], "big")
    return key.exchange(ECDH, ec.EllipticCurvePublicNumbers(x, y, CURVE).public_key())


def p256_key_derived() -> bytes:
    return p256_tail(ec.derive_private_key(p256_scalar(), CURVE))


def p256_key_sec1() -> bytes:
    return p256_tail(serialization.load_der_private_key(sec1_der(p256_scalar()), None))  # type: ignore[arg-type]


def p256_key_encrypted_pem() -> bytes:
    return p256_tail(serialization.load_pem_private_key(P256_ENCRYPTED_PEM, b"pw"))  # type: ignore[arg-type]


def p256_key_pkcs12() -> bytes:
    return p256_tail(pkcs12.load_key_and_certificates(P256_PKCS12, None)[0])  # type: ignore[arg-type]


def x25519_key_der() -> bytes:
    """The private key from urandom through load_der_private_key, the peer as now."""
    key: Any = serialization.load_der_private_key(X25519_PKCS8_HEAD + os.urandom(32), None)
    key.public_key().public_bytes(RAW, RAW_FORMAT)
    return key.exchange(x25519.X25519PublicKey.from_public_bytes(PEER_X25519))  # type: ignore[no-any-return]


def x25519_peer_der() -> bytes:
    """The peer's value through load_der_public_key, our key as now."""
    key = x25519.X25519PrivateKey.generate()
    key.public_key().public_bytes(RAW, RAW_FORMAT)
    return key.exchange(serialization.load_der_public_key(X25519_SPKI_HEAD + PEER_X25519))  # type: ignore[arg-type]


def x25519_both_der() -> bytes:
    key: Any = serialization.load_der_private_key(X25519_PKCS8_HEAD + os.urandom(32), None)
    key.public_key().public_bytes(RAW, RAW_FORMAT)
    return key.exchange(serialization.load_der_public_key(X25519_SPKI_HEAD + PEER_X25519))  # type: ignore[no-any-return]


def x25519_from_private_bytes() -> bytes:
    key = x25519.X25519PrivateKey.from_private_bytes(os.urandom(32))
    key.public_key().public_bytes(RAW, RAW_FORMAT)
    return key.exchange(x25519.X25519PublicKey.from_public_bytes(PEER_X25519))


# ---- the ServerKeyExchange signature ------------------------------------------------------

ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
ECDSA_PREHASHED = ec.ECDSA(utils.Prehashed(hashes.SHA256()))
ECDSA_DETERMINISTIC = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)


def sign_now() -> bytes:
    return SIGNING_KEY.sign(SIGNED, ECDSA_SHA256)


def sign_prehashed() -> bytes:
    return SIGNING_KEY.sign(hashlib.sha256(SIGNED).digest(), ECDSA_PREHASHED)


def sign_deterministic() -> bytes:
    return SIGNING_KEY.sign(SIGNED, ECDSA_DETERMINISTIC)


# The server's key is loaded from PEM once per configuration: is it converted per signature?
PEM_SIGNING_KEY: Any = serialization.load_pem_private_key(
    SIGNING_KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ),
    None,
)


def sign_pem_loaded() -> bytes:
    return PEM_SIGNING_KEY.sign(SIGNED, ECDSA_SHA256)  # type: ignore[no-any-return]


# ---- AES-GCM: an epoch's key, and a Finished record -----------------------------------------


def gcm_make_and_seal() -> bytes:
    return AESGCM(KEY16).encrypt(NONCE, FINISHED, AAD)


def gcm_make() -> object:
    return AESGCM(KEY16)


def gcm_prepared_seal() -> bytes:
    return PREPARED_GCM.encrypt(NONCE, FINISHED, AAD)


BUFFER = bytearray(len(FINISHED) + 16)


def gcm_prepared_seal_into() -> object:
    return PREPARED_GCM.encrypt_into(NONCE, FINISHED, AAD, BUFFER)


# ---- randomness ---------------------------------------------------------------------------


def urandom_two() -> bytes:
    return os.urandom(32) + os.urandom(12)


def urandom_one() -> bytes:
    return os.urandom(44)


GROUPS: dict[str, dict[str, Callable[[], object]]] = {
    "prf": {
        "now": prf_now,
        "same-code-hashlib": prf_with(hashlib.sha256),
        "builtin-sha256": prf_with(builtin_sha256),
        "hmac.digest": prf_one_shot,
        "cryptography-hmac": prf_cryptography,
    },
    "transcript": {
        "now": transcript_with(hashlib.sha256),
        "builtin-sha256": transcript_with(builtin_sha256),
        "one-shot-hashlib": transcript_one_shot,
    },
    "ecdhe": {
        "now": ecdhe_p256,
        "p256-prepared-params": ecdhe_p256_prepared,
        "x25519": ecdhe_x25519,
    },
    "keygen": {"now": p256_keygen, "x25519": x25519_keygen},
    "p256-routes": {
        "now": ecdhe_p256_prepared,
        "peer-load_der_public_key": p256_peer_der,
        "peer-public-numbers": p256_peer_numbers,
        "key-derive_private_key": p256_key_derived,
        "key-load_der_private_key": p256_key_sec1,
        "key-encrypted-pem-fixed": p256_key_encrypted_pem,
        "key-pkcs12-fixed": p256_key_pkcs12,
    },
    "x25519-routes": {
        "now": ecdhe_x25519,
        "key-from_private_bytes": x25519_from_private_bytes,
        "key-load_der_private_key": x25519_key_der,
        "peer-load_der_public_key": x25519_peer_der,
        "both-der": x25519_both_der,
    },
    "sign": {
        "now": sign_now,
        "pem-loaded-key": sign_pem_loaded,
        "prehashed": sign_prehashed,
        "deterministic": sign_deterministic,
    },
    "aesgcm": {
        "now": gcm_make_and_seal,
        "make-only": gcm_make,
        "prepared-seal": gcm_prepared_seal,
        "prepared-seal-into": gcm_prepared_seal_into,
    },
    "urandom": {"now": urandom_two, "one-call": urandom_one},
}


def check() -> None:
    """Deterministic outputs must agree with "now"."""
    for group in ("prf", "transcript"):
        want = GROUPS[group]["now"]()
        for name, run in GROUPS[group].items():
            if run() != want:
                sys.exit(f"{group}/{name} gives another result")
    # The hand-made DER must load as the key it means.
    loaded: Any = serialization.load_der_private_key(sec1_der(5), None)
    if loaded.public_key() != ec.derive_private_key(5, CURVE).public_key():
        sys.exit("sec1_der does not give the key it encodes")
    raw = bytes(range(32))
    made: Any = serialization.load_der_private_key(X25519_PKCS8_HEAD + raw, None)
    if made.private_bytes_raw() != raw:
        sys.exit("X25519_PKCS8_HEAD does not give the key it encodes")


def time_group(group: str, count: int, rounds: int) -> None:
    variants = GROUPS[group]
    per_call: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            run = variants[name]
            start = time.perf_counter()
            for _ in range(count):
                run()
            per_call[name].append((time.perf_counter() - start) / count)
    base = per_call["now"]
    print(f"{group}: {count} calls x {rounds} rounds")
    for name in names:
        ratio = statistics.median(a / b for a, b in zip(per_call[name], base, strict=True))
        us = statistics.median(per_call[name]) * 1e6
        print(f"  {name:22s} {us:8.2f} us   x now {ratio:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--group", choices=list(GROUPS), action="append")
    parser.add_argument("--op", help="GROUP/VARIANT: run it --count times and stop")
    args = parser.parse_args()
    check()
    if args.op:
        group, variant = args.op.split("/")
        run = GROUPS[group][variant]
        for _ in range(args.count):
            run()
        return
    for group in args.group or list(GROUPS):
        time_group(group, args.count, args.rounds)


if __name__ == "__main__":
    main()
