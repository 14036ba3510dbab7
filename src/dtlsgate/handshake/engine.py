"""The one handshake engine shape, shared by DTLS 1.2 and TLS 1.3: the dispatch rule, the
epoch rule, the `Action` types and the checks every protocol's table must pass.

A protocol is a `Machine`: typed states (frozen classes, each holding only the data valid
in it), and ``table[state type][message type]`` naming the handler that takes that message
in that state. A handler returns ``(next_state, actions)``; the connection carries the
actions out (sends, installs keys, reports completion). The rules live here once:

- **Dispatch** (RFC 8446 §4: "a peer which receives a handshake message in an unexpected
  order MUST abort the handshake with an unexpected_message alert"; RFC 5246 §7.4 likewise):
  a message type absent from the state's row is `UnexpectedMessage`.
- **Epoch**: every message must arrive under the protection the protocol fixes for it.
  ``epochs[message type]`` says which during the handshake (``default_epochs`` for the
  rest); in a state of ``after_handshake`` every message must come under
  ``after_handshake_epochs``. Epochs are DTLS 1.2's record epochs (0 plaintext, 1 after
  ChangeCipherSpec; RFC 6347 §4.1) and, for TLS 1.3, the encryption levels numbered as
  RFC 9147 §6.1 numbers DTLS 1.3 epochs (0 plaintext, 2 handshake keys, 3 and later the
  application keys, one more per KeyUpdate).

- **Key log**: whether a connection's handlers make `KeyLog` actions is its context's
  ``log_keys`` (`KeyLogging`), for every protocol and side.

``goes_to[(state, message)]`` declares the states a handler may return: the diagrams in
``docs/`` are drawn from it (``scripts/diagrams.py``) and ``check_machine`` keeps it and the
table in step.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, Self, TypeVar, cast, final

from dtlsgate._frozen import frozen
from dtlsgate.crypto.aead import AeadAlgorithm
from dtlsgate.crypto.exporters import KeyingMaterialExporter
from dtlsgate.crypto.keyschedule import KeySchedule
from dtlsgate.errors import UnexpectedMessage
from dtlsgate.wire.enums import AlertDescription, HandshakeType

if TYPE_CHECKING:  # the record layer's package imports the connection, which imports us
    from dtlsgate.record.dtls12 import CipherState

H = TypeVar("H")
InfoT = TypeVar("InfoT")


# ---- the rules ------------------------------------------------------------------------------


@frozen
class Epochs:
    """The epochs a message may arrive in: ``first`` to ``last`` (None: no upper bound)."""

    first: int
    last: int | None

    def __contains__(self, epoch: object) -> bool:
        if not isinstance(epoch, int):
            return False
        return self.first <= epoch and (self.last is None or epoch <= self.last)

    def __str__(self) -> str:
        if self.last == self.first:
            return f"epoch {self.first}"
        return f"epoch >= {self.first}" if self.last is None else f"epochs {self.first}-{self.last}"


def only(epoch: int) -> Epochs:
    return Epochs(epoch, epoch)


def from_epoch(epoch: int) -> Epochs:
    return Epochs(epoch, None)


@frozen
class Machine(Generic[H]):
    """One side of one protocol: its states, its table and its epoch rule."""

    name: str
    start: tuple[type, ...]
    table: Mapping[type, Mapping[int, H]]
    goes_to: Mapping[tuple[type, int], tuple[type, ...]]
    epochs: Mapping[int, Epochs]
    default_epochs: Epochs
    after_handshake: frozenset[type]
    after_handshake_epochs: Epochs
    # Moves the application makes by a call rather than the peer by a message (a TLS 1.3
    # server's post-handshake CertificateRequest): (state, call name) -> the states it may
    # lead to. Drawn in the diagrams and followed when checking every state is reachable.
    calls: Mapping[tuple[type, str], tuple[type, ...]] = dataclasses.field(default_factory=dict)
    # ``table`` and the epoch rule joined once, when the machine is made: state type ->
    # message type -> (handler, first epoch, last epoch or None). ``handler_for`` reads it,
    # one lookup per message instead of the row, then the epochs, then their test.
    rules: dict[type, dict[int, tuple[H, int, int | None]]] = dataclasses.field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for state, row in self.table.items():
            rule: dict[int, tuple[H, int, int | None]] = {}
            for msg_type, handler in row.items():
                epochs = self.epochs_for(state, msg_type)
                rule[msg_type] = (handler, epochs.first, epochs.last)
            self.rules[state] = rule

    def row(self, state: type) -> Mapping[int, H]:
        """The messages ``state`` takes (empty for a state that takes none)."""
        return self.table.get(state, _NO_MESSAGES)  # type: ignore[arg-type]

    def epochs_for(self, state: type, msg_type: int) -> Epochs:
        if state in self.after_handshake:
            return self.after_handshake_epochs
        return self.epochs.get(msg_type, self.default_epochs)

    def states(self) -> tuple[type, ...]:
        """Every state: the start states, each row's, and every target, in that order."""
        seen: dict[type, None] = dict.fromkeys(self.start)
        seen.update(dict.fromkeys(self.table))
        for targets in (*self.goes_to.values(), *self.calls.values()):
            seen.update(dict.fromkeys(targets))
        return tuple(seen)


