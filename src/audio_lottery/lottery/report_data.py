"""A lottery run as the report reads it (every level of IMP and of each branch, tolerating missing
parts), plus the formatting helpers every report section uses."""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml
from matplotlib.figure import Figure

from audio_lottery.layout import RunLayout

IMP = "imp"
Table = tuple[list[str], list[list[str]]]


@dataclass
class LevelData:
    """What one level folder holds (each part may be missing)."""

    level: int
    path: Path
    result: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    mask_report: dict[str, Any] | None = None

    @property
    def remaining(self) -> float | None:
        """Fraction of prunable weights kept: from result.json, else the mask report."""
        value = (self.result or {}).get("remaining")
        if is_number(value):
            return float(value)
        if self.mask_report and is_number(self.mask_report.get("global", {}).get("density")):
            return float(self.mask_report["global"]["density"])
        return 1.0 if self.level == 0 else None


@dataclass
class RunData:
    """All levels of a run: IMP plus branches by name, with notes about skipped files."""

    run_dir: Path
    config: dict[str, Any]
    imp: dict[int, LevelData]
    branches: dict[str, dict[int, LevelData]]
    notes: list[str]


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _read_json(path: Path, notes: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        notes.append(f"{path}: unreadable ({exc})")
        return None
    if not isinstance(data, dict):
        notes.append(f"{path}: expected a JSON object")
        return None
    return data


def _read_metrics(path: Path, notes: list[str]) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows, bad = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(row, dict):
            rows.append(row)
    if bad:
        notes.append(f"{path}: skipped {bad} unreadable line(s)")
    return rows


def _read_levels(folder: Path, notes: list[str]) -> dict[int, LevelData]:
    levels: dict[int, LevelData] = {}
    if not folder.is_dir():
        return levels
    for where in RunLayout(folder).levels():
        sub = where.dir
        data = LevelData(where.number, sub)
        data.result = _read_json(where.result, notes)
        data.metrics = _read_metrics(where.train.metrics, notes)
        data.mask_report = _read_json(where.mask_report, notes)
        if data.result is None:
            notes.append(f"{sub}: no {where.result.name} (level not finished?)")
        levels[data.level] = data
    return dict(sorted(levels.items()))


def _read_config(run_dir: Path, notes: list[str]) -> dict[str, Any]:
    path = RunLayout(run_dir).config
    if not path.is_file():
        notes.append(f"{path}: missing")
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        notes.append(f"{path}: unreadable ({exc})")
        return {}
    return data if isinstance(data, dict) else {}


def load_run(run_dir: Path, branches: Callable[[str], bool] | None = None) -> RunData:
    """Read every level of ``run_dir`` (IMP and the branches whose folder name (with tag) ``branches``
    accepts; all of them by default), tolerating missing parts."""
    run_dir = Path(run_dir)
    notes: list[str] = []
    config = _read_config(run_dir, notes)
    imp = _read_levels(run_dir, notes)
    found = {}
    if run_dir.is_dir():
        for name, branch in RunLayout(run_dir).branches().items():
            if branches is None or branches(name):
                found[name] = _read_levels(branch.dir, notes)
    return RunData(run_dir, config, imp, found, notes)


def pct(value: Any, digits: int = 2) -> str:
    return f"{100 * value:.{digits}f} %" if is_number(value) else "–"


def level_label(level: int, tickets: dict | None) -> str:
    tags = [k for k in ("extreme", "best") if tickets and tickets.get(k) and tickets[k]["level"] == level]
    return f"{level} ({', '.join(tags)})" if tags else str(level)


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()
