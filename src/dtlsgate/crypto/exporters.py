"""Keying material exporters: what a connection keeps from its handshake so that the
application can derive keys bound to that handshake (DTLS-SRTP's ``EXTRACTOR-dtls_srtp``,
RFC 5764 §4.2, or any protocol that uses (D)TLS as its key exchange).

- TLS 1.2 and DTLS 1.2 (RFC 5705 §4): ``PRF(master_secret, label, client_random +
  server_random [+ uint16 context length + context])``. No context and an empty context
  give different output.
- TLS 1.3 and DTLS 1.3 (RFC 8446 §7.5): ``HKDF-Expand-Label(Derive-Secret(
  exporter_master_secret, label, ""), "exporter", Hash(context), length)``. No context is
  an empty one. The exporter master secret (RFC 8446 §7.1, over the transcript through the
  server Finished) is derived at each export, not at every handshake: most connections
  never export.

An exporter is made when the handshake completes (`dtlsgate.handshake.engine.Complete`)
and kept by the connection, whose ``export_keying_material`` goes through `export`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, NamedTuple, Protocol, cast

from dtlsgate.crypto.hashes import Hash
from dtlsgate.crypto.prf import export_keying_material
from dtlsgate.errors import StateError, UsageError

if TYPE_CHECKING:
    from dtlsgate.crypto.keyschedule import KeySchedule

__all__ = ["KeyingMaterialExporter", "Tls12Exporter", "Tls13Exporter", "export", "tls12_exporter"]


class KeyingMaterialExporter(Protocol):
    def export(self, label: bytes, context: bytes | None, length: int) -> bytes: ...


class Tls12Exporter(NamedTuple):
    """RFC 5705's exporter of a TLS 1.2 or DTLS 1.2 handshake (full or resumed): the PRF
    of the suite, its master secret and the two randoms."""

    hash: Hash
    master_secret: bytes
    client_random: bytes
    server_random: bytes

    def export(self, label: bytes, context: bytes | None, length: int) -> bytes:
        return export_keying_material(
            self.hash,
            self.master_secret,
            label,
            self.client_random,
            self.server_random,
            context,
            length,
        )


# The fields in order -> Tls12Exporter, in C: made once per DTLS 1.2 handshake, and a named
# tuple's own ``__new__`` is a Python-level function (as wire/record.py's DtlsRecord).
tls12_exporter = cast(
    Callable[[tuple[Hash, bytes, bytes, bytes]], Tls12Exporter],
    partial(tuple.__new__, Tls12Exporter),
)


class Tls13Exporter(NamedTuple):
    """RFC 8446 §7.5's exporter of a TLS 1.3 or DTLS 1.3 handshake: its key schedule (in
    the master stage; the connection keeps it for KeyUpdate anyway) and the transcript
    hash through the server Finished."""

    schedule: KeySchedule
    transcript_hash: bytes

    def export(self, label: bytes, context: bytes | None, length: int) -> bytes:
        schedule = self.schedule
        secret = schedule.exporter_master_secret(self.transcript_hash)
        return schedule.export(secret, label, context or b"", length)


def export(
    exporter: KeyingMaterialExporter | None, label: bytes, length: int, context: bytes | None
) -> bytes:
    """A connection's ``export_keying_material(label, length, context)``: ``length`` bytes
    bound to its handshake, the label (bytes, such as ``b"EXTRACTOR-dtls_srtp"``) and the
    context (None: no context). StateError before the handshake completed."""
    if exporter is None:
        raise StateError("keying material can be exported once the handshake has completed")
    if not isinstance(label, bytes) or not label:
        raise UsageError("an exporter label is non-empty bytes")
    if context is not None and not isinstance(context, bytes):
        raise UsageError("an exporter context is bytes or None")
    if length < 1:
        raise UsageError("an exporter's output length is at least 1 byte")
    return exporter.export(label, context, length)
