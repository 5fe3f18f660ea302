"""Iterative magnitude pruning with rewinding, as idempotent resumable stages.

Layout of a run (``<root>/lottery_<hash>/``)::

    config.yaml  init.safetensors (theta_0)  rewind.safetensors  tokenizer/
    level_0/  train/ (training run)  mask.safetensors + mask.json  result.json
    level_L/  mask.safetensors + mask.json  train/  result.json
    branch_<name>/level_L/ ...  (control experiments, see branches.py)

Every stage checks whether its output exists and skips, so rerunning the same command
after a crash resumes at the stage where it stopped and never redoes a finished level.

Under ``torchrun`` every rank runs the same stages; rank 0 alone writes (config, theta_0,
masks, scores, report) and the others read after a barrier, so all ranks train the same
mask from the same weights.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Callable

import torch

from audio_lottery.config import RUNTIME_KEYS, Config, config_hash, load_config, resolve_paths, save_config, to_dict
from audio_lottery.faultpoints import faultpoint
from audio_lottery.files import (atomic_write_json, load_tensors, quarantine, read_json, read_json_or_none, remove_stale_temps,
                             save_tensors)
from audio_lottery.layout import LevelLayout, RunLayout
from audio_lottery.rewind import parse_rewind
from audio_lottery.pruning.mask import Mask
from audio_lottery.pruning.strategies import get_strategy
from audio_lottery.pruning.strategies import strategy_options
from audio_lottery.lottery.scoring import score_level
from audio_lottery.recognizer import Recognizer
from audio_lottery.train import distributed as dist
from audio_lottery.train.checkpoint import model_tensors
from audio_lottery.train.components import prepare_tokenizer, tokenizer_saved
from audio_lottery.train.loop import load_split, train_model

log = logging.getLogger(__name__)


def run_hash(cfg: Config) -> str:
    """Hash of the hyper-parameters that define a run: not the number of levels, the match
    tolerance or runtime settings (threads, device); manifest paths count in absolute form."""
    c = resolve_paths(copy.deepcopy(cfg))
    return config_hash(c, RUNTIME_KEYS + ("lottery.levels", "lottery.match_tolerance"))


def run_dir_for(cfg: Config, root: Path) -> Path:
    return RunLayout.under(root, run_hash(cfg)).dir


def load_run_config(run_dir: Path) -> Config:
    return load_config(RunLayout(run_dir).config)


def prepare_run(cfg: Config, root: Path) -> Path:
    """Create the run folder with config, tokenizer and theta_0 (each once)."""
    cfg = resolve_paths(cfg)
    for split in ("dev", "test"):  # refuse unusable evaluation data now, not after level 0's training
        load_split(cfg, split)
    run_dir = run_dir_for(cfg, root)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = RunLayout(run_dir).config
    if cfg_path.is_file():
        stored = load_config(cfg_path)
        if run_hash(stored) != run_hash(cfg):
            raise ValueError(f"{cfg_path}: a different configuration already lives in this run folder")
    save_config(cfg, cfg_path)  # levels/tolerance may change between invocations
    remove_stale_temps(run_dir)
    tokenizer = run_tokenizer(cfg, run_dir)
    if not _readable(RunLayout(run_dir).init, load_tensors):
        torch.manual_seed(cfg.train.seed)
        rec = Recognizer.build(cfg, tokenizer)
        save_tensors(RunLayout(run_dir).init, rec.model.state_dict())
    return run_dir


def run_tokenizer(cfg: Config, run_dir: Path):
    """The run's one tokenizer, shared by every level and branch."""
    tok_dir = RunLayout(run_dir).tokenizer
    texts = [] if tokenizer_saved(tok_dir) else [r["text"] for r in load_split(cfg, "train")]
    return prepare_tokenizer(cfg, texts, tok_dir)


def rewind_state(cfg: Config, run_dir: Path) -> dict[str, torch.Tensor]:
    """Weights every pruned level restarts from: theta_0 or the late-rewinding snapshot."""
    count, _ = parse_rewind(cfg.prune.rewind)
    if count == 0:
        return load_tensors(RunLayout(run_dir).init)
    path = RunLayout(run_dir).rewind
    dist.on_main(_copy_rewind_point, cfg, run_dir, path)
    return load_tensors(path)


def _copy_rewind_point(cfg: Config, run_dir: Path, path: Path) -> None:
    if not path.is_file():
        src = RunLayout(run_dir).level(0).train.rewind
        if not src.is_file():
            raise FileNotFoundError(f"{src}: level 0 did not reach the rewind point {cfg.prune.rewind}")
        save_tensors(path, load_tensors(src))


def trained_weights(level_dir: Path) -> dict[str, torch.Tensor]:
    """Final weights of a level's training run (what the next level prunes)."""
    return model_tensors(load_tensors(LevelLayout(Path(level_dir)).train.last))


def dense_mask(cfg: Config, run_dir: Path) -> Mask:
    """All-ones mask over the configured prunable tensors."""
    rec = Recognizer.build(cfg, run_tokenizer(cfg, run_dir))
    return Mask.from_patterns(rec.model, cfg.prune.include, cfg.prune.exclude)


