"""Hypothesis strategies the property tests of several modules share. Kept out of helpers.py,
which the atheris targets in fuzz/ import: they run where only atheris and dtlsgate are
installed (fuzz/README.md), without Hypothesis.
"""

from __future__ import annotations

from hypothesis import strategies as st


@st.composite
def mutated(draw: st.DrawFn, samples: list[bytes] | tuple[bytes, ...]) -> bytes:
    """One of ``samples`` with one to six edits: a bit flipped, a byte set, the tail cut,
    bytes inserted or deleted (the gate's and the peek's property tests share it)."""
    data = bytearray(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 8))]
    return bytes(data)
