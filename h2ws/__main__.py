"""``python -m h2ws MODULE:APP``: the same as the ``h2ws`` command."""

import sys

from .cli import main

sys.exit(main())
