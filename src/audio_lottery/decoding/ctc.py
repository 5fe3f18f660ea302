"""Greedy (best-path) CTC decoding."""

from __future__ import annotations

import torch
from torch import Tensor


def greedy_decode(log_probs: Tensor, lens: Tensor, blank: int = 0) -> list[list[int]]:
    """Best-path token ids per utterance: argmax per frame, collapse repeats, drop blanks.

    ``log_probs`` is ``[B, T, V]`` (log-probabilities or logits); only the first
    ``lens[b]`` frames of utterance ``b`` are read.
    """
    best = log_probs.argmax(dim=-1)
    prev = torch.full_like(best[:, :1], -1)
    changed = best != torch.cat([prev, best[:, :-1]], dim=1)
    valid = torch.arange(best.shape[1], device=best.device)[None, :] < lens.to(best.device)[:, None]
    keep = changed & (best != blank) & valid
    best, keep = best.cpu(), keep.cpu()
    return [row[k].tolist() for row, k in zip(best, keep)]
