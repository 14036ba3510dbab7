"""The command line's lists of names (``--ciphersuites``, ``--groups``, ``--sigalgs``,
``--use-srtp``),
checked when parsed: an unknown name is one line that lists the valid ones. Names are
written as openssl writes them (``TLS_AES_128_GCM_SHA256:TLS_AES_128_CCM_SHA256``,
``X25519MLKEM768:x25519``, ``ecdsa_secp256r1_sha256``), separated by ``:`` or ``,``, in
any case; openssl's other spellings of the NIST curves (``P-256``, ``prime256v1``) too."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from enum import IntEnum

from dtlsgate.crypto.kex import SUPPORTED_GROUPS
from dtlsgate.handshake.dtls12.negotiate import DEFAULT_SIGNATURE_SCHEMES as DTLS12_SCHEMES
from dtlsgate.handshake.tls13.common import SUPPORTED_SIGNATURE_SCHEMES
from dtlsgate.wire.enums import CipherSuite, NamedGroup, SignatureScheme, SrtpProtectionProfile

#: Every TLS 1.3 (and DTLS 1.3) suite we implement; the CCM ones are not offered by default.
TLS13_SUITES: tuple[CipherSuite, ...] = (
    CipherSuite.TLS_AES_128_GCM_SHA256,
    CipherSuite.TLS_AES_256_GCM_SHA384,
    CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
    CipherSuite.TLS_AES_128_CCM_SHA256,
    CipherSuite.TLS_AES_128_CCM_8_SHA256,
)
#: The schemes either engine signs or verifies (DTLS 1.2 adds RSA PKCS #1 v1.5).
SIGNATURE_SCHEMES: tuple[SignatureScheme, ...] = (
    *SUPPORTED_SIGNATURE_SCHEMES,
    *(s for s in DTLS12_SCHEMES if s not in SUPPORTED_SIGNATURE_SCHEMES),
)
# openssl's other names for the NIST curves (`openssl s_client -groups P-256`).
GROUP_ALIASES = {
    "p-256": NamedGroup.secp256r1,
    "prime256v1": NamedGroup.secp256r1,
    "p-384": NamedGroup.secp384r1,
    "p-521": NamedGroup.secp521r1,
}
# openssl's names of the SRTP profiles (`openssl s_client -use_srtp SRTP_AES128_CM_SHA1_80`);
# the registry's (and GnuTLS's) are the members' own.
SRTP_ALIASES = {
    "srtp_aes128_cm_sha1_80": SrtpProtectionProfile.SRTP_AES128_CM_HMAC_SHA1_80,
    "srtp_aes128_cm_sha1_32": SrtpProtectionProfile.SRTP_AES128_CM_HMAC_SHA1_32,
    "srtp_null_sha1_80": SrtpProtectionProfile.SRTP_NULL_HMAC_SHA1_80,
    "srtp_null_sha1_32": SrtpProtectionProfile.SRTP_NULL_HMAC_SHA1_32,
}


def name_list(
    what: str, members: Sequence[IntEnum], aliases: dict[str, IntEnum] | None = None
) -> Callable[[str], tuple[int, ...]]:
    """An argparse type: a ``:``- or ``,``-separated list of ``members``' names, in order,
    each once; anything else is an ArgumentTypeError that lists the valid names."""
    by_name: dict[str, IntEnum] = {m.name.lower(): m for m in members}
    by_name.update(aliases or {})

    def parse(text: str) -> tuple[int, ...]:
        names = [n.strip() for n in text.replace(",", ":").split(":")]
        out: list[int] = []
        for name in names:
            member = by_name.get(name.lower())
            if member is None:
                valid = ", ".join(m.name for m in members)
                shown = repr(name) if name else "an empty name"
                raise argparse.ArgumentTypeError(f"unknown {what} {shown}; valid: {valid}")
            if member not in out:
                out.append(member)
        return tuple(out)

    parse.__name__ = what  # argparse names the type in its own messages
    return parse


ciphersuites = name_list("cipher suite", TLS13_SUITES)
groups = name_list("group", SUPPORTED_GROUPS, dict(GROUP_ALIASES))
sigalgs = name_list("signature scheme", SIGNATURE_SCHEMES)
srtp_profiles = name_list("SRTP profile", tuple(SrtpProtectionProfile), dict(SRTP_ALIASES))
