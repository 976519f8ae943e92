"""``python -m quakelake.cli``: the ``quakelake`` command."""

import sys

from quakelake.cli import main

sys.exit(main())