_NO_MESSAGES: Mapping[int, object] = {}
_NO_RULES: dict[int, Any] = {}  # a state with no row: every message is unexpected


def handler_for(machine: Machine[H], state: object, msg_type: int, epoch: int) -> H:
    """The handler for ``msg_type`` arriving in ``epoch`` while in ``state``; the one place
    where an out-of-order or wrongly protected handshake message is refused."""
    rules: dict[int, tuple[H, int, int | None]] = machine.rules.get(type(state), _NO_RULES)
    rule = rules.get(msg_type)
    if rule is None:
        raise UnexpectedMessage(f"{message_name(msg_type)} in state {type(state).__name__}")
    handler, first, last = rule
    if epoch < first or (last is not None and epoch > last):
        raise UnexpectedMessage(f"{message_name(msg_type)} in epoch {epoch}")
    return handler


def message_name(msg_type: int) -> str:
    try:
        return HandshakeType(msg_type).name
    except ValueError:
        return f"handshake message {msg_type}"


def check_machine(machine: Machine[H]) -> list[str]:
    """What is wrong with ``machine``'s tables (empty when nothing): every row names known
    message types and callable handlers, every (state, message) of the table declares where
    it goes and nothing else does, and every state can be reached from a start state."""
    problems: list[str] = []
    known = {int(t) for t in HandshakeType}
    for state, row in machine.table.items():
        for msg_type, handler in row.items():
            where = f"{machine.name}: {state.__name__} x {message_name(msg_type)}"
            if msg_type not in known:
                problems.append(f"{where}: not a handshake message type")
            if not callable(handler):
                problems.append(f"{where}: handler is not callable")
            if not machine.goes_to.get((state, msg_type)):
                problems.append(f"{where}: no target states declared")
    for state, msg_type in machine.goes_to:
        if msg_type not in machine.row(state):
            problems.append(f"{machine.name}: {state.__name__} x {msg_type} is not in the table")
    reached = set(machine.start)
    frontier = list(machine.start)
    while frontier:
        state = frontier.pop()
        targets = [t for m in machine.row(state) for t in machine.goes_to.get((state, m), ())]
        targets += [t for (s, _), ts in machine.calls.items() if s is state for t in ts]
        for target in targets:
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    for state in machine.states():
        if state not in reached:
            problems.append(f"{machine.name}: {state.__name__} cannot be reached")
    return problems


# ---- actions --------------------------------------------------------------------------------
# Final: the connections tell them apart by exact type (``type(action) is SendMessage``).


@final
@frozen
class SendMessage:
    """Send this whole handshake message under the current write protection (TLS 1.3's
    machines; a DTLS 1.2 machine's action for it is the message's bytes themselves)."""

    data: bytes


@final
@frozen
class SendChangeCipherSpec:
    """Send a ChangeCipherSpec: in DTLS 1.2 the messages after it go in the next epoch,
    protected with ``cipher``, our epoch-1 key-block state (RFC 5246 §7.1, §6.3: the two
    take effect together, so one action carries both); in TLS 1.3 the middlebox-
    compatibility one (RFC 8446 Appendix D.4), with no cipher."""

    cipher: CipherState | None = None


@final
class InstallKey(NamedTuple):
    """TLS 1.3: protect records in one direction with ``secret`` from now on (§7.3). A
    named tuple, made in C by `install_key`."""

    write: bool
    schedule: KeySchedule
    aead: AeadAlgorithm
    secret: bytes


