"""One error hierarchy for dtlsgate.

Two families, kept apart (STYLE.md practice 6):

- ``ProtocolError`` and its subclasses: the *peer* misbehaved. Each subclass *is* the alert
  that a connection sends before it enters its terminal state: the one idiom that chooses
  an alert is naming its class (``raise IllegalParameter(...)``, or the class passed to
  a check helper), so a grep for the class finds every place that sends that alert.
  Decode failures are ``DecodeError`` and map to ``decode_error`` here, in one place.
- ``UsageError`` (a ``ValueError``) and ``StateError``: the *local program* misused the API.
  They never produce an alert; they are bugs to fix in the calling code.

``AlertReceived`` is raised when the peer sent a fatal alert.
"""

from __future__ import annotations

from dtlsgate.wire.enums import AlertDescription


class DtlsgateError(Exception):
    """Base of every exception dtlsgate raises on purpose."""


class ProtocolError(DtlsgateError):
    """The peer broke the protocol; ``alert`` is what we send before closing."""

    alert: AlertDescription = AlertDescription.internal_error

    def __init__(self, message: str) -> None:
        # The message only: the class is the alert (module docstring).
        super().__init__(message)


class DecodeError(ProtocolError):
    """Bytes from the peer do not parse: truncated, trailing data, bad length, bad value."""

    alert = AlertDescription.decode_error


class IllegalParameter(ProtocolError):
    """A field parsed but holds a value the protocol forbids here."""

    alert = AlertDescription.illegal_parameter


class UnexpectedMessage(ProtocolError):
    """A message arrived in a state where it is not legal."""

    alert = AlertDescription.unexpected_message


class HandshakeFailure(ProtocolError):
    """No acceptable set of parameters could be negotiated."""

    alert = AlertDescription.handshake_failure


class ProtocolVersionError(ProtocolError):
    """The peer offers only versions we refuse."""

    alert = AlertDescription.protocol_version


class DecryptError(ProtocolError):
    """A handshake cryptographic check failed (Finished, CertificateVerify, PSK binder)."""

    alert = AlertDescription.decrypt_error


class BadCertificate(ProtocolError):
    """The peer's certificate chain or host name did not verify."""

    alert = AlertDescription.bad_certificate


class MissingExtension(ProtocolError):
    """A message lacks an extension the protocol requires here (RFC 8446 §9.2)."""

    alert = AlertDescription.missing_extension


class UnsupportedExtension(ProtocolError):
    """An extension the peer may not send here: unsolicited, or in the wrong message."""

    alert = AlertDescription.unsupported_extension


class UnsupportedCertificate(BadCertificate):
    """A certificate of a type or with a key we cannot use, or no certificate type in
    common (RFC 7250 §4.2)."""

    alert = AlertDescription.unsupported_certificate


class UnknownCa(BadCertificate):
    """The peer's chain does not lead to a trust anchor we have."""

    alert = AlertDescription.unknown_ca


class CertificateExpired(BadCertificate):
    """A certificate of the peer's chain has expired."""

    alert = AlertDescription.certificate_expired


class CertificateRequired(ProtocolError):
    """A client certificate is required and none was sent (RFC 8446 §4.4.2.4)."""

    alert = AlertDescription.certificate_required


class NoApplicationProtocol(ProtocolError):
    """No ALPN protocol in common (RFC 7301 §3.2)."""

    alert = AlertDescription.no_application_protocol


class UnknownPskIdentity(ProtocolError):
    """The client named a PSK identity the server does not have (RFC 4279 §2)."""

    alert = AlertDescription.unknown_psk_identity


class RecordOverflow(ProtocolError):
    """A record longer than the protocol or the negotiated record_size_limit allows."""

    alert = AlertDescription.record_overflow


class BadRecordMac(ProtocolError):
    """A protected record that does not authenticate (TLS; DTLS drops it instead)."""

    alert = AlertDescription.bad_record_mac


class TooManyCidsRequested(ProtocolError):
    """RFC 9147 §9: the peer sent an excessive number of RequestConnectionId messages."""

    alert = AlertDescription.too_many_cids_requested


class InternalError(ProtocolError):
    """Something on our side failed that the peer's input did not cause in a way it can
    fix (RFC 8446 §6.2)."""

    alert = AlertDescription.internal_error


class AlertReceived(DtlsgateError):
    """The peer sent a fatal alert (or close_notify, which ends the connection cleanly)."""

    def __init__(self, description: int, level: int = 2) -> None:
        try:
            name = AlertDescription(description).name
        except ValueError:
            name = f"alert {description}"
        super().__init__(f"peer sent {name}")
        self.description = description
        self.level = level


class UsageError(DtlsgateError, ValueError):
    """The calling program misused the API (bad argument, bad configuration)."""


class StateError(DtlsgateError, RuntimeError):
    """The API was called in a state where the call makes no sense (e.g. send before
    the handshake, or after close)."""