def next_mask(cfg: Config, run_dir: Path, level: int, strategy: str | None = None,
              generator: torch.Generator | None = None) -> Mask:
    """Mask of ``level``: the previous level's mask pruned by the strategy on its trained weights."""
    prev_level = RunLayout(run_dir).level(level - 1)
    prev = Mask.load(prev_level.mask)
    weights = trained_weights(prev_level.dir)
    params = {name: weights[name] for name in prev.keys()}
    name = strategy or cfg.prune.strategy
    options = strategy_options(cfg.prune, name, lambda: Recognizer.build(cfg, run_tokenizer(cfg, run_dir)).model)
    return get_strategy(name)(params, prev, cfg.prune.fraction, generator, **options)


def train_level(cfg: Config, run_dir: Path, level_dir: Path, mask: Mask, init_state, level: int,
                branch: str, rewind: str | None = None, progress: bool = True) -> dict:
    """Train ``mask`` from ``init_state`` into ``level_dir`` and score it (each stage skipped if done).

    The level's mask is saved beside its result (``mask.safetensors`` + ``mask.json``).
    """
    dist.barrier()  # every rank decides on the same files
    where = LevelLayout(Path(level_dir))
    done = read_json_or_none(where.result)
    if done is not None:
        return done
    dist.on_main(save_mask_once, mask, where.mask)
    tokenizer = run_tokenizer(cfg, run_dir)
    enforced = mask if mask.density() < 1.0 else None
    train = train_model(cfg, where.train.dir, init_state=init_state, mask=enforced, rewind=rewind,
                        tokenizer=tokenizer, progress=progress)
    result = dist.on_main(_score, cfg, level_dir, mask, level, branch, train, progress)
    return result if dist.is_main() else read_json(where.result)


def _score(cfg: Config, level_dir: Path, mask: Mask, level: int, branch: str, train: dict, progress: bool) -> dict:
    started = time.time()
    result = score_level(cfg, level_dir, mask, level, branch, progress=progress)
    result["wall_seconds"] = train["wall_seconds"] + time.time() - started
    atomic_write_json(LevelLayout(Path(level_dir)).result, result)
    return result


def _readable(path: Path, load) -> bool:
    """Whether ``path`` exists and ``load(path)`` succeeds; an unreadable file is moved aside
    (so the stage that writes it runs again) instead of stopping the run."""
    if not path.is_file():
        return False
    try:
        load(path)
    except ValueError as exc:
        quarantine(path, str(exc).removeprefix(f"{path}: "))
        return False
    return True


def save_mask_once(mask: Mask | Callable[[], Mask], path: Path) -> bool:
    """Save ``mask`` (or the mask a callable makes) to ``path`` unless a readable mask is there.
    Returns whether it wrote one."""
    if _readable(Path(path), Mask.load):
        return False
    (mask() if callable(mask) else mask).save(path)
    return True


def _prune_once(cfg: Config, run_dir: Path, level: int, path: Path) -> None:
    if save_mask_once(lambda: next_mask(cfg, run_dir, level), path):
        faultpoint("runner.pruned")


def run_levels(cfg: Config, run_dir: Path, levels: int, progress: bool = True) -> None:
    """IMP in a prepared folder (config, tokenizer, ``init.safetensors``): level 0 trains dense from
    ``init.safetensors``, then per level: prune -> rewind -> train -> score, up to ``levels``."""
    run = RunLayout(run_dir)
    level0 = run.level(0)
    dist.on_main(save_mask_once, lambda: dense_mask(cfg, run_dir), level0.mask)
    rewind = cfg.prune.rewind if parse_rewind(cfg.prune.rewind)[0] > 0 else None
    train_level(cfg, run_dir, level0.dir, Mask.load(level0.mask), load_tensors(run.init), 0, "imp",
                rewind=rewind, progress=progress)
    for level in range(1, levels + 1):
        level_dir = run.level(level).dir
        mask_path = run.level(level).mask
        dist.on_main(_prune_once, cfg, run_dir, level, mask_path)
        mask = Mask.load(mask_path)
        log.info("level %d: %.1f %% of prunable weights remain", level, 100 * mask.density())
        train_level(cfg, run_dir, level_dir, mask, rewind_state(cfg, run_dir), level, "imp", progress=progress)


def run_lottery(cfg: Config, root: Path, progress: bool = True) -> Path:
    """Level 0 (dense), then per level: prune -> rewind -> train -> score. Returns the run folder."""
    dist.setup(cfg.train.device)
    cfg = resolve_paths(cfg)
    run_dir = run_dir_for(cfg, root)
    dist.on_main(prepare_run, cfg, root)
    progress = progress and dist.is_main()
    if dist.is_main():
        print(f"lottery run: {run_dir}", flush=True)
    run_levels(cfg, run_dir, cfg.lottery.levels, progress)
    dist.on_main(_finish, cfg, run_dir)
    return run_dir


def _finish(cfg: Config, run_dir: Path) -> None:
    from audio_lottery.lottery.report import write_report

    write_report(run_dir, cfg.lottery.match_tolerance)
    atomic_write_json(RunLayout(run_dir).summary, {"config": to_dict(cfg), "levels": cfg.lottery.levels})
