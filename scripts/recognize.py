"""Recognise emotions in audio files or live microphone input with a model bundle.

Same as the ``deepser-recognize`` command; see ``python scripts/recognize.py --help``.
"""

import sys

from deepser.recognizer.cli import main

if __name__ == "__main__":
    sys.exit(main())
