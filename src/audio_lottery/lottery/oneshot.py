"""The one-shot magnitude baseline as a branch (``audio-lottery branch oneshot-magnitude RUN``).

At level L the rewind weights (theta_0: for a pretrained backbone, the pretrained weights) are
pruned once by global magnitude to the sparsity IMP reaches at level L, then trained from those
rewind weights like an IMP level. Applying the strategy L times to the *same* weights prunes the
smallest magnitudes with IMP's own per-level rounding, so the count equals IMP's exactly; with
``global_magnitude`` (no layer floor) it is the one-shot global top-k.
"""

from __future__ import annotations

from pathlib import Path

import torch

from audio_lottery.config import Config
from audio_lottery.layout import RunLayout
from audio_lottery.lottery.branches import register_branch
from audio_lottery.lottery.runner import rewind_state
from audio_lottery.pruning.mask import Mask
from audio_lottery.pruning.strategies import get_strategy, strategy_options

STRATEGY = "global_magnitude"


def oneshot_mask(cfg: Config, dense: Mask, weights: dict[str, torch.Tensor], level: int) -> Mask:
    """``dense`` pruned by global magnitude of ``weights`` to IMP's remaining count at ``level``
    (``prune.fraction`` per level, ``prune.min_tensor_density`` as IMP applies it)."""
    params = {name: weights[name] for name in dense.keys()}
    options = strategy_options(cfg.prune, STRATEGY, lambda: None)  # global_magnitude needs no model
    mask = dense
    for _ in range(level):
        mask = get_strategy(STRATEGY)(params, mask, cfg.prune.fraction, **options)
    return mask


@register_branch("oneshot-magnitude")
def oneshot_magnitude(cfg: Config, run_dir: Path, level: int) -> tuple[Mask, dict]:
    """One-shot global magnitude pruning of the rewind weights to level ``level``'s sparsity, rewound."""
    init = rewind_state(cfg, run_dir)
    dense = Mask.load(RunLayout(run_dir).level(0).mask)
    return oneshot_mask(cfg, dense, init, level), init
