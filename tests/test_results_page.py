"""docs/results.md is generated from the bench result JSON and cannot drift from it."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import import_pages  # noqa: E402
import make_results  # noqa: E402
import results_io  # noqa: E402

DOCS = ROOT / "docs"


def _sources(docs: Path) -> dict:
    """Each result by its page's name, and the demo's timings by their file name."""
    out = {results_io.result_path(p).with_suffix(".md").name: json.loads(p.read_text())
           for p in sorted(docs.glob("bench_*.json"))}
    timings = docs / make_results.DEMO_TIMINGS
    return out | ({timings.name: json.loads(timings.read_text())} if timings.is_file() else {})


def test_results_md_is_up_to_date_with_the_json():
    assert (DOCS / "results.md").read_text() == make_results.render(DOCS), \
        "docs/results.md is out of date with docs/bench_*.json: run `make results`"


def test_every_number_in_results_md_comes_from_a_result_json():
    assert results_io.untraced_numbers((DOCS / "results.md").read_text(), _sources(DOCS)) == []


def test_the_number_check_finds_a_number_no_bench_produced():
    text = (DOCS / "results.md").read_text()
    planted = text + "\nThe demo took 75-80 min, 4e-9 from librosa (`9.99` in code is fine).\n"
    assert results_io.untraced_numbers(planted, _sources(DOCS)) == ["4e-9", "75", "80"]
    # a true number of one bench does not vouch for another bench's section
    head, features = text.split("## Features", 1)
    moved = head + "## Features" + features.replace("| 2 | 2946 |", "| 2 | 12.1 |", 1)
    assert "12.1" in results_io.untraced_numbers(moved, _sources(DOCS))


def test_every_bench_page_has_a_result_holding_its_tables():
    pages = sorted(DOCS.glob("bench_*.md"))
    assert len(pages) >= 15
    for page in pages:
        result = json.loads(results_io.result_path(page).read_text())
        assert result["key"] == results_io.result_key(page) and result["page"] == page.name
        assert result["tables"] == results_io.parse_tables(page.read_text()), f"{page.name} changed after its JSON"
        for verdict in result["verdicts"]:
            assert verdict in results_io.plain(page.read_text())
        if result["imported"]:
            assert result["imported_from"] == page.name


@pytest.fixture
def docs_copy(tmp_path) -> Path:
    for p in DOCS.glob("bench_*.json"):
        shutil.copy(p, tmp_path / p.name)
    return tmp_path


def test_results_md_follows_a_changed_result(docs_copy):
    path = docs_copy / "bench_inference_paper.json"
    result = json.loads(path.read_text())
    csr = next(r for r in result["tables"][0]["rows"] if r[0] == "csr")
    old = csr[5]
    csr[5] = "7.77"
    result["verdicts"] = ["csr is 7.77x faster: met"]
    path.write_text(json.dumps(result))
    text = make_results.render(docs_copy)
    assert "| csr | 11 | 8.6 | 0.0355 | 7.77 |" in text and "csr is 7.77x faster: met" in text
    assert f"| 0.0355 | {old} |" not in text
    path.unlink()
    text = make_results.render(docs_copy)
    assert "At the paper's DS2 size" not in text and "bench_inference_paper.md" not in text


def test_a_search_with_another_seed_follows_the_demo_search(docs_copy):
    import bench_lottery

    levels = "## Levels\n\n" + make_results.md_table(
        ["Level", "Remaining", "Dev WER", "Test WER", "random-prune test WER", "random-reinit test WER"],
        [["0", "100.0 %", "56.00 %", "69.00 %", "–", "–"],
         ["1 (extreme, best)", "80.0 %", "55.00 %", "68.00 %", "79.00 %", "81.00 %"]]) + "\n"
    demo = json.loads((docs_copy / "bench_lottery_demo.json").read_text())
    search = {"corpus_version": demo["conditions"]["corpus_version"],
              "prune_percent_per_level": demo["figures"]["prune_percent_per_level"],
              "strategy": results_io.pruning_strategy(demo), "rewind": results_io.rewind_point(demo)}
    seeds = [bench_lottery.seed_summary(4, "this run", bench_lottery.levels_table(results_io.parse_tables(levels), "x")),
             *bench_lottery.other_seeds([(0, docs_copy / "bench_lottery_demo.json")], 4, search)]
    section, verdict = bench_lottery.seeds_section(seeds, 0.01)
    page = docs_copy / "bench_lottery_demo_seed4.md"
    result = results_io.build_result(page, levels + "\n".join(section), verdicts=[verdict], figures={},
                                     conditions={"strategy": search["strategy"], "rewind": search["rewind"]},
                                     source={"command": "python bench/bench_lottery.py runs/lottery_x --seed-result 0=y"})
    (docs_copy / "bench_lottery_demo_seed4.json").write_text(json.dumps(result))
    text = make_results.render(docs_copy)
    head = "## The lottery search with another seed ([bench_lottery_demo_seed4.md](bench_lottery_demo_seed4.md))"
    assert text.index("## Lottery search (`make demo`") < text.index(head)
    assert "| 4 | this run | 56.00 / 69.00 % | 80.0 % | 55.00 / 68.00 % | 81.00 % / 79.00 % |" in text
    assert f"- {verdict}" in text
    assert "80.0 % (seed 4), " in verdict and " (seed 0); the sparsest level" in verdict  # seed 0: the demo page


def test_a_search_with_late_rewinding_follows_the_demo_search_with_it_beside(docs_copy):
    import bench_lottery

    levels = "## Levels\n\n" + make_results.md_table(
        ["Level", "Remaining", "Dev WER", "Test WER", "Test CER", "random-prune test WER", "random-reinit test WER"],
        [["0", "100.0 %", "56.00 %", "69.00 %", "26.00 %", "–", "–"],
         ["10 (extreme)", "10.7 %", "56.50 %", "68.50 %", "25.50 %", "79.00 %", "81.00 %"]]) + "\n"
    demo = json.loads((docs_copy / "bench_lottery_demo.json").read_text())
    page = docs_copy / "bench_lottery_demo_rewind1ep.md"
    markdown = (levels + "\nExtreme ticket at 10.7 %.\n\n"
                + "\n".join(bench_lottery.previous_section(demo, levels, 2, "bench_lottery_demo.json")))
    result = results_io.build_result(page, markdown, verdicts=["Extreme ticket at 10.7 %."], figures={},
                                     conditions={"rewind": "1ep", "strategy": results_io.pruning_strategy(demo)},
                                     source={"command": "python bench/bench_lottery.py x"})
    (docs_copy / "bench_lottery_demo_rewind1ep.json").write_text(json.dumps(result))
    text = make_results.render(docs_copy)
    head = ("## The lottery search rewound to the weights after 1 epoch (late rewinding), seed 0 "
            "([bench_lottery_demo_rewind1ep.md](bench_lottery_demo_rewind1ep.md))")
    assert text.index("## Lottery search (`make demo`") < text.index(head)
    mine = text[text.index(head):].split("\n## ", 1)[0]
    assert "| 10 (extreme) | 10.7 % | 56.50 % | 68.50 % | 25.50 % | 79.00 % | 81.00 % |" in mine
    assert "The search it is compared with (`bench_lottery_demo.json`)" in mine and "- Extreme ticket at 10.7 %." in mine
    theirs = next(t for t in demo["tables"] if t["section"] == "Levels")
    at = next(row for row in theirs["rows"] if row[theirs["headers"].index("Remaining")] == "10.7 %")
    assert at[theirs["headers"].index("Test WER")] in mine  # the theta_0 search's test WER at 10.7 %, beside ours
    assert "rewinding to theta_0 (the paper's)" in text.split(head)[0]


def test_a_late_rewinding_search_with_another_seed_shows_its_seeds_side_by_side(docs_copy):
    import bench_lottery

    levels = "## Levels\n\n" + make_results.md_table(
        ["Level", "Remaining", "Dev WER", "Test WER", "random-prune test WER", "random-reinit test WER"],
        [["0", "100.0 %", "56.00 %", "69.00 %", "–", "–"],
         ["1 (extreme, best)", "80.0 %", "55.00 %", "68.00 %", "79.00 %", "81.00 %"]]) + "\n"
    demo = json.loads((docs_copy / "bench_lottery_demo.json").read_text())
    late = {"rewind": "1ep", "strategy": results_io.pruning_strategy(demo)}  # only the rewind point differs
    seed0 = {**demo, "conditions": late}
    (docs_copy / "seed0.json").write_text(json.dumps(seed0))
    search = {"corpus_version": None, "prune_percent_per_level": seed0["figures"]["prune_percent_per_level"], **late}
    seeds = [bench_lottery.seed_summary(1, "this run", bench_lottery.levels_table(results_io.parse_tables(levels), "x")),
             *bench_lottery.other_seeds([(0, docs_copy / "seed0.json")], 1, search)]
    section, verdict = bench_lottery.seeds_section(seeds, 0.01)
    page = docs_copy / "bench_lottery_demo_rewind1ep_seed1.md"
    result = results_io.build_result(page, levels + "\n".join(section), verdicts=[verdict], figures={},
                                     conditions={**late, "seed": 1}, source={"command": "python bench/x.py"})
    (docs_copy / page.with_suffix(".json").name).write_text(json.dumps(result))
    text = make_results.render(docs_copy)
    head = ("## The lottery search rewound to the weights after 1 epoch (late rewinding), seed 1 "
            "([bench_lottery_demo_rewind1ep_seed1.md](bench_lottery_demo_rewind1ep_seed1.md))")
    mine = text[text.index(head):].split("\n## ", 1)[0]
    assert "The same preset, corpus and pruning rate as the search above, with seed 1;" in mine
    assert "| 1 | this run | 56.00 / 69.00 % | 80.0 % | 55.00 / 68.00 % | 81.00 % / 79.00 % |" in mine
    assert "Dev WER above each seed's own dense model" in mine and f"- {verdict}" in mine


def test_a_search_with_another_pruning_strategy_than_the_demos_is_a_variant_section(docs_copy):
    demo_path = docs_copy / "bench_lottery_demo.json"
    demo = json.loads(demo_path.read_text())
    demo_path.write_text(json.dumps({**demo, "conditions": {**demo["conditions"], "strategy": "lamp", "rewind": "0"}}))
    levels = "## Levels\n\n" + make_results.md_table(
        ["Level", "Remaining", "Dev WER", "Test WER", "random-prune test WER", "random-reinit test WER"],
        [["0", "100.0 %", "56.00 %", "69.00 %", "–", "–"],
         ["10 (extreme)", "10.7 %", "56.50 %", "68.50 %", "79.00 %", "81.00 %"]]) + "\n"
    for name, strategy in (("bench_lottery_demo_global_seed1.md", "global_magnitude"), ("bench_lottery_demo_seed1.md", "lamp")):
        page = docs_copy / name
        result = results_io.build_result(page, levels + "\nExtreme ticket at 10.7 %.\n", verdicts=["Extreme ticket at 10.7 %."],
                                         figures={}, conditions={"strategy": strategy, "seed": 1},
                                         source={"command": "python bench/x.py"})
        (docs_copy / page.with_suffix(".json").name).write_text(json.dumps(result))
    text = make_results.render(docs_copy)
    assert ("IMP with rewinding to theta_0 (the paper's), pruning by LAMP (layer-adaptive magnitude pruning of "
            "Lee et al.) with the layer-collapse guard") in text
    head = ("## The lottery search pruned by global magnitude (the paper's), seed 1 "
            "([bench_lottery_demo_global_seed1.md](bench_lottery_demo_global_seed1.md))")
    mine = text[text.index(head):].split("\n## ", 1)[0]
    assert ("The same preset, corpus and pruning rate as the search above, with seed 1; each level prunes by global "
            "magnitude (the paper's) instead of LAMP (layer-adaptive magnitude pruning of Lee et al.). Its page") in mine
    assert "theta_0 instead" not in mine and "| 10 (extreme) | 10.7 % | 56.50 % | 68.50 % | 79.00 % | 81.00 % |" in mine
    # the demo's own strategy with another seed is a seed section, before the variants
    seed_section = text.index("## The lottery search with another seed ([bench_lottery_demo_seed1.md]")
    assert seed_section < text.index(head)


def test_a_bench_on_an_earlier_demo_search_says_which_search_it_measured(docs_copy):
    history = docs_copy / make_results.HISTORY
    history.mkdir()
    demo = json.loads((docs_copy / "bench_lottery_demo.json").read_text())
    earlier = {**demo, "command": "python bench/bench_lottery.py runs/lottery_0123456789 --name demo",
               "conditions": {**demo["conditions"], "strategy": "global_magnitude"}}
    (history / "bench_lottery_demo_global.json").write_text(json.dumps(earlier))
    noise_path = docs_copy / "bench_noise.json"
    noise = json.loads(noise_path.read_text())
    before = make_results.render(docs_copy)
    noise_path.write_text(json.dumps({**noise, "command": "python bench/bench_noise.py --run runs/lottery_0123456789"}))
    text = make_results.render(docs_copy)
    said = ("run `lottery_0123456789`, an earlier `make demo` search than the one above, pruned by global magnitude "
            "(the paper's) ([history/bench_lottery_demo_global.json](history/bench_lottery_demo_global.json))")
    assert text.count(said) == 1 and said in text.split("## Noise")[1] and said not in before
    # the current demo run is no earlier search, even when an earlier page read a run of the same name
    (history / "bench_lottery_demo_same.json").write_text(json.dumps(demo))
    assert "an earlier `make demo` search" not in make_results.render(docs_copy).replace(said, "")


def test_check_mode_reports_a_stale_page(docs_copy, capsys):
    (docs_copy / "results.md").write_text(make_results.render(docs_copy))
    assert make_results.main(["--docs", str(docs_copy), "--check"]) == 0
    (docs_copy / "results.md").write_text(make_results.render(docs_copy).replace("| 18 / 18 |", "| 17 / 18 |"))
    assert make_results.main(["--docs", str(docs_copy), "--check"]) == 1
    assert "out of date" in capsys.readouterr().out


def test_demo_timings_appear_only_when_recorded(docs_copy, tmp_path):
    from types import SimpleNamespace

    from audio_lottery.demo import write_timings

    assert "None has been copied here yet" in make_results.render(docs_copy)
    run_dir = tmp_path / "runs" / "lottery_abc"
    run_dir.mkdir(parents=True)
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "corpus.json").write_text(json.dumps(
        {"settings": {"version": 7, "hours": 3.5, "seed": 0}, "splits": {"train": {"utterances": 2451, "hours": 3.5012}}}))
    cfg = SimpleNamespace(lottery=SimpleNamespace(levels=10), train=SimpleNamespace(threads=2))
    src = write_timings(run_dir, {"corpus": 98.46, "search": 3210.44, "branches": 640.2, "report": 12.1, "total": 3961.24},
                        data=tmp_path / "corpus", cfg=cfg, levels_done=0)
    timings = json.loads(src.read_text())
    assert timings["phases_s"]["total"] == 3961.2 and timings["corpus"] == {"train": {"utterances": 2451, "hours": 3.501}}
    assert timings["conditions"]["corpus_version"] == 7 and timings["conditions"]["train_threads"] == 2
    (docs_copy / "results.md").write_text("")
    assert make_results.main(["--docs", str(docs_copy), "--demo-timings", str(src)]) == 0
    text = (docs_copy / "results.md").read_text()
    assert "| total | 3961.2 |" in text and "| corpus synthesis | 98.5 |" in text and "train 2451 utterances (3.501 h)" in text
    assert "own wall time" not in text  # every level was trained by this invocation: the search phase is all of it
    assert "trained side by side" not in text  # branch_jobs defaults to 1: in turn
    assert results_io.untraced_numbers(text, _sources(docs_copy)) == []
    phases = {"corpus": None, "search": 2.5, "branches": 640.2, "report": 12.1, "total": 655.0}
    resumed = write_timings(run_dir, phases, data=tmp_path / "corpus", cfg=cfg, levels_done=10, levels_wall_s=3677.04)
    assert make_results.main(["--docs", str(docs_copy), "--demo-timings", str(resumed)]) == 0
    text = (docs_copy / "results.md").read_text()
    assert "| corpus synthesis | – (present) |" in text and "| real-speech test preparation | – |" in text
    assert "levels already finished when the demo started: 10" in text
    assert "included (from each level's result): 3677.0 s" in text
    assert results_io.untraced_numbers(text, _sources(docs_copy)) == []
    together = write_timings(run_dir, phases, data=tmp_path / "corpus", cfg=cfg, levels_done=10, branch_jobs=2)
    assert make_results.main(["--docs", str(docs_copy), "--demo-timings", str(together)]) == 0
    assert "trained side by side, 2 processes sharing the training threads" in (docs_copy / "results.md").read_text()


def test_parse_tables_reads_what_md_table_writes():
    from quick import md_table

    text = "# A\n\nintro\n\n## Speed\n\n" + md_table(["x", "y"], [["1", "**2.50**"], ["b", ""]]) + "\n\ntext | not a table\n"
    assert results_io.parse_tables(text) == [{"section": "Speed", "headers": ["x", "y"], "rows": [["1", "2.50"], ["b", ""]]}]


def test_beside_previous_matches_rows_by_their_first_cell():
    from quick import md_table

    previous = {"tables": results_io.parse_tables(md_table(["Level", "Remaining", "Test WER"],
                                                           [["0", "100 %", "81 %"], ["1", "80 %", "76 %"]]))}
    now = md_table(["Level", "Remaining", "Test WER", "Dev WER"], [["0", "100 %", "60 %", "50 %"], ["2", "64 %", "58 %", "49 %"]])
    merged = results_io.parse_tables(results_io.beside_previous(previous, now, "Level", ["Test WER", "Dev WER"]))[0]
    assert merged["headers"] == ["Level", "Test WER (before)", "Test WER (now)", "Dev WER (before)", "Dev WER (now)"]
    assert merged["rows"] == [["0", "81 %", "60 %", "–", "50 %"], ["2", "–", "58 %", "–", "49 %"]]
    with pytest.raises(KeyError, match="Level"):
        results_io.beside_previous({"tables": []}, now, "Level", ["Test WER"])


def test_beside_previous_can_pair_rows_by_another_column():
    from quick import md_table

    previous = {"tables": results_io.parse_tables(md_table(["Level", "Remaining", "Test WER"],
                                                           [["2", "64.0 %", "75 %"], ["4 (best)", "41.0 %", "74 %"]]))}
    now = md_table(["Level", "Remaining", "Test WER"], [["1", "64.0 %", "60 %"], ["2 (best)", "41.0 %", "59 %"],
                                                        ["3", "26.2 %", "61 %"]])
    merged = results_io.parse_tables(results_io.beside_previous(previous, now, "Level", ["Level", "Test WER"],
                                                                match="Remaining"))[0]
    assert merged["headers"] == ["Remaining", "Level (before)", "Level (now)", "Test WER (before)", "Test WER (now)"]
    assert merged["rows"] == [["64.0 %", "2", "1", "75 %", "60 %"], ["41.0 %", "4 (best)", "2 (best)", "74 %", "59 %"],
                              ["26.2 %", "–", "3", "–", "61 %"]]


def test_write_page_writes_the_json_beside_the_page(tmp_path):
    page = tmp_path / "bench_demo_thing.md"
    md = "# T\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- **target met** at 1.5x\n"
    with pytest.raises(ValueError, match="not on the page"):
        results_io.write_page(page, md, verdicts=["target not met"])
    assert page.read_text() == md and not results_io.result_path(page).exists()  # the run's page survives
    data = {"speedup": 1.5, "target": 1.2, "met": True}
    path = results_io.write_page(page, md, verdicts=["- target met at 1.5x"], figures={"x": "1.5"},
                                 conditions={"torch_threads": 3}, data=data)
    result = json.loads(path.read_text())
    assert result["data"] == data and result["data"]["met"] is True
    assert path == tmp_path / "bench_demo_thing.json" and page.read_text() == md
    assert result["key"] == "demo_thing" and result["imported"] is False and result["verdicts"] == ["target met at 1.5x"]
    assert result["tables"][0]["rows"] == [["1", "2"]] and result["conditions"]["torch_threads"] == 3
    assert result["conditions"]["date"] and result["conditions"]["machine"] and "python" in result["command"]
    # a bold "Result:" line is found on the page by itself; passing it too keeps it once
    md += "\n**Result: 2 of 3 met.**\n"
    again = json.loads(results_io.write_page(page, md, verdicts=["Result: 2 of 3 met."]).read_text())
    assert again["verdicts"] == ["Result: 2 of 3 met."]


def test_import_parses_verdicts_figures_and_conditions(tmp_path):
    page = tmp_path / "bench_lm.md"
    page.write_text("# LM\n\nMeasured 2031-02-03 on 2 CPU cores (x86_64), 1 torch thread, by `python bench/bench_lm.py --x`.\n\n"
                    "test: 9 utterances (1.5 min of audio).\n\n| decoder | test WER |\n|---|---|\n| greedy | 0.5 |\n\n"
                    "Acoustic model forward pass: 0.0044 (batched).\n3.5% of the test words are not in the training vocabulary.\n\n"
                    "**Result: the LM lowers test WER: 0.5 -> 0.4 (-0.1).**\n")
    result = import_pages.import_page(page)
    assert result["imported"] is True and result["imported_from"] == "bench_lm.md"
    assert result["verdicts"] == ["Result: the LM lowers test WER: 0.5 -> 0.4 (-0.1)."]
    assert result["figures"] == {"acoustic_rtf": "0.0044", "test_oov_words_pct": "3.5", "test_minutes": "1.5"}
    cond = result["conditions"]
    assert (cond["date"], cond["cpu_cores"], cond["torch_threads"], cond["machine"]) == ("2031-02-03", "2", "1", "x86_64")
    assert result["command"] == "python bench/bench_lm.py --x"
    page.write_text(page.read_text().replace("Acoustic model forward pass", "Acoustic pass"))
    with pytest.raises(ValueError, match="acoustic_rtf"):
        import_pages.import_page(page)


# Pages that are not bench pages state no measured number either: each number of their prose is
# held by a bench result their section mentions (a link to bench_<name>.md), or it is one of these
# configuration facts (defaults, thresholds, preset sizes from `audio-lottery info`, the paper's
# own facts), each written as the phrase it appears in so that it vouches for nothing else.
# Commands and code (fenced blocks, `spans`) are literal input, not claims, and are not checked.
# docs/architecture.md is left out while it is being rewritten (layers and paths, no figures).
CONFIG_FACTS: dict[str, list[str]] = {
    "README.md": [
        "ICLR 2022", "Python 3.11", "torch 2.13.0",  # the paper's year; the supported versions
        "(3.5 h of training audio by default)", "10 levels, each pruning 20 % of the remaining weights (0.8^10 = 10.7 %",
        "fits ~90 minutes on 2 cores", "every level, ~2 h more",  # the demo preset and its branches
        "rank 0", "(level 0)", "prune 20 %", "0.8^k", "exactly 0",  # the protocol's definition
        "default 0.005; 0.01 for the CPU presets", "(0 = the paper's rule; the CPU presets use 0.02)",  # defaults
        "(3-6 overlapping talkers", "at most 10 s",  # noise preparation settings
        "Lee et al. 2021",  # the LAMP paper's year
        "at most 25 MB in all", "more than 0.2 WER points worse",  # shipped tickets: the size and accuracy checks
    ],
    "docs/robustness.md": [
        "level 0", "level 1", "level 2", "theta_0",  # names of levels in the kill matrix
        "(peak < 1e-4)", "Exit status 0 when training would start, 1 otherwise", "status 1",  # thresholds, exit codes
        "25-40 examples per property", "(0 to 8,000 samples)", "(silence to 1e4)", "give 0", "T = 1",  # test settings
        "2^31 elements",  # bundle_check.MAX_ELEMENTS
    ],
    "docs/distributed.md": [
        "exactly 2 nodes", "accepts 1 to 4", "rank 0", "Rank 0", "180 minutes", "exactly 0",  # torchrun options, defaults
        "2 processes x 1 thread and 1 process",  # the compared set-ups
        "within 1e-4 relative", "within 2e-5", "after 3 AdamW steps at least 99.9 %", "1e-5 + 1e-4 |w|",  # test tolerances
        "One process with 1 vs 2",
    ],
    "docs/augment.md": [
        "(Jaitly and Hinton, 2013)", "8 kHz", "255 levels", "4th-order", "0.6 x Nyquist",  # the methods' constants
        "at least 3 points", "20 minutes of training each by default",  # the ablation's settings
    ],
    "docs/structured.md": [
        "1 row x 4 columns", "1x4", "default 2:4", "<= 50 %", "with 20 % of the remainder",  # structure defaults
        "1 bit per position", "2-D view", "opset 17", "from 512", "<= 20 % density", "1/remaining",  # formats, policy
        "at 1 and 2 threads and\nbatch 1 and 16",  # the bench's settings
        "8 epochs in bfloat16",  # the demo preset's recipe (configs/ds2_demo.yaml)
        "Lee et al. 2021",  # the LAMP paper's year
    ],
}
# bench pages are generated with their JSON (tested above); the corpus page is one of them now
NON_BENCH_PAGES = ["README.md", "docs/robustness.md", "docs/distributed.md", "docs/structured.md", "docs/augment.md"]
# whole sections that only describe configuration: the preset table (sizes from `audio-lottery info`)
CONFIG_SECTIONS = {"README.md": ["## Presets (`configs/`)"]}


def _without_sections(text: str, headings: list[str]) -> str:
    parts = re.split(r"(?m)^(?=## )", text)
    return "".join(p for p in parts if not any(p.startswith(h) for h in headings))


@pytest.mark.parametrize("name", NON_BENCH_PAGES)
def test_every_number_in_the_other_docs_comes_from_a_result_or_is_a_configuration_fact(name):
    text = (ROOT / name).read_text()
    facts = CONFIG_FACTS[name]
    assert [f for f in facts if f not in text] == [], f"{name}: stale CONFIG_FACTS entries"
    for heading in CONFIG_SECTIONS.get(name, []):
        assert heading in text, f"{name}: no section {heading!r}"
    text = _without_sections(text, CONFIG_SECTIONS.get(name, []))
    assert results_io.untraced_numbers(text, _sources(DOCS), facts) == [], \
        f"{name}: numbers no bench result holds; link the bench page that measured them or drop them"


def test_the_docs_check_finds_a_measured_number_outside_the_benches():
    text = (ROOT / "docs" / "robustness.md").read_text()
    planted = text.replace("its cost grows with the\ncorpus", "it runs at 3,500x real time,\nits cost grows with the corpus")
    assert results_io.untraced_numbers(planted, _sources(DOCS), CONFIG_FACTS["docs/robustness.md"]) == ["3,500"]
    # a configuration fact vouches only for its own phrase, not for the same number elsewhere
    moved = text + "\nThe demo took 180 minutes.\n"
    assert results_io.untraced_numbers(moved, _sources(DOCS), CONFIG_FACTS["docs/robustness.md"]) == ["180"]


def test_thread_counts_a_page_states_in_digits_or_in_words():
    assert results_io.stated_conditions("trained on 2 torch threads", [])["torch_threads"] == "2"
    assert results_io.stated_conditions("8 min of training on one thread, scored after", [])["torch_threads"] == "1"
    assert results_io.stated_conditions("processes at one thread each; the rest at 2 threads", [])["torch_threads"] == "1,2"
    assert results_io.stated_conditions("someone threaded it", [])["torch_threads"] is None


def test_commits_and_commands_vouch_for_no_number():
    result = {"command": "python bench/bench_x.py --seed 1234", "conditions": {"commit": "56d0cdd5fe", "date": "2031-02-03"},
              "tables": [{"rows": [["7.5"]]}]}
    assert results_io.numbers_in(result) == {"2031-02-03", "7.5"}


def test_a_bench_stops_on_a_fallback(tmp_path):
    """Every bench imports results_io, which makes each FallbackWarning an error."""
    import subprocess

    assert not results_io.is_bench_process(sys.argv[0])  # importing it here changed no filter
    code = (f"import sys; sys.argv[0] = {str(ROOT / 'bench' / 'bench_x.py')!r}\n"
            "import warnings, results_io\nfrom audio_lottery.fallbacks import DiscountFallbackWarning\n"
            "warnings.warn('order 1: fallback', DiscountFallbackWarning)\nprint('went on')\n")
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT / 'bench'}"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path, check=False)
    assert done.returncode != 0 and "DiscountFallbackWarning: order 1: fallback" in done.stderr
    assert "went on" not in done.stdout
    benches = sorted((ROOT / "bench").glob("bench_*.py")) + [ROOT / "bench" / "gpu_check.py"]
    assert [b.name for b in benches if "from results_io import" not in b.read_text()] == []


def test_typed_data_of_the_benches_that_write_it():
    parity = json.loads((DOCS / "bench_whisper_parity.json").read_text())["data"]
    assert isinstance(parity["exact_match"], float) and isinstance(parity["targets"]["met"], bool)
    assert set(parity["wer"]) == {"faster_whisper", "project_30s", "project_cut"}
    assert parity["wer_gap_30s_vs_faster_whisper"] == pytest.approx(
        abs(parity["wer"]["project_30s"] - parity["wer"]["faster_whisper"]))
    assert parity["targets"]["met"] == (parity["exact_match"] >= parity["targets"]["exact_match"]
                                        and parity["wer_gap_30s_vs_faster_whisper"] <= parity["targets"]["wer_gap"])
    corpus = json.loads((DOCS / "bench_asterisk_corpus.json").read_text())
    data = corpus["data"]
    assert data["kept"] == sum(s["utterances"] for s in data["splits"].values())
    kept = f"Kept {data['kept']} utterances ({data['minutes']} min), dropped {sum(data['dropped'].values())}."
    assert corpus["verdicts"] == [kept]


def test_a_page_names_paths_inside_the_repository_relative_to_its_root(tmp_path):
    page = tmp_path / "bench_demo_paths.md"
    inside, outside = results_io.ROOT / "data" / "asterisk" / "test.jsonl", tmp_path / "other.jsonl"
    md = f"# T\n\nReal-speech test ({inside}, 97 utterances) and {outside}.\n\n- scored {inside}: 98.3 %\n"
    path = results_io.write_page(page, md, verdicts=[f"- scored {inside}: 98.3 %"])
    assert page.read_text() == ("# T\n\nReal-speech test (data/asterisk/test.jsonl, 97 utterances) and "
                                f"{outside}.\n\n- scored data/asterisk/test.jsonl: 98.3 %\n")
    assert json.loads(path.read_text())["verdicts"] == ["scored data/asterisk/test.jsonl: 98.3 %"]


def test_conditions_name_the_processor_when_the_result_does():
    base = {"page": "docs/bench_x.md", "command": "python bench/bench_x.py",
            "conditions": {"date": "2031-02-03", "machine": "x86_64", "cpu_cores": 2, "torch_threads": 2}}
    assert "2031-02-03; x86_64, 2 cores; threads 2." in make_results.conditions_text(base)
    base["conditions"]["cpu"] = "AMD EPYC"
    assert "2031-02-03; x86_64 (AMD EPYC), 2 cores; threads 2." in make_results.conditions_text(base)
