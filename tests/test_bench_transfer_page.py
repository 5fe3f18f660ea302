"""bench/bench_transfer.py's page parts: an earlier page's target WER / CER cells beside this page's,
paired by remaining weight, and the verdicts."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_transfer  # noqa: E402
from quick import md_table  # noqa: E402
from results_io import parse_tables  # noqa: E402

HEADERS = ["level", "remaining %", "target's own ticket", "transferred ticket", "dense (target)",
           "source ticket on source"]


def test_an_earlier_transfer_table_stands_beside_the_new_one_at_the_same_remaining_weight():
    old = {"tables": parse_tables(md_table(HEADERS, [["0", "100.0", "92.38 / 48.33", "92.38 / 48.33",
                                                      "92.38 / 48.33", "76.97 / 29.81"],
                                                     ["2", "41.0", "89.29 / 45.75", "92.62 / 47.16",
                                                      "92.38 / 48.33", "72.65 / 26.89"]])),
           "conditions": {"date": "2026-11-27"}, "command": "python bench/bench_transfer.py --levels 2"}
    new = md_table(HEADERS, [["0", "100.0", "70.00 / 30.00", "70.00 / 30.00", "70.00 / 30.00", "60.00 / 25.00"],
                             ["1", "64.0", "68.00 / 29.00", "69.00 / 29.50", "70.00 / 30.00", "59.00 / 24.00"],
                             ["2", "41.0", "67.50 / 28.00", "71.00 / 31.00", "70.00 / 30.00", "58.00 / 23.00"]])
    section = bench_transfer.previous_section(old, new, 2, "bench_transfer_corpus1.json")
    assert section.startswith("## Before and after: bench_transfer_corpus1.json")
    assert "2026-11-27" in section and "corpus version 1" in section and "different test sets" in section
    table = parse_tables(section)[0]
    assert table["headers"] == ["remaining %", "target's own ticket (before)", "target's own ticket (now)",
                                "transferred ticket (before)", "transferred ticket (now)",
                                "dense (target) (before)", "dense (target) (now)"]
    rows = {r[0]: r for r in table["rows"]}
    assert rows["41.0"][1:5] == ["89.29 / 45.75", "67.50 / 28.00", "92.62 / 47.16", "71.00 / 31.00"]
    assert rows["64.0"][1:3] == ["–", "68.00 / 29.00"]  # the earlier page had no level at 64 %


def test_the_results_page_shows_the_earlier_transfer_table_with_its_label():
    import make_results

    old = {"tables": parse_tables(md_table(HEADERS, [["1", "64.0", "91.07 / 46.05", "91.43 / 45.82", "92.38 / 48.33",
                                                      "75.75 / 27.98"]])),
           "conditions": {"date": "2026-11-27"}, "command": "python bench/bench_transfer.py"}
    page = md_table(HEADERS, [["1", "64.0", "68.00 / 29.00", "69.00 / 29.50", "70.00 / 30.00", "59.00 / 24.00"]])
    page += "\n\n" + bench_transfer.previous_section(old, page, 2, "bench_transfer_corpus1.json")
    r = {"figures": {"trainings": 19, "train_and_score_min": 50.0}, "tables": parse_tables(page), "verdicts": [],
         "conditions": {"date": "2026-12-01", "corpus_version": 2}, "command": "python bench/bench_transfer.py",
         "page": "bench_transfer.md"}
    text = "\n".join(make_results.transfer(r))
    assert "An earlier run's table beside this run's (`bench_transfer_corpus1.json`; its page" in text
    assert "| 64.0 | 91.07 / 46.05 | 68.00 / 29.00 | 91.43 / 45.82 | 69.00 / 29.50 |" in text


def test_the_verdict_names_the_levels_where_a_series_beats_the_dense_target_model():
    dense = {"test_wer": 0.8484, "remaining": 1.0}
    series = {1: {"test_wer": 0.8162, "remaining": 0.64}, 2: {"test_wer": 0.8353, "remaining": 0.4096},
              3: {"test_wer": 0.8580, "remaining": 0.2621}}
    assert bench_transfer.below_dense("Transferred ticket", series, dense, [1, 2, 3, 4]) == (
        "- Transferred ticket: target test WER below the dense target model's (84.84 %) at 2 of 3 pruned levels "
        "measured (64.0 %, 41.0 %).")  # level 4 not measured
    assert bench_transfer.below_dense("x", {}, dense, [1]).endswith("at 0 of 0 pruned levels measured (none).")
