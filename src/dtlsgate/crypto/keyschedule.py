"""TLS 1.3 / DTLS 1.3 key derivation over HKDF (RFC 5869).

- ``hkdf_extract``, ``hkdf_expand_label`` and ``derive_secret`` (RFC 8446 §7.1), with the
  label prefix as a parameter: ``"tls13 "`` for TLS 1.3, ``"dtls13"`` for DTLS 1.3
  (RFC 9147 §5.9);
- `KeySchedule`: early secret -> handshake secret -> master secret and every secret derived
  from them (RFC 8446 §7.1), traffic keys (§7.3), KeyUpdate (§7.2), resumption PSKs (§4.6.1),
  exporters (§7.5) and the DTLS 1.3 record-number key (RFC 9147 §4.2.3).

Secrets derived "from the transcript" take the transcript hash (a digest), not the messages.
"""

from __future__ import annotations

import enum
import functools
import struct

from dtlsgate.crypto.hashes import Hash, hmac_digest
from dtlsgate.crypto.suites import SuiteInfo
from dtlsgate.errors import StateError, UsageError

__all__ = [
    "DTLS13_LABEL_PREFIX",
    "TLS13_LABEL_PREFIX",
    "KeySchedule",
    "derive_secret",
    "hkdf_expand",
    "hkdf_expand_label",
    "hkdf_extract",
]

#: RFC 8446 §7.1: HkdfLabel.label = "tls13 " + Label.
TLS13_LABEL_PREFIX = b"tls13 "
#: RFC 9147 §5.9: DTLS 1.3 uses "dtls13" in place of "tls13 ".
DTLS13_LABEL_PREFIX = b"dtls13"
# HkdfLabel's uint16 length and the label's uint8 length prefix (RFC 8446 §7.1).
_HKDF_LABEL_HEADER = struct.Struct("!HB")
# HkdfLabel heads kept (`_label_head`): the key schedule's labels with each context length
# and output length in use are about twenty per hash and prefix; exporter labels come from
# the application, so the cache is bounded.
_LABEL_HEADS = 256


def hkdf_extract(hash: Hash, salt: bytes | None, ikm: bytes | None) -> bytes:
    """HKDF-Extract (RFC 5869 §2.2). A missing salt or IKM is a string of Hash.length zeros
    (RFC 8446 §7.1)."""
    zeros = bytes(hash.digest_size)
    return hmac_digest(hash, salt or zeros, ikm if ikm is not None else zeros)


