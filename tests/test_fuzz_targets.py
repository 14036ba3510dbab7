"""The atheris targets in fuzz/ keep working: their entry points run over the seed corpus
and over Hypothesis-generated inputs (the short run that ``make test`` affords)."""

from __future__ import annotations

import sys
from pathlib import Path

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
