"""DTLS 1.3 record number encryption masks (RFC 9147 §4.2.3).

The cipher underneath a record's AEAD, keyed with the epoch's ``sn_key``, turns the first 16
bytes of the record's ciphertext (the sample) into a mask whose leading bytes are XORed with
the sequence number in the unified header:

- AES-based AEADs (AES-GCM, AES-CCM, AES-CCM-8): ``Mask = AES-ECB(sn_key, Ciphertext[0..15])``;
- ChaCha20-Poly1305: ``Mask = ChaCha20(sn_key, Ciphertext[0..3], Ciphertext[4..15])``: the
  ChaCha20 block function (RFC 8439 §2.3) with the first 4 sample bytes as the block counter
  and the next 12 as the nonce. ``cryptography``'s ChaCha20 takes exactly that 16-byte
  counter || nonce value (the counter read little-endian, as RFC 8439 §2.3 serialises it).

The same construction is QUIC's header protection (RFC 9001 §5.4.3, §5.4.4).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from dtlsgate.crypto.aead import AeadAlgorithm
from dtlsgate.errors import UsageError

__all__ = ["SAMPLE_LENGTH", "RecordNumberCipher"]

#: RFC 9147 §4.2.3: the mask is computed from the first 16 bytes of the ciphertext, so a
#: protected record's ciphertext is at least this long.
SAMPLE_LENGTH = 16
_ZEROS = bytes(SAMPLE_LENGTH)
# ECB has no parameters and keeps no state: one mode object serves every epoch's cipher.
_ECB = modes.ECB()

# Each AEAD's block cipher class of its mask (None: ChaCha20), by its key length (the
# sn_key is as long as the AEAD's key), worked out once and looked up once per epoch.
# ``AES128`` and ``AES256`` are ``cryptography``'s AES with the key size a class
# attribute: ``AES``'s is a property, read twice (by the ECB mode's check and by the cipher
# lookup) each time a cipher is made, and a DTLS 1.3 handshake makes four (about 3,900
# instructions each, of some 37,000).
_AesClass = type[algorithms.AES128] | type[algorithms.AES256]
_AES_BY_KEY_LENGTH: dict[int, _AesClass] = {16: algorithms.AES128, 32: algorithms.AES256}
_MASK_CIPHERS: dict[AeadAlgorithm, _AesClass | None] = {
    algorithm: None
    if algorithm is AeadAlgorithm.CHACHA20_POLY1305
    else _AES_BY_KEY_LENGTH[algorithm.key_length]
    for algorithm in AeadAlgorithm
}


class RecordNumberCipher:
    """The mask generator of one direction and epoch: ``mask(sample)`` returns 16 bytes, of
    which a record uses the first one or two (8- or 16-bit sequence numbers)."""

    __slots__ = ("_chacha_key", "_ecb", "algorithm")

    def __init__(self, algorithm: AeadAlgorithm, sn_key: bytes) -> None:
        if len(sn_key) != algorithm.key_length:
            raise UsageError(
                f"{algorithm.value} needs a {algorithm.key_length}-byte sn_key, got {len(sn_key)}"
            )
        self.algorithm = algorithm
        block_cipher = _MASK_CIPHERS[algorithm]
        if block_cipher is None:
            self._chacha_key: bytes | None = sn_key
            self._ecb = None
        else:
            # ECB has no state between blocks: one encryptor serves every record.
            self._chacha_key = None
            self._ecb = Cipher(block_cipher(sn_key), _ECB).encryptor()

    def mask(self, sample: bytes) -> bytes:
        """The 16-byte mask for the 16-byte ``sample`` (the ciphertext's first bytes)."""
        if len(sample) != SAMPLE_LENGTH:
            raise UsageError(f"record number sample must be {SAMPLE_LENGTH} bytes")
        if self._ecb is not None:
            return self._ecb.update(sample)
        assert self._chacha_key is not None
        stream = Cipher(algorithms.ChaCha20(self._chacha_key, sample), mode=None).encryptor()
        return stream.update(_ZEROS)

    def __repr__(self) -> str:
        return f"RecordNumberCipher({self.algorithm.value})"
