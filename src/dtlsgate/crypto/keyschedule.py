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
import struct
from typing import NamedTuple

from dtlsgate.crypto.hashes import Hash, KeyedHmac, hmac_digest
from dtlsgate.crypto.suites import SUITES, SuiteInfo
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
    return _expand_blocks(KeyedHmac(hash, prk), size, info, length)


def _expand_blocks(mac: KeyedHmac, size: int, info: bytes, length: int) -> bytes:
    """HKDF-Expand (RFC 5869 §2.3) under an already keyed PRK, in blocks of ``size``."""
    if length > 255 * size:
        raise UsageError(f"HKDF-Expand length {length} out of range")
    out = bytearray()
    block = b""
    counter = 1
    while len(out) < length:
        block = mac.digest(block + info + bytes((counter,)))
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
    head = _label_head(hash, prefix, label, len(context), length)
    return _expand_label(hash, secret, head, context, length)


def _expand_label(
    hash: Hash, secret: bytes, head: tuple[bytes, bool], context: bytes, length: int
) -> bytes:
    """HKDF-Expand-Label from its HkdfLabel ``head`` (`_label_head`)."""
    label, one_block = head
    if one_block:
        # T(1) = HMAC(PRK, info || 0x01) is all the output: every TLS 1.3 secret and key.
        return hmac_digest(hash, secret, label + context + b"\x01")[:length]
    return hkdf_expand(hash, secret, label + context, length)


def _expand_label_keyed(
    mac: KeyedHmac, size: int, head: tuple[bytes, bool], context: bytes, length: int
) -> bytes:
    """`_expand_label` under a secret already keyed (`KeyedHmac`): several labels expanded
    from one secret share its HMAC key schedule (RFC 2104 §4)."""
    label, one_block = head
    if one_block:
        return mac.digest(label + context + b"\x01")[:length]
    return _expand_blocks(mac, size, label + context, length)


def _label_head(
    hash: Hash, prefix: bytes, label: bytes, context_length: int, length: int
) -> tuple[bytes, bool]:
    """HkdfLabel up to its context (RFC 8446 §7.1), checked, and whether the output is one
    HMAC block."""
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


# Every label a key schedule derives with in a handshake, as (label, context length, output
# length) for a hash of ``size`` bytes and an AEAD key of ``key`` bytes (RFC 8446 §7.1, §7.3,
# §4.4.4, §4.6.1, §7.2; RFC 9147 §4.2.3): the context is a transcript hash or empty, but a
# ticket nonce in "resumption" (ours are 1 byte; a peer's may differ). Derive-Secret's
# "derived" and binder labels hash the empty string, so their context is ``size`` bytes too.
_DERIVE_LABELS = (
    b"derived",
    b"ext binder",
    b"res binder",
    b"c e traffic",
    b"e exp master",
    b"c hs traffic",
    b"s hs traffic",
    b"c ap traffic",
    b"s ap traffic",
    b"exp master",
    b"res master",
)


def _schedule_labels(size: int, key: int) -> tuple[tuple[bytes, int, int], ...]:
    return (
        *((label, size, size) for label in _DERIVE_LABELS),
        (b"finished", 0, size),
        (b"traffic upd", 0, size),
        (b"key", 0, key),
        (b"iv", 0, 12),
        (b"sn", 0, key),
        (b"resumption", 1, size),
    )


LabelHeads = dict[tuple[bytes, int, int], tuple[bytes, bool]]


class _Prepared(NamedTuple):
    """What every key schedule of one hash, AEAD key length and label prefix (one TLS 1.3
    suite in TLS or DTLS) starts from, the same in every handshake (RFC 8446 §7.1): the
    HkdfLabel heads of its labels (only the context, a transcript hash, varies), and
    without a PSK the Early Secret, HKDF-Extract(0, 0), and the salt of the handshake
    secret, Derive-Secret(Early Secret, "derived", ""), keyed for its HKDF-Extract (it is
    only read: each MAC copies its hash states)."""

    label_heads: LabelHeads
    early_secret: bytes
    derived_salt: KeyedHmac
    # HKDF-Expand-Label's whole HMAC input (HkdfLabel, then the block counter 1) for
    # "key", "iv" and "sn", and for "finished": their context is empty, so the input is
    # fixed (RFC 8446 §7.3, §4.4.4, RFC 9147 §4.2.3), and each output is one block.
    record_infos: tuple[bytes, bytes, bytes]
    finished_info: bytes
    # Derive-Secret's HkdfLabel up to its context, by label: the context is a transcript
    # hash of Hash.length bytes and so is the output (one block), so the HMAC input is
    # this head, the hash and the block counter 1 (RFC 8446 §7.1).
    derive_heads: dict[bytes, bytes]


