"""End-to-end: a two-level lottery run on the tiny preset, a kill mid-level, branches and the report."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from audio_lottery.config import load_config
from audio_lottery.files import load_tensors, read_json
from audio_lottery.lottery import BRANCHES
from audio_lottery.lottery.branches import BranchJob, branch_dir, run_branch, run_branches
from audio_lottery.lottery.runner import run_lottery
from audio_lottery.pruning.mask import Mask

from conftest import TINY_CONFIG, assert_starts_from, recorded_starts, tiny_overrides

CLI = [sys.executable, "-m", "audio_lottery.cli", "-q"]


@pytest.fixture(scope="module")
def lottery(tiny_corpus, tmp_path_factory) -> tuple[Path, dict]:
    """A two-level run and the weights each of its trainings started from (by train folder)."""
    cfg = load_config(TINY_CONFIG, tiny_overrides(tiny_corpus))
    with recorded_starts() as starts:
        run = run_lottery(cfg, tmp_path_factory.mktemp("runs"), progress=False)
    return run, starts


@pytest.fixture(scope="module")
def lottery_run(lottery) -> Path:
    return lottery[0]


def test_levels_follow_the_schedule(lottery_run):
    assert lottery_run.name.startswith("lottery_")
    for level in (0, 1, 2):
        res = read_json(lottery_run / f"level_{level}" / "result.json")
        assert res["remaining"] == pytest.approx(0.8**level, abs=1e-3)
        assert {"dev_wer", "test_wer", "dev_cer", "test_cer", "nonzero_params", "macs_per_second"} <= res.keys()
    m1 = Mask.load(lottery_run / "level_1" / "mask.safetensors")
    m2 = Mask.load(lottery_run / "level_2" / "mask.safetensors")
    for name in m2.keys():
        assert not (m2[name] & ~m1[name]).any(), "a level revived a weight pruned before"
    assert (lottery_run / "level_2" / "mask.json").is_file()


def _start_events(train_dir: Path) -> list[dict]:
    lines = [json.loads(x) for x in (train_dir / "metrics.jsonl").read_text().splitlines()]
    return [x for x in lines if x.get("event") == "start"]


def test_trained_ticket_keeps_pruned_weights_zero_and_rewinds_to_theta0(lottery):
    lottery_run, starts = lottery
    init = load_tensors(lottery_run / "init.safetensors")
    assert_starts_from(starts[(lottery_run / "level_0" / "train").resolve()], init, {})  # dense from theta_0
    for level in (1, 2):
        mask = Mask.load(lottery_run / f"level_{level}" / "mask.safetensors")
        weights = load_tensors(lottery_run / f"level_{level}" / "train" / "best.safetensors")
        for name, keep in mask.items():
            assert (weights[name][~keep] == 0).all()
        # every level started exactly from theta_0 with its mask applied, element by element ...
        start = starts[(lottery_run / f"level_{level}" / "train").resolve()]
        assert_starts_from(start, init, mask)
        # ... and then trained: every kept prunable tensor moved
        assert all(not torch.equal(weights[name], start[name]) for name in mask.keys()), level


def test_branches_and_report(lottery_run):
    with recorded_starts() as starts:
        for name in ("random-reinit", "random-prune"):
            out = run_branch(name, lottery_run, levels=[2], progress=False)
            res = read_json(out / "level_2" / "result.json")
            assert res["branch"] == name and res["remaining"] == pytest.approx(0.64, abs=1e-3)
    rp = Mask.load(lottery_run / "branch_random-prune" / "level_2" / "mask.safetensors")
    rr = Mask.load(lottery_run / "branch_random-reinit" / "level_2" / "mask.safetensors")
    imp = Mask.load(lottery_run / "level_2" / "mask.safetensors")
    assert rp.remaining() == imp.remaining() and rp != imp and rr == imp
    # another draw of the random controls is another sample: other mask / other weights, same density
    cfg = load_config(lottery_run / "config.yaml")
    rp1, _ = BRANCHES["random-prune"].fn(cfg, lottery_run, 2, draw=1)
    assert rp1.remaining() == rp.remaining() and rp1 != rp
    _, w0 = BRANCHES["random-reinit"].fn(cfg, lottery_run, 2, draw=0)
    _, w1 = BRANCHES["random-reinit"].fn(cfg, lottery_run, 2, draw=1)
    assert any(not torch.equal(w0[k], w1[k]) for k in imp.keys())
    init = load_tensors(lottery_run / "init.safetensors")
    # random-reinit: the IMP mask on fresh weights, not on theta_0; random-prune: its own mask on theta_0
    reinit = starts[(lottery_run / "branch_random-reinit" / "level_2" / "train").resolve()]
    for name, keep in imp.items():
        assert (reinit[name][~keep] == 0).all() and not torch.equal(reinit[name], init[name] * keep), name
    assert_starts_from(starts[(lottery_run / "branch_random-prune" / "level_2" / "train").resolve()], init, rp)
    res = subprocess.run(CLI + ["report", str(lottery_run)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    md = (lottery_run / "report.md").read_text()
    assert "random-reinit" in md and "random-prune" in md
    assert (lottery_run / "report.html").is_file()


def test_branches_side_by_side_match_them_one_after_the_other(lottery_run, tmp_path):
    specs = ("random-reinit", BranchJob("random-prune", ("train.weight_decay=0.001",), "wd"))  # a name, a job
    jobs = [BranchJob("random-reinit"), specs[1]]
    twin = tmp_path / lottery_run.name  # the same run without its branches, for the reference trainings
    shutil.copytree(lottery_run, twin, ignore=shutil.ignore_patterns("branch_*"))
    outs = run_branches(specs, lottery_run, levels=[1], jobs=2)  # two processes, the run's 2 threads split
    threads = torch.get_num_threads()
    try:
        refs = [run_branch(j.name, twin, levels=[1], overrides=list(j.overrides), tag=j.tag, progress=False,
                           threads=1) for j in jobs]
    finally:
        torch.set_num_threads(threads)
    for job, out, ref in zip(jobs, outs, refs):
        assert out == branch_dir(lottery_run, job.name, job.tag, list(job.overrides))
        assert read_json(out / "level_1" / "result.json")["branch"] == job.name and out.name == ref.name
        a, b = (load_tensors(d / "level_1" / "train" / "best.safetensors") for d in (out, ref))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), job
    assert "wd" in outs[1].name and outs[1].name != "branch_random-prune"
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        run_branches(specs, lottery_run, levels=[1], jobs=0)


def test_kill_mid_level_resumes_without_redoing_levels(tiny_corpus, tmp_path, cli_env):
    root = tmp_path / "runs"
    args = ["lottery", "--config", str(TINY_CONFIG), "--levels", "2", "--root", str(root), "--set", "train.epochs=2"]
    args += sum((["--set", o] for o in tiny_overrides(tiny_corpus)), [])
    proc = subprocess.Popen(CLI + args, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    target = None
    while time.time() < deadline and proc.poll() is None:
        hits = list(root.glob("lottery_*/level_1/train/last.json"))
        if hits:
            target = hits[0]
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert target is not None, "level 1 never started"
    run_dir = target.parents[2]
    level0 = (run_dir / "level_0" / "result.json").stat().st_mtime
    mask1 = (run_dir / "level_1" / "mask.safetensors").read_bytes()
    res = subprocess.run(CLI + args, env=cli_env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == str(run_dir)
    assert (run_dir / "level_0" / "result.json").stat().st_mtime == level0
    starts = _start_events(run_dir / "level_1" / "train")
    assert len(starts) == 2 and starts[1]["step"] > 0, "level 1 restarted instead of resuming"
    assert (run_dir / "level_1" / "mask.safetensors").read_bytes() == mask1
    assert (run_dir / "level_2" / "result.json").is_file()
    # same masks as an uninterrupted run with the same seed
    cfg = load_config(TINY_CONFIG, tiny_overrides(tiny_corpus, "train.epochs=2"))
    cfg.lottery.levels = 2
    ref = run_lottery(cfg, tmp_path / "ref", progress=False)
    for level in (1, 2):
        a = Mask.load(ref / f"level_{level}" / "mask.safetensors")
        b = Mask.load(run_dir / f"level_{level}" / "mask.safetensors")
        assert all(torch.equal(a[k], b[k]) for k in a.keys())
    ra, rb = read_json(ref / "level_2" / "result.json"), read_json(run_dir / "level_2" / "result.json")
    assert ra["dev_wer"] == pytest.approx(rb["dev_wer"], abs=1e-6)


def test_retrain_branch_through_the_cli(lottery_run, cli_env):
    res = subprocess.run(CLI + ["branch", "retrain", "--run", str(lottery_run), "--levels", "0,1",
                                "--set", "train.epochs=2", "--tag", "long"],
                         env=cli_env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    out = Path(res.stdout.strip().splitlines()[-1])
    assert out.name == "branch_retrain-long"
    for level in (0, 1):
        r = read_json(out / f"level_{level}" / "result.json")
        assert r["epochs"] == 2 and r["remaining"] == pytest.approx(0.8**level, abs=1e-3)
    bad = subprocess.run(CLI + ["branch", "nope", "--run", str(lottery_run)], env=cli_env, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "random-reinit" in bad.stderr


def test_late_rewinding_saves_and_uses_the_snapshot(tiny_corpus, tmp_path):
    cfg = load_config(TINY_CONFIG, tiny_overrides(tiny_corpus, "prune.rewind=2it"))
    cfg.lottery.levels = 1
    with recorded_starts() as starts:
        run = run_lottery(cfg, tmp_path, progress=False)
    snap = load_tensors(run / "rewind.safetensors")
    init = load_tensors(run / "init.safetensors")
    assert any(not torch.equal(snap[k], init[k]) for k in snap)
    mask = Mask.load(run / "level_1" / "mask.safetensors")
    assert_starts_from(starts[(run / "level_1" / "train").resolve()], snap, mask)


@pytest.mark.parametrize("text, steps", [("0", 0), ("500it", 500), ("2ep", 20)])
def test_rewind_points(text, steps):
    from audio_lottery.rewind import rewind_to_steps

    assert rewind_to_steps(text, steps_per_epoch=10) == steps


@pytest.mark.parametrize("text, words", [("0", "theta_0 (the paper's)"),
                                         ("1ep", "the weights after 1 epoch (late rewinding)"),
                                         ("500it", "the weights after 500 steps (late rewinding)")])
def test_rewind_points_in_words(text, words):
    from audio_lottery.rewind import describe_rewind

    assert describe_rewind(text) == words


@pytest.mark.parametrize("text", ["5", "1.5ep", "ep", "-1it"])
def test_bad_rewind_points_are_refused(text):
    from audio_lottery.rewind import parse_rewind

    with pytest.raises(ValueError, match="prune.rewind"):
        parse_rewind(text)


def test_structured_branch_and_a_channel_level(lottery_run, cli_env, tmp_path):
    from audio_lottery.lottery.runner import load_run_config, next_mask
    from audio_lottery.pruning.structured import to_blocks

    res = subprocess.run(CLI + ["branch", "structured", "--run", str(lottery_run), "--levels", "2",
                                "--structure", "block", "--block-shape", "[1, 4]"],
                         env=cli_env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    out = Path(res.stdout.strip().splitlines()[-1])
    # the declared parameters name the folder exactly as today's --set spelling does
    assert out == branch_dir(lottery_run, "structured", "", ["prune.structure=block", "prune.block_shape=[1, 4]"])
    imp = Mask.load(lottery_run / "level_2" / "mask.safetensors")
    block = Mask.load(out / "level_2" / "mask.safetensors")
    assert abs(block.remaining() - imp.remaining()) <= 2 and block != imp
    for name, keep in block.items():
        kept = to_blocks(keep, 1, 4, False).sum(1)
        full = to_blocks(torch.ones_like(keep), 1, 4, False).sum(1)
        assert torch.all((kept == 0) | (kept == full)), name
    assert read_json(out / "level_2" / "result.json")["branch"] == "structured"
    # the branch's ticket exports like an IMP level
    exp = subprocess.run(CLI + ["export", "--run", str(lottery_run), "--level", "2", "--branch", out.name[7:],
                                "--format", "csr", "--out", str(tmp_path / "csr")],
                         env=cli_env, capture_output=True, text=True, timeout=300)
    assert exp.returncode == 0, exp.stderr
    assert json.loads(exp.stdout)["remaining"] == pytest.approx(block.density())
    # a channel-strategy level on top of the run's level 1
    cfg = load_run_config(lottery_run)
    cfg.prune.strategy = "channel"
    channel = next_mask(cfg, lottery_run, 2)
    level1 = Mask.load(lottery_run / "level_1" / "mask.safetensors")
    assert channel.remaining() == pytest.approx(0.8 * level1.remaining(), rel=0.05)
    assert all(not (channel[n] & ~level1[n]).any() for n in channel)
    assert any(not channel[n].any(dim=1).all() for n in channel if n.endswith("weight_ih_l0"))  # whole gate rows
