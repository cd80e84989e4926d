"""``python -m vocalmix`` is the same program as the ``vocalmix`` command."""

import sys

from .cli import main

sys.exit(main())