def _prepare(hash: Hash, key_length: int, prefix: bytes) -> _Prepared:
    size = hash.digest_size
    heads = {
        (label, context, length): _label_head(hash, prefix, label, context, length)
        for label, context, length in _schedule_labels(size, key_length)
    }
    early = hkdf_extract(hash, None, None)
    derived = heads[b"derived", size, size]
    salt = _expand_label(hash, early, derived, hash.empty_digest(), size)
    infos = []
    for label, length in ((b"key", key_length), (b"iv", 12), (b"sn", key_length)):
        head, one_block = heads[label, 0, length]
        assert one_block  # a TLS 1.3 suite's key is never longer than its hash
        infos.append(head + b"\x01")
    finished = heads[b"finished", 0, size][0] + b"\x01"
    derive_heads = {label: heads[label, size, size][0] for label in _DERIVE_LABELS}
    return _Prepared(
        heads, early, KeyedHmac(hash, salt), (infos[0], infos[1], infos[2]), finished, derive_heads
    )


# Prepared once per process for each TLS 1.3 suite's (hash, key length) and label prefix.
# A label outside a table (an application's exporter label) has its head built at each
# use, so nothing here grows with what the application asks for.
_PREPARED: dict[tuple[Hash, int, bytes], _Prepared] = {
    (hash, key_length, prefix): _prepare(hash, key_length, prefix)
    for hash, key_length in {(i.hash, i.key_length): None for i in SUITES.values() if i.is_tls13}
    for prefix in (TLS13_LABEL_PREFIX, DTLS13_LABEL_PREFIX)
}


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
        psk: bytes | None = None,
        label_prefix: bytes = TLS13_LABEL_PREFIX,
    ) -> None:
        # No keyword-only parameter, here and in `for_suite`: every handshake makes a
        # schedule, and `for_suite` calls this by position (keywords to a class build a
        # dict per call, and a keyword-only parameter keeps a call from being specialized).
        self.hash = hash
        self.key_length = key_length
        self.label_prefix = label_prefix
        prepared = _PREPARED.get((hash, key_length, label_prefix))
        self._label_heads: LabelHeads = prepared.label_heads if prepared is not None else {}
        self._record_infos = prepared.record_infos if prepared is not None else None
        self._finished_info = prepared.finished_info if prepared is not None else None
        self._derive_heads = prepared.derive_heads if prepared is not None else None
        # RFC 8446 §7.1: Early Secret = HKDF-Extract(0, PSK or 0), and the salt of the
        # handshake secret derived from it: without a PSK both are the same for every
        # handshake of this suite and prefix, prepared once.
        self._derived_salt: KeyedHmac | None = None
        if psk is None and prepared is not None:
            self.early_secret, self._derived_salt = prepared.early_secret, prepared.derived_salt
        else:
            self.early_secret = hkdf_extract(hash, None, psk)
        self.handshake_secret: bytes | None = None
        self.master_secret: bytes | None = None
        # The handshake and master secrets keyed once each (three labels are expanded from
        # each in a handshake), each kept only while the handshake derives from it: the
        # handshake secret's until the master stage, the master secret's until the
        # resumption master secret (a derivation after that keys the secret again).
        self._handshake_mac: KeyedHmac | None = None
        self._master_mac: KeyedHmac | None = None
        # The two handshake traffic secrets, each keyed once for its two uses in a
        # handshake, its Finished key (RFC 8446 §4.4.4) and its record keys (§7.3), which
        # come in either order: None until the first use keys it, gone after the second
        # (`_traffic_mac`); the dict itself only while one is pending (an emptied dict
        # keeps its table: some 200 bytes for the connection's life).
        self._handshake_traffic: dict[bytes, KeyedHmac | None] | None = None
        self.stage = Stage.EARLY

    @classmethod
    def for_suite(
        cls, suite: SuiteInfo, psk: bytes | None = None, dtls: bool = False
    ) -> KeySchedule:
        """A schedule for a TLS 1.3 suite; ``dtls=True`` selects the "dtls13" prefix."""
        if not suite.is_tls13:
            raise UsageError(f"{suite.suite.name} is not a TLS 1.3 suite")
        prefix = DTLS13_LABEL_PREFIX if dtls else TLS13_LABEL_PREFIX
        return cls(suite.hash, suite.key_length, psk, prefix)

    # -- primitives bound to this schedule's hash and prefix --------------------------------

    def _head(self, label: bytes, context_length: int, length: int) -> tuple[bytes, bool]:
        head = self._label_heads.get((label, context_length, length))
        if head is None:
            head = _label_head(self.hash, self.label_prefix, label, context_length, length)
        return head

    def expand_label(self, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
        """HKDF-Expand-Label with this schedule's hash and label prefix."""
        head = self._head(label, len(context), length)
        return _expand_label(self.hash, secret, head, context, length)

    def _expand_keyed(self, mac: KeyedHmac, label: bytes, context: bytes, length: int) -> bytes:
        """`expand_label` from a secret already keyed."""
        head = self._head(label, len(context), length)
        return _expand_label_keyed(mac, self.hash.digest_size, head, context, length)

    def derive(self, secret: bytes, label: bytes, transcript_hash: bytes) -> bytes:
        """Derive-Secret with this schedule's hash and label prefix (RFC 8446 §7.1)."""
        return self.expand_label(secret, label, transcript_hash, self.hash.digest_size)

    def _derive_keyed(self, mac: KeyedHmac, label: bytes, transcript_hash: bytes) -> bytes:
        """Derive-Secret from a secret already keyed: one HMAC block over the label's
        prepared head (`_Prepared.derive_heads`), the transcript hash and the counter."""
        heads = self._derive_heads
        size = self.hash.digest_size
        if heads is not None and len(transcript_hash) == size:
            head = heads.get(label)
            if head is not None:
                return mac.digest(head + transcript_hash + b"\x01")  # Hash.length bytes
        return self._expand_keyed(mac, label, transcript_hash, size)

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
        prepared = self._derived_salt
        if prepared is not None:
            ikm = bytes(self.hash.digest_size) if shared_secret is None else shared_secret
            self.handshake_secret = prepared.digest(ikm)  # HKDF-Extract(salt, ikm)
        else:
            salt = self.derive(self.early_secret, b"derived", self.hash.empty_digest())
            self.handshake_secret = hkdf_extract(self.hash, salt, shared_secret)
        self._handshake_mac = KeyedHmac(self.hash, self.handshake_secret)
        self.stage = Stage.HANDSHAKE
        return self.handshake_secret

    def _hs(self) -> KeyedHmac:
        mac = self._handshake_mac
        if mac is None:
            if self.handshake_secret is None:
                raise StateError("key schedule has not entered the handshake stage")
            mac = KeyedHmac(self.hash, self.handshake_secret)
        return mac

    def client_handshake_traffic_secret(self, transcript_hash: bytes) -> bytes:
        """``c hs traffic`` over ClientHello..ServerHello (RFC 8446 §7.1)."""
        secret = self._derive_keyed(self._hs(), b"c hs traffic", transcript_hash)
        self._note_handshake_traffic(secret)
        return secret

    def server_handshake_traffic_secret(self, transcript_hash: bytes) -> bytes:
        """``s hs traffic`` over ClientHello..ServerHello (RFC 8446 §7.1)."""
        secret = self._derive_keyed(self._hs(), b"s hs traffic", transcript_hash)
        self._note_handshake_traffic(secret)
        return secret

    def _note_handshake_traffic(self, secret: bytes) -> None:
        if self._handshake_traffic is None:
            self._handshake_traffic = {}
        self._handshake_traffic[secret] = None

    def _traffic_mac(self, secret: bytes) -> KeyedHmac:
        """``secret`` keyed for HKDF-Expand-Label: a handshake traffic secret's keyed form
        is made at its first use and let go at its second (its Finished key and its record
        keys: one keying instead of two); any other secret is keyed anew."""
        kept = self._handshake_traffic
        if kept is None or secret not in kept:
            return KeyedHmac(self.hash, secret)
        mac = kept[secret]
        if mac is None:
            mac = kept[secret] = KeyedHmac(self.hash, secret)
        else:
            del kept[secret]
            if not kept:
                self._handshake_traffic = None
        return mac

    # -- master secret -----------------------------------------------------------------------

    def enter_master(self) -> bytes:
        """Master Secret = HKDF-Extract(Derive-Secret(Handshake Secret, "derived", ""), 0)
        (RFC 8446 §7.1). Returns it."""
        self._enter(Stage.MASTER)
        salt = self._derive_keyed(self._hs(), b"derived", self.hash.empty_digest())
        self._handshake_mac = None
        self.master_secret = hkdf_extract(self.hash, salt, None)
        self._master_mac = KeyedHmac(self.hash, self.master_secret)
        self.stage = Stage.MASTER
        return self.master_secret

    def _ms(self) -> KeyedHmac:
        mac = self._master_mac
        if mac is None:
            if self.master_secret is None:
                raise StateError("key schedule has not entered the master stage")
            mac = KeyedHmac(self.hash, self.master_secret)
        return mac

    def client_application_traffic_secret(self, transcript_hash: bytes) -> bytes:
        """``c ap traffic`` (generation 0) over ClientHello..server Finished (RFC 8446 §7.1)."""
        return self._derive_keyed(self._ms(), b"c ap traffic", transcript_hash)

    def server_application_traffic_secret(self, transcript_hash: bytes) -> bytes:
        """``s ap traffic`` (generation 0) over ClientHello..server Finished (RFC 8446 §7.1)."""
        return self._derive_keyed(self._ms(), b"s ap traffic", transcript_hash)

    def exporter_master_secret(self, transcript_hash: bytes) -> bytes:
        """``exp master`` over ClientHello..server Finished (RFC 8446 §7.1)."""
        return self._derive_keyed(self._ms(), b"exp master", transcript_hash)

    def resumption_master_secret(self, transcript_hash: bytes) -> bytes:
        """``res master`` over ClientHello..client Finished (RFC 8446 §7.1): the last
        secret a handshake derives from the master secret, whose keyed form goes with it."""
        secret = self._derive_keyed(self._ms(), b"res master", transcript_hash)
        self._master_mac = None
        return secret

    # -- stage-independent derivations -------------------------------------------------------

    def finished_key(self, base_key: bytes) -> bytes:
        """finished_key = HKDF-Expand-Label(BaseKey, "finished", "", Hash.length)
        (RFC 8446 §4.4.4); also the PSK binder key's MAC key."""
        info = self._finished_info
        if info is None:
            return self.expand_label(base_key, b"finished", b"", self.hash.digest_size)
        kept = self._handshake_traffic
        if kept is not None and base_key in kept:
            return self._traffic_mac(base_key).digest(info)
        return hmac_digest(self.hash, base_key, info)  # one block: Hash.length bytes

    def finished_verify_data(self, base_key: bytes, transcript_hash: bytes) -> bytes:
        """verify_data = HMAC(finished_key, Transcript-Hash(...)) (RFC 8446 §4.4.4); with the
        binder key and the truncated-ClientHello hash it is the PSK binder (§4.2.11.2)."""
        return hmac_digest(self.hash, self.finished_key(base_key), transcript_hash)

    def traffic_keys(self, secret: bytes) -> tuple[bytes, bytes]:
        """(write_key, write_iv) from a traffic secret (RFC 8446 §7.3; iv_length is 12)."""
        mac = self._traffic_mac(secret)
        infos = self._record_infos
        if infos is None:
            key = self._expand_keyed(mac, b"key", b"", self.key_length)
            return key, self._expand_keyed(mac, b"iv", b"", 12)
        return mac.digest(infos[0])[: self.key_length], mac.digest(infos[1])[:12]

    def record_keys(self, secret: bytes) -> tuple[bytes, bytes, bytes]:
        """(write_key, write_iv, sn_key) from a DTLS 1.3 traffic secret: `traffic_keys`, and
        sn_key = HKDF-Expand-Label(Secret, "sn", "", key_length) (RFC 9147 §4.2.3), the
        secret keyed once for the three."""
        mac = self._traffic_mac(secret)
        infos = self._record_infos
        n = self.key_length
        if infos is None:
            key = self._expand_keyed(mac, b"key", b"", n)
            iv = self._expand_keyed(mac, b"iv", b"", 12)
            return key, iv, self._expand_keyed(mac, b"sn", b"", n)
        # The three HMAC inputs prepared once per suite and prefix (`_Prepared`).
        return mac.digest(infos[0])[:n], mac.digest(infos[1])[:12], mac.digest(infos[2])[:n]

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
