"""TLS certificate compression (RFC 8879): the compress_certificate extension, the
CompressedCertificate message, and compressing and decompressing a Certificate message.

zlib (RFC 1950) is always available; brotli (RFC 7932) and zstd (RFC 8878) only when their
Python module is importable (``brotli`` with bounded decompression, ``zstandard``): none of
them is a dependency. Decompression is bounded: a message whose uncompressed_length exceeds
`MAX_UNCOMPRESSED_CERTIFICATE`, or whose compressed data inflate past its uncompressed_length,
decode to less, or carry trailing bytes, is refused with bad_certificate (RFC 8879 §4) before
or while inflating, never after producing more than the bound.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable
from enum import IntEnum
from typing import Any

from dtlsgate._frozen import frozen
from dtlsgate.errors import BadCertificate, UsageError
from dtlsgate.wire.buffer import Reader, Writer

__all__ = [
    "MAX_UNCOMPRESSED_CERTIFICATE",
    "CertificateCompressionAlgorithm",
    "CompressedCertificate",
    "available_algorithms",
    "compress_certificate",
    "decode_compress_certificate",
    "decompress_certificate",
    "encode_compress_certificate",
    "parse_algorithm_names",
]


class CertificateCompressionAlgorithm(IntEnum):
    """RFC 8879 §7.3."""

    zlib = 1
    brotli = 2
    zstd = 3


#: The largest Certificate message we inflate: the bound the TLS 1.3 record layer puts on
#: any handshake message it reassembles (``record.tls13.MAX_HANDSHAKE_MESSAGE``), so that a
#: compressed chain cannot make us hold more than an uncompressed one could.
MAX_UNCOMPRESSED_CERTIFICATE = 1 << 18

_A = CertificateCompressionAlgorithm


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _zlib_decompress(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise BadCertificate(f"zlib: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise BadCertificate("compressed certificate inflates past its uncompressed_length")
    if not inflater.eof or inflater.unused_data:
        raise BadCertificate("zlib stream truncated or followed by other bytes")
    return out


def _zstd_decompress(data: bytes, limit: int) -> bytes:
    zstandard = _module("zstandard")
    try:
        out: bytes = zstandard.ZstdDecompressor().decompress(data, max_output_size=limit + 1)
    except zstandard.ZstdError as exc:
        raise BadCertificate(f"zstd: {exc}") from None
    return out


def _brotli_decompress(data: bytes, limit: int) -> bytes:
    brotli = _module("brotli")
    try:
        out: bytes = brotli.Decompressor().process(data, output_buffer_limit=limit + 1)
    except brotli.error as exc:
        raise BadCertificate(f"brotli: {exc}") from None
    return out


def _brotli_bounded() -> bool:
    """Only a brotli module that bounds its output (``output_buffer_limit``, brotli 1.2)."""
    brotli = _module("brotli")
    if brotli is None:
        return False
    try:
        brotli.Decompressor().process(b"", output_buffer_limit=1)
    except TypeError:
        return False
    except Exception:
        return True
    return True


_COMPRESS: dict[int, Callable[[bytes], bytes]] = {_A.zlib: zlib.compress}
_DECOMPRESS: dict[int, Callable[[bytes, int], bytes]] = {_A.zlib: _zlib_decompress}
if _module("zstandard") is not None:
    _COMPRESS[_A.zstd] = lambda data: _module("zstandard").ZstdCompressor().compress(data)
    _DECOMPRESS[_A.zstd] = _zstd_decompress
if _brotli_bounded():
    _COMPRESS[_A.brotli] = lambda data: _module("brotli").compress(data)
    _DECOMPRESS[_A.brotli] = _brotli_decompress


# What this process can use: fixed once the modules above were looked for.
_AVAILABLE = tuple(_A(a) for a in _DECOMPRESS)


def available_algorithms() -> tuple[CertificateCompressionAlgorithm, ...]:
    """The algorithms this process can use, zlib first."""
    return _AVAILABLE


def parse_algorithm_names(names: tuple[str, ...] | list[str]) -> tuple[int, ...]:
    """Configuration names ("zlib", "brotli", "zstd") to code points; `UsageError` for an
    unknown name or one whose module is not importable here."""
    out = []
    for name in names:
        if name not in _A.__members__:
            valid = ", ".join(_A.__members__)
            raise UsageError(f"unknown certificate compression {name!r}; valid: {valid}")
        if CertificateCompressionAlgorithm[name] not in _DECOMPRESS:
            raise UsageError(f"certificate compression {name!r} needs its Python module")
        out.append(int(CertificateCompressionAlgorithm[name]))
    if len(set(out)) != len(out):
        raise UsageError("certificate compression algorithms must not repeat")
    return tuple(out)


def encode_compress_certificate(algorithms: tuple[int, ...]) -> bytes:
    """RFC 8879 §3: CertificateCompressionAlgorithm algorithms<2..2^8-2>."""
    w = Writer()
    w.u16_list(1, list(algorithms))
    return w.getvalue()


def decode_compress_certificate(data: bytes) -> tuple[int, ...]:
    """RFC 8879 §3: at least one algorithm (decode_error otherwise)."""
    r = Reader(data)
    values: tuple[int, ...] = r.u16_list(1, 2, 254)
    r.finish()
    return values


@frozen
class CompressedCertificate:
    """RFC 8879 §4: algorithm (uint16), uncompressed_length (uint24),
    compressed_certificate_message<1..2^24-1>."""

    algorithm: int
    uncompressed_length: int
    compressed: bytes

    @classmethod
    def decode(cls, body: bytes) -> CompressedCertificate:
        r = Reader(body)
        message = cls(r.u16(), r.u24(), r.vector(3, 1))
        r.finish()
        return message

    def encode(self) -> bytes:
        w = Writer()
        w.u16(self.algorithm)
        w.u24(self.uncompressed_length)
        w.vector(3, self.compressed, 1)
        return w.getvalue()


def compress_certificate(algorithm: int, certificate_body: bytes) -> CompressedCertificate:
    """The CompressedCertificate for a Certificate message body (RFC 8879 §4: the
    Certificate message without its handshake header)."""
    return CompressedCertificate(
        algorithm, len(certificate_body), _COMPRESS[algorithm](certificate_body)
    )


def decompress_certificate(message: CompressedCertificate) -> bytes:
    """The Certificate message body; `BadCertificate` when it would exceed our bound or
    its uncompressed_length, or does not decompress to exactly that length (RFC 8879 §4).
    The caller checked the algorithm is one we advertised."""
    length = message.uncompressed_length
    if length > MAX_UNCOMPRESSED_CERTIFICATE:
        raise BadCertificate(f"uncompressed_length {length} is over our limit")
    out = _DECOMPRESS[message.algorithm](message.compressed, length)
    if len(out) != length:
        raise BadCertificate("compressed certificate does not inflate to its uncompressed_length")
    return out
