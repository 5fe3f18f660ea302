"""bench/bench_train_speed.py's bookkeeping: epoch times from a step log, ratios per round, and the
verdict when the feature cache changed a loss."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_train_speed as bts  # noqa: E402


def test_epoch_log_splits_training_seconds_and_losses_by_epoch(tmp_path):
    events = [{"event": "start"}, {"step": 1, "epoch": 0, "loss": 9.0, "train_seconds": 1.5},
              {"step": 2, "epoch": 0, "loss": 8.0, "train_seconds": 4.0},
              {"step": 3, "epoch": 1, "loss": 7.0, "train_seconds": 6.5},
              {"step": 3, "event": "skipped", "why": "x"},
              {"step": 4, "epoch": 1, "loss": 6.0, "train_seconds": 7.0}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(e) for e in events))
    log = bts.epoch_log(tmp_path / "m.jsonl")
    assert log == {0: {"seconds": 4.0, "losses": [9.0, 8.0]}, 1: {"seconds": 3.0, "losses": [7.0, 6.0]}}


def _runs(cache_losses: list[float]) -> dict[str, list[dict]]:
    def run(seconds: float, losses: list[float]) -> dict:
        return {"seconds": seconds, "losses": losses, "epoch2_mean_loss": sum(losses) / len(losses)}

    return {"float32": [run(10.0, [2.0, 1.0]), run(12.0, [2.0, 1.0])],
            "float32 + cache": [run(8.0, cache_losses), run(12.0, cache_losses)],
            "bf16": [run(10.0, [2.1, 1.1]), run(10.0, [2.1, 1.1])],
            "bf16 + cache": [run(5.0, [2.1, 1.1]), run(8.0, [2.1, 1.1])]}


def test_ratios_are_per_round_medians_against_float32():
    summary = bts.summarise(_runs([2.0, 1.0]))
    rows = summary["rows"]
    assert rows["float32 + cache"]["speedup"] == 1.12  # median of 10/8 and 12/12
    assert (rows["bf16 + cache"]["speedup_min"], rows["bf16 + cache"]["speedup_max"]) == (1.5, 2.0)
    assert summary["cache_identical"] and summary["float32_repeatable"]
    assert summary["epoch_s_per_round"]["bf16 + cache"] == [5.0, 8.0]


def test_a_cache_that_changed_a_loss_is_reported_as_a_fault():
    summary = bts.summarise(_runs([2.0, 1.0001]))
    assert not summary["cache_identical"]
    args = argparse.Namespace(config="configs/ds2_demo.yaml", utterances=10, threads=2)
    text, verdicts = bts.markdown(args, summary)
    assert "changed the logged losses" in verdicts[1] and verdicts[1] in text
    assert "1.12x" in verdicts[0] and "| bf16 + cache | bf16 | 2048 |" in text
