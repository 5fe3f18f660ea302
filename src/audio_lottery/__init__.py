"""audio-lottery: winning lottery tickets for speech recognition."""

__version__ = "0.1.0"
