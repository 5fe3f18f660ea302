"""Ticket selection (dev only) and the lottery run report on a fake run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from audio_lottery.lottery.report import load_run, write_report
from audio_lottery.lottery.tickets import level_results, matches_dense, select_tickets
from audio_lottery.pruning import Mask, global_magnitude

DEV = [0.200, 0.195, 0.190, 0.198, 0.204, 0.210, 0.300]
TEST = [0.210, 0.205, 0.200, 0.207, 0.212, 0.220, 0.100]  # level 6 has the lowest *test* WER: must not matter


def _results(dev: list[float] = DEV, test: list[float] = TEST) -> list[dict]:
    return [
        {"level": lv, "remaining": 0.8**lv, "dev_wer": d, "test_wer": t}
        for lv, (d, t) in enumerate(zip(dev, test))
    ]


# ----------------------------------------------------------------- select_tickets


def test_extreme_and_best() -> None:
    out = select_tickets(_results(), tolerance=0.005)
    assert out["dense"]["level"] == 0
    assert out["extreme"]["level"] == 4  # 0.204 <= 0.200 + 0.005, sparsest such level
    assert out["best"]["level"] == 2


def test_selection_ignores_test_wer() -> None:
    shuffled = _results(test=[0.5, 0.01, 0.9, 0.02, 0.8, 0.03, 0.0])
    a, b = select_tickets(_results(), 0.005), select_tickets(shuffled, 0.005)
    assert (a["extreme"]["level"], a["best"]["level"]) == (b["extreme"]["level"], b["best"]["level"])


def test_no_match_and_boundary() -> None:
    out = select_tickets(_results(dev=[0.1, 0.2, 0.3]), tolerance=0.0)
    assert out["extreme"] is None and out["best"]["level"] == 1
    exact = select_tickets(_results(dev=[0.1, 0.105, 0.2]), tolerance=0.005)
    assert exact["extreme"]["level"] == 1  # 0.1 + 0.005 in floating point still matches
    assert matches_dense(0.105, 0.1, 0.005) and not matches_dense(0.1051, 0.1, 0.005)  # the rule select_tickets applies


def test_best_tie_prefers_sparser_and_order_independent() -> None:
    res = _results(dev=[0.2, 0.15, 0.15, 0.3])
    assert select_tickets(res, 0.0)["best"]["level"] == 2
    assert select_tickets(res[::-1], 0.0)["best"]["level"] == 2


def test_dense_only_and_missing_values() -> None:
    out = select_tickets([{"level": 0, "remaining": 1.0, "dev_wer": 0.2, "test_wer": 0.2}], 0.01)
    assert out["extreme"] is None and out["best"] is None
    res = _results()[:3] + [{"level": 3, "remaining": 0.5, "dev_wer": None, "test_wer": 0.1}]
    assert select_tickets(res, 0.01)["extreme"]["level"] == 2
    with pytest.raises(ValueError, match="dense"):
        select_tickets(_results()[1:], 0.01)


# ----------------------------------------------------------------- report


def _write_level(folder: Path, level: int, branch: str, dev: float, test: float, mask: Mask | None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    result = {
        "level": level, "branch": branch, "remaining": 0.8**level, "nonzero_params": int(5000 * 0.8**level) + 300,
        "prunable_params": 5000, "total_params": 5300, "macs_per_second": 2.5e6 * 0.8**level,
        "dev_wer": dev, "dev_cer": dev / 2, "test_wer": test, "test_cer": test / 2,
        "train_seconds": 95.0 + level, "epochs": 2,
    }
    (folder / "result.json").write_text(json.dumps(result))
    lines = [{"step": s, "epoch": s // 10, "loss": 3.0 / (s + 1), "lr": 1e-3} for s in range(0, 20, 5)]
    lines += [{"epoch": e, "dev_wer": dev + 0.1 / (e + 1), "dev_cer": dev / 2} for e in range(2)]
    (folder / "train").mkdir(exist_ok=True)
    (folder / "train" / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    if mask is not None:
        mask.save(folder / "mask.safetensors")


def _fake_run(root: Path) -> Path:
    run = root / "lottery_abc123" / "replicate_0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("lottery:\n  levels: 6\n  match_tolerance: 0.005\n")
    torch.manual_seed(0)
    weights = {
        "conv.weight": torch.randn(4, 1, 3, 3),
        "rnn.weight_ih_l0": torch.randn(32, 20),
        "fc.weight": torch.randn(5, 16),
    }
    mask = Mask.ones_like(weights)
    for lv in range(7):
        _write_level(run / f"level_{lv}", lv, "imp", DEV[lv], TEST[lv], mask)
        for name, worse in (("random-reinit", 0.02), ("random-prune", 0.05)):
            if lv > 0:
                dev, test = DEV[lv] + worse * lv, TEST[lv] + worse * lv
                _write_level(run / f"branch_{name}" / f"level_{lv}", lv, name, dev, test, None)
        mask = global_magnitude(weights, mask, 0.2)
    return run


def test_level_results_by_level_finished_only(tmp_path: Path) -> None:
    """Levels keyed by number (level_10 after level_9, not after level_1); a level without result.json is
    skipped; a RunLayout or a path gives the same."""
    from audio_lottery.layout import RunLayout

    for level in (0, 1, 9, 10):
        folder = tmp_path / f"level_{level}"
        folder.mkdir()
        (folder / "result.json").write_text(json.dumps({"level": level, "dev_wer": 0.5 + level / 100}))
    (tmp_path / "level_11").mkdir()  # unfinished: no result yet
    found = level_results(tmp_path)
    assert list(found) == [0, 1, 9, 10]
    assert found[10]["dev_wer"] == pytest.approx(0.6)
    assert level_results(RunLayout(tmp_path)) == found
    assert level_results(tmp_path / "missing") == {}


def test_report_files_lines_and_plots(tmp_path: Path) -> None:
    run = _fake_run(tmp_path)
    md_path, html_path = write_report(run)
    assert md_path == run / "report.md" and html_path == run / "report.html"
    md, page = md_path.read_text(), html_path.read_text()
    extreme = next(line for line in md.splitlines() if "**Extreme ticket**" in line)
    assert "level 4" in extreme and "41.0 %" in extreme and "test WER 21.20 %" in extreme
    best = next(line for line in md.splitlines() if "**Best ticket**" in line)
    assert "level 2" in best and "64.0 %" in best and "dev WER 19.00 %" in best
    assert "**Dense:** dev WER 20.00 %, test WER 21.00 %." in md
    assert "| 4 (extreme) | 41.0 % |" in md and "| 2 (best) |" in md
    assert "random-reinit dev WER" in md and "random-prune test WER" in md
    assert "**Branch random-reinit** at level 4" in md
    for name in ("wer.png", "density.png", "training.png"):
        png = run / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"(plots/{name})" in md
    assert page.count("data:image/png;base64,") == 3
    assert "<b>Extreme ticket</b>" in page and "plots/" not in page  # self-contained
    assert "Notes" not in md
    density = md[md.index("## Density of each pruned tensor by level (%)"):]
    assert "| Tensor | L0 (100.0 %) | L1 (80.0 %) |" in density and "| L6 (26.2 %) |" in density
    conv = next(line for line in density.splitlines() if line.startswith("| conv.weight |")).strip(" |").split(" | ")
    stored = json.loads((run / "level_6" / "mask.json").read_text())["tensors"]["conv.weight"]["density"]
    assert conv[1] == "100.0" and conv[-1] == f"{100 * stored:.1f}" and stored < 0.5


def test_report_tolerance_from_argument_and_config(tmp_path: Path) -> None:
    run = _fake_run(tmp_path)
    md = write_report(run, tolerance=0.0)[0].read_text()
    assert "| 3 (extreme) |" in md
    (run / "config.yaml").write_text("lottery:\n  match_tolerance: 0.02\n")
    md = write_report(run)[0].read_text()
    assert "| 5 (extreme) |" in md


def test_report_tolerates_missing_parts(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "level_0").mkdir(parents=True)
    (run / "level_0" / "result.json").write_text(json.dumps({"level": 0, "remaining": 1.0, "dev_wer": 0.3}))
    (run / "level_1" / "train").mkdir(parents=True)  # unfinished level: metrics only
    (run / "level_1" / "train" / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\nnot json\n')
    (run / "branch_odd name" / "level_1").mkdir(parents=True)
    (run / "branch_odd name" / "level_1" / "result.json").write_text("{broken")
    md_path, html_path = write_report(run)
    md = md_path.read_text()
    assert "**Extreme ticket**" in md and "none" in md.split("**Extreme ticket**")[1].splitlines()[0]
    assert "## Notes" in md and "config.yaml: missing" in md and "unreadable" in md
    assert (run / "plots" / "wer.png").is_file() and (run / "plots" / "training.png").is_file()
    assert not (run / "plots" / "density.png").exists()
    assert "odd name dev WER" in md
    assert load_run(run).imp[1].result is None


def test_report_on_empty_and_missing_folder(tmp_path: Path) -> None:
    md_path, _ = write_report(tmp_path)
    assert "no finished dense" in md_path.read_text()
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "nope")


def test_report_of_some_branches_into_another_folder(tmp_path: Path) -> None:
    run = _fake_run(tmp_path)
    _write_level(run / "branch_retrain-noise-low" / "level_4", 4, "retrain", 0.5, 0.6, None)
    write_report(run)
    out = tmp_path / "page"
    md = write_report(run, branches=lambda name: name == "random-prune", out_dir=out)[0].read_text()
    assert "random-prune test WER" in md and "random-reinit" not in md and "retrain-noise-low" not in md
    assert (out / "plots" / "wer.png").is_file()
    assert "retrain-noise-low test WER" in (run / "report.md").read_text()  # the run's own report keeps all
