"""The atheris targets in fuzz/ keep working: their entry points run over the seed corpus
and over Hypothesis-generated inputs (the short run that ``make test`` affords)."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
sys.path.insert(0, str(FUZZ))

import fuzz_gate  # noqa: E402

CORPUS = sorted((FUZZ / "corpus").glob("*.bin"))


@pytest.mark.parametrize("seed", CORPUS, ids=[p.name for p in CORPUS])
def test_seed_corpus(seed: Path) -> None:
    data = seed.read_bytes()
    fuzz_gate.test_one_input(data)
    # The seeds are real ClientHellos: the cookie splice must yield an Admit.
    assert isinstance(fuzz_gate.judge(fuzz_gate.with_valid_cookie(data)), fuzz_gate.Admit)


@settings(max_examples=300)
@given(st.sampled_from(CORPUS), st.binary(max_size=64), st.integers(0, 400))
def test_spliced_inputs(seed: Path, noise: bytes, at: int) -> None:
    data = seed.read_bytes()
    fuzz_gate.test_one_input(data[:at] + noise + data[at + len(noise) :])


# --- fuzz/fuzz_dtls12.py: the DTLS 1.2 handshake after the gate --------------------------

import fuzz_dtls12  # noqa: E402

DTLS12_SEEDS = fuzz_dtls12.seeds()


def test_dtls12_seeds_reach_every_point_of_every_handshake() -> None:
    outcomes = [fuzz_dtls12.test_one_input(seed) for seed in DTLS12_SEEDS]
    # A seed delivers the datagram that came next anyway (mode 0), or one of its messages
    # again: injected into a side that exists, they are taken or dropped.
    assert outcomes.count("dropped") >= len(DTLS12_SEEDS) // 2
    # Every point of every handshake, delivered by datagram and by record.
    for index, name in enumerate(fuzz_dtls12.NAMES):
        for by_record in (False, True):
            points = {
                seed[1]
                for seed in DTLS12_SEEDS
                if seed[0] == index and bool(seed[2] & fuzz_dtls12.BY_RECORD) == by_record
            }
            assert points == set(range(fuzz_dtls12.points(name, by_record)))


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(DTLS12_SEEDS),
    st.integers(0, 255),
    st.binary(max_size=48),
    st.integers(0, 300),
)
def test_dtls12_mutated_inputs(seed: bytes, mode: int, noise: bytes, at: int) -> None:
    data = bytearray(seed)
    data[2] = mode
    data[4 + at : 4 + at + len(noise)] = noise
    fuzz_dtls12.test_one_input(bytes(data))


# --- fuzz/fuzz_tls13.py: the TLS 1.3 engine --------------------------------------------------

import fuzz_tls13  # noqa: E402

TLS13_SEEDS = fuzz_tls13.seeds()


def test_tls13_seeds_cover_every_record_of_every_handshake() -> None:
    for seed in TLS13_SEEDS:
        fuzz_tls13.test_one_input(seed)
    expected = sum(
        2 * fuzz_tls13.points(name, target) for name in fuzz_tls13.NAMES for target in "cs"
    )
    assert len(TLS13_SEEDS) == expected > 0


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(TLS13_SEEDS), st.integers(0, 255), st.integers(0, 255), st.binary(max_size=48)
)
def test_tls13_mutated_inputs(seed: bytes, mode: int, kind: int, noise: bytes) -> None:
    data = bytearray(seed)
    data[1], data[3] = mode, kind
    data[4 : 4 + len(noise)] = noise
    fuzz_tls13.test_one_input(bytes(data))


def test_tls13_finding_certificate_of_an_unknown_x509_version() -> None:
    """fuzz_tls13.py's first finding: the "hello_retry" handshake's client given the
    server's Certificate with its leaf's version field changed to v4 (the XOR mask of mode
    3). cryptography raises x509.InvalidVersion, which is no ValueError: it left the
    handshake as an exception instead of a bad_certificate alert. Byte 0 picks the
    handshake by its index in the sorted names: set by name, since every handshake added
    shifts the indexes (the recorded 1 had become "compressed_certificates")."""
    finding = bytearray(base64.b64decode("AQYEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAQAAAAAAAAAAAAIA"))
    finding[0] = fuzz_tls13.NAMES.index("hello_retry")
    fuzz_tls13.test_one_input(bytes(finding))


# --- fuzz/fuzz_tls13_stateless.py: the TLS 1.3 stateless gate and what it admits ---------

import fuzz_tls13_stateless  # noqa: E402

STATELESS_SEEDS = fuzz_tls13_stateless.seeds()


def test_stateless_seeds_include_an_admission() -> None:
    admits = fuzz_tls13_stateless.GATE.stats["admit"]
    for seed in STATELESS_SEEDS:
        fuzz_tls13_stateless.test_one_input(seed)
    # The unchanged ClientHello2 (an all-zero XOR) is admitted and its handshake runs.
    assert fuzz_tls13_stateless.GATE.stats["admit"] > admits


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(STATELESS_SEEDS), st.integers(0, 255), st.binary(max_size=48))
def test_stateless_mutated_inputs(seed: bytes, offset: int, noise: bytes) -> None:
    fuzz_tls13_stateless.test_one_input(
        seed[:1] + bytes((offset,)) + noise + seed[2 + len(noise) :]
    )


# --- fuzz/fuzz_dtls13.py: DTLS 1.3 records and handshakes ----------------------------------

import fuzz_dtls13  # noqa: E402

DTLS13_SEEDS = fuzz_dtls13.seeds()


def test_dtls13_seeds_reach_every_point_of_every_run() -> None:
    outcomes = [fuzz_dtls13.test_one_input(seed) for seed in DTLS13_SEEDS]
    assert outcomes.count("taken or dropped") >= len(DTLS13_SEEDS) // 2
    for index, name in enumerate(fuzz_dtls13.NAMES):
        points = {seed[1] for seed in DTLS13_SEEDS if seed[0] == index}
        assert points == set(range(fuzz_dtls13.points(name))) and len(points) >= 8


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(DTLS13_SEEDS),
    st.integers(0, 255),
    st.integers(0, 255),
    st.binary(max_size=48),
    st.integers(0, 200),
)
def test_dtls13_mutated_inputs(seed: bytes, mode: int, kind: int, noise: bytes, at: int) -> None:
    data = bytearray(seed)
    data[2], data[3] = mode, kind
    data[4 + at : 4 + at + len(noise)] = noise
    fuzz_dtls13.test_one_input(bytes(data))


# --- fuzz/fuzz_gate_memos.py: gates that remember against fresh ones, differentially ------

import fuzz_gate_memos  # noqa: E402
from helpers import CLIENT, NOW  # noqa: E402

from dtlsgate.gate import stream as stream_gate  # noqa: E402
from dtlsgate.gate.results import Admit, Dtls13Admit, Reply, StreamAdmit  # noqa: E402

MEMO_SEEDS = fuzz_gate_memos.seeds()


def test_memo_seeds_judged_alike_and_reach_every_gate_and_result() -> None:
    before = dict(fuzz_gate_memos.compared)
    for seed in MEMO_SEEDS:
        fuzz_gate_memos.test_one_input(seed)
    assert fuzz_gate_memos.compared["alike"] - before["alike"] == len(MEMO_SEEDS)
    # The unchanged hellos: every gate replies and admits, and the ClientHello2s of each
    # gate are among what the long-lived gates remember (their answers come from memory).
    kinds = set()
    for name, hello in fuzz_gate_memos.SAMPLES:
        kinds.add((name, type(fuzz_gate_memos.FRESH[name]().receive(hello, CLIENT, NOW))))
    assert kinds >= {
        ("datagram", Reply),
        ("datagram", Admit),
        ("datagram", Dtls13Admit),
        ("dtls12", Reply),
        ("dtls12", Admit),
        ("stream", Reply),
        ("stream", StreamAdmit),
    }


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 255), st.binary(max_size=12))
def test_memo_edited_hellos_judged_alike(which: int, edits: bytes) -> None:
    fuzz_gate_memos.test_one_input(bytes((which,)) + edits)


@pytest.mark.parametrize("name", ["datagram", "stream"])
def test_memo_target_finds_a_remembered_answer_gone_wrong(name: str, monkeypatch: Any) -> None:
    """With a remembered ClientHello2 put back as it was (not with the new one's own
    random, session_id, key shares and cookie), a second client of a kind the long-lived
    gate admitted before (the samples' fourth of each kind: the second client's
    ClientHello2; DTLS 1.3's come first among the datagram samples) is admitted with the
    first one's fields: the target says so."""
    monkeypatch.setattr(stream_gate, "client_hello_like", lambda known, *fields: known)
    first = [n for n, _ in fuzz_gate_memos.SAMPLES].index(name)
    with pytest.raises(AssertionError, match=f"remembering {name} gate"):
        fuzz_gate_memos.test_one_input(bytes((first + 3,)))


# --- fuzz/fuzz_peeks.py: the peeks against the full decoders, over edited real hellos -------

import fuzz_peeks  # noqa: E402


def test_peeks_seeds() -> None:
    for seed in fuzz_peeks.seeds():
        fuzz_peeks.test_one_input(seed)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 255), st.binary(max_size=16))
def test_peeks_edited_hellos(which: int, edits: bytes) -> None:
    fuzz_peeks.test_one_input(bytes((which,)) + edits)
