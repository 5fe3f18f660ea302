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


def test_the_speed_target_line_counts_the_settings_that_reach_3x():
    keys = [(1, 1), (1, 16), (2, 1), (2, 16)]
    dense = bench_inference.Variant("dense", 0, 1.0, None, 60.0, times={k: [1.0, 1.0, 1.0] for k in keys})
    speedups = {(1, 1): 2.0, (1, 16): 2.5, (2, 1): 3.2, (2, 16): 2.8}
    channel = bench_inference.Variant("channel", 6, 0.263, None, 18.0,
                                      times={k: [1.0 / s] * 3 for k, s in speedups.items()})
    line = bench_inference.target_lines([dense, channel], [], keys)[0]
    assert "2.00x to 3.20x faster than dense" in line
    assert line.endswith("not met (>= 3x in 1 of 4 settings)")
    fast = bench_inference.Variant("channel", 6, 0.263, None, 18.0, times={k: [0.25] * 3 for k in keys})
    assert bench_inference.target_lines([dense, fast], [], keys)[0].endswith(": met (>= 3x in 4 of 4 settings)")