# The keys of every TLS 1.3 handshake (a DTLS 1.3 server installs four) made from their
# fields in C (tuple.__new__), as `wire.extensions`'s Extensions are: a frozen class
# stores each field through a Python-level __init__ (an InstallKey cost 3,900
# instructions, 2,100 so), a named tuple's own __new__ is a Python-level function too.
# (SendMessage stays frozen: with one field it gained 300 so, less the dearer reads of
# a named tuple's fields.)
install_key = cast(
    Callable[[tuple[bool, KeySchedule, AeadAlgorithm, bytes]], InstallKey],
    partial(tuple.__new__, InstallKey),
)


@final
@frozen
class InstallCipherState:
    """DTLS 1.2: open the peer's epoch-1 records with this key-block state (RFC 5246 §6.3).
    Our own epoch 1 comes with `SendChangeCipherSpec`."""

    cipher: CipherState


@final
@frozen
class EndFlight:
    """DTLS: the messages sent since the last flight are a flight: send it. With
    ``expect_reply`` a retransmission timer runs until the peer's next flight (RFC 6347
    §4.2.4); without, it is our last flight, resent only on the peer's retransmission."""

    expect_reply: bool


# The two ends of a flight, shared by every handshake: an EndFlight carries nothing else.
#: A flight the peer answers: its retransmission timer runs (RFC 6347 §4.2.4).
END_FLIGHT = EndFlight(expect_reply=True)
#: Our last flight: resent only when the peer retransmits its own.
END_LAST_FLIGHT = EndFlight(expect_reply=False)


@final
@frozen
class ExpectMessageSeq:
    """DTLS: the peer's next message carries this message_seq (RFC 6347 §4.2.2: after a
    HelloVerifyRequest the ServerHello continues from the new ClientHello's)."""

    message_seq: int


@final
@frozen
class SendWarning:
    """Send a warning alert (for example no_renegotiation, RFC 5246 §7.4.1.1)."""

    description: AlertDescription


@final
@frozen
class KeyLog:
    """A secret for the NSS key log format (``SSLKEYLOGFILE``): ``label``, the ClientHello
    random that names the connection, the secret. Written only when the application gave
    the connection a key log callback."""

    label: str
    client_random: bytes
    secret: bytes

    def line(self) -> str:
        return f"{self.label} {self.client_random.hex()} {self.secret.hex()}"


class KeyLogging:
    """Whether a connection keeps a key log, said once for every protocol and side: the
    context its handlers read (``ctx.log_keys``). A context is prepared once per config
    and shared by its connections, with ``log_keys`` off: the handlers make no `KeyLog`
    action, nor any secret only a key log line uses. A connection that has a key log
    callback reads ``logging_keys()`` instead: the same prepared data with ``log_keys``
    on, made at the first such connection and kept with the context."""

    __slots__ = ("_logging_keys", "log_keys")

    def __init__(self) -> None:
        self.log_keys = False
        self._logging_keys: Self | None = None

    def logging_keys(self) -> Self:
        if self.log_keys:
            return self
        logging = self._logging_keys
        if logging is None:
            logging = self._logging_keys = copy.copy(self)
            logging.log_keys = True
        return logging


@final
@frozen
class Complete(Generic[InfoT]):
    """The handshake is done: what was negotiated (for a client whose Finished ends the
    handshake, once that Finished is queued). ``session``: a DTLS 1.2 client's new
    resumable session (a ``Dtls12Session``), when the server gave one. ``exporter``: the
    handshake's keying material exporter (`dtlsgate.crypto.exporters`), which the connection
    keeps for ``export_keying_material``."""

    info: InfoT
    session: object | None = None
    exporter: KeyingMaterialExporter | None = None


__all__ = [
    "END_FLIGHT",
    "END_LAST_FLIGHT",
    "Complete",
    "EndFlight",
    "Epochs",
    "ExpectMessageSeq",
    "InstallCipherState",
    "InstallKey",
    "KeyLog",
    "KeyLogging",
    "Machine",
    "SendChangeCipherSpec",
    "SendMessage",
    "SendWarning",
    "check_machine",
    "from_epoch",
    "handler_for",
    "install_key",
    "message_name",
    "only",
]
