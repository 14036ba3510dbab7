"""What the command lines share (`dtlsgate.io.cli` and `dtlsgate.io.coap_cli`): PSKs
written IDENTITY:HEX, certificate fingerprints written as RFC 8122 does, and the cached
self-signed certificate."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import BinaryIO

from dtlsgate.errors import UsageError


def why(exc: BaseException) -> str:
    """An exception as one line a user can read, never empty."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def psk(text: str) -> tuple[bytes, bytes]:
    identity, sep, key = text.rpartition(":")
    try:
        value = bytes.fromhex(key)
    except ValueError:
        value = b""
    if not sep or not identity or not value:
        raise argparse.ArgumentTypeError(f"wants IDENTITY:HEX, not {text!r}")
    return identity.encode(), value


def fingerprint(text: str) -> str:
    """A peer's certificate fingerprint, ``'sha-256 AB:CD:...'`` (RFC 8122 §5; any case), in
    its canonical form; an argparse error saying what is wrong otherwise."""
    from dtlsgate.crypto.certs import parse_fingerprint

    try:
        return str(parse_fingerprint(text))
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_psk(text: str) -> tuple[bytes, bytes]:
    """IDENTITY:HEX as (identity, key); a UsageError otherwise (for `dtlsgate.io.coap_cli`)."""
    try:
        return psk(text)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"--psk {exc}") from None


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "dtlsgate"


def self_signed_files() -> tuple[Path, Path]:
    """The cached self-signed certificate and key, made on first use (key mode 0600).

    Processes started at once (services on a fresh machine) make one pair between them:
    the first to take the directory's lock makes it, each file written under another name
    and renamed into place, the key before the certificate, so a process that finds the
    certificate finds its whole key. Written in place, one process read a key another had
    just truncated ("no PEM private key found"), or paired one run's certificate with
    another's key."""
    from dtlsgate.crypto.certs import make_self_signed

    directory = cache_dir()
    cert, key = directory / "self-signed-cert.pem", directory / "self-signed-key.pem"
    if not (cert.is_file() and key.is_file()):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with open(directory / "self-signed.lock", "ab") as lock:
                _lock(lock)
                if not (cert.is_file() and key.is_file()):
                    cert_pem, key_pem = make_self_signed("localhost", days=365)
                    _replace(key, key_pem, 0o600)
                    _replace(cert, cert_pem, 0o666)  # as the umask allows
        except OSError as exc:
            where = f"cannot keep a self-signed certificate in {directory}"
            raise UsageError(f"{where}: {why(exc)}") from None
    return cert, key


def _lock(lock: BinaryIO) -> None:
    """Wait for an exclusive lock on ``lock``'s file, released when it is closed (none
    without POSIX file locks: the renames still keep each file whole)."""
    try:
        import fcntl
    except ImportError:
        return
    fcntl.flock(lock, fcntl.LOCK_EX)


def _replace(path: Path, data: bytes, mode: int) -> None:
    """Put ``data`` at ``path`` whole: written to a file of this process's, then renamed
    over ``path`` (a reader sees the old file or the new one, never part of one)."""
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(partial, path)
