"""Mask overlap: intersection over union of the kept weights, per tensor and global.

Two tickets found on different corpora or with different seeds are compared by the IoU of
their kept weights. Two independent random masks of densities ``a`` and ``b`` have an expected
IoU of ``ab / (a + b - ab)`` (:func:`chance_iou`), the level that shared structure beats.
"""

from __future__ import annotations

from pathlib import Path

from audio_lottery.layout import RunLayout
from typing import Sequence

from audio_lottery.files import atomic_write_json
from audio_lottery.pruning.mask import Mask



def chance_iou(density_a: float, density_b: float) -> float:
    """Expected IoU of two independent random masks with these densities (1 when both are empty)."""
    union = density_a + density_b - density_a * density_b
    return density_a * density_b / union if union > 0 else 1.0


def _stats(inter: int, union: int, kept_a: int, kept_b: int, numel: int) -> dict:
    da, db = kept_a / numel if numel else 1.0, kept_b / numel if numel else 1.0
    return {"iou": inter / union if union else 1.0, "intersection": inter, "union": union,
            "density_a": da, "density_b": db, "chance_iou": chance_iou(da, db), "numel": numel}


def mask_iou(a: Mask, b: Mask) -> dict:
    """``{"tensors": {name: stats}, "global": stats}``; stats: iou, intersection, union, densities,
    chance_iou, numel. Both masks must cover the same tensors with the same shapes."""
    if set(a.keys()) != set(b.keys()):
        only_a, only_b = sorted(set(a.keys()) - set(b.keys())), sorted(set(b.keys()) - set(a.keys()))
        raise ValueError(f"masks cover different tensors (only in A: {only_a[:5]}, only in B: {only_b[:5]})")
    tensors = {}
    total = [0, 0, 0, 0, 0]
    for name, ma in a.items():
        mb = b[name]
        if ma.shape != mb.shape:
            raise ValueError(f"mask {name!r}: shapes differ ({tuple(ma.shape)} vs {tuple(mb.shape)})")
        counts = [int((ma & mb).sum()), int((ma | mb).sum()), int(ma.sum()), int(mb.sum()), ma.numel()]
        tensors[name] = _stats(*counts)
        total = [t + c for t, c in zip(total, counts)]
    return {"tensors": tensors, "global": _stats(*total)}


def mask_levels(folder: Path) -> list[int]:
    """Levels of a run or branch folder that have a mask."""
    return RunLayout(folder).masked_levels()


def compare_runs(dir_a: Path, dir_b: Path, levels: Sequence[int] | None = None) -> dict[int, dict]:
    """Level -> :func:`mask_iou` of ``dir_a/level_L`` and ``dir_b/level_L`` (runs or branch folders).

    Default levels: the pruned levels (> 0) both folders have.
    """
    dir_a, dir_b = Path(dir_a), Path(dir_b)
    for d in (dir_a, dir_b):
        if not d.is_dir():
            raise FileNotFoundError(f"{d}: run folder not found")
    common = sorted(set(mask_levels(dir_a)) & set(mask_levels(dir_b)))
    if levels is None:
        levels = [lv for lv in common if lv > 0]
    missing = [lv for lv in levels if lv not in common]
    if missing:
        raise FileNotFoundError(f"levels {missing} lack a mask in {dir_a} or {dir_b} (both have: {common})")
    if not levels:
        raise ValueError(f"{dir_a} and {dir_b} share no pruned level with a mask")
    a, b = RunLayout(dir_a), RunLayout(dir_b)
    return {lv: mask_iou(Mask.load(a.level(lv).mask), Mask.load(b.level(lv).mask)) for lv in levels}


def overlap_table(result: dict[int, dict]) -> str:
    """Markdown: per level, densities, global IoU and the chance IoU of random masks."""
    lines = ["| level | density A | density B | IoU | chance IoU |", "|---|---|---|---|---|"]
    for lv, r in sorted(result.items()):
        g = r["global"]
        lines.append(f"| {lv} | {100 * g['density_a']:.1f} % | {100 * g['density_b']:.1f} % | {g['iou']:.3f} | "
                     f"{g['chance_iou']:.3f} |")
    return "\n".join(lines)


def save_overlap(dir_a: Path, dir_b: Path, result: dict[int, dict]) -> Path:
    """Store a comparison as ``dir_a/overlap/<name of B>.json`` (where the report finds it)."""
    dir_a, dir_b = Path(dir_a).resolve(), Path(dir_b).resolve()
    label = f"{dir_b.parent.name}__{dir_b.name}" if RunLayout.is_branch_dir(dir_b) else dir_b.name
    path = RunLayout(dir_a).overlap / f"{label}.json"
    atomic_write_json(path, {"a": str(dir_a), "b": str(dir_b), "label": label,
                             "levels": {str(lv): r for lv, r in sorted(result.items())}})
    return path
