"""bench/bench_inference.py: the channel run's ticket is taken at the IMP ticket's remaining weight,
whatever the two runs' pruning rates per level."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_inference  # noqa: E402


def _run(folder: Path, remaining: list[float]) -> Path:
    for level, r in enumerate(remaining):
        (folder / f"level_{level}").mkdir(parents=True)
        (folder / f"level_{level}" / "result.json").write_text(json.dumps({"level": level, "remaining": r}))
    return folder


def test_a_channel_run_at_36_percent_per_level_meets_a_20_percent_imp_level(tmp_path):
    run = _run(tmp_path / "channel", [1.0, 0.6406, 0.4104, 0.2630, 0.1685])
    assert bench_inference.level_at(run, 0.8**6) == 3  # 26.2 % of the 20 % schedule
    assert bench_inference.level_at(run, 0.8**8) == 4  # 16.8 %
    assert bench_inference.level_at(run, 1.0) == 0
    with pytest.raises(SystemExit, match=r"no finished level with 21.0 % remaining weight \(levels 0: 100.0 %"):
        bench_inference.level_at(run, 0.8**7)
