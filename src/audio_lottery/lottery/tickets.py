"""Choose the "extreme" and "best" winning tickets of an IMP run, on dev WER only.

Test WER is carried along for reporting and never influences the choice.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from audio_lottery.files import read_json
from audio_lottery.layout import RunLayout

_EPS = 1e-12


def _usable(result: dict[str, Any]) -> bool:
    wer = result.get("dev_wer")
    return isinstance(wer, (int, float)) and not isinstance(wer, bool) and math.isfinite(wer)


def _dense(results: list[dict[str, Any]]) -> dict[str, Any]:
    dense = [r for r in results if r.get("level") == 0 and _usable(r)]
    if not dense:
        raise ValueError("no dense result (level 0 with a dev_wer) to compare tickets with")
    return dense[0]


def matches_dense(dev_wer: float, dense_dev_wer: float, tolerance: float) -> bool:
    """The match rule: a pruned level's dev WER is at most the dense model's plus ``tolerance`` (absolute)."""
    return dev_wer <= dense_dev_wer + tolerance + _EPS


def select_tickets(results: list[dict[str, Any]], tolerance: float) -> dict[str, dict[str, Any] | None]:
    """Pick tickets from one branch's per-level results (level 0 is the dense model).

    Each result has at least ``level``, ``remaining`` (fraction 0-1), ``dev_wer`` and
    ``test_wer``. Returns ``{"dense", "extreme", "best"}``: *extreme* is the sparsest
    pruned level with ``dev_wer <= dense dev_wer + tolerance`` (``None`` if none
    matches; equal sparsity -> lower dev WER); *best* is the pruned level with the
    lowest dev WER (ties -> the sparser one; ``None`` without pruned levels).
    Results without a finite ``dev_wer`` are ignored.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    dense = _dense(results)
    pruned = [r for r in results if _usable(r) and r.get("level", 0) > 0]
    matching = [r for r in pruned if matches_dense(r["dev_wer"], dense["dev_wer"], tolerance)]
    extreme = min(matching, key=lambda r: (r["remaining"], r["dev_wer"])) if matching else None
    best = min(pruned, key=lambda r: (r["dev_wer"], r["remaining"])) if pruned else None
    return {"dense": dense, "extreme": extreme, "best": best}


def control_level(tickets: dict[str, dict[str, Any] | None], last: int) -> int:
    """Where the control branches test a search by default: the extreme ticket's level, or ``last``
    (the sparsest level) when no pruned level matches dense."""
    extreme = tickets.get("extreme")
    return extreme["level"] if extreme and extreme["level"] > 0 else last


def level_results(folder: Path | RunLayout) -> dict[int, dict[str, Any]]:
    """Level -> ``result.json`` of every finished level of a run or branch folder, by level."""
    layout = folder if isinstance(folder, RunLayout) else RunLayout(folder)
    return {int(r["level"]): r for r in map(read_json, layout.level_results())}
