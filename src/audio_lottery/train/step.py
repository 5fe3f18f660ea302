"""One optimizer step, shared by the training loop and the GPU benchmark.

Device transfer (non-blocking from pinned memory), autocast (``train.amp``), a loss
normalised so that N DDP processes equal one process with the global batch, backward,
mask enforcement, gradient clipping and the (fp16: scaled) optimizer step.

Loss normalisation under DDP: every model's loss is a mean over the utterances of a
batch and DDP averages gradients over the N ranks. Rank r holds n_r of the n global
utterances, so it back-propagates ``loss_r * n_r * N / n``; the average over ranks is
then ``sum_r loss_r * n_r / n``, the gradient of the global batch mean (also when the
shards differ in size). Gradients are identical on every rank after the all-reduce, so
clipping, the skip decisions and the masked update agree everywhere.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from audio_lottery.config import Config
from audio_lottery.data.pipeline.dataset import Batch
from audio_lottery.pruning.mask import MaskEnforcer
from audio_lottery.train.distributed import all_reduce_sum, enable_sync_batch_norm, world_size

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class StepResult:
    """Outcome of one step: global mean loss, gradient norm, global utterances and frames."""

    loss: float | None
    grad_norm: float
    utterances: int
    frames: float
    skipped: str = ""


class _LossForward(nn.Module):
    """``model.loss`` as a module forward, so DDP sees (and synchronises) the whole step."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, feats, feat_lens, targets, target_lens):
        return self.model.loss(feats, feat_lens, targets, target_lens)


class TrainStep:
    """Callable ``step(batch) -> StepResult`` for ``model`` on ``device`` (DDP under torchrun).

    Build it after the model is on its device and its weights are final (DDP broadcasts
    rank 0's parameters and buffers when it wraps the model).
    """

    def __init__(self, cfg: Config, model: nn.Module, optimizer: torch.optim.Optimizer,
                 enforcer: MaskEnforcer | None, device: torch.device) -> None:
        self.model, self.optimizer, self.enforcer, self.device = model, optimizer, enforcer, device
        self.grad_clip = cfg.train.grad_clip
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.amp_dtype = AMP_DTYPES[cfg.train.amp]
        self.scaler = torch.amp.GradScaler(device.type) if cfg.train.amp == "fp16" else None
        self.world = world_size()
        self.forward: nn.Module = _LossForward(model)
        if self.world > 1:
            if cfg.train.sync_batchnorm:
                enable_sync_batch_norm(model)
            ids = [device.index] if device.type == "cuda" else None
            self.forward = DistributedDataParallel(self.forward, device_ids=ids)

    def __call__(self, batch: Batch | None) -> StepResult:
        n_local = len(batch) if batch is not None else 0
        frames_local = float(batch.feat_lens.sum()) if batch is not None else 0.0
        if self.world > 1:
            totals = all_reduce_sum(torch.tensor([n_local, frames_local, float(n_local == 0)], dtype=torch.float64))
            n, frames, empty = int(totals[0]), float(totals[1]), bool(totals[2] > 0)
            if empty:
                return StepResult(None, math.nan, n, frames, "a rank got no utterances")
        else:
            n, frames = n_local, frames_local
        batch = batch.to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        autocast = torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype else nullcontext()
        with autocast:
            loss = self.forward(batch.feats, batch.feat_lens, batch.targets, batch.target_lens)
        loss = loss.float()
        if self.world > 1:
            mean_loss = all_reduce_sum(loss.detach().reshape(1) * n_local)[0] / n
            objective = loss * (n_local * self.world / n)
        else:
            mean_loss, objective = loss.detach(), loss
        if not torch.isfinite(mean_loss):
            return StepResult(None, math.nan, n, frames, "non-finite loss")
        (self.scaler.scale(objective) if self.scaler else objective).backward()
        if self.enforcer:
            self.enforcer.mask_grads()
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        if not torch.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler:
                self.scaler.update()  # lowers the loss scale
                return StepResult(None, math.nan, n, frames, "non-finite gradient (fp16 loss scale lowered)")
            return StepResult(None, math.nan, n, frames, "non-finite gradient")
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.enforcer:
            self.enforcer.apply()
        return StepResult(mean_loss.item(), float(grad_norm), n, frames)

    def scaler_state(self) -> dict | None:
        """The fp16 loss scaler's state (JSON-able), saved with the training state."""
        return self.scaler.state_dict() if self.scaler else None

    def load_scaler_state(self, state: dict | None) -> None:
        if self.scaler and state:
            self.scaler.load_state_dict(state)
