"""bench/bench_noise.py's page parts: the real-speech table of every model and an earlier run's costs
of noisy training beside this run's, paired by model although the tickets' levels differ."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_noise  # noqa: E402
from quick import md_table  # noqa: E402
from results_io import parse_tables  # noqa: E402

COST_HEADERS = ["model", "WER low", "WER high", "CER low", "CER high"]


def _page(clean_rows: list[list[str]], cost_rows: list[list[str]]) -> str:
    """A noise page's first two tables: both start with a 'model' column."""
    return "\n".join(["# Noise", "", "## Test WER (%) on the clean test set", "",
                      md_table(["model", "clean training", "low noise", "high noise"], clean_rows), "",
                      "### What noisy training costs each model on the clean test set", "",
                      md_table(COST_HEADERS, cost_rows), ""])


def test_an_earlier_runs_costs_of_noisy_training_are_paired_by_model_not_by_level():
    old = {"tables": parse_tables(_page([["dense (level 0, 100.0 %)", "81.12", "83.30", "89.96"],
                                         ["extreme (level 11, 8.6 %)", "80.21", "83.30", "87.38"]],
                                        [["dense", "+2.18", "+8.84", "+3.34", "+9.57"],
                                         ["extreme", "+3.10", "+7.17", "+0.98", "+4.47"]])),
           "conditions": {"date": "2026-11-27"}, "command": "python bench/bench_noise.py --run runs/old"}
    new = _page([["dense (level 0, 100.0 %)", "79.07", "80.00", "85.00"],
                 ["extreme (level 10, 10.7 %)", "81.37", "82.00", "86.00"],
                 ["best (level 5, 32.8 %)", "77.82", "79.00", "84.00"]],
                [["dense", "+0.93", "+5.93", "+1.00", "+4.00"],
                 ["extreme", "+0.63", "+4.63", "+0.50", "+3.00"],
                 ["best", "+1.18", "+6.18", "+1.20", "+4.10"]])
    section = bench_noise.previous_section(old, new, 2, "bench_noise_corpus1.json")
    assert section.startswith("## Before and after: bench_noise_corpus1.json")
    assert "2026-11-27" in section and "corpus version 1" in section and "different test sets" in section
    table = parse_tables(section)[0]
    assert table["headers"][:3] == ["model", "WER low (before)", "WER low (now)"]
    rows = {r[0]: r for r in table["rows"]}
    assert rows["extreme"][1:5] == ["+3.10", "+0.63", "+7.17", "+4.63"]  # the cost table's cells, not the WERs
    assert rows["best"][1:3] == ["–", "+1.18"]  # the earlier run had no best ticket


def test_every_model_is_scored_on_the_real_speech_test():
    tickets = {"dense": {"level": 0, "remaining": 1.0}, "extreme": {"level": 10, "remaining": 0.107}}
    real = {(c, lv): {"wer": 0.9 + lv / 100 + i / 1000, "cer": 0.5, "utterances": 97}
            for i, c in enumerate(bench_noise.CONDITIONS) for lv in (0, 10)}
    text = bench_noise.real_speech_section(tickets, real, Path("data/asterisk/test.jsonl"))
    assert "(97 utterances" in text
    table = parse_tables(text)[0]
    assert table["headers"] == ["model", "training", "real-speech WER", "real-speech CER"]
    assert [r[:2] for r in table["rows"]] == [["dense", "clean"], ["dense", "low"], ["dense", "high"],
                                              ["extreme", "clean"], ["extreme", "low"], ["extreme", "high"]]
    assert table["rows"][5][2:] == ["100.20", "50.00"]


def test_the_page_says_how_the_noisy_trainings_shared_the_cpu(monkeypatch):
    monkeypatch.setattr(bench_noise, "load_run_config", lambda run: SimpleNamespace(train=SimpleNamespace(threads=2)))
    assert "ran side by side at one thread each; the clean ones are the run's own, at 2 threads." in (
        bench_noise.trainings_line(Path("run"), 2))
    assert "ran side by side at one thread each" in bench_noise.trainings_line(Path("run"), 8)  # 2 trainings
    assert "ran in turn at 2 threads, as the run's own" in bench_noise.trainings_line(Path("run"), 1)
