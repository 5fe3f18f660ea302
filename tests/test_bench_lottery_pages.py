"""bench/bench_lottery.py and bench/bench_structured_imp.py: the earlier page beside the new one,
paired by remaining weight (a 36 %-per-round search numbers its levels unlike a 20 % one)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_lottery  # noqa: E402
from audio_lottery.eval.bootstrap import corpus_wer, resamples  # noqa: E402
from audio_lottery.lottery.branches import CONTROL_BRANCHES  # noqa: E402
import bench_structured_imp  # noqa: E402
from quick import md_table  # noqa: E402
from results_io import parse_tables  # noqa: E402

LOTTERY_HEADERS = ["Level", "Remaining", "Dev WER", "Test WER", "Test CER", "random-prune test WER",
                   "random-reinit test WER"]


def _page(headers: list[str], rows: list[list[str]]) -> str:
    return "# page\n\n" + md_table(headers, rows) + "\n"


def test_lottery_levels_of_a_faster_schedule_meet_the_old_levels_at_the_same_remaining_weight():
    old = {"tables": parse_tables(_page(LOTTERY_HEADERS, [
        ["0", "100.0 %", "68 %", "81.12 %", "34 %", "–", "–"],
        ["1", "80.0 %", "62 %", "76.25 %", "33 %", "–", "–"],
        ["2", "64.0 %", "59 %", "75.10 %", "33 %", "–", "–"],
        ["4 (best)", "41.0 %", "57 %", "75.39 %", "32 %", "85.43 %", "87.32 %"]])),
        "conditions": {"date": "2026-11-26"}, "command": "python bench/bench_lottery.py runs/old"}
    new = _page(LOTTERY_HEADERS, [["0", "100.0 %", "60 %", "70.00 %", "25 %", "–", "–"],
                                  ["1", "64.0 %", "58 %", "68.00 %", "24 %", "90.00 %", "91.00 %"],
                                  ["2 (best)", "41.0 %", "57 %", "67.00 %", "24 %", "92.00 %", "93.00 %"],
                                  ["3", "26.2 %", "59 %", "69.00 %", "25 %", "94.00 %", "95.00 %"]])
    section = bench_lottery.previous_section(old, new, 2)
    assert "2026-11-26" in section[2] and "corpus version 1" in section[2] and "different test sets" in section[2]
    assert "different test sets" not in bench_lottery.previous_section(old, new, 1)[2]
    assert section[0] == "## Before and after"
    assert bench_lottery.previous_section(old, new, 2, "old.json")[0] == "## Before and after: old.json"
    table = parse_tables("\n".join(section))[0]
    assert table["headers"][:5] == ["Remaining", "Level (before)", "Level (now)", "Test WER (before)", "Test WER (now)"]
    by_remaining = {r[0]: r for r in table["rows"]}
    assert by_remaining["64.0 %"][1:5] == ["2", "1", "75.10 %", "68.00 %"]
    assert by_remaining["41.0 %"][1:3] == ["4 (best)", "2 (best)"]
    assert by_remaining["26.2 %"][1:5] == ["–", "3", "–", "69.00 %"]  # the old run's table has no such row
    reinit = table["headers"].index("random-reinit test WER (before)")
    assert by_remaining["41.0 %"][reinit:reinit + 2] == ["87.32 %", "93.00 %"]


def test_structured_imp_puts_the_series_both_pages_have_beside_each_other():
    headers = ["remaining %", "unstructured IMP", "channel IMP", "block 1x4 IMP"]
    old = {"tables": parse_tables(_page(headers + ["channel one-shot"],
                                        [["100.0", "0.678 / 0.811 / 0.344", "0.662 / 0.800 / 0.344", "a", "–"],
                                         ["64.0", "0.588 / 0.751 / 0.326", "0.713 / 0.825 / 0.370", "b", "–"]])),
           "conditions": {"date": "2026-11-27"}, "command": "old command"}
    # this page labels the row by a channel level (64.1 %), the earlier one by 64.0: the same sparsity
    doc = _page(headers, [["100.0", "0.6 / 0.7 / 0.3", "0.61 / 0.71 / 0.31", "c"],
                          ["64.1", "0.5 / 0.6 / 0.2", "0.7 / 0.8 / 0.3", "d"], ["17.1", "x", "y", "z"]])
    section = bench_structured_imp.previous_section(old, doc, ["unstructured IMP", "channel IMP", "no such series"], 2)
    assert "different test sets" in section[2]
    table = parse_tables("\n".join(section))[0]
    assert table["headers"] == ["remaining %", "unstructured IMP (before)", "unstructured IMP (now)",
                                "channel IMP (before)", "channel IMP (now)"]
    assert table["rows"][1] == ["64.1", "0.588 / 0.751 / 0.326", "0.5 / 0.6 / 0.2", "0.713 / 0.825 / 0.370",
                                "0.7 / 0.8 / 0.3"]
    assert table["rows"][2] == ["17.1", "–", "x", "–", "y"]
    assert "none of this page's series" in "\n".join(bench_structured_imp.previous_section(old, doc, ["other IMP"]))


def test_the_pruning_rate_is_stated_with_the_paper_rounds_it_equals():
    text, figures = bench_lottery.pruning_rate(0.36)  # 0.64 = 0.8 ** 2
    assert figures == {"prune_percent_per_level": 36, "paper_prune_percent": 20, "paper_rounds_per_level": 2}
    assert text == "pruning 36 % of the remaining weights per level (2 of the paper's rounds of 20 %)"
    text, figures = bench_lottery.pruning_rate(0.2)
    assert figures["paper_rounds_per_level"] == 1
    assert text == "pruning 20 % of the remaining weights per level (the paper's rate)"
    text, figures = bench_lottery.pruning_rate(0.3)  # 1.6 paper rounds: no whole number to state
    assert text == "pruning 30 % of the remaining weights per level" and "paper_rounds_per_level" not in figures
    assert bench_lottery.pruning_rate(0.125)[1]["prune_percent_per_level"] == 12.5


def test_the_results_page_quotes_the_rate_of_the_page_and_nothing_for_an_older_page():
    import make_results

    figures = bench_lottery.pruning_rate(0.36)[1]
    assert "prunes 36 % of the remaining weights" in make_results.pruning_rate(figures)
    assert "2 of the paper's rounds of 20 %" in make_results.pruning_rate(figures)
    assert "paper's rounds" not in make_results.pruning_rate(bench_lottery.pruning_rate(0.3)[1])
    assert "20 % of the remaining weights (`prune.fraction` in the preset), the paper's rate;" in \
        make_results.pruning_rate(bench_lottery.pruning_rate(0.2)[1])
    assert make_results.pruning_rate({"imp_levels": "6"}) == ""


def test_a_lottery_run_is_stamped_with_its_own_corpus_and_training_threads(tmp_path):
    from audio_lottery.config import load_config, save_config
    from audio_lottery.layout import RunLayout
    from audio_lottery.lottery.runner import load_run_config
    from results_io import training_conditions

    data = tmp_path / "synth"
    data.mkdir()
    (data / "corpus.json").write_text('{"settings": {"version": 2, "hours": 3.5, "seed": 0}}')
    run = tmp_path / "run"
    run.mkdir()
    cfg = load_config(ROOT / "configs" / "ds2_demo.yaml", [f"data.train_manifest={data / 'train.jsonl'}",
                                                           "train.threads=1"])
    save_config(cfg, RunLayout(run).config)
    assert training_conditions(load_run_config(run)) == {"corpus": str(data), "corpus_version": 2, "corpus_hours": 3.5,
                                           "corpus_seed": 0, "torch_threads": 1}


def test_run_all_puts_the_earlier_runs_kept_in_history_beside_a_new_lottery_run(monkeypatch):
    import run_all

    monkeypatch.chdir(ROOT)
    kept = run_all.earlier("bench_lottery_demo")
    assert kept == sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs" / "history").glob("bench_lottery_demo_*.json"))
    assert "docs/history/bench_lottery_demo_corpus1.json" in kept
    assert run_all.earlier("bench_no_such_page") == []


def test_only_the_control_branches_count_in_a_lottery_page(tmp_path):
    """bench_noise adds retrain-noise-* branches to the demo run: the lottery page must not show them as
    controls or add their trainings to the search's cost."""
    import json

    from audio_lottery.lottery.branches import is_control_branch
    from audio_lottery.lottery.tickets import level_results

    run = tmp_path / "run"
    for folder, seconds in (("level_0", 100.0), ("level_1", 90.0), ("branch_random-prune/level_1", 80.0),
                            ("branch_random-reinit-2f3e4d5c/level_1", 70.0),
                            ("branch_retrain-noise-high-b3e55d08/level_1", 500.0)):
        (run / folder).mkdir(parents=True)
        level = int(folder[-1])
        (run / folder / "result.json").write_text(json.dumps({"level": level, "remaining": 0.8**level,
                                                              "wall_seconds": seconds}))
    branches, others = bench_lottery.control_branches(run)
    assert sorted(branches) == ["random-prune", "random-reinit-2f3e4d5c"] and others == ["retrain-noise-high-b3e55d08"]
    imp = level_results(run)
    cost = bench_lottery.cost_lines(imp, branches)
    assert "- control branches (2 trainings): 2.5 min" in cost
    assert "- search + branches: 5.7 min = 3.4 x dense" in cost and not any("side by side" in x for x in cost)
    # side by side (make demo --branch-jobs 2): the branches' wall time is the longer one's, 80 s
    assert bench_lottery.branch_jobs(run) == 1
    (run / "demo_timings.json").write_text(json.dumps({"branch_jobs": 2}))
    together = bench_lottery.cost_lines(imp, branches, bench_lottery.branch_jobs(run))
    assert "- control branches (2 trainings): 2.5 min" in together
    assert "  - trained side by side, 2 processes at one thread each: 1.3 min of wall time, the longest branch" in together
    assert "- search + branches: 4.5 min = 2.7 x dense" in together
    assert not is_control_branch("random-prunes") and not is_control_branch("retrain")


