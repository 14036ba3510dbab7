"""What a stateless gate answers: one result family for the datagram gate
(`dtlsgate.gate.datagram`, DTLS HelloVerifyRequest) and the stream gate
(`dtlsgate.gate.stream`, TLS 1.3 HelloRetryRequest), and the counters both keep.

Each call of a gate's ``receive(data, peer, now)`` returns exactly one of

- `Reply`: bytes to send back to the peer (a HelloVerifyRequest, or a HelloRetryRequest and
  its compatibility ChangeCipherSpec); nothing is kept;
- `Admit` (datagram gate) or `StreamAdmit` (stream gate): a ClientHello whose cookie
  verified, with what a server connection needs to go on without verifying it again;
- `Drop`: nothing to send and nothing kept, for a `DropReason`. On a datagram the datagram
  is ignored; on a stream the ClientHello has not all arrived (the caller calls again with
  more bytes, like ``SSL_stateless`` failing when its read BIO runs dry);
- `Refuse`: a fatal alert to send before closing (only a stream gate refuses: on datagrams
  garbage is dropped silently, RFC 6347 §4.1.2.7).

The admits are separate classes, not one class and a subclass: each feeds exactly one
kind of connection (`DtlsServerConnection(admit)`, `ServerConnection.from_admit(admit)`)
and carries fields the other has no value for (a DTLS record sequence number and
message_seq; a TLS 1.3 cookie's chosen suite, group and Hash(ClientHello1)). A subclass
would type-check where the other connection expects its own admit.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Hashable
from enum import StrEnum
from typing import TYPE_CHECKING

from dtlsgate._frozen import frozen
from dtlsgate.wire.enums import AlertDescription
from dtlsgate.wire.handshake import DTLS_HANDSHAKE_HEADER_LENGTH
from dtlsgate.wire.messages import RANDOM_LENGTH, ClientHello

# In a ClientHello with its DTLS handshake header: the session_id's length byte, after
# client_version and random (RFC 6347 §4.2.1).
_SESSION_ID_AT = DTLS_HANDSHAKE_HEADER_LENGTH + 2 + RANDOM_LENGTH

if TYPE_CHECKING:  # the TLS 1.3 engine is not loaded by a DTLS 1.2-only gate
    from dtlsgate.handshake.tls13.common import ClientHelloInfo


class DropReason(StrEnum):
    """Why a gate sent nothing. The values are stable: tests and logs use them."""

    RECORD_MALFORMED = "malformed record header"
    NOT_HANDSHAKE = "not a handshake record"
    NOT_DTLS = "record version is not DTLS"
    NONZERO_EPOCH = "record epoch is not 0"
    HANDSHAKE_MALFORMED = "malformed handshake header"
    NOT_CLIENT_HELLO = "handshake message is not a ClientHello"
    MESSAGE_SEQ = "ClientHello message_seq is greater than 2"
    RECORD_TRAILING_DATA = "bytes after the ClientHello fragment in its record"
    NOT_FIRST_FRAGMENT = "ClientHello fragment is not the first"
    FRAGMENT_TOO_SHORT = "first ClientHello fragment ends before the end of the cookie"
    CLIENT_HELLO_MALFORMED = "malformed ClientHello"
    CLIENT_VERSION = "ClientHello version is not DTLS"
    REPLY_TOO_LARGE = "HelloVerifyRequest would be larger than the ClientHello"
    CLIENT_HELLO_INCOMPLETE = "the whole ClientHello has not arrived yet"
    COOKIE_INVALID = "DTLS 1.3 cookie does not verify"
    CLIENT_HELLO_REFUSED = "DTLS 1.3 ClientHello offers nothing we can negotiate"
    VERSION_DISABLED = "ClientHello offers no DTLS version the config accepts"
    CLIENT_HELLO_TOO_LONG = "fragmented ClientHello longer than the gate reassembles"


@frozen
class Reply:
    """Send ``data`` back to the peer; keep nothing."""

    data: bytes


@frozen
class Drop:
    """Send nothing (see the module docstring for what it means on a stream)."""

    reason: DropReason


@frozen
class Refuse:
    """Send ``data`` (the fatal ``alert``, one record) and close the connection. The alert
    is the reason, in the protocol's words; ``detail`` says more, for logs only."""

    data: bytes
    alert: AlertDescription
    detail: str