def hkdf_expand(hash: Hash, prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand (RFC 5869 §2.3)."""
    size = hash.digest_size
    if length <= size:
        if length < 0:
            raise UsageError(f"HKDF-Expand length {length} out of range")
        # T(1) = HMAC(PRK, info || 0x01) is all the output: every TLS 1.3 secret and key.
        return hmac_digest(hash, prk, info + b"\x01")[:length]
    if length > 255 * size:
        raise UsageError(f"HKDF-Expand length {length} out of range")
    out = bytearray()
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac_digest(hash, prk, block + info + bytes((counter,)))
        out += block
        counter += 1
    return bytes(out[:length])


def hkdf_expand_label(
    hash: Hash,
    secret: bytes,
    label: bytes,
    context: bytes,
    length: int,
    prefix: bytes = TLS13_LABEL_PREFIX,
) -> bytes:
    """HKDF-Expand-Label (RFC 8446 §7.1): info is struct HkdfLabel { uint16 length;
    opaque label<7..255> = prefix + label; opaque context<0..255>; }."""
    head, one_block = _label_head(hash, prefix, label, len(context), length)
    if one_block:
        # T(1) = HMAC(PRK, info || 0x01) is all the output: every TLS 1.3 secret and key.
        return hmac_digest(hash, secret, head + context + b"\x01")[:length]
    return hkdf_expand(hash, secret, head + context, length)


@functools.lru_cache(maxsize=_LABEL_HEADS)
def _label_head(
    hash: Hash, prefix: bytes, label: bytes, context_length: int, length: int
) -> tuple[bytes, bool]:
    """HkdfLabel up to its context (RFC 8446 §7.1), checked, and whether the output is one
    HMAC block. The same dozen heads serve every handshake (only the context, a transcript
    hash, varies), so each is built and checked once."""
    label_length = len(prefix) + len(label)
    # RFC 8446 §7.1: label<7..255>, context<0..255>, length is a uint16.
    if not 7 <= label_length <= 255:
        raise UsageError(f"HKDF label {prefix + label!r} must be 7..255 bytes")
    if context_length > 255:
        raise UsageError("HKDF-Expand-Label context must be at most 255 bytes")
    if not 0 <= length <= 0xFFFF:
        raise UsageError("HKDF-Expand-Label length must fit in a uint16")
    header = _HKDF_LABEL_HEADER.pack(length, label_length)
    head = b"".join((header, prefix, label, bytes((context_length,))))
    return head, length <= hash.digest_size


def derive_secret(
    hash: Hash,
    secret: bytes,
    label: bytes,
    transcript_hash: bytes,
    prefix: bytes = TLS13_LABEL_PREFIX,
) -> bytes:
    """Derive-Secret(Secret, Label, Messages) (RFC 8446 §7.1), given
    ``transcript_hash = Transcript-Hash(Messages)``."""
    return hkdf_expand_label(hash, secret, label, transcript_hash, hash.digest_size, prefix)


@functools.cache
def _no_psk_secrets(hash: Hash, prefix: bytes) -> tuple[bytes, bytes]:
    """The Early Secret without a PSK, HKDF-Extract(0, 0), and Derive-Secret(Early Secret,
    "derived", "") (RFC 8446 §7.1): constants of the hash and label prefix."""
    early = hkdf_extract(hash, None, None)
    return early, derive_secret(hash, early, b"derived", hash.empty_digest(), prefix)


class Stage(enum.IntEnum):
    """Which extract step the schedule has reached (RFC 8446 §7.1 diagram)."""

    EARLY = 0
    HANDSHAKE = 1
    MASTER = 2


class KeySchedule:
    """The TLS 1.3 key schedule of one connection (RFC 8446 §7.1).

    Built at the early stage from the PSK (or none); `enter_handshake` mixes in the (EC)DHE
    shared secret, `enter_master` extracts the master secret. Each secret getter checks that
    its stage has been reached, and each stage is entered once, in order, so a mis-ordered
    handshake fails loudly with `StateError` (a local bug, not a peer fault).
    """

    def __init__(
        self,
        hash: Hash,
        key_length: int,
        *,
        psk: bytes | None = None,
        label_prefix: bytes = TLS13_LABEL_PREFIX,
    ) -> None:
        self.hash = hash
        self.key_length = key_length
        self.label_prefix = label_prefix
        # RFC 8446 §7.1: Early Secret = HKDF-Extract(0, PSK or 0), and the salt of the
        # handshake secret derived from it: without a PSK both are the same for every
        # handshake with this hash and prefix, made once.
        self._derived_salt: bytes | None = None
        if psk is None:
            self.early_secret, self._derived_salt = _no_psk_secrets(hash, label_prefix)
        else:
            self.early_secret = hkdf_extract(hash, None, psk)
        self.handshake_secret: bytes | None = None
        self.master_secret: bytes | None = None
        self.stage = Stage.EARLY

    @classmethod
    def for_suite(
        cls, suite: SuiteInfo, *, psk: bytes | None = None, dtls: bool = False
    ) -> KeySchedule:
        """A schedule for a TLS 1.3 suite; ``dtls=True`` selects the "dtls13" prefix."""
        if not suite.is_tls13:
            raise UsageError(f"{suite.suite.name} is not a TLS 1.3 suite")
        prefix = DTLS13_LABEL_PREFIX if dtls else TLS13_LABEL_PREFIX
        return cls(suite.hash, suite.key_length, psk=psk, label_prefix=prefix)

    # -- primitives bound to this schedule's hash and prefix --------------------------------

    def expand_label(self, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
        """HKDF-Expand-Label with this schedule's hash and label prefix."""
        return hkdf_expand_label(self.hash, secret, label, context, length, self.label_prefix)

    def derive(self, secret: bytes, label: bytes, transcript_hash: bytes) -> bytes:
        """Derive-Secret with this schedule's hash and label prefix."""
        return derive_secret(self.hash, secret, label, transcript_hash, self.label_prefix)

    def _need(self, stage: Stage) -> None:
        if self.stage < stage:
            raise StateError(f"key schedule is at {self.stage.name}, this needs {stage.name}")

    def _enter(self, stage: Stage) -> None:
        if self.stage + 1 != stage:
            raise StateError(f"key schedule is at {self.stage.name}, cannot enter {stage.name}")

    # -- early secret ------------------------------------------------------------------------

    def binder_key(self, *, external: bool) -> bytes:
        """``ext binder`` (external PSK) or ``res binder`` (resumption PSK) (RFC 8446 §7.1)."""
        self._need(Stage.EARLY)
        label = b"ext binder" if external else b"res binder"
        return self.derive(self.early_secret, label, self.hash.empty_digest())

    def client_early_traffic_secret(self, client_hello_hash: bytes) -> bytes:
        """``c e traffic`` over the ClientHello (RFC 8446 §7.1)."""
        self._need(Stage.EARLY)
        return self.derive(self.early_secret, b"c e traffic", client_hello_hash)

    def early_exporter_master_secret(self, client_hello_hash: bytes) -> bytes:
        """``e exp master`` over the ClientHello (RFC 8446 §7.1)."""
        self._need(Stage.EARLY)
        return self.derive(self.early_secret, b"e exp master", client_hello_hash)

    # -- handshake secret --------------------------------------------------------------------

    def enter_handshake(self, shared_secret: bytes | None) -> bytes:
        """Handshake Secret = HKDF-Extract(Derive-Secret(Early Secret, "derived", ""),
        (EC)DHE shared secret or zeros for psk_ke) (RFC 8446 §7.1). Returns it."""
        self._enter(Stage.HANDSHAKE)
        salt = self._derived_salt
        if salt is None:
            salt = self.derive(self.early_secret, b"derived", self.hash.empty_digest())
        self.handshake_secret = hkdf_extract(self.hash, salt, shared_secret)
        self.stage = Stage.HANDSHAKE
        return self.handshake_secret

    def _hs(self) -> bytes:
        if self.handshake_secret is None:
            raise StateError("key schedule has not entered the handshake stage")
        return self.handshake_secret

    def client_handshake_traffic_secret(self, transcript_hash: bytes) -> bytes:
        """``c hs traffic`` over ClientHello..ServerHello (RFC 8446 §7.1)."""
        return self.derive(self._hs(), b"c hs traffic", transcript_hash)

    def server_handshake_traffic_secret(self, transcript_hash: bytes) -> bytes:
        """``s hs traffic`` over ClientHello..ServerHello (RFC 8446 §7.1)."""
        return self.derive(self._hs(), b"s hs traffic", transcript_hash)

    # -- master secret -----------------------------------------------------------------------

    def enter_master(self) -> bytes:
        """Master Secret = HKDF-Extract(Derive-Secret(Handshake Secret, "derived", ""), 0)
        (RFC 8446 §7.1). Returns it."""
        self._enter(Stage.MASTER)
        salt = self.derive(self._hs(), b"derived", self.hash.empty_digest())
        self.master_secret = hkdf_extract(self.hash, salt, None)
        self.stage = Stage.MASTER
        return self.master_secret

    def _ms(self) -> bytes:
        if self.master_secret is None:
            raise StateError("key schedule has not entered the master stage")
        return self.master_secret

    def client_application_traffic_secret(self, transcript_hash: bytes) -> bytes:
        """``c ap traffic`` (generation 0) over ClientHello..server Finished (RFC 8446 §7.1)."""
        return self.derive(self._ms(), b"c ap traffic", transcript_hash)

    def server_application_traffic_secret(self, transcript_hash: bytes) -> bytes:
        """``s ap traffic`` (generation 0) over ClientHello..server Finished (RFC 8446 §7.1)."""
        return self.derive(self._ms(), b"s ap traffic", transcript_hash)

    def exporter_master_secret(self, transcript_hash: bytes) -> bytes:
        """``exp master`` over ClientHello..server Finished (RFC 8446 §7.1)."""
        return self.derive(self._ms(), b"exp master", transcript_hash)

    def resumption_master_secret(self, transcript_hash: bytes) -> bytes:
        """``res master`` over ClientHello..client Finished (RFC 8446 §7.1)."""
        return self.derive(self._ms(), b"res master", transcript_hash)

    # -- stage-independent derivations -------------------------------------------------------

    def finished_key(self, base_key: bytes) -> bytes:
        """finished_key = HKDF-Expand-Label(BaseKey, "finished", "", Hash.length)
        (RFC 8446 §4.4.4); also the PSK binder key's MAC key."""
        return self.expand_label(base_key, b"finished", b"", self.hash.digest_size)

    def finished_verify_data(self, base_key: bytes, transcript_hash: bytes) -> bytes:
        """verify_data = HMAC(finished_key, Transcript-Hash(...)) (RFC 8446 §4.4.4); with the
        binder key and the truncated-ClientHello hash it is the PSK binder (§4.2.11.2)."""
        return hmac_digest(self.hash, self.finished_key(base_key), transcript_hash)

    def traffic_keys(self, secret: bytes) -> tuple[bytes, bytes]:
        """(write_key, write_iv) from a traffic secret (RFC 8446 §7.3; iv_length is 12)."""
        key = self.expand_label(secret, b"key", b"", self.key_length)
        iv = self.expand_label(secret, b"iv", b"", 12)
        return key, iv

    def record_number_key(self, secret: bytes) -> bytes:
        """DTLS 1.3 sn_key = HKDF-Expand-Label(Secret, "sn", "", key_length) (RFC 9147
        §4.2.3)."""
        return self.expand_label(secret, b"sn", b"", self.key_length)

    def next_traffic_secret(self, secret: bytes) -> bytes:
        """application_traffic_secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "",
        Hash.length) (RFC 8446 §7.2, after a KeyUpdate)."""
        return self.expand_label(secret, b"traffic upd", b"", self.hash.digest_size)

    def resumption_psk(self, resumption_master_secret: bytes, ticket_nonce: bytes) -> bytes:
        """The PSK of a ticket: HKDF-Expand-Label(resumption_master_secret, "resumption",
        ticket_nonce, Hash.length) (RFC 8446 §4.6.1)."""
        return self.expand_label(
            resumption_master_secret, b"resumption", ticket_nonce, self.hash.digest_size
        )

    def export(self, exporter_secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
        """TLS-Exporter(label, context_value, key_length) = HKDF-Expand-Label(
        Derive-Secret(Secret, label, ""), "exporter", Hash(context_value), key_length)
        (RFC 8446 §7.5); ``exporter_secret`` is the (early) exporter master secret."""
        inner = self.derive(exporter_secret, label, self.hash.empty_digest())
        return self.expand_label(inner, b"exporter", self.hash.digest(context), length)
