"""Distillation to a frozen teacher under teacher forcing (``model.whisper.distill_weight``).

The student's loss becomes ``(1 - w) * cross-entropy + w * KL(teacher || student)``, the KL
divergence of the next-token distributions ``sum_v p_t(v) (log p_t(v) - log p_s(v))`` averaged
over the positions the cross-entropy scores (every target token and each ``<|endoftext|>``).
The teacher sees the same inputs (window, prompt, target prefix) and runs without gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def distillation_kl(student_logits: Tensor, teacher_logits: Tensor, scored: Tensor) -> Tensor:
    """Mean over the ``scored`` positions ``[B, L]`` (bool) of KL(teacher || student) per position."""
    if not bool(scored.any()):
        return student_logits.sum() * 0.0
    log_s = F.log_softmax(student_logits.float()[scored], dim=-1)
    log_t = F.log_softmax(teacher_logits.float()[scored], dim=-1)
    return F.kl_div(log_s, log_t, log_target=True, reduction="none").sum(dim=-1).mean()


def mix(cross_entropy: Tensor, kl: Tensor, weight: float) -> Tensor:
    """``(1 - weight) * cross_entropy + weight * kl``."""
    return (1.0 - weight) * cross_entropy + weight * kl


def frozen(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in eval mode with every parameter's gradient switched off (a teacher)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