def test_the_results_page_continues_a_lottery_run_only_with_levels_of_that_same_run():
    """bench_backbones' DS2 series extends the demo run only when it is that run (same test WER at every
    level both pages hold); a series of another run (an older corpus) is not its continuation."""
    import make_results

    levels = {"headers": ["Level", "Remaining", "Test WER"],
              "rows": [["0", "100.0 %", "79.07 %"], ["1 (best)", "80.0 %", "75.75 %"]]}
    every = {"headers": ["backbone", "level", "remaining %", "test WER"]}
    same = [["CNN-LSTM (DS2)", "0", "100.0", "0.791"], ["CNN-LSTM (DS2)", "1", "80.0", "0.758"],
            ["CNN-LSTM (DS2)", "2", "64.0", "0.760"]]
    assert make_results.same_search(levels, every, same)
    other = [["CNN-LSTM (DS2)", "0", "100.0", "0.811"], ["CNN-LSTM (DS2)", "1", "80.0", "0.758"]]
    assert not make_results.same_search(levels, every, other)
    assert not make_results.same_search(levels, every, [["CNN-LSTM (DS2)", "5", "32.8", "0.700"]])


SEED_HEADERS = ["Level", "Remaining", "Dev WER", "Test WER", "random-prune test WER", "random-reinit test WER"]


