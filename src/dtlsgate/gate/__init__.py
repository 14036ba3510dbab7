"""The stateless gates: the datagram gate (DTLS HelloVerifyRequest, OpenSSL's
``DTLSv1_listen``) in ``datagram``, the stream gate (TLS 1.3 HelloRetryRequest with a cookie,
OpenSSL's ``SSL_stateless``) in ``stream``, and the cookie jar both use in ``cookie``.

The datagram gate's public names are importable from here: ``Gate``, ``Reply``, ``Admit``,
``Drop``, ``DropReason``, ``GateResult``.
"""

from dtlsgate.gate.datagram import Admit, Drop, DropReason, Gate, GateResult, Reply

__all__ = ["Admit", "Drop", "DropReason", "Gate", "GateResult", "Reply"]
