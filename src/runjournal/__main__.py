"""``python -m runjournal``: the command line."""

import sys

from runjournal.cli import main

sys.exit(main())
