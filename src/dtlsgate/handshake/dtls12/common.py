"""What the DTLS 1.2 server and client machines share: the transcript (with the message_seq
of our next message), the session agreed in the hellos, the two states both sides pass
through (``WaitFinished``, which a client's state extends with its ticket, and
``Established``), the one ``step`` that feeds a message to a machine, and the key derivation
and Finished helpers.

Each state is a frozen class holding only what is valid in it; its ``transcript`` is the one
mutable object a handshake carries from state to state (as TLS 1.3's ``Keys`` carries its
``TranscriptHash``), appended to as messages are received and sent.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeAlias, TypeVar, cast

from dtlsgate._frozen import frozen
from dtlsgate.crypto.exporters import Tls12Exporter, tls12_exporter
from dtlsgate.crypto.hashes import Hash, constant_time_equal
from dtlsgate.crypto.prf import verify_data
from dtlsgate.crypto.provider import CryptoProvider
from dtlsgate.crypto.suites import SuiteInfo
from dtlsgate.errors import DecryptError, StateError, UsageError
from dtlsgate.events import HandshakeCompleted
from dtlsgate.handshake.dtls12.negotiate import Keys, derive_keys, kind_of
from dtlsgate.handshake.engine import (
    Complete,
    EndFlight,
    Epochs,
    ExpectMessageSeq,
    InstallCipherState,
    KeyLog,
    Machine,
    SendChangeCipherSpec,
    SendWarning,
    from_epoch,
    handler_for,
    only,
)
from dtlsgate.wire.enums import HandshakeType, ProtocolVersion
from dtlsgate.wire.handshake import encode_dtls_handshake
from dtlsgate.wire.messages12 import KeyExchangeKind, finished_verify_data

if TYPE_CHECKING:
    from hashlib import _Hash as _HashState

S = TypeVar("S")
C = TypeVar("C")


# Written as strings: only type checkers read these, and a mypyc build cannot subscript the
# generic Complete at run time. A message to send is its bytes, whole and numbered
# (``Transcript.send``): the connection queues them as they are, so no object wraps them.
Action: TypeAlias = (
    "bytes | SendChangeCipherSpec | InstallCipherState | EndFlight | ExpectMessageSeq"
    " | SendWarning | KeyLog | Complete[HandshakeCompleted]"
)
Actions: TypeAlias = "list[Action]"


class Transcript:
    """The handshake messages as received and sent, in order (RFC 5246 §7.4.9), and the
    message_seq our next message carries (RFC 6347 §4.2.2).

    Until the suite's hash is known the messages are kept as bytes (a server that never
    asks for a client certificate keeps none: ``keep_messages=False``, its one message
    before the hash, the ClientHello, held apart as the newest). Once a side calls
    ``hash_with`` (a server, as soon as it has chosen the suite), they are fed to a running
    hash instead and dropped, unless ``keep_messages`` (a CertificateVerify will sign them,
    RFC 5246 §7.4.8): a server waiting for the client's second flight then holds one hash
    state instead of the first flight a second time. The newest message stays apart from
    the running hash (``digest(exclude_last=True)`` is the hash without it, which both
    Finished checks ask for) until a digest of everything asks for it or another message
    follows: each byte is hashed once, and a digest never copies the hash state. So after
    a digest of everything, one without the newest message needs another message first."""

    __slots__ = ("_data", "_hash", "_hashed", "_last", "_newest", "_running", "send_seq")

    def __init__(self, send_seq: int = 0, keep_messages: bool = True) -> None:
        # The messages, while kept; ``_last``: where the newest one starts. Without
        # ``keep_messages`` none are, from the start: a server that never asks for a client
        # certificate has only the ClientHello before ``hash_with`` (in ``_newest``), and
        # copying it here would be for ``hash_with`` to drop.
        self._data: bytearray | None = bytearray() if keep_messages else None
        self._last = 0
        # Before hash_with: (hash, n, state), ``state`` having hashed the first n bytes of
        # _data with ``hash`` (the digests asked for so far).
        self._hashed: tuple[Hash, int, _HashState] | None = None
        # The newest message; after hash_with, the hash and the running state of every
        # message before the newest (``_newest`` empty: of the newest too, a digest of
        # everything took it in; a handshake message is never empty).
        self._newest = b""
        self._hash: Hash | None = None
        self._running: _HashState | None = None
        self.send_seq = send_seq

    def hash_with(self, hash: Hash, *, keep_messages: bool) -> None:
        """From now on, hash the messages with ``hash`` as they come; keep their bytes only
        when ``keep_messages`` (``data`` then still works)."""
        if self._hash is not None:
            raise StateError("the transcript's hash is chosen already")
        data, last = self._data, self._last
        if data is None and keep_messages:
            raise StateError("the transcript's messages were not kept from the start")
        self._hash = hash
        self._running = running = hash.new()
        if data is not None and last:  # a server has only the ClientHello, the newest, so far
            running.update(data[:last])
        self._hashed = None
        if not keep_messages:
            self._data = None

    def add(self, message: bytes) -> None:
        running = self._running
        if running is not None:
            if self._newest:
                running.update(self._newest)
        elif self._newest and self._data is None:
            # Before its hash is chosen, a transcript that keeps no messages holds one
            # (the ClientHello, as the newest): a second would push it out unhashed.
            raise StateError("a second message before the transcript's hash is chosen")
        self._newest = message  # from the first message: hash_with takes it as it is
        data = self._data
        if data is not None:
            self._last = len(data)
            data += message

    def send(self, msg_type: int, body: bytes) -> bytes:
        """Our next message: numbered, added to the transcript, and returned whole (as one
        fragment: the form the transcript hashes, RFC 6347 §4.2.6), the action sending it."""
        message = encode_dtls_handshake(msg_type, body, self.send_seq)
        self.send_seq += 1
        self.add(message)
        return message

    def send_encoded(self, message: bytes) -> bytes:
        """Like ``send``, for a message already encoded whole (prepared once per
        configuration): its header must carry our next message_seq."""
        if int.from_bytes(message[4:6], "big") != self.send_seq:
            raise UsageError("the message's message_seq is not the transcript's next")
        self.send_seq += 1
        self.add(message)
        return message

    def data(self, *, exclude_last: bool = False) -> bytes:
        data = self._data
        if data is None:
            raise StateError("the transcript's messages were not kept (hash_with)")
        return bytes(data[: self._last] if exclude_last else data)

    def digest(self, hash: Hash, *, exclude_last: bool = False) -> bytes:
        running = self._running
        if running is not None:
            if hash is not self._hash:
                raise StateError(f"the transcript is hashed with {self._hash}, not {hash}")
            newest = self._newest
            if exclude_last:
                if not newest:
                    raise StateError("the newest message is hashed already (a full digest)")
                return running.digest()
            if newest:
                # Into the running hash now rather than at the next message: no copy.
                running.update(newest)
                self._newest = b""
            return running.digest()
        data = self._data
        if data is None:  # not kept from the start; dropped only once the running hash exists
            raise StateError("a transcript that keeps no messages has no digest before its hash")
        end = self._last if exclude_last else len(data)
        hashed = self._hashed
        if hashed is not None and hashed[0] is hash and hashed[1] <= end:
            state, start = hashed[2], hashed[1]
        else:
            state, start = hash.new(), 0
        if start < end:
            state.update(data[start:end])
            self._hashed = (hash, end, state)
        return state.digest()


class Session(NamedTuple):
    """What both sides agreed in the hellos; carried from state to state. Immutable, and a
    named tuple rather than a ``@frozen`` class: made once per handshake with ten fields,
    which a frozen class stores one slot-descriptor call at a time (about 700 instructions
    each), a tuple in one C call."""

    suite: SuiteInfo
    client_random: bytes
    server_random: bytes
    extended_master_secret: bool
    alpn: bytes | None = None
    server_name: str | None = None
    # RFC 5246 §7.4.1.3: the ServerHello's session_id (empty: not resumable by ID);
    # RFC 5077 §3.2: whether the server sends a NewSessionTicket in this handshake.
    session_id: bytes = b""
    new_ticket: bool = False
    # RFC 7250: whether each side's Certificate carries a raw public key, not X.509.
    server_raw_public_key: bool = False
    client_raw_public_key: bool = False
    # RFC 5764 §4.1.1: the SRTP protection profile use_srtp agreed on, if any.
    srtp_profile: int | None = None

    @property
    def kind(self) -> KeyExchangeKind:
        return kind_of(self.suite)


# The ten fields in order -> Session, in C, for the full handshakes (which give all ten): a
# named tuple's own ``__new__`` is a Python function taking them one by one (as
# wire/record.py's DtlsRecord, `Keys`).
as_session = cast(
    Callable[
        [
            tuple[
                SuiteInfo,
                bytes,
                bytes,
                bool,
                bytes | None,
                str | None,
                bytes,
                bool,
                bool,
                bool,
                int | None,
            ]
        ],
        Session,
    ],
    partial(tuple.__new__, Session),
)


@frozen
class WaitFinished:
    """Our keys are derived; the peer's Finished (epoch 1) comes next. The server's state,
    and what a client's (`ClientWaitFinished`, which adds the ticket it may hold) has in
    common with it: what `complete` reports from."""

    transcript: Transcript
    session: Session
    keys: Keys
    peer_chain: tuple[bytes, ...] = ()
    psk_identity: bytes | None = None


@frozen
class Established:
    """The handshake is complete; only renegotiation attempts arrive, and are declined.
    Nothing is kept here (what was negotiated is in the connection's HandshakeCompleted):
    every connection shares the one `ESTABLISHED`, and an established association does
    not hold its handshake's session for its lifetime."""


ESTABLISHED = Established()


class ReceivedMessage(Protocol):
    """A whole handshake message as the connection delivers it, in message_seq order (RFC
    6347 §4.2.2): ``epoch`` is the record epoch that carried it, ``transcript_bytes`` the
    message as the transcript hashes it (RFC 6347 §4.2.6: as if sent in one fragment)."""

    @property
    def msg_type(self) -> int: ...

    @property
    def body(self) -> bytes: ...

    @property
    def epoch(self) -> int: ...

    @property
    def transcript_bytes(self) -> bytes: ...


# RFC 5246 §7.4.9 / RFC 6347 §4.1: Finished is the first message of the new epoch;
# everything before it travels in epoch 0. After the handshake the connection itself drops
# plaintext handshake records (forgeable by anyone on the path, RFC 6347 §4.1); a plaintext
# renegotiation attempt buffered before the handshake completed reaches Established and is
# declined with the no_renegotiation warning like any other, not torn down with a fatal
# alert: any epoch there.
EPOCHS: dict[int, Epochs] = {HandshakeType.FINISHED: only(1)}
HANDSHAKE_EPOCHS = only(0)
ESTABLISHED_EPOCHS = from_epoch(0)


def step(
    machine: Machine[Callable[[C, S, ReceivedMessage, float], tuple[S, Actions]]],
    ctx: C,
    state: S,
    message: ReceivedMessage,
    now: float,
) -> tuple[S, Actions]:
    """Feed one reassembled message (RFC 6347 §4.2.2: in message_seq order) to ``machine``:
    the engine's dispatch and epoch rule, then the received bytes into the transcript
    (before the handler runs: ``Transcript.digest(exclude_last=True)`` is the hash without
    them), then the handler."""
    handler = handler_for(machine, state, message.msg_type, message.epoch)
    if type(state) not in machine.after_handshake:
        # Every state before the end of the handshake carries the transcript (read without
        # a typing.cast, which is a Python call per message at run time).
        transcript: Transcript = state.transcript  # type: ignore[attr-defined]
        transcript.add(message.transcript_bytes)
    return handler(ctx, state, message, now)


def change_cipher_spec(keys: Keys, *, is_client: bool) -> Actions:
    """ChangeCipherSpec with our epoch-1 keys, and the peer's epoch 1 opened (RFC 5246
    §7.1)."""
    mine, theirs = (
        (keys.client_write, keys.server_write)
        if is_client
        else (keys.server_write, keys.client_write)
    )
    return [SendChangeCipherSpec(mine), InstallCipherState(theirs)]


def derive(provider: CryptoProvider, transcript: Transcript, session: Session, pms: bytes) -> Keys:
    """Master secret (extended when negotiated, RFC 7627 §4: over the session hash, the
    transcript through ClientKeyExchange) and key block from the premaster secret."""
    session_hash = transcript.digest(session.suite.hash) if session.extended_master_secret else None
    keys = derive_keys(
        provider,
        session.suite,
        pms,
        session.client_random,
        session.server_random,
        session_hash,
    )
    return keys


def key_log(log_keys: bool, client_random: bytes, master_secret: bytes) -> Actions:
    """The master secret's key log line (NSS format: CLIENT_RANDOM <client random> <master
    secret>) when the connection has a key log callback (its context's ``log_keys``);
    otherwise no action at all."""
    return [KeyLog("CLIENT_RANDOM", client_random, master_secret)] if log_keys else []


def finished_data(
    transcript: Transcript, session: Session, keys: Keys, *, client: bool, last: bool
) -> bytes:
    return verify_data(
        session.suite.hash,
        keys.master_prf,
        client,
        transcript.digest(session.suite.hash, exclude_last=last),
    )


def check_finished(expected: bytes, message: ReceivedMessage) -> None:
    received = finished_verify_data(message.body)
    if not constant_time_equal(expected, received):
        # RFC 5246 §7.4.9: a wrong verify_data is a decrypt_error.
        raise DecryptError("Finished verify_data does not match")


def complete(
    state: WaitFinished, *, resumed: bool = False, saved: object = None, peer_raw: bool = False
) -> Complete[HandshakeCompleted]:
    """What was negotiated, as the connection reports it (its `HandshakeCompleted` event),
    ``saved``, a client's new resumable session, and the handshake's keying material
    exporter (RFC 5705); ``peer_raw``: the peer's Certificate held a raw public key."""
    raw = peer_raw
    session = state.session
    return Complete(
        HandshakeCompleted(
            version=ProtocolVersion.DTLS12,
            cipher_suite=session.suite.suite,
            alpn_protocol=session.alpn,
            server_name=session.server_name,
            peer_certificates=() if raw else state.peer_chain,
            psk_identity=state.psk_identity,
            extended_master_secret=session.extended_master_secret,
            resumed=resumed,
            peer_raw_public_key=state.peer_chain[0] if raw and state.peer_chain else None,
            srtp_profile=session.srtp_profile,
        ),
        saved,
        exporter_of(state),
    )


def exporter_of(state: WaitFinished) -> Tls12Exporter:
    """The handshake's keying material exporter (RFC 5705): its own, never shared."""
    session = state.session
    return tls12_exporter(
        (session.suite.hash, state.keys.master_secret, session.client_random, session.server_random)
    )


def as_datetime(now: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(now, datetime.UTC)
