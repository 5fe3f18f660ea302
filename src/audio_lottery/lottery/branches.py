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

from audio_lottery.config import PATH_KEYS, RUNTIME_KEYS, Config, apply_overrides, resolve_paths
from audio_lottery.files import atomic_write_json, file_fingerprint
from audio_lottery.layout import RunLayout
from audio_lottery.lottery.runner import load_run_config, rewind_state, run_tokenizer, train_level, trained_weights
from audio_lottery.pruning.mask import Mask
from audio_lottery.pruning.strategies import get_strategy
from audio_lottery.pruning.strategies import strategy_options
from audio_lottery.pruning.structured import convert_ticket
from audio_lottery.recognizer import Recognizer
from audio_lottery.train import distributed as dist

# A branch maps (config, run folder, level) to (mask, initial weights).
BranchFn = Callable[[Config, Path, int], tuple[Mask, dict[str, torch.Tensor]]]
BRANCHES: dict[str, BranchFn] = {}


def register_branch(name: str) -> Callable[[BranchFn], BranchFn]:
    def deco(fn: BranchFn) -> BranchFn:
        BRANCHES[name] = fn
        return fn

    return deco


def imp_mask(run_dir: Path, level: int) -> Mask:
    path = RunLayout(run_dir).level(level).mask
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
    mask = Mask.load(RunLayout(run_dir).level(0).mask)
    zeros = {name: torch.zeros(t.shape) for name, t in mask.items()}
    for _ in range(level):
        mask = get_strategy("random")(zeros, mask, cfg.prune.fraction, gen)
    return mask, rewind_state(cfg, run_dir)


@register_branch("retrain")
def retrain(cfg: Config, run_dir: Path, level: int) -> tuple[Mask, dict]:
    """The IMP ticket (mask + rewind weights) trained under another config (data, noise, epochs)."""
    return imp_mask(run_dir, level), rewind_state(load_run_config(run_dir), run_dir)


def overrides_hash(overrides: list[str]) -> str:
    """Short hash of ``--set`` overrides, order-free, without runtime keys (threads, device); manifest
    paths count in absolute form and a noise manifest also by its content, so other noise settings
    never share a branch folder."""
    canon = []
    for text in overrides:
        key, _, value = text.partition("=")
        key = key.strip()
        if key in RUNTIME_KEYS:
            continue
        if key in PATH_KEYS and value:
            value = str(Path(value).resolve())
            if key == "data.augment.noise_manifest" and Path(value).is_file():
                value += "#" + file_fingerprint(Path(value))
        canon.append(f"{key}={value}")
    return hashlib.sha256("\n".join(sorted(canon)).encode()).hexdigest()[:8]


def ticket_weights(run_dir: Path, level: int) -> dict[str, torch.Tensor]:
    """The trained weights of the IMP ticket at ``level`` (those that created the next level's mask);
    the previous level's trained weights if ``level`` has not been trained yet."""
    for lv in (level, level - 1):
        where = RunLayout(run_dir).level(lv)
        if where.train.last.is_file():
            return trained_weights(where.dir)
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
    if not tag and any(o.partition("=")[0].strip() not in RUNTIME_KEYS for o in overrides):
        tag = overrides_hash(overrides)
    return RunLayout(run_dir).branch(name, tag).dir


def pruned_levels(run_dir: Path) -> list[int]:
    return [lv for lv in RunLayout(run_dir).masked_levels() if lv > 0]


# A branch runner does a whole branch at once (e.g. IMP with its own masks on another corpus):
# (config, run folder, branch folder, levels or None, progress).
BranchRunner = Callable[[Config, Path, Path, "list[int] | None", bool], None]
RUNNERS: dict[str, BranchRunner] = {}


def register_runner(name: str) -> Callable[[BranchRunner], BranchRunner]:
    def deco(fn: BranchRunner) -> BranchRunner:
        RUNNERS[name] = fn
        return fn

    return deco


def run_branch(name: str, run_dir: Path, levels: list[int] | None = None, overrides: list[str] | None = None,
               tag: str = "", progress: bool = True, device: str | None = None) -> Path:
    """Run branch ``name`` on ``levels`` (default: every pruned level) of a lottery run.

    ``device`` (train.device) is a runtime choice: it changes neither the branch folder nor
    the run's identity. Under torchrun every rank builds the same mask and weights (seeded);
    training checks that the masks agree.
    """
    if name not in BRANCHES and name not in RUNNERS:
        raise ValueError(f"unknown branch {name!r}; known: {', '.join(sorted([*BRANCHES, *RUNNERS]))}")
    run_dir = Path(run_dir)
    if not RunLayout(run_dir).config.is_file():
        raise FileNotFoundError(f"{run_dir}: not a lottery run (no {RunLayout(run_dir).config.name})")
    cfg = resolve_paths(apply_overrides(load_run_config(run_dir), overrides or []))
    if device:
        cfg.train.device = device
    dist.setup(cfg.train.device)
    progress = progress and dist.is_main()
    out = branch_dir(run_dir, name, tag, overrides or [])
    dist.on_main(atomic_write_json, RunLayout(out).branch_info, {"branch": name, "run": str(run_dir.resolve()),
                                                          "overrides": list(overrides or []), "tag": tag})
    if name in RUNNERS:
        RUNNERS[name](cfg, run_dir, out, levels, progress)
        return out
    for level in levels if levels is not None else pruned_levels(run_dir):
        mask, init = BRANCHES[name](cfg, run_dir, level)
        train_level(cfg, run_dir, RunLayout(out).level(level).dir, mask, init, level, name, progress=progress)
    return out


