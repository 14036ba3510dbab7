"""The state diagrams in docs/ are the tables: scripts/diagrams.py draws them from the
engines' tables, and the committed file must be what it draws today."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "diagrams.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("diagrams", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_diagrams_match_the_tables() -> None:
    diagrams = load_script()
    assert diagrams.OUTPUT.read_text() == diagrams.render(), (
        "docs/state-machines.md is stale: run python scripts/diagrams.py"
    )


def test_every_table_entry_has_an_arrow() -> None:
    diagrams = load_script()
    text = diagrams.render()
    for machine, _base in diagrams.machines():
        for (state, _msg_type), targets in machine.goes_to.items():
            for target in targets:
                assert f"    {state.__name__} --> {target.__name__}: " in text
