"""``python -m dtlsgate``: the same command line as ``dtlsgate``."""

import sys

from dtlsgate.io.cli import entry

sys.exit(entry())
