"""Crash safety: SIGKILL a lottery run at deterministic points, rerun, compare with an uninterrupted run.

Kill points come from :mod:`audio_lottery.faultpoints` (``AUDIO_LOTTERY_KILL_AT``); the
comparison (identical masks and weights, WER within ``crash.WER_TOL``, finished levels
untouched, no temporary file left) from :mod:`audio_lottery.testing.crash`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from audio_lottery import faultpoints
from audio_lottery.config import load_config
from audio_lottery.files import atomic_write_json, read_json, remove_stale_temps
from audio_lottery.lottery.runner import run_lottery
from audio_lottery.testing import crash
from audio_lottery.train.checkpoint import load_training_state, save_training_state

from conftest import TINY_CONFIG, tiny_overrides

LEVELS, EPOCHS = 2, 2
N_POINTS = 16  # len(crash.kill_points(...)) for this run
EXTRA = (f"train.epochs={EPOCHS}", "train.threads=1")


@pytest.fixture(scope="module")
def reference(tiny_corpus, tmp_path_factory) -> Path:
    """The uninterrupted run every killed run is compared with."""
    cfg = load_config(TINY_CONFIG, tiny_overrides(tiny_corpus, *EXTRA))
    cfg.lottery.levels = LEVELS
    return run_lottery(cfg, tmp_path_factory.mktemp("reference"), progress=False)


def _points(reference: Path) -> list[crash.KillPoint]:
    train = read_json(reference / "level_0" / "train" / "result.json")
    return crash.kill_points(train["steps"] // train["epochs"], EPOCHS, LEVELS)


def _command(tiny_corpus: Path, root: Path) -> list[str]:
    return crash.lottery_command(TINY_CONFIG, root, LEVELS, tiny_overrides(tiny_corpus, *EXTRA))


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


# ------------------------------------------------------------------ the kill mechanism


def test_faultpoint_spec_and_noop():
    assert faultpoints.parse_spec("train.step:3, write:last.json:2") == {"train.step": 3, "write:last.json": 2}
    assert faultpoints.parse_spec("") == {} and faultpoints.parse_spec(None) == {}
    for bad in ("train.step", "train.step:0", ":3", "a:b"):
        with pytest.raises(ValueError, match="AUDIO_LOTTERY_KILL_AT"):
            faultpoints.parse_spec(bad)
    faultpoints.arm("")
    for _ in range(3):
        faultpoints.faultpoint("train.step")  # unarmed: nothing happens


def test_faultpoint_kills_on_the_counted_call():
    code = "from audio_lottery.faultpoints import faultpoint\nfor i in range(3):\n    print(i, flush=True)\n" \
           "    faultpoint('p')\nprint('survived')"
    killed = crash.run([sys.executable, "-c", code], "p:2", timeout=60)
    assert crash.was_killed(killed) and killed.stdout.split() == ["0", "1"]
    missed = crash.run([sys.executable, "-c", code], "p:4", timeout=60)
    assert missed.returncode == 0 and missed.stdout.split()[-1] == "survived"


def test_kill_variable_alone_never_kills():
    """AUDIO_LOTTERY_KILL_AT left over in a shell cannot kill a real run: the test switch is needed too."""
    code = "from audio_lottery.faultpoints import faultpoint\nfor i in range(3):\n    faultpoint('p')\nprint('survived')"
    env = {k: v for k, v in os.environ.items() if k != faultpoints.TEST_SWITCH}
    for switch in (None, "0", "yes"):
        if switch is not None:
            env[faultpoints.TEST_SWITCH] = switch
        proc = subprocess.run([sys.executable, "-c", code], env={**env, faultpoints.ENV: "p:1"},
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and proc.stdout.split() == ["survived"], (switch, proc.stderr)
        assert "FaultpointIgnoredWarning" in proc.stderr and "AUDIO_LOTTERY_TESTING=1" in proc.stderr
    armed = subprocess.run([sys.executable, "-c", code], env={**env, **faultpoints.armed_env("p:1")},
                           capture_output=True, text=True, timeout=60)
    assert crash.was_killed(armed)


def test_write_killed_before_rename_keeps_the_old_file(tmp_path):
    target = tmp_path / "state.json"
    atomic_write_json(target, {"epoch": 1})
    code = f"from audio_lottery.files import atomic_write_json\natomic_write_json({str(target)!r}, {{'epoch': 2}})"
    proc = crash.run([sys.executable, "-c", code], "write:state.json:1", timeout=120)
    assert crash.was_killed(proc)
    assert read_json(target) == {"epoch": 1}, "a reader must see the old file, never half of the new one"
    temps = crash.temp_files(tmp_path)
    assert len(temps) == 1 and read_json(temps[0]) == {"epoch": 2}
    assert remove_stale_temps(tmp_path) == 1 and not crash.temp_files(tmp_path)
    # a live writer's temporary file is left alone
    live = tmp_path / f".x.json.{os.getpid()}.abc.tmp"
    live.write_text("{}")
    assert remove_stale_temps(tmp_path) == 0 and live.is_file()


# ------------------------------------------------------------------ checkpoints


def _model_and_opt(seed: int):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    return model, opt


def test_checkpoint_tensors_newer_than_their_json_resume_at_the_tensors_epoch(tmp_path):
    """A kill between ``last.safetensors`` and ``last.json`` must not pair new weights with old counters."""
    m1, o1 = _model_and_opt(1)
    save_training_state(tmp_path, "last", m1, o1, {"state": {"epoch": 1}, "config_hash": "h"})
    stale_json = (tmp_path / "last.json").read_bytes()
    m2, o2 = _model_and_opt(2)
    save_training_state(tmp_path, "last", m2, o2, {"state": {"epoch": 2}, "config_hash": "h"})
    (tmp_path / "last.json").write_bytes(stale_json)  # what the kill leaves on disk
    m3, o3 = _model_and_opt(3)
    info = load_training_state(tmp_path, "last", m3, o3, config_hash="h")
    assert info["state"]["epoch"] == 2
    assert torch.equal(m3.weight, m2.weight)
    with pytest.raises(ValueError, match="other hyper-parameters"):
        load_training_state(tmp_path, "last", m3, o3, config_hash="other")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_unreadable_checkpoint_counts_as_absent(tmp_path, damage, caplog):
    m1, o1 = _model_and_opt(1)
    save_training_state(tmp_path, "last", m1, o1, {"state": {"epoch": 1}})
    path = tmp_path / "last.safetensors"
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": os.urandom(len(data)), "empty": b""}[damage])
    m2, o2 = _model_and_opt(2)
    before = m2.weight.detach().clone()
    with caplog.at_level(logging.WARNING):
        assert load_training_state(tmp_path, "last", m2, o2) is None
    assert torch.equal(m2.weight, before)
    assert "last.safetensors" in caplog.text and "moved aside" in caplog.text
    assert (tmp_path / "last.safetensors.corrupt").is_file() and not path.exists()


def test_damaged_files_of_a_run_are_detected_and_redone(reference, tmp_path, tiny_corpus, caplog):
    """Truncated weights, garbage result files and stray temporaries never crash a resumed run."""
    run = tmp_path / reference.name
    shutil.copytree(reference, run)
    lvl1, lvl2 = run / "level_1", run / "level_2"
    last = lvl2 / "train" / "last.safetensors"
    last.write_bytes(last.read_bytes()[:1000])          # level 2 must retrain from scratch
    for p in (lvl2 / "result.json", lvl2 / "train" / "result.json"):
        p.unlink()
    (lvl1 / "result.json").write_text('{"level": 1, "dev_w')   # level 1 is rescored, not retrained
    (lvl1 / "train" / "result.json").write_bytes(b"\x00\xff garbage")
    (lvl2 / "train" / ".last.safetensors.999999999.abcdef.tmp").write_bytes(b"half")
    stamps = crash.finished_levels(run)
    assert sorted(stamps) == ["level_0"]
    cfg = load_config(TINY_CONFIG, tiny_overrides(tiny_corpus, *EXTRA))
    cfg.lottery.levels = LEVELS
    with caplog.at_level(logging.WARNING):
        assert run_lottery(cfg, tmp_path, progress=False) == run
    for damaged in ("level_2/train/last.safetensors", "level_1/result.json", "level_1/train/result.json"):
        assert damaged in caplog.text.replace(str(run) + "/", ""), damaged
        assert (run / (damaged + ".corrupt")).is_file()
    assert crash.finished_levels(run)["level_0"] == stamps["level_0"]
    starts = [json.loads(ln) for ln in (lvl1 / "train" / "metrics.jsonl").read_text().splitlines() if '"start"' in ln]
    steps = read_json(lvl1 / "train" / "result.json")["steps"]
    assert [s["step"] for s in starts] == [0, steps], "level 1 was retrained instead of rescored"
    assert crash.start_events(lvl2 / "train") == 2  # the original start plus the fresh one
    for p in run.rglob("*.corrupt"):
        p.unlink()
    assert crash.compare_runs(run, reference) == []


# ------------------------------------------------------------------ kill and resume the CLI


def test_kill_between_checkpoint_tensors_and_json_resumes_identically(reference, tiny_corpus, tmp_path):
    point = next(p for p in _points(reference) if p.spec == f"write:last.json:{EPOCHS}")
    out = crash.kill_and_resume(_command(tiny_corpus, tmp_path), tmp_path, reference, point, env=_env())
    assert out.ok, out.problems
    assert out.temps_after_kill == 1  # the interrupted JSON write left its temporary file, never a half file


@pytest.mark.slow
@pytest.mark.parametrize("index", range(N_POINTS))
def test_kill_point_survived(reference, tiny_corpus, tmp_path, index):
    points = _points(reference)
    assert len(points) == N_POINTS
    out = crash.kill_and_resume(_command(tiny_corpus, tmp_path), tmp_path, reference, points[index], env=_env())
    assert out.ok, (points[index], out.problems)


@pytest.mark.slow
def test_repeated_kills_of_one_run(reference, tiny_corpus, tmp_path):
    """Kill the same run again and again, each time a bit further on, then let it finish."""
    cmd = _command(tiny_corpus, tmp_path)
    steps = read_json(reference / "level_0" / "train" / "result.json")["steps"]
    chain = ["train.step:3", f"write:last.json:{EPOCHS}", "runner.pruned:1", "write:last.safetensors:1",
             f"train.step:{steps + 2}", "report.write:1"]
    for spec in chain:
        proc = crash.run(cmd, spec, env=_env())
        assert crash.was_killed(proc), (spec, proc.returncode, proc.stderr[-1500:])
    final = crash.run(cmd, None, env=_env())
    assert final.returncode == 0, final.stderr[-2000:]
    assert crash.compare_runs(tmp_path / reference.name, reference) == []


def test_loaded_tensors_own_their_memory(tmp_path):
    """A file rewritten in place after loading (not by us: our writes rename) must not change
    loaded weights or kill the process (safetensors' load_file maps the file)."""
    from audio_lottery.files import load_tensors, save_tensors

    path = tmp_path / "w.safetensors"
    save_tensors(path, {"a": torch.ones(1000)})
    loaded = load_tensors(path)
    save_tensors(tmp_path / "other.safetensors", {"a": torch.zeros(1000)})
    with open(path, "r+b") as fh:  # same inode, new bytes
        fh.write((tmp_path / "other.safetensors").read_bytes())
        fh.truncate(100)
    assert torch.equal(loaded["a"], torch.ones(1000))


def test_resume_restores_the_random_state(tmp_path):
    """Dropout draws after a resume equal those of the uninterrupted run."""
    m, o = _model_and_opt(1)
    torch.manual_seed(123)
    save_training_state(tmp_path, "last", m, o, {"state": {"epoch": 1}})
    expected = torch.rand(5)
    torch.manual_seed(999)  # a fresh process seeds and builds its model differently
    load_training_state(tmp_path, "last", m, o)
    assert torch.equal(torch.rand(5), expected)


@pytest.mark.slow
def test_killed_dropout_model_resumes_bit_identically(tiny_corpus, tmp_path):
    """Conformer (dropout): killed mid-epoch 2, resumed; the final weights equal an uninterrupted run's."""
    from audio_lottery.files import load_tensors
    from audio_lottery.train.checkpoint import model_tensors

    config = TINY_CONFIG.parent / "conformer_tiny.yaml"

    def cmd(out):
        args = [sys.executable, "-m", "audio_lottery.cli", "-q", "train", "--config", str(config), "--out", str(out)]
        return args + sum((["--set", o] for o in tiny_overrides(tiny_corpus, *EXTRA)), [])

    assert crash.run(cmd(tmp_path / "ref"), env=_env()).returncode == 0
    steps = read_json(tmp_path / "ref" / "result.json")["steps"] // EPOCHS
    assert crash.was_killed(crash.run(cmd(tmp_path / "run"), f"train.step:{steps + 2}", env=_env()))
    assert crash.run(cmd(tmp_path / "run"), env=_env()).returncode == 0
    a = model_tensors(load_tensors(tmp_path / "ref" / "last.safetensors"))
    b = model_tensors(load_tensors(tmp_path / "run" / "last.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