def _levels(rows: list[list[str]]) -> dict:
    return bench_lottery.levels_table(parse_tables("## Levels\n\n" + md_table(SEED_HEADERS, rows) + "\n"), "page")


def test_seeds_section_compares_each_seeds_tickets_and_dev_margins():
    first = bench_lottery.seed_summary(1, "this run", _levels([
        ["0", "100.0 %", "56.00 %", "69.00 %", "–", "–"],
        ["1 (best)", "80.0 %", "55.00 %", "68.00 %", "–", "–"],
        ["2 (extreme)", "64.0 %", "56.90 %", "70.50 %", "80.00 %", "82.00 %"]]))
    second = bench_lottery.seed_summary(0, "old.json", _levels([
        ["0", "100.0 %", "57.00 %", "70.00 %", "–", "–"],
        ["1 (extreme, best)", "80.0 %", "56.50 %", "69.00 %", "71.00 %", "68.00 %"],
        ["2", "64.0 %", "58.20 %", "71.00 %", "–", "–"]]))
    assert first["extreme"] == {"level": 2, "remaining": "64.0 %", "dev_wer": 56.9, "test_wer": 70.5}
    assert second["best"]["level"] == 1 and second["controls"] == {"random-prune": 71.0, "random-reinit": 68.0}
    lines, verdict = bench_lottery.seeds_section([first, second], 0.01)
    tables = parse_tables("\n".join(lines))
    controls = {"random-prune": "80.00 %", "random-reinit": "82.00 %"}  # in the intro's order
    assert tables[0]["rows"][0][3:6] == ["64.0 %", "56.90 / 70.50 %", " / ".join(controls[n] for n in CONTROL_BRANCHES)]
    assert " / ".join(CONTROL_BRANCHES) in lines[2]
    assert tables[1]["rows"] == [["80.0 %", "-1.00", "-0.50"], ["64.0 %", "+0.90", "+1.20"]]
    # seed 0's random-reinit (68.00) beats its extreme ticket (69.00): counted as not beaten
    assert verdict == ("Result: across 2 seeds the extreme ticket is at 64.0 % (seed 1), 80.0 % (seed 0); the sparsest "
                       "level, 64.0 %, matches dense in 1 of 2; both controls have a higher test WER than the extreme "
                       "ticket in 1 of 2.")
    assert f"**{verdict}**" in lines


