"""deepser: speech emotion recognition toolkit."""

__version__ = "0.1.0"
