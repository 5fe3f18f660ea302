"""Ticket transfer between corpora, as branches of the SOURCE lottery run.

The target corpus comes in through overrides (``--set data.train_manifest=...`` and dev/test):

- ``transfer``: at each level, the source's IMP mask rewound to the source's theta_0 (or its
  late-rewinding point) and trained on the target. Level 0 is dense training on the target
  from the source's theta_0.
- ``transfer-finetune``: IMP on the target starting from the source-trained dense weights
  (level 0 of the source, best dev checkpoint): the branch folder is a lottery run of its own
  whose ``init.safetensors`` is those weights, so every level rewinds to them and its masks
  are the target's own.

Both keep the source run's tokenizer (the output layer must keep its shape).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Annotated

from audio_lottery.config import Config, load_config, save_config
from audio_lottery.files import load_tensors, save_tensors
from audio_lottery.layout import RunLayout
from audio_lottery.lottery.branch_registry import Param, register_branch
from audio_lottery.lottery.branches import imp_mask
from audio_lottery.lottery.runner import load_run_config, rewind_state, run_hash, run_levels

log = logging.getLogger(__name__)


def check_target(cfg: Config, source: Config, run_dir: Path) -> None:
    """Refuse a 'transfer' whose training corpus is the source's; warn when dev/test are the source's."""
    if cfg.data.train_manifest == source.data.train_manifest:
        raise ValueError(f"{run_dir}: transfer needs the target corpus: --set data.train_manifest=... "
                         f"(and data.dev_manifest, data.test_manifest); it is still the source's")
    for split in ("dev", "test"):
        if getattr(cfg.data, f"{split}_manifest") == getattr(source.data, f"{split}_manifest"):
            log.warning("transfer: data.%s_manifest is still the source corpus's", split)


# The target corpus: parameters that set the config's manifests (--train-manifest X = --set data.train_manifest=X).
Train = Annotated[str, Param("the target corpus's training manifest (required: not the source's)",
                            key="data.train_manifest")]
Dev = Annotated[str, Param("the target corpus's dev manifest", key="data.dev_manifest")]
Test = Annotated[str, Param("the target corpus's test manifest", key="data.test_manifest")]


@register_branch("transfer")
def transfer(cfg: Config, run_dir: Path, level: int, *, train_manifest: Train, dev_manifest: Dev,
             test_manifest: Test) -> tuple:
    """The source ticket (mask + the source's rewind weights) trained on the target corpus."""
    source = load_run_config(run_dir)
    check_target(cfg, source, run_dir)
    return imp_mask(run_dir, level), rewind_state(source, run_dir)


def pretrained_weights(run_dir: Path) -> dict:
    """The source's trained dense model (level 0, best dev checkpoint)."""
    path = RunLayout(run_dir).level(0).trained
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the source run's dense level is not trained yet")
    return load_tensors(path)


@register_branch("transfer-finetune", whole_run=True)
def transfer_finetune(cfg: Config, run_dir: Path, out: Path, levels: list[int] | None, progress: bool, *,
                      train_manifest: Train, dev_manifest: Dev, test_manifest: Test) -> None:
    """IMP on the target from the source-trained weights, up to ``max(levels)`` (default: lottery.levels)."""
    source = load_run_config(run_dir)
    check_target(cfg, source, run_dir)
    out.mkdir(parents=True, exist_ok=True)
    source_run, branch = RunLayout(run_dir), RunLayout(out)
    cfg_path = branch.config
    if cfg_path.is_file() and run_hash(load_config(cfg_path)) != run_hash(cfg):
        raise ValueError(f"{cfg_path}: this branch folder holds another configuration; use another --tag")
    save_config(cfg, cfg_path)
    if not branch.tokenizer.is_dir():
        shutil.copytree(source_run.tokenizer, branch.tokenizer)
    if not branch.init.is_file():
        save_tensors(branch.init, pretrained_weights(run_dir))
    top = max(levels) if levels else cfg.lottery.levels
    run_levels(cfg, out, top, progress)
