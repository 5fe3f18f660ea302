"""The training loop: one function every experiment (train, lottery level, branch) calls.

A finished run leaves ``result.json``; calling again returns it without training. An
interrupted run resumes from ``last.json``/``last.safetensors`` (written atomically at the
end of every epoch). Batch order and augmentation depend only on (seed, epoch), so a
resumed run reproduces an uninterrupted one.

Under ``torchrun`` every rank runs this function: each trains on its shard of the same
global batches (DDP), rank 0 alone writes files and evaluates, and the others wait at
barriers (see :mod:`audio_lottery.train.distributed`).
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from audio_lottery.config import Config, config_hash
from audio_lottery.data.pipeline.dataset import (
    BucketBatchSampler,
    DistributedBucketBatchSampler,
    FilterReport,
    ReadAheadBatches,
    SpeechDataset,
    collate,
    filter_records,
    frames_counter,
)
from audio_lottery.data.manifest import read_manifest
from audio_lottery.train.data_check import check_eval_records, write_data_report
from audio_lottery.eval.evaluate import evaluate
from audio_lottery.faultpoints import faultpoint
from audio_lottery.files import atomic_write_json, read_json, read_json_or_none, save_tensors
from audio_lottery.rewind import rewind_to_steps
from audio_lottery.pruning.mask import Mask, MaskEnforcer
from audio_lottery.recognizer import Recognizer
from audio_lottery.data.pipeline.augmentation import shortest_duration_factor
from audio_lottery.data.pipeline.feature_cache import shared_cache
from audio_lottery.train.components import build_augmentation, prepare_tokenizer
from audio_lottery.train import distributed as dist
from audio_lottery.train.checkpoint import load_training_state, save_training_state
from audio_lottery.layout import LAST, TrainLayout
from audio_lottery.train.logger import MetricsLogger, NullLogger
from audio_lottery.train.step import TrainStep
from audio_lottery.train.weight_average import WeightAverage

log = logging.getLogger(__name__)

#: Test hook: every callable here gets ``(out_dir, state_dict)`` once per call of
#: :func:`train_model` that trains, with the weights the run starts from (the initial weights and
#: mask applied, or the restored checkpoint on a resume), before the first step. Tests register one
#: to compare a level's start weights element by element with the masked theta_0; empty otherwise.
START_HOOKS: list[Callable[[Path, dict[str, torch.Tensor]], None]] = []


@dataclass
class TrainState:
    """Counters that survive a resume."""

    epoch: int = 0
    step: int = 0
    train_seconds: float = 0.0
    wall_seconds: float = 0.0
    audio_seconds: float = 0.0
    utterances: int = 0
    skipped_steps: int = 0
    best_dev_wer: float = math.inf
    best_dev_cer: float = math.inf
    best_epoch: int = -1
    history: list = field(default_factory=list)
    amp_scaler: dict | None = None


def learning_rate(cfg: Config, step: int, epoch: int, progress: float = 0.0) -> float:
    """Peak ``train.lr`` with linear warm-up, then the per-epoch anneal, Noam's inverse square root or a
    linear decay to 0 over the run's budget (``progress``: the fraction of it spent, see
    :func:`budget_progress`)."""
    t = cfg.train
    warm = min(1.0, (step + 1) / t.warmup_steps) if t.warmup_steps > 0 else 1.0
    if t.schedule == "noam" and t.warmup_steps > 0:
        return t.lr * min(warm, (t.warmup_steps / (step + 1)) ** 0.5)
    if t.schedule == "linear_decay":
        return t.lr * warm * max(0.0, 1.0 - progress)
    return t.lr * warm / (t.lr_anneal**epoch)


def budget_progress(cfg: Config, epochs_done: float, step: int, train_seconds: float) -> float:
    """Fraction of the run's budget spent: the largest of ``epochs_done`` / ``train.epochs``, ``step`` /
    ``train.max_steps`` and ``train_seconds`` / ``train.max_minutes`` (the limits that are set), at most 1."""
    t = cfg.train
    spent = [epochs_done / t.epochs]
    if t.max_steps > 0:
        spent.append(step / t.max_steps)
    if t.max_minutes > 0:
        spent.append(train_seconds / (60.0 * t.max_minutes))
    return min(1.0, max(spent))


def set_lr(optimizer: torch.optim.Optimizer, cfg: Config, step: int, epoch: int, progress: float = 0.0) -> float:
    """Set and return the learning rate of ``step`` in ``epoch`` (``progress``: see :func:`learning_rate`)."""
    lr = learning_rate(cfg, step, epoch, progress)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def make_optimizer(model: torch.nn.Module, cfg: Config) -> torch.optim.Optimizer:
    t = cfg.train
    params = [p for p in model.parameters() if p.requires_grad]
    cls = torch.optim.Adam if t.optimizer == "adam" else torch.optim.AdamW
    # fused kernels: faster, and no slow sqrt on the all-zero moments of pruned weights
    return cls(params, lr=t.lr, betas=tuple(t.betas), weight_decay=t.weight_decay, fused=True)


def load_split(cfg: Config, split: str) -> list[dict]:
    """Records of the train/dev/test manifest named in ``cfg`` (train and dev may be capped; test never)."""
    path = getattr(cfg.data, f"{split}_manifest")
    if not path:
        raise ValueError(f"data.{split}_manifest is not set")
    records = read_manifest(path)
    cap = {"train": cfg.data.max_train_utterances, "dev": cfg.data.max_eval_utterances}.get(split, 0)
    records = records[:cap] if cap else records
    if split != "train":
        check_eval_records(records, path, split)  # refused here, before training, not mid-level
    return records


def train_model(
    cfg: Config,
    out_dir: Path,
    *,
    init_state: dict[str, torch.Tensor] | None = None,
    mask: Mask | None = None,
    rewind: str | None = None,
    tokenizer=None,
    progress: bool = True,
) -> dict:
    """Train ``cfg``'s model into ``out_dir`` and return the result dict (see module doc).

    ``init_state`` replaces the fresh weights (rewinding); ``mask`` keeps pruned weights at
    exactly zero; ``rewind`` ('0', '<k>it' or '<k>ep') saves the weights at that point to
    ``rewind.safetensors`` (late rewinding).
    """
    out_dir = Path(out_dir)
    identity = config_hash(cfg)
    device = dist.setup(cfg.train.device)
    dist.barrier()  # every rank decides on the same files
    files = TrainLayout(out_dir)
    done = read_json_or_none(files.result)
    if done is not None:
        return _check_identity(done, identity, files.result)
    dist.on_main(out_dir.mkdir, parents=True, exist_ok=True)
    torch.set_num_threads(cfg.train.threads)
    torch.manual_seed(cfg.train.seed)

    train_records = load_split(cfg, "train")
    dev_records = load_split(cfg, "dev")
    tokenizer = tokenizer or dist.main_first(prepare_tokenizer, cfg, [r["text"] for r in train_records],
                                             files.tokenizer)
    rec = Recognizer.build(cfg, tokenizer)
    if init_state is not None:
        rec.model.load_state_dict(init_state)
    rec.model.to(device)
    enforcer, mask_sha = None, None
    if mask is not None:
        mask_sha = dist.tensors_digest(mask.tensors())
        dist.check_same_on_all_ranks(mask_sha, f"{out_dir}: the mask")
        enforcer = MaskEnforcer(rec.model, mask)
        enforcer.apply()
    optimizer = make_optimizer(rec.model, cfg)

    data = build_train_data(cfg, rec, train_records, device)
    dist.on_main(write_data_report, out_dir, data.filtered, cfg)
    rewind_step = rewind_to_steps(rewind, len(data.sampler)) if rewind is not None else None
    average = WeightAverage(rec.model, cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None
    state = restore_state(out_dir, identity, rec, optimizer, rewind_step, average)
    stepper = TrainStep(cfg, rec.model, optimizer, enforcer, device)
    stepper.load_scaler_state(state.amp_scaler)
    for hook in START_HOOKS:
        hook(out_dir, rec.model.state_dict())
    logger = MetricsLogger(out_dir, resume_step=state.step) if dist.is_main() else NullLogger()
    logger.log({"event": "start", "step": state.step, "epoch": state.epoch, "train_utterances": len(data.dataset),
                "weights_abs_sum": weights_abs_sum(rec.model.state_dict()),
                "filtered": data.filtered.dropped or {}, "params": sum(p.numel() for p in rec.model.parameters()),
                **_runtime(device, cfg, mask_sha)})

    ctx = _Loop(cfg, rec, stepper, data.loader, logger, state, out_dir, rewind_step, progress and dist.is_main(),
                average)
    while state.epoch < cfg.train.epochs and not ctx.out_of_budget():
        started = time.perf_counter()
        data.sampler.set_epoch(state.epoch)
        data.dataset.set_epoch(state.epoch)
        ctx.run_epoch()
        ctx.validate(dev_records)
        state.epoch += 1
        state.wall_seconds += time.perf_counter() - started
        state.amp_scaler = stepper.scaler_state()
        dist.on_main(save_training_state, out_dir, LAST, rec.model, optimizer,
                     {"state": state.__dict__, "config_hash": identity}, average)
    logger.close()
    if not dist.is_main():
        dist.barrier()  # rank 0 writes result.json
        return read_json(files.result)
    result = {
        "best_dev_wer": state.best_dev_wer, "best_dev_cer": state.best_dev_cer, "best_epoch": state.best_epoch,
        "epochs": state.epoch, "steps": state.step, "train_seconds": state.train_seconds,
        "wall_seconds": state.wall_seconds, "config_hash": identity,
        "audio_seconds": state.audio_seconds,
        "audio_seconds_per_second": state.audio_seconds / max(state.train_seconds, 1e-9),
        "utterances": state.utterances,
        "utterances_per_second": state.utterances / max(state.train_seconds, 1e-9),
        "world_size": dist.world_size(),
        "skipped_steps": state.skipped_steps, "filtered": data.filtered.dropped or {}, "kept": data.filtered.kept,
        "model": str(files.best), "history": state.history,
    }
    atomic_write_json(files.result, result)
    dist.barrier()
    return result


def _runtime(device: torch.device, cfg: Config, mask_sha: str | None) -> dict:
    """How this run executes (logged, not part of its identity): device, precision, processes, mask checksum."""
    out = {"device": str(device), "amp": cfg.train.amp, "world_size": dist.world_size()}
    if mask_sha is not None:
        out["mask_sha256"] = mask_sha
    return out


@dataclass
class TrainData:
    dataset: SpeechDataset
    sampler: BucketBatchSampler
    loader: DataLoader
    filtered: FilterReport


def build_train_data(cfg: Config, rec: Recognizer, records: list[dict],
                     device: torch.device = torch.device("cpu")) -> TrainData:
    """Filter the training records (each problem named and counted) and wrap them for the loop.

    Under DDP each rank loads only its shard of every global batch; on CUDA batches come
    in pinned memory so the transfer to the GPU can overlap.
    """
    sr = cfg.data.features.sample_rate
    frames_for = frames_counter(rec.featurizer, rec.model, sr)
    squeeze = shortest_duration_factor(cfg.data.augment)  # speed perturbation: enough frames when fastest
    records, filtered = filter_records(records, rec.tokenizer, lambda dur: frames_for(dur * squeeze),
                                       cfg.data.min_duration, cfg.data.max_duration,
                                       min_frames=rec.model.min_output_frames)
    if not records:
        raise ValueError(f"{cfg.data.train_manifest}: no usable training utterances ({filtered.dropped})")
    augment = build_augmentation(cfg, rec.featurizer)
    # DataLoader workers would each fill a copy of the cache and drop it at the end of the epoch: no cache then
    cache = shared_cache(cfg.data.feature_cache_mb) if cfg.data.num_workers == 0 else None
    dataset = SpeechDataset(records, rec.featurizer, rec.tokenizer, sr, augment, cfg.train.seed, cache=cache)
    buckets = ([r["duration"] for r in records], cfg.data.batch_seconds, cfg.data.max_batch_size)
    if dist.world_size() > 1:
        sampler = DistributedBucketBatchSampler(*buckets, rank=dist.rank(), world_size=dist.world_size(),
                                                seed=cfg.train.seed, sortagrad=cfg.train.sortagrad)
    else:
        sampler = BucketBatchSampler(*buckets, seed=cfg.train.seed, sortagrad=cfg.train.sortagrad)
    # the next batch's files are read while this one trains (the cache holds them after the first epoch)
    loader = DataLoader(dataset, batch_sampler=ReadAheadBatches(sampler, dataset.files_to_read), collate_fn=collate,
                        num_workers=cfg.data.num_workers, pin_memory=device.type == "cuda")
    return TrainData(dataset, sampler, loader, filtered)


def restore_state(out_dir: Path, identity: str, rec: Recognizer, optimizer, rewind_step: int | None,
                  average: WeightAverage | None = None) -> TrainState:
    """Resume from ``last.json`` when present (same hyper-parameters only), else start fresh."""
    info = load_training_state(out_dir, LAST, rec.model, optimizer, config_hash=identity, average=average)
    if info is not None:
        log.info("resuming %s at epoch %d (step %d)", out_dir, info["state"]["epoch"], info["state"]["step"])
        return TrainState(**info["state"])
    if rewind_step == 0 and dist.is_main():
        save_tensors(TrainLayout(out_dir).rewind, rec.model.state_dict())
    return TrainState()


def weights_abs_sum(state: dict[str, torch.Tensor]) -> float:
    """Sum of |w| over the floating-point tensors of a state dict (a cheap fingerprint of the start point)."""
    return float(sum(v.detach().abs().double().sum() for v in state.values() if v.is_floating_point()))


def _check_identity(saved: dict, identity: str, path: Path) -> dict:
    """Refuse to reuse or resume a run made with other hyper-parameters."""
    if saved.get("config_hash", identity) != identity:
        raise ValueError(f"{path}: this folder holds a run with other hyper-parameters; use another --out")
    return saved


class _Loop:
    """The per-epoch mechanics of :func:`train_model` (kept apart to stay small)."""

    def __init__(self, cfg, rec, stepper: TrainStep, loader, logger, state, out_dir, rewind_step, progress,
                 average: WeightAverage | None = None):
        self.cfg, self.rec, self.stepper = cfg, rec, stepper
        self.loader, self.logger, self.state, self.out_dir = loader, logger, state, out_dir
        self.rewind_step, self.progress, self.average = rewind_step, progress, average
        self.clock = state.train_seconds  # the largest train_seconds of all ranks at the last budget check

    def out_of_budget(self) -> bool:
        """Step or time budget spent (time: the largest clock of all ranks, so all ranks stop at the same
        step; kept in ``self.clock`` for the next step's learning rate)."""
        t, s = self.cfg.train, self.state
        if t.max_steps > 0 and s.step >= t.max_steps:
            return True
        if t.max_minutes <= 0:
            return False
        self.clock = dist.max_over_ranks(s.train_seconds)
        return self.clock >= 60 * t.max_minutes

    def progress_of(self, epochs_done: float) -> float:
        """The budget spent before this step, for the linear_decay schedule (time: the shared clock of the
        budget check after the previous step, so every rank sets the same rate); 0 for the other schedules,
        which do not read it."""
        if self.cfg.train.schedule != "linear_decay":
            return 0.0
        return budget_progress(self.cfg, epochs_done, self.state.step, self.clock)

    def run_epoch(self) -> None:
        s = self.state
        self.rec.model.train()
        bar = tqdm(self.loader, desc=f"epoch {s.epoch + 1}/{self.cfg.train.epochs}", disable=not self.progress,
                   leave=False, dynamic_ncols=True)
        t0 = time.perf_counter()
        batches = max(1, len(self.loader))
        for index, batch in enumerate(bar):
            if batch is None and not dist.is_distributed():
                continue
            loss = self.step(batch, s.epoch + index / batches)
            now = time.perf_counter()
            s.train_seconds += now - t0
            t0 = now
            if loss is not None:
                bar.set_postfix(loss=f"{loss:.3f}", step=s.step)
            if self.out_of_budget():
                break

    def step(self, batch, epochs_done: float) -> float | None:
        s, t, model = self.state, self.cfg.train, self.rec.model
        lr = set_lr(self.stepper.optimizer, self.cfg, s.step, s.epoch, self.progress_of(epochs_done))
        out = self.stepper(batch)
        if out.skipped:
            return self._skip(out.skipped, batch)
        s.step += 1
        if self.average is not None:
            self.average.update(model, s.step)
        faultpoint("train.step")
        s.utterances += out.utterances
        s.audio_seconds += out.frames * self.cfg.data.features.hop_ms / 1000.0
        if self.rewind_step and s.step == self.rewind_step and dist.is_main():
            save_tensors(TrainLayout(self.out_dir).rewind, model.state_dict())
        if s.step % t.log_every_steps == 0 or s.step == 1:
            self.logger.log({"step": s.step, "epoch": s.epoch, "loss": out.loss, "lr": lr,
                             "grad_norm": out.grad_norm, "train_seconds": round(s.train_seconds, 2),
                             "infeasible": int(getattr(model, "last_infeasible", 0))})
        return out.loss

    def _skip(self, why: str, batch) -> None:
        self.state.skipped_steps += 1
        ids = batch.ids[:8] if batch is not None else []
        log.warning("step %d skipped (%s) on batch %s", self.state.step, why, ids[:4])
        self.logger.log({"step": self.state.step, "event": "skipped", "why": why, "ids": ids})
        return None

    def validate(self, dev_records: list[dict]) -> None:
        """Score dev on rank 0 (the others go on to the barrier after the checkpoint)."""
        s = self.state
        last = s.epoch + 1 >= self.cfg.train.epochs or self.out_of_budget()
        if ((s.epoch + 1) % self.cfg.train.eval_every_epochs and not last) or not dist.is_main():
            return
        with self.average.applied(self.rec.model) if self.average is not None else nullcontext():
            self._score_dev(dev_records)

    def _score_dev(self, dev_records: list[dict]) -> None:
        """Score the model's current weights on dev, log them and keep them as ``best`` when they are."""
        s = self.state
        scores = evaluate(self.rec, dev_records, progress=self.progress, desc="dev")
        nonblank = sum(1 for h in scores["hyps"].values() if h.strip()) / max(1, len(scores["hyps"]))
        entry = {"epoch": s.epoch + 1, "step": s.step, "dev_wer": scores["wer"], "dev_cer": scores["cer"],
                 "dev_nonblank": nonblank, "train_seconds": round(s.train_seconds, 2)}
        s.history.append(entry)
        self.logger.log(entry)
        if scores["wer"] < s.best_dev_wer or (scores["wer"] == s.best_dev_wer and scores["cer"] < s.best_dev_cer):
            s.best_dev_wer, s.best_dev_cer, s.best_epoch = scores["wer"], scores["cer"], s.epoch + 1
            self.rec.save(self.out_dir)
        log.info("epoch %d: dev WER %.4f CER %.4f", s.epoch + 1, scores["wer"], scores["cer"])
