"""NSS key log lines (``SSLKEYLOGFILE``) for Wireshark: the one place that opens the file."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable


def keylog_writer(path: str | None) -> Callable[[str], None] | None:
    """A key log callback appending NSS key log lines to ``path`` or, when None, to the
    file named by the SSLKEYLOGFILE environment variable (the convention browsers use)."""
    target = path or os.environ.get("SSLKEYLOGFILE")
    if not target:
        return None
    lock = threading.Lock()

    def write(line: str) -> None:
        with lock, open(target, "a", encoding="ascii") as f:
            f.write(line + "\n")

    return write
