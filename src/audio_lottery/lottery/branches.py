"""Control experiments over an existing lottery run, each a small registered function.

A branch decides, per level, which mask and which initial weights to train; the shared
:func:`~audio_lottery.lottery.runner.train_level` does the rest. Results land in
``<run>/branch_<name>[-<tag>]/level_<L>/result.json``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import torch

from audio_lottery.config import Config, apply_overrides
from audio_lottery.io import load_tensors
from audio_lottery.lottery.runner import (
    load_run_config,
    rewind_state,
    run_tokenizer,
    train_level,
    trained_weights,
)
from audio_lottery.pruning.mask import Mask
from audio_lottery.pruning.strategies import get_strategy
from audio_lottery.pruning.structured import convert_ticket, strategy_options
from audio_lottery.recognizer import Recognizer

# A branch maps (config, run folder, level) to (mask, initial weights).
BranchFn = Callable[[Config, Path, int], tuple[Mask, dict[str, torch.Tensor]]]
BRANCHES: dict[str, BranchFn] = {}


def register_branch(name: str) -> Callable[[BranchFn], BranchFn]:
    def deco(fn: BranchFn) -> BranchFn:
        BRANCHES[name] = fn
        return fn

    return deco


def imp_mask(run_dir: Path, level: int) -> Mask:
    path = run_dir / f"level_{level}" / "mask.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: level {level} of the lottery run has no mask yet")
    return Mask.load(path)


@register_branch("random-reinit")
def random_reinit(cfg: Config, run_dir: Path, level: int) -> tuple[Mask, dict]:
    """The IMP mask with freshly re-initialised weights (the model's own initialiser, new seed)."""
    torch.manual_seed(cfg.train.seed + 10_000 + level)
    rec = Recognizer.build(cfg, run_tokenizer(cfg, run_dir))
    rec.model.reset_parameters()
    return imp_mask(run_dir, level), rec.model.state_dict()


@register_branch("random-prune")
def random_prune(cfg: Config, run_dir: Path, level: int) -> tuple[Mask, dict]:
    """Random masks with the same schedule (``fraction`` of the remaining weights per level), rewound."""
    gen = torch.Generator().manual_seed(cfg.train.seed + 20_000)
    mask = Mask.load(run_dir / "level_0" / "mask.safetensors")
    zeros = {name: torch.zeros(t.shape) for name, t in mask.items()}
    for _ in range(level):
        mask = get_strategy("random")(zeros, mask, cfg.prune.fraction, gen)
    return mask, rewind_state(cfg, run_dir)


@register_branch("retrain")
def retrain(cfg: Config, run_dir: Path, level: int) -> tuple[Mask, dict]:
    """The IMP ticket (mask + rewind weights) trained under another config (data, noise, epochs)."""
    return imp_mask(run_dir, level), rewind_state(load_run_config(run_dir), run_dir)


def ticket_weights(run_dir: Path, level: int) -> dict[str, torch.Tensor]:
    """The trained weights of the IMP ticket at ``level`` (those that created the next level's mask);
    the previous level's trained weights if ``level`` has not been trained yet."""
    for lv in (level, level - 1):
        if (run_dir / f"level_{lv}" / "train" / "last.safetensors").is_file():
            return trained_weights(run_dir / f"level_{lv}")
    raise FileNotFoundError(f"{run_dir}: neither level {level} nor level {level - 1} has trained weights")


@register_branch("structured")
def structured(cfg: Config, run_dir: Path, level: int) -> tuple[Mask, dict]:
    """The IMP ticket converted to ``prune.structure`` (block of ``prune.block_shape``, N:M ``prune.nm``,
    or channel) at the same remaining weight: the blocks / units holding most of the ticket's surviving
    magnitude are kept; then rewound like IMP and retrained."""
    ticket = imp_mask(run_dir, level)
    weights = ticket_weights(run_dir, level)
    structure = cfg.prune.structure
    options = strategy_options(cfg.prune, structure, lambda: Recognizer.build(cfg, run_tokenizer(cfg, run_dir)).model)
    return convert_ticket(weights, ticket, structure, **options), rewind_state(cfg, run_dir)


def branch_dir(run_dir: Path, name: str, tag: str, overrides: list[str]) -> Path:
    """``branch_<name>[-<tag>]``; without a tag, overrides get a short hash so configs never mix."""
    if not tag and overrides:
        tag = hashlib.sha256("\n".join(sorted(overrides)).encode()).hexdigest()[:8]
    return run_dir / (f"branch_{name}-{tag}" if tag else f"branch_{name}")


def pruned_levels(run_dir: Path) -> list[int]:
    return sorted(int(p.name.split("_")[1]) for p in run_dir.glob("level_*") if (p / "mask.safetensors").is_file()
                  and int(p.name.split("_")[1]) > 0)


def run_branch(name: str, run_dir: Path, levels: list[int] | None = None, overrides: list[str] | None = None,
               tag: str = "", progress: bool = True) -> Path:
    """Run branch ``name`` on ``levels`` (default: every pruned level) of a lottery run."""
    if name not in BRANCHES:
        raise ValueError(f"unknown branch {name!r}; known: {', '.join(sorted(BRANCHES))}")
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir}: not a lottery run (no config.yaml)")
    cfg = apply_overrides(load_run_config(run_dir), overrides or [])
    out = branch_dir(run_dir, name, tag, overrides or [])
    for level in levels if levels is not None else pruned_levels(run_dir):
        mask, init = BRANCHES[name](cfg, run_dir, level)
        train_level(cfg, run_dir, out / f"level_{level}", mask, init, level, name, progress=progress)
    return out
