"""``python -m dtlsgate``: the same command line as ``dtlsgate``."""

import sys

from dtlsgate.io.cli import main

sys.exit(main())
