"""Recognise emotions in audio files or live microphone input with a model bundle.

Same as the ``deepser recognize`` command (alias ``deepser-recognize``); see
``python scripts/recognize.py --help``.
"""

import sys

from deepser.cli.recognize import main

if __name__ == "__main__":
    sys.exit(main())