def test_a_seed_without_a_matching_level_and_bad_seed_arguments():
    none = bench_lottery.seed_summary(2, "x", _levels([["0", "100.0 %", "50.00 %", "60.00 %", "–", "–"],
                                                       ["1 (best)", "80.0 %", "52.00 %", "61.00 %", "90.00 %", "91.00 %"]]))
    assert none["extreme"] is None and none["controls"] == {"random-prune": None, "random-reinit": None}
    lines, verdict = bench_lottery.seeds_section([none], 0.01)
    assert "no level (seed 2)" in verdict and "in 0 of 1" in verdict
    assert parse_tables("\n".join(lines))[0]["rows"][0][3] == "none matches"
    assert bench_lottery.seed_result_arg("0=docs/x.json") == (0, Path("docs/x.json"))
    with pytest.raises(argparse.ArgumentTypeError, match="SEED=RESULT.json"):
        bench_lottery.seed_result_arg("docs/x.json")
    with pytest.raises(ValueError, match="no 'Levels' table"):
        bench_lottery.levels_table([], "docs/x.json")


def _margin(level: int, remaining: float, worse: bool) -> dict:
    return {"level": level, "remaining": remaining, "worse": worse}


def test_seeds_section_adds_each_seeds_sparsest_level_not_significantly_worse_on_dev():
    rows = [["0", "100.0 %", "56.00 %", "69.00 %", "–", "–"], ["1 (best)", "80.0 %", "55.00 %", "68.00 %", "–", "–"],
            ["2 (extreme)", "64.0 %", "56.90 %", "70.50 %", "80.00 %", "82.00 %"],
            ["3", "51.2 %", "58.00 %", "71.00 %", "–", "–"]]
    reaches = bench_lottery.seed_summary(1, "this run", _levels(rows),
                                         [_margin(1, 0.8, False), _margin(2, 0.64, True), _margin(3, 0.512, False)])
    stops = bench_lottery.seed_summary(0, "a.json", _levels(rows), [_margin(1, 0.8, False), _margin(2, 0.64, False),
                                                                   _margin(3, 0.512, True)])
    untested = bench_lottery.seed_summary(2, "b.json", _levels(rows))
    assert (reaches["not_worse"], stops["not_worse"], untested["not_worse"]) == ("51.2 %", "64.0 %", None)
    lines, verdict = bench_lottery.seeds_section([reaches, stops, untested], 0.01)
    table = parse_tables("\n".join(lines))[0]
    assert table["headers"][-1] == "Sparsest not significantly worse on dev"
    assert [r[-1] for r in table["rows"]] == ["51.2 %", "64.0 %", "–"]
    assert verdict.endswith("; the sparsest level not significantly worse than dense on dev (95 % paired bootstrap) "
                            "is 51.2 % (seed 1), 64.0 % (seed 0); 51.2 % in 1 of 2 (seed 2: no bootstrap on its page).")
    all_worse = bench_lottery.seed_summary(3, "c.json", _levels(rows), [_margin(1, 0.8, True)])
    lines, verdict = bench_lottery.seeds_section([all_worse], 0.01)
    assert parse_tables("\n".join(lines))[0]["rows"][0][-1] == "none" and verdict.endswith("is no level (seed 3).")
    # without any bootstrap the section is as before: no column, no clause
    lines, verdict = bench_lottery.seeds_section([untested], 0.01)
    assert "not significantly" not in "\n".join(lines)


