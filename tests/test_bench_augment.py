"""bench/bench_augment.py: its arms, means over seeds, differences from none and the 3-point verdict."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_augment as ba  # noqa: E402

from conftest import TINY_CONFIG  # noqa: E402


def _run(test_wer: float, held_wer: float | None = None, ast_wer: float | None = None) -> dict:
    out = {"test": {"wer": test_wer, "cer": test_wer / 2}}
    out["held_out"] = None if held_wer is None else {"wer": held_wer, "cer": held_wer / 2}
    if ast_wer is not None:
        out["asterisk"] = {"wer": ast_wer, "cer": ast_wer / 2}
    return out


def test_means_and_differences_are_in_points_against_none():
    summary = ba.summarise({"none": [_run(0.60, 0.80, 0.95), _run(0.64, 0.84, 0.97)],
                            "speed": [_run(0.55, 0.74, 0.96), _run(0.57, 0.76, 0.98)]})
    assert summary["none"]["test_wer"] == pytest.approx(62.0)
    assert summary["speed"]["diff"]["test_wer"] == pytest.approx(-6.0)
    assert summary["speed"]["diff"]["held_out_wer"] == pytest.approx(-7.0)
    assert summary["speed"]["diff"]["asterisk_wer"] == pytest.approx(1.0)
    assert summary["speed"]["seeds"] == 2 and summary["none"]["diff"]["test_wer"] == 0


@pytest.mark.parametrize("diffs,expected", [
    ({"test_wer": -2.9, "held_out_wer": 2.9}, "no difference"),  # below the threshold both ways
    ({"test_wer": -3.0, "held_out_wer": 1.0}, "helps"),
    ({"test_wer": 4.0, "asterisk_wer": -1.0}, "hurts"),
    ({"test_wer": -5.0, "asterisk_wer": 3.5}, "mixed"),
    ({"test_wer": None, "held_out_wer": -4.0}, "helps"),  # a set that is missing does not count
    ({"test_wer": -3.2, "asterisk_wer": 2.96}, "mixed"),  # shown as +3.0 on the page: it counts
    ({"test_wer": -3.2, "asterisk_wer": 2.94}, "helps"),  # shown as +2.9
])
def test_only_differences_of_three_points_count(diffs, expected):
    assert ba.verdict({"diff": diffs}) == expected


def test_every_arm_switches_on_only_its_own_augmentation():
    data = [f"data.{s}_manifest=/x/{s}.jsonl" for s in ("train", "dev", "test")]
    cfgs = {arm: ba.arm_config(TINY_CONFIG, arm, 1, data, 0.5, []) for arm in ba.ARMS}
    none = cfgs["none"].data.augment
    assert (none.freq_masks, none.time_masks, none.speed_prob, none.vtlp_prob, none.reverb_prob,
            none.telephone_prob, none.noise_prob) == (0, 0, 0.0, 0.0, 0.0, 0.0, 0.0)
    assert cfgs["speed"].data.augment.speed_prob == 1.0 and cfgs["reverb"].data.augment.reverb_prob == 0.5
    assert cfgs["specaugment"].data.augment.freq_masks == 1 and cfgs["telephone"].data.augment.telephone_prob == 0.5
    for arm, cfg in cfgs.items():
        changed = {k for k, v in vars(cfg.data.augment).items() if v != getattr(none, k)}
        assert arm == "none" or changed, arm
        assert cfg.train.seed == 1 and cfg.train.max_minutes == 0.5 and cfg.model == cfgs["none"].model
    folders = {ba.run_dir(Path("/r"), arm, 1, cfg).name for arm, cfg in cfgs.items()}
    assert len(folders) == len(cfgs)  # each arm its own, resumable folder


@pytest.mark.parametrize("seeds,minutes,preliminary", [([0], 20.0, True), ([0, 1], 10.0, True), ([0, 1], 20.0, False)])
def test_the_verdict_names_seeds_and_minutes_and_marks_a_short_ablation(seeds, minutes, preliminary):
    from argparse import Namespace

    scores = {"none": [_run(0.60, 0.80)] * len(seeds), "speed": [_run(0.55, 0.74)] * len(seeds)}
    setup = {"command": "python bench/bench_augment.py", "config": "ds2_small.yaml", "jobs": 1, "threads": 2,
             "test_utterances": 10,
             "held_out_utterances": 5, "asterisk": "not prepared"}
    page = ba.markdown(ba.summarise(scores), scores, Namespace(seeds=seeds, minutes=minutes), setup)
    result = page.strip().splitlines()[-1]
    assert result.startswith(f"**Result: with {len(seeds)} seed(s) of {minutes:g} min per run, keep speed")
    assert ("Preliminary" in result) is preliminary


def test_none_switches_off_what_the_preset_itself_switches_on():
    """ds2_small switches SpecAugment and VTLP on; the ablation's baseline has neither."""
    data = [f"data.{s}_manifest=/x/{s}.jsonl" for s in ("train", "dev", "test")]
    preset = ROOT / "configs" / "ds2_small.yaml"
    none = ba.arm_config(preset, "none", 0, data, 20.0, []).data.augment
    probs = {k: v for k, v in vars(none).items() if k.endswith(("_prob", "_masks"))}
    assert probs and set(probs.values()) == {0}
    assert ba.arm_config(preset, "speed", 0, data, 20.0, []).data.augment.speed_prob == 1.0
    assert ba.arm_config(preset, "speed", 0, data, 20.0, []).data.augment.vtlp_prob == 0.0


@pytest.mark.slow
def test_runs_side_by_side_are_the_runs_one_at_a_time_reuses(tiny_corpus, tmp_path):
    """--jobs 2 trains two arms at one thread each; a later --jobs 1 call finds both finished (the
    thread count is not part of a run's identity) and writes the same scores on its page."""
    common = ["--config", str(TINY_CONFIG), "--data", str(tiny_corpus), "--asterisk", "", "--arms", "none,speed",
              "--seeds", "0", "--minutes", "5", "--set", "train.epochs=1", "--runs", str(tmp_path / "runs")]
    ba.main([*common, "--jobs", "2", "--doc", str(tmp_path / "side_by_side.md")])
    runs = sorted(p for p in (tmp_path / "runs").iterdir() if p.is_dir())
    assert [p.name.split("-")[0] for p in runs] == ["none", "speed"]
    finished = {p: (p / "result.json").stat().st_mtime_ns for p in runs}
    ba.main([*common, "--jobs", "1", "--doc", str(tmp_path / "in_turn.md")])
    assert {p: (p / "result.json").stat().st_mtime_ns for p in runs} == finished  # nothing trained again
    side, turn = ((tmp_path / n).read_text() for n in ("side_by_side.md", "in_turn.md"))
    assert "2 runs side by side at 1 torch thread each" in side and "one run at a time at" in turn
    assert side.split("Error rates")[1] == turn.split("Error rates")[1]
