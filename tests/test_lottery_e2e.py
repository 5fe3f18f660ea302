"""End-to-end: a two-level lottery run on the tiny preset, a kill mid-level, branches and the report."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from audio_lottery.config import load_config
from audio_lottery.io import load_tensors, read_json
from audio_lottery.lottery.branches import run_branch
from audio_lottery.lottery.runner import run_lottery
from audio_lottery.pruning.mask import Mask

from conftest import TINY_CONFIG, tiny_overrides

CLI = [sys.executable, "-m", "audio_lottery.cli", "-q"]


@pytest.fixture(scope="module")
def lottery_run(tiny_corpus, tmp_path_factory) -> Path:
    cfg = load_config(TINY_CONFIG, tiny_overrides(tiny_corpus))
    return run_lottery(cfg, tmp_path_factory.mktemp("runs"), progress=False)


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


def test_trained_ticket_keeps_pruned_weights_zero_and_rewinds_to_theta0(lottery_run):
    mask = Mask.load(lottery_run / "level_2" / "mask.safetensors")
    weights = load_tensors(lottery_run / "level_2" / "train" / "best.safetensors")
    init = load_tensors(lottery_run / "init.safetensors")
    for name, keep in mask.items():
        assert (weights[name][~keep] == 0).all()
    # the level started from theta_0: untouched survivors would equal init; trained ones moved
    name = next(iter(mask.keys()))
    assert not torch.equal(weights[name][mask[name]], init[name][mask[name]])


def test_branches_and_report(lottery_run):
    for name in ("random-reinit", "random-prune"):
        out = run_branch(name, lottery_run, levels=[2], progress=False)
        res = read_json(out / "level_2" / "result.json")
        assert res["branch"] == name and res["remaining"] == pytest.approx(0.64, abs=1e-3)
    rp = Mask.load(lottery_run / "branch_random-prune" / "level_2" / "mask.safetensors") if (
        lottery_run / "branch_random-prune" / "level_2" / "mask.safetensors").is_file() else None
    imp = Mask.load(lottery_run / "level_2" / "mask.safetensors")
    assert rp is None or any(not torch.equal(rp[k], imp[k]) for k in imp.keys())
    res = subprocess.run(CLI + ["report", str(lottery_run)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    md = (lottery_run / "report.md").read_text()
    assert "random-reinit" in md and "random-prune" in md
    assert (lottery_run / "report.html").is_file()


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
