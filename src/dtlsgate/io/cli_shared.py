"""What the command lines share (`dtlsgate.io.cli` and `dtlsgate.io.coap_cli`): PSKs
written IDENTITY:HEX and the cached self-signed certificate."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

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
    """The cached self-signed certificate and key, made on first use (key mode 0600)."""
    from dtlsgate.crypto.certs import make_self_signed

    directory = cache_dir()
    cert, key = directory / "self-signed-cert.pem", directory / "self-signed-key.pem"
    if not (cert.is_file() and key.is_file()):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            cert_pem, key_pem = make_self_signed("localhost", days=365)
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key_pem)
            cert.write_bytes(cert_pem)
        except OSError as exc:
            where = f"cannot keep a self-signed certificate in {directory}"
            raise UsageError(f"{where}: {why(exc)}") from None
    return cert, key
