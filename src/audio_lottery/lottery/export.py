"""Exporting a lottery ticket: a run level (or a branch level) into an export folder, plus the
optional ONNX file checked against torch."""

from __future__ import annotations

from pathlib import Path

import torch

from audio_lottery.files import atomic_write_json, read_json
from audio_lottery.layout import ExportLayout, LevelLayout, RunLayout
from audio_lottery.pruning.export import export_recognizer
from audio_lottery.pruning.mask import Mask
from audio_lottery.recognizer import Recognizer, load_exported


def add_onnx(out_dir: Path, frames: int = 200) -> dict:
    """Write ``model.onnx`` of an export folder's (dense-runtime) model, compare onnxruntime's outputs
    with torch's on a padded random batch, and record the check in config.json."""
    from audio_lottery.pruning.onnx_export import ONNX_FILE, export_onnx, max_valid_difference, run_onnx

    out_dir = Path(out_dir)
    rec = load_exported(out_dir, runtime="dense")
    path = export_onnx(rec.model, out_dir / ONNX_FILE, rec.featurizer.dim)
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(3, frames, rec.featurizer.dim, generator=gen)
    lens = torch.tensor([frames, frames * 2 // 3, frames // 3])
    with torch.no_grad():
        ref, ref_lens = rec.model(feats, lens)
    got, got_lens = run_onnx(path, feats, lens)
    check = {"file": ONNX_FILE, "bytes": path.stat().st_size,
             "max_abs_difference": max_valid_difference(ref, ref_lens, got, got_lens)}
    meta = read_json(ExportLayout(out_dir).config)
    meta["onnx"] = check
    atomic_write_json(ExportLayout(out_dir).config, meta)
    return check


def ticket_dir(run_dir: Path, level: int, branch: str = "") -> Path:
    """``<run>/level_<L>`` or ``<run>/branch_<branch>/level_<L>`` (the branch name with its tag)."""
    base = RunLayout(run_dir).branch(branch) if branch else RunLayout(run_dir)
    return base.level(level).dir


def export_ticket(run_dir: Path, level: int, fmt: str, out_dir: Path, branch: str = "") -> dict:
    """Export the best-dev checkpoint of a lottery level (or a branch level) with its mask."""
    level_dir = LevelLayout(ticket_dir(run_dir, level, branch))
    weights = level_dir.trained
    for p in (weights, level_dir.mask):
        if not p.is_file():
            raise FileNotFoundError(f"{p}: level {level} of {run_dir} is not trained yet (file missing)")
    rec = Recognizer.load(weights)
    mask = Mask.load(level_dir.mask)
    source = {"run": str(Path(run_dir).resolve()), "level": level, "branch": branch or "imp"}
    return export_recognizer(rec, mask, fmt, out_dir, source)
