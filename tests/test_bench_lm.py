"""bench/bench_lm.py: the LMs come from the model's own training transcripts unless told otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_lm  # noqa: E402


def test_lm_text_is_the_runs_training_manifest_unless_given(tmp_path):
    own, other = tmp_path / "synth_16h_train.jsonl", tmp_path / "other.jsonl"
    own.write_text("{}\n")
    other.write_text("{}\n")
    assert bench_lm.lm_text_manifest("", str(own)) == own
    assert bench_lm.lm_text_manifest(str(other), str(own)) == other


def test_a_missing_lm_text_manifest_is_named_with_its_source(tmp_path):
    gone = tmp_path / "gone.jsonl"
    with pytest.raises(SystemExit, match=r"gone.jsonl: no such manifest \(the run's data.train_manifest\)"):
        bench_lm.lm_text_manifest("", str(gone))
    with pytest.raises(SystemExit, match=r"gone.jsonl: no such manifest \(--lm-text\)"):
        bench_lm.lm_text_manifest(str(gone), "")
