"""An exponential moving average of a model's weights (Polyak averaging), kept beside training.

With ``train.ema_decay`` > 0 the loop updates the average after every optimizer step and
evaluates, keeps as ``best`` and hands to pruning the averaged weights rather than the
last step's. The decay warms up as ``min(decay, (1 + step) / (10 + step))``, so the first
steps of a level (which starts from the rewound weights) do not pin the average there.

Written here rather than with ``torch.optim.swa_utils.AveragedModel``: that one deep-copies
the module and averages integer buffers (batch norm's ``num_batches_tracked``) with the
floats, and its state would still need its own place in the resumable checkpoint. This one
keeps a copy of the state dict: floating tensors (weights, batch-norm statistics) are
averaged, integer ones copied. A pruned weight is zero at every step, so its average stays
exactly zero.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

#: Prefix of the averaged tensors inside a training checkpoint.
PREFIX = "average."


class WeightAverage:
    """Moving average of ``model``'s state dict with the given ``decay`` (0 < decay < 1)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"train.ema_decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.tensors = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def decay_at(self, step: int) -> float:
        """The decay used for the update after optimizer step ``step`` (1-based): warmed up early on."""
        return min(self.decay, (1.0 + step) / (10.0 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Fold the weights after optimizer step ``step`` into the average."""
        weight = 1.0 - self.decay_at(step)
        for name, value in model.state_dict().items():
            average = self.tensors[name]
            if average.is_floating_point():
                average.lerp_(value.detach(), weight)
            else:
                average.copy_(value)

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[None]:
        """Load the averaged weights into ``model`` for the duration of the block, then restore its own."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.tensors)
        try:
            yield
        finally:
            model.load_state_dict(own)

    def checkpoint_tensors(self) -> dict[str, torch.Tensor]:
        """The average as ``average.<name>`` tensors for a training checkpoint."""
        return {PREFIX + k: v for k, v in self.tensors.items()}

    def load_checkpoint_tensors(self, tensors: dict[str, torch.Tensor], source: str) -> None:
        """Restore the average from a checkpoint's tensors; ``source`` names the file in errors."""
        saved = average_tensors(tensors)
        if saved.keys() != self.tensors.keys():
            missing = sorted(self.tensors.keys() - saved.keys())[:3]
            raise ValueError(f"{source}: the weight average in this checkpoint does not match the model "
                             f"(missing e.g. {missing}); use another --out")
        for name, value in saved.items():
            self.tensors[name].copy_(value)


def average_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The averaged state dict inside a training checkpoint's tensors (keys without their ``average.``
    prefix); empty for a run without an average."""
    return {k[len(PREFIX):]: v for k, v in tensors.items() if k.startswith(PREFIX)}
