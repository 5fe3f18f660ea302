"""Control experiments over an existing lottery run, each a small registered function.

A branch decides, per level, which mask and which initial weights to train; the shared
:func:`~audio_lottery.lottery.runner.train_level` does the rest. Results land in
``<run>/branch_<name>[-<tag>]/level_<L>/result.json``. The contract (parameters declared in the
signature) is in :mod:`~audio_lottery.lottery.branch_registry`.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Sequence

import torch

from audio_lottery.config import PATH_KEYS, RUNTIME_KEYS, Config, apply_overrides, resolve_paths
from audio_lottery.files import atomic_write_json, file_fingerprint
from audio_lottery.layout import RunLayout
from audio_lottery.lottery.branch_registry import BRANCHES  # noqa: F401  (the registry, for callers)
from audio_lottery.lottery.branch_registry import Branch, Param, get_branch, register_branch
from audio_lottery.lottery.runner import load_run_config, rewind_state, run_tokenizer, train_level, trained_weights
from audio_lottery.pruning.mask import Mask
from audio_lottery.pruning.strategies import get_strategy
from audio_lottery.pruning.strategies import strategy_options
from audio_lottery.pruning.structured import convert_ticket
from audio_lottery.recognizer import Recognizer
from audio_lottery.train import distributed as dist


def imp_mask(run_dir: Path, level: int) -> Mask:
    path = RunLayout(run_dir).level(level).mask
    if not path.is_file():
        raise FileNotFoundError(f"{path}: level {level} of the lottery run has no mask yet")
    return Mask.load(path)


# Which random draw a random control makes: another draw is an independent sample of the control.
Draw = Annotated[int, Param("which random draw (0 = the default one); each draw is another independent sample "
                            "of the control and its own branch folder")]


@register_branch("random-reinit")
def random_reinit(cfg: Config, run_dir: Path, level: int, *, draw: Draw = 0) -> tuple[Mask, dict]:
    """The IMP mask with freshly re-initialised weights (the model's own initialiser, new seed)."""
    torch.manual_seed(cfg.train.seed + 10_000 + level + 1_000_000 * draw)
    rec = Recognizer.build(cfg, run_tokenizer(cfg, run_dir))
    rec.model.reset_parameters()
    return imp_mask(run_dir, level), rec.model.state_dict()


@register_branch("random-prune")
def random_prune(cfg: Config, run_dir: Path, level: int, *, draw: Draw = 0) -> tuple[Mask, dict]:
    """Random masks with the same schedule (``fraction`` of the remaining weights per level), rewound."""
    gen = torch.Generator().manual_seed(cfg.train.seed + 20_000 + 1_000_000 * draw)
    mask = Mask.load(RunLayout(run_dir).level(0).mask)
    zeros = {name: torch.zeros(t.shape) for name, t in mask.items()}
    for _ in range(level):
        mask = get_strategy("random")(zeros, mask, cfg.prune.fraction, gen)
    return mask, rewind_state(cfg, run_dir)


# The paper's two controls of a ticket; other branches (retrain, structured, transfer) are experiments on it.
CONTROL_BRANCHES = ("random-reinit", "random-prune")


def is_control_branch(folder_name: str) -> bool:
    """Whether a branch folder's name (with its tag, e.g. ``random-prune-1a2b3c4d``) is a control branch."""
    return any(folder_name == name or folder_name.startswith(name + "-") for name in CONTROL_BRANCHES)


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
def structured(cfg: Config, run_dir: Path, level: int, *,
               structure: Annotated[str, Param(key="prune.structure")],
               block_shape: Annotated[list, Param(key="prune.block_shape")],
               nm: Annotated[list, Param(key="prune.nm")]) -> tuple[Mask, dict]:
    """The IMP ticket converted to a structure (block of --block-shape, N:M --nm, or channel) at the same
    remaining weight: the blocks / units holding most of the ticket's surviving magnitude are kept; then
    rewound like IMP and retrained."""
    ticket = imp_mask(run_dir, level)
    weights = ticket_weights(run_dir, level)
    # block_shape and nm reach the strategy through cfg.prune (they are its values)
    options = strategy_options(cfg.prune, structure, lambda: Recognizer.build(cfg, run_tokenizer(cfg, run_dir)).model)
    return convert_ticket(weights, ticket, structure, **options), rewind_state(cfg, run_dir)


def branch_dir(run_dir: Path, name: str, tag: str, overrides: list[str]) -> Path:
    """``branch_<name>[-<tag>]``; without a tag, overrides get a short hash so configs never mix."""
    if not tag and any(o.partition("=")[0].strip() not in RUNTIME_KEYS for o in overrides):
        tag = overrides_hash(overrides)
    return RunLayout(run_dir).branch(name, tag).dir


def pruned_levels(run_dir: Path) -> list[int]:
    return [lv for lv in RunLayout(run_dir).masked_levels() if lv > 0]


def run_branch(name: str, run_dir: Path, levels: list[int] | None = None, overrides: list[str] | None = None,
               tag: str = "", progress: bool = True, device: str | None = None,
               params: dict[str, Any] | None = None, threads: int | None = None) -> Path:
    """Run branch ``name`` on ``levels`` (default: every pruned level) of a lottery run.

    ``params`` are the branch's declared parameters (None = not given); one that sets a config key
    becomes the override ``key=value``, so it names the branch folder exactly as ``--set`` does.
    ``device`` (train.device) and ``threads`` (train.threads) are runtime choices: they change neither
    the branch folder nor the run's identity. Under torchrun every rank builds the same mask and weights (seeded);
    training checks that the masks agree.
    """
    branch = get_branch(name)
    run_dir = Path(run_dir)
    if not RunLayout(run_dir).config.is_file():
        raise FileNotFoundError(f"{run_dir}: not a lottery run (no {RunLayout(run_dir).config.name})")
    bound, own = branch.bind(params)
    overrides = list(overrides or [])
    _check_spellings(branch, overrides, bound)
    overrides += bound
    cfg = resolve_paths(apply_overrides(load_run_config(run_dir), overrides))
    if device:
        cfg.train.device = device
    if threads:
        cfg.train.threads = threads
    dist.setup(cfg.train.device)
    progress = progress and dist.is_main()
    changes = branch.own_changes(own)  # named in the folder's hash like overrides: <branch>.<param>=<value>
    out = branch_dir(run_dir, name, tag, overrides + [f"{name}.{n}={v}" for n, v in changes.items()])
    info = {"branch": name, "run": str(run_dir.resolve()), "overrides": overrides, "tag": tag}
    if changes:
        info["params"] = changes
    dist.on_main(atomic_write_json, RunLayout(out).branch_info, info)
    kwargs = branch.arguments(cfg, own)
    if branch.whole_run:
        branch.fn(cfg, run_dir, out, levels, progress, **kwargs)
        return out
    for level in levels if levels is not None else pruned_levels(run_dir):
        mask, init = branch.fn(cfg, run_dir, level, **kwargs)
        train_level(cfg, run_dir, RunLayout(out).level(level).dir, mask, init, level, name, progress=progress)
    return out


def threads_per_job(threads: int, jobs: int) -> int:
    """Torch threads of each of ``jobs`` branches trained side by side from a run's ``threads`` (at least 1)."""
    return max(1, threads // jobs)


@dataclass(frozen=True)
class BranchJob:
    """One training of :func:`run_branches`: a branch, its ``--set`` overrides and its folder tag."""

    name: str
    overrides: tuple[str, ...] = ()
    tag: str = ""


def run_branches(branches: Sequence[str | BranchJob], run_dir: Path, levels: list[int] | None = None,
                 jobs: int = 1) -> list[Path]:
    """Run the built-in or importable ``branches`` (names, or :class:`BranchJob` with overrides and a
    tag) on ``levels`` of a lottery run; returns their folders in order.

    With ``jobs`` > 1 they train side by side in that many processes, the run's ``train.threads``
    split between them: on a CPU, two 1-thread trainings get more done than two 2-thread ones in
    turn (an LSTM step uses a second thread poorly). Branches registered at run time in this
    process are unknown to the workers; run those with ``jobs=1``.
    """
    if jobs < 1:
        raise ValueError(f"branch jobs must be >= 1, got {jobs}")
    specs = [b if isinstance(b, BranchJob) else BranchJob(b) for b in branches]
    jobs = min(jobs, len(specs))
    if jobs == 1:
        return [run_branch(s.name, run_dir, levels=levels, overrides=list(s.overrides), tag=s.tag) for s in specs]
    if dist.is_distributed():
        raise ValueError("branches side by side (jobs > 1) cannot run under torchrun; use jobs=1")
    threads = threads_per_job(load_run_config(run_dir).train.threads, jobs)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_branch, s.name, run_dir, levels, list(s.overrides), s.tag, progress=False,
                               threads=threads) for s in specs]
        return [f.result() for f in futures]


def _check_spellings(branch: Branch, overrides: list[str], bound: list[str]) -> None:
    """Warn when ``--set`` sets a key the branch declares as a parameter (the old spelling; it still
    works); refuse a key given both ways."""
    keys = {p.key: p for p in branch.params.values() if p.key}
    given = {o.partition("=")[0].strip() for o in bound}
    for text in overrides:
        key = text.partition("=")[0].strip()
        if key in given:
            raise ValueError(f"branch {branch.name!r}: {key} is given twice (--set and {keys[key].flag})")
        if key in keys:
            warnings.warn(f"branch {branch.name!r}: --set {key}=... is the old spelling; use {keys[key].flag}",
                          FutureWarning, stacklevel=3)
