"""How the atheris targets in fuzz/ that make their own seeds start: the seeds go into the
corpus directory named on the command line when it is empty or missing, the target's
uninstrumented set-up runs (before instrumentation slows it down), then atheris fuzzes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def fuzz(
    test_one_input: Callable[[bytes], object],
    seeds: Callable[[], list[bytes]],
    warm_up: Callable[[], object],
) -> None:
    import atheris  # type: ignore[import-not-found]

    corpus = next((Path(a) for a in sys.argv[1:] if not a.startswith("-")), None)
    if corpus is not None and not (corpus.is_dir() and any(corpus.iterdir())):
        corpus.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(seeds()):
            (corpus / f"seed-{i:03d}.bin").write_bytes(seed)
    warm_up()
    atheris.instrument_all()
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