@frozen
class Admit:
    """A DTLS ClientHello whose cookie verified: everything a server connection needs.

    - ``client_hello``: the decoded message, or None when only its first fragment was in
      the datagram (the connection reassembles the rest from later datagrams);
    - ``client_hello_message``: the ClientHello as it enters the handshake transcript
      (12-byte DTLS header with fragment_offset 0 and fragment_length = length, then the
      body exactly as received; RFC 6347 §4.2.6). For a fragment: the fragment as received.
    - ``message_seq``: the ClientHello's; the ServerHello continues from it (§4.2.2).
    - ``record_sequence_number``: the ClientHello record's; the ServerHello record reuses it
      (§4.2.1, "to avoid sequence number duplication").
    - ``datagram``: the whole datagram, for records that followed the ClientHello.

    ``client_version`` and ``cookie`` (the ClientHello's) are read from
    ``client_hello_message`` when asked for, not stored: no server connection reads them,
    and a stored field was a slot store on every admit.
    """

    peer: Hashable | None
    client_hello: ClientHello | None
    client_hello_message: bytes
    message_seq: int
    record_sequence_number: int
    datagram: bytes

    @property
    def fragmented(self) -> bool:
        return self.client_hello is None

    @property
    def client_version(self) -> int:
        """The ClientHello's client_version: the two bytes after the handshake header, in a
        first fragment as well (the gate admits one only when it reaches past the cookie)."""
        message = self.client_hello_message
        return (message[DTLS_HANDSHAKE_HEADER_LENGTH] << 8) | message[
            DTLS_HANDSHAKE_HEADER_LENGTH + 1
        ]

    @property
    def cookie(self) -> bytes:
        """The ClientHello's cookie (the one that verified), after its session_id (RFC 6347
        §4.2.1); in a first fragment as well, which the gate admits only whole to the end
        of the cookie."""
        message = self.client_hello_message
        at = _SESSION_ID_AT + 1 + message[_SESSION_ID_AT]  # the cookie's length byte
        return message[at + 1 : at + 1 + message[at]]

    @property
    def client_random(self) -> bytes:
        """The ClientHello's random (RFC 5246 §7.4.1.2), also when only its first fragment
        arrived: the gate admits a fragment only when it reaches past the cookie."""
        start = DTLS_HANDSHAKE_HEADER_LENGTH + 2  # after the header and client_version
        return self.client_hello_message[start : start + RANDOM_LENGTH]

    def __repr__(self) -> str:
        # The dataclass's repr with client_version and cookie where they stood when they
        # were fields, so that logs and bench/gate_results.py read as before.
        fields = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)]
        fields[3:3] = [f"client_version={self.client_version!r}", f"cookie={self.cookie!r}"]
        return f"{type(self).__qualname__}({', '.join(fields)})"


@frozen
class StreamAdmit:
    """A TLS 1.3 ClientHello2 whose cookie verified (`dtlsgate.gate.stream`).

    - ``client_hello``, ``client_hello_info``: ClientHello2 as the gate decoded it (the
      server goes on from them without decoding it again);
    - ``client_hello_message``: ClientHello2 as received (handshake header included);
    - ``client_hello1_digest``: Hash(ClientHello1) from the cookie;
    - ``cipher_suite`` / ``group``: what the server chose for ClientHello1;
    - ``key_share_requested``: whether the HelloRetryRequest named the group;
    - ``cookie``: the cookie as ClientHello2 returned it (the HRR is rebuilt with it);
    - ``application_cookie``: the part from ``stateless_cookie_generate``;
    - ``remaining``: bytes received after ClientHello2.
    """

    peer: Hashable | None
    client_hello: ClientHello
    client_hello_info: ClientHelloInfo
    client_hello_message: bytes
    client_hello1_digest: bytes
    cipher_suite: int
    group: int
    key_share_requested: bool
    cookie: bytes
    application_cookie: bytes
    remaining: bytes


@frozen
class Dtls13Admit:
    """A DTLS 1.3 ClientHello2 whose cookie verified (`dtlsgate.gate.dtls13`): the fields
    of `StreamAdmit` that rebuild the transcript (``client_hello_message`` is ClientHello2
    in the TLS form the transcript hashes, RFC 9147 §5.2; ClientHello2 as the gate decoded
    it), and the DTLS ones of `Admit` (``message_seq``, ``record_sequence_number``, the
    ``datagram`` for the records after the ClientHello's)."""

    peer: Hashable | None
    client_hello: ClientHello
    client_hello_info: ClientHelloInfo
    client_hello_message: bytes
    client_hello1_digest: bytes
    cipher_suite: int
    group: int
    key_share_requested: bool
    cookie: bytes
    message_seq: int
    record_sequence_number: int
    datagram: bytes

    @property
    def client_random(self) -> bytes:
        return self.client_hello.random


GateResult = Reply | Admit | Dtls13Admit | Drop
StreamGateResult = Reply | StreamAdmit | Drop | Refuse


class GateCounters:
    """The outcome counters of a gate, bounded by the number of kinds: ``replies``,
    ``admits``, ``drops`` per `DropReason` and ``refusals`` per alert."""

    def __init__(self) -> None:
        self.replies = 0
        self.admits = 0
        self.drops: Counter[DropReason] = Counter()
        self.refusals: Counter[AlertDescription] = Counter()

    @property
    def stats(self) -> Counter[str]:
        """Every outcome so far: ``"reply"``, ``"admit"``, one count per `DropReason` (its
        value) and one per refused alert (``"refuse <alert name>"``)."""
        counts: Counter[str] = Counter({"reply": self.replies, "admit": self.admits})
        counts.update({str(reason): n for reason, n in self.drops.items()})
        counts.update({f"refuse {alert.name}": n for alert, n in self.refusals.items()})
        return counts

    def _drop(self, reason: DropReason) -> Drop:
        self.drops[reason] += 1
        return Drop(reason)

    def _count(self, result: StreamGateResult) -> StreamGateResult:
        if isinstance(result, Reply):
            self.replies += 1
        elif isinstance(result, Drop):
            self.drops[result.reason] += 1
        elif isinstance(result, Refuse):
            self.refusals[result.alert] += 1
        else:
            self.admits += 1
        return result
