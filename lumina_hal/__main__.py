"""``python -m lumina_hal``: the same as the ``lumina-hal`` command."""

import sys

from lumina_hal.cli import main

sys.exit(main())
