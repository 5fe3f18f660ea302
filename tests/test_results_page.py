"""docs/results.md is generated from the bench result JSON and cannot drift from it."""

from __future__ import annotations

import json
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
    assert results_io.untraced_numbers(text, _sources(docs_copy)) == []


def test_parse_tables_reads_what_md_table_writes():
    from quick import md_table

    text = "# A\n\nintro\n\n## Speed\n\n" + md_table(["x", "y"], [["1", "**2.50**"], ["b", ""]]) + "\n\ntext | not a table\n"
    assert results_io.parse_tables(text) == [{"section": "Speed", "headers": ["x", "y"], "rows": [["1", "2.50"], ["b", ""]]}]


def test_write_page_writes_the_json_beside_the_page(tmp_path):
    page = tmp_path / "bench_demo_thing.md"
    md = "# T\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- **target met** at 1.5x\n"
    with pytest.raises(ValueError, match="not on the page"):
        results_io.write_page(page, md, verdicts=["target not met"])
    assert not page.exists()
    path = results_io.write_page(page, md, verdicts=["- target met at 1.5x"], figures={"x": "1.5"},
                                 conditions={"torch_threads": 3})
    result = json.loads(path.read_text())
    assert path == tmp_path / "bench_demo_thing.json" and page.read_text() == md
    assert result["key"] == "demo_thing" and result["imported"] is False and result["verdicts"] == ["target met at 1.5x"]
    assert result["tables"][0]["rows"] == [["1", "2"]] and result["conditions"]["torch_threads"] == 3
    assert result["conditions"]["date"] and result["conditions"]["machine"] and "python" in result["command"]


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