def test_other_seeds_refuses_another_seed_stamp_its_own_seed_and_another_search(tmp_path: Path):
    page = "## Levels\n\n" + md_table(SEED_HEADERS, [["0", "100.0 %", "50.00 %", "60.00 %", "–", "–"]]) + "\n"
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"tables": parse_tables(page), "conditions": {"seed": 3, "corpus_version": 2},
                                "figures": {"prune_percent_per_level": 20}}))
    # a page from before the stamps: global magnitude, theta_0
    search = {"corpus_version": 2, "prune_percent_per_level": 20, "strategy": "global_magnitude", "rewind": "0"}
    with pytest.raises(ValueError, match="stamped with seed 3, given as seed 0"):
        bench_lottery.other_seeds([(0, path)], 1, search)
    with pytest.raises(ValueError, match="this run's own seed"):
        bench_lottery.other_seeds([(3, path)], 3, search)
    with pytest.raises(ValueError, match="r.json: another search"):
        bench_lottery.other_seeds([(3, path)], 1, {**search, "prune_percent_per_level": 36})
    with pytest.raises(ValueError, match="r.json: another search"):  # late rewinding is another search
        bench_lottery.other_seeds([(3, path)], 1, {**search, "rewind": "1ep"})
    with pytest.raises(ValueError, match="r.json: another search"):  # so is another pruning strategy
        bench_lottery.other_seeds([(3, path)], 1, {**search, "strategy": "lamp"})
    assert bench_lottery.other_seeds([(3, path)], 1, search)[0]["dense"]["dev_wer"] == 50.0
    assert not bench_lottery.other_seeds([(3, path)], 1, search)[0]["bootstrap"]
    result = json.loads(path.read_text())
    result["data"] = {"bootstrap": {"dev": [_margin(1, 0.8, False)], "test": [_margin(1, 0.8, True)]}}
    path.write_text(json.dumps(result))
    assert bench_lottery.other_seeds([(3, path)], 1, search)[0]["not_worse"] == "80.0 %"  # dev's, not test's


def test_bootstrap_section_sets_the_match_rule_beside_the_intervals_on_dev_and_test():
    rng = np.random.default_rng(1)
    words = rng.integers(6, 14, size=300).astype(float)
    dense = np.floor(words * rng.uniform(0, 0.8, size=300))
    same = dense.copy()
    same[:3] += 1  # +3 errors in ~3000 words: within the rule and the noise
    worse = dense + (rng.uniform(size=300) < 0.5)  # ~+150 errors: ~5 points, clearly worse
    dev = {0: (dense, words), 1: (same, words), 2: (worse, words)}
    test = {0: (dense[:200], words[:200]), 1: (worse[:200], words[:200]), 2: (worse[:200], words[:200])}
    imp = {0: {"remaining": 1.0, "dev_wer": corpus_wer(dense, words)},
           1: {"remaining": 0.8, "dev_wer": corpus_wer(same, words), "test_wer": corpus_wer(worse[:200], words[:200])},
           2: {"remaining": 0.64, "dev_wer": 0.5}}  # recorded != re-decoded: the page says so
    draws = {"dev": resamples(300, count=2000), "test": resamples(200, count=2000)}
    lines, verdict, data = bench_lottery.bootstrap_section(imp, {"dev": dev, "test": test}, 0.01, draws)
    table = parse_tables("\n".join(lines))[0]
    assert table["headers"][2:] == ["Dev WER", "Dev above dense (points)", "Dev 95 % interval", "Matches (rule)",
                                    "Worse on dev", "Test WER", "Test above dense (points)", "Test 95 % interval",
                                    "Worse on test"]
    assert [r[0] for r in table["rows"]] == ["1", "2"]
    assert table["rows"][0][5:7] == ["yes", "no"] and table["rows"][1][5:7] == ["no", "yes"]
    assert table["rows"][0][-1] == "yes" and table["rows"][1][-1] == "yes"
    assert data["dev"][0]["lo"] <= data["dev"][0]["above_dense"] <= data["dev"][0]["hi"] and data["dev"][1]["lo"] > 0
    assert "the match rule (at most +1.00 points above dense) picks level 1 (80.0 %)" in verdict
    assert "not significantly worse than dense) is level 1 (80.0 %)" in verdict
    assert f"on dev (300 utterances, {int(words.sum())} words)" in verdict
    assert verdict.endswith("levels are significantly worse than dense (level 1 (80.0 %), level 2 (64.0 %)).")
    assert "Re-decoded WER differs from the level's recorded one: dev at level 2." in lines
    only_dev, dev_verdict, _ = bench_lottery.bootstrap_section(imp, {"dev": dev}, 0.01, draws)
    assert "on test" not in dev_verdict and "Test WER" not in "\n".join(only_dev)
