"""One error hierarchy for dtlsgate.

Two families, kept apart (STYLE.md practice 6):

- ``ProtocolError`` and its subclasses: the *peer* misbehaved. Each carries the alert that
  a connection sends before it enters its terminal state. Decode failures are
  ``DecodeError`` and map to ``decode_error`` here, in one place.
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

    def __init__(self, message: str, alert: AlertDescription | None = None) -> None:
        super().__init__(message)
        if alert is not None:
            self.alert = alert


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
