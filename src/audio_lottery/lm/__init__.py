"""N-gram language models: modified Kneser-Ney estimation, ARPA files, LM units, tuning."""

from audio_lottery.lm.ngram import Discounts, NgramLM, build_kneser_ney, read_arpa

__all__ = ["Discounts", "NgramLM", "build_kneser_ney", "read_arpa"]
