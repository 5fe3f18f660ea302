"""CTC decoders."""

from audio_lottery.decoding.ctc import greedy_decode

__all__ = ["greedy_decode"]
