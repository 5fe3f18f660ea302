"""The `make demo` pipeline end to end on the tiny preset and corpus."""

from __future__ import annotations

import json

import pytest

from audio_lottery.data.manifest import read_manifest
from audio_lottery.demo import branch_levels, main

from conftest import TINY_CONFIG


@pytest.mark.slow
def test_demo_pipeline_on_the_tiny_preset(tiny_corpus, tmp_path, capsys):
    real = tmp_path / "real.jsonl"  # a stand-in real-speech test: raw_text scored through Whisper's normaliser
    rows = [{**r, "audio": str(tiny_corpus / r["audio"]), "raw_text": r["text"].capitalize() + "."}
            for r in read_manifest(tiny_corpus / "test.jsonl")[:4]]
    real.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["--data", str(tiny_corpus), "--runs", str(tmp_path), "--config", str(TINY_CONFIG),
                 "--branch-every", "1", "--set", f"data.real_test_manifest={real}"]) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / out.strip().splitlines()[-1].split("/")[-1]
    assert "reference" in out and "dense" in out and f"real speech ({real}):" in out
    md = (run_dir / "report.md").read_text()
    assert "random-reinit" in md and "random-prune" in md and "## Real-speech test" in md
    for png in ("wer.png", "density.png", "training.png"):
        assert (run_dir / "plots" / png).is_file()
    timings = json.loads((run_dir / "demo_timings.json").read_text())
    phases = timings["phases_s"]
    assert timings["corpus_present"] is True and phases["corpus"] is None and timings["levels_done_at_start"] == 0
    assert 0 < phases["search"] and 0 < phases["branches"] and phases["search"] + phases["branches"] <= phases["total"]
    assert timings["run"] == run_dir.name and timings["conditions"]["machine"]


def test_branch_levels_cover_every_nth_level_the_last_and_both_tickets():
    assert branch_levels(5, 1, {"extreme": {"level": 4}, "best": {"level": 2}}) == [1, 2, 3, 4, 5]
    assert branch_levels(10, 4, {"extreme": {"level": 7}, "best": {"level": 0}}) == [4, 7, 8, 10]
    assert branch_levels(10, 3, {"extreme": None, "best": None}) == [3, 6, 9, 10]
