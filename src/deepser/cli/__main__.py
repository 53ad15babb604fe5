"""``python -m deepser.cli``: the ``deepser`` command."""

import sys

from deepser.cli import main

sys.exit(main())
