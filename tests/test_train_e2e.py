"""End-to-end: train the tiny preset, resume after a kill, evaluate and transcribe through the CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
import soxr
import torch

from audio_lottery.config import load_config
from audio_lottery.data.manifest import read_manifest
from audio_lottery.eval.evaluate import evaluate
from audio_lottery.files import load_tensors
from audio_lottery.recognizer import Recognizer
from audio_lottery.train.loop import load_split, train_model

from conftest import TINY_CONFIG, tiny_overrides

CLI = [sys.executable, "-m", "audio_lottery.cli", "-q"]


def _run(args, env, **kw):
    return subprocess.run(CLI + args, env=env, capture_output=True, text=True, timeout=300, **kw)


def test_train_writes_artifacts_and_is_idempotent(tiny_corpus, tmp_path):
    cfg = load_config(TINY_CONFIG, tiny_overrides(tiny_corpus, "train.epochs=2"))
    out = tmp_path / "run"
    result = train_model(cfg, out, progress=False)
    for name in ("best.safetensors", "config.yaml", "tokenizer/tokenizer.json", "last.json", "result.json",
                 "metrics.jsonl"):
        assert (out / name).is_file(), name
    assert any((out / "tb").iterdir())
    assert result["epochs"] == 2 and result["steps"] > 0 and len(result["history"]) == 2
    # the best epoch is the one with the lowest dev WER (then CER), and best.safetensors scores exactly that
    best = min(result["history"], key=lambda h: (h["dev_wer"], h["dev_cer"]))
    assert result["best_epoch"] == best["epoch"]
    assert (result["best_dev_wer"], result["best_dev_cer"]) == (best["dev_wer"], best["dev_cer"])
    again = evaluate(Recognizer.load(out / "best.safetensors"), load_split(cfg, "dev"))
    assert (again["wer"], again["cer"]) == pytest.approx((result["best_dev_wer"], result["best_dev_cer"]), abs=1e-12)
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("loss" in x for x in lines) and any("dev_wer" in x for x in lines)
    for v in load_tensors(out / "best.safetensors").values():
        assert torch.isfinite(v.float()).all()
    mtime = (out / "result.json").stat().st_mtime
    assert train_model(cfg, out, progress=False)["steps"] == result["steps"]
    assert (out / "result.json").stat().st_mtime == mtime


def test_linear_schedule_decays_to_zero_over_the_epochs(tiny_corpus, tmp_path):
    cfg = load_config(TINY_CONFIG, tiny_overrides(tiny_corpus, "train.epochs=2", "train.schedule=linear_decay",
                                                  "train.log_every_steps=1"))
    result = train_model(cfg, tmp_path / "run", progress=False)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    rates = [x["lr"] for x in lines if "lr" in x]
    assert len(rates) == result["steps"] and result["steps"] % 2 == 0
    per_epoch = result["steps"] // 2  # step i of the run sets lr * (1 - i / steps): a straight line to 0
    assert rates == pytest.approx([cfg.train.lr * (1 - i / (2 * per_epoch)) for i in range(2 * per_epoch)])


def test_time_budget_stops_the_run_and_drives_the_linear_decay(tiny_corpus, tmp_path):
    budget_s = 0.3
    cfg = load_config(TINY_CONFIG, tiny_overrides(tiny_corpus, "train.epochs=1000", "train.schedule=linear_decay",
                                                  f"train.max_minutes={budget_s / 60}", "train.log_every_steps=1"))
    result = train_model(cfg, tmp_path / "run", progress=False)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [x for x in lines if "lr" in x]
    assert result["epochs"] < 1000 and result["train_seconds"] >= budget_s  # the clock ended the run
    # a step's line holds the clock before it (rounded to 10 ms): the last step started inside the budget
    assert steps[-1]["train_seconds"] - 0.005 < budget_s
    assert steps[0]["lr"] == pytest.approx(cfg.train.lr)
    for line in steps:  # a step's rate: the share of the budget its clock leaves (epochs: under 1 % of theirs)
        left = 1 - line["train_seconds"] / budget_s
        rounding = 0.005 / budget_s
        assert cfg.train.lr * (left - rounding - 0.01) <= line["lr"] <= cfg.train.lr * (left + rounding)


@pytest.mark.parametrize("extra", [(), ("train.ema_decay=0.9",)], ids=["plain", "weight-average"])
def test_kill_and_resume_matches_uninterrupted(tiny_corpus, tmp_path, cli_env, extra):
    args = ["train", "--config", str(TINY_CONFIG), "--set", "train.epochs=3"]
    args += sum((["--set", o] for o in tiny_overrides(tiny_corpus, *extra)), [])
    ref = _run(args + ["--out", str(tmp_path / "ref")], cli_env)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen(CLI + args + ["--out", str(out)], env=cli_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (out / "last.json").is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "result.json").is_file(), "the run finished before it could be killed"
    res = _run(args + ["--out", str(out)], cli_env)
    assert res.returncode == 0, res.stderr
    a, b = load_tensors(tmp_path / "ref" / "last.safetensors"), load_tensors(out / "last.safetensors")
    assert any(k.startswith("average.") for k in a) == bool(extra)
    for k in a:
        if k.startswith(("model.", "average.")):
            assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5), k
    assert json.loads(res.stdout.splitlines()[-1])["epochs"] == 3


def test_eval_and_transcribe_cli(tiny_corpus, tmp_path, cli_env):
    cfg = load_config(TINY_CONFIG, tiny_overrides(tiny_corpus))
    out = tmp_path / "m"
    train_model(cfg, out, progress=False)
    res = _run(["eval", "--model", str(out / "best.safetensors"), "--manifest", str(tiny_corpus / "test.jsonl")],
               cli_env)
    assert res.returncode == 0, res.stderr
    scores = json.loads(res.stdout.strip().splitlines()[-1])
    assert {"wer", "cer"} <= scores.keys()
    rec = read_manifest(tiny_corpus / "test.jsonl")[0]
    wave, sr = sf.read(rec["audio"], dtype="float32")
    files = []
    for fmt, rate in (("wav", 8000), ("flac", 44100), ("mp3", 22050)):
        path = tmp_path / f"clip.{fmt}"
        sf.write(path, soxr.resample(wave, sr, rate), rate, format=fmt.upper())
        files.append(str(path))
    res = _run(["transcribe", "--model", str(out / "best.safetensors"), *files], cli_env)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert [ln.split("\t")[0] for ln in lines] == files


def test_cli_errors_name_the_problem(tmp_path, cli_env):
    res = _run(["eval", "--model", str(tmp_path / "nope.safetensors"), "--manifest", str(tmp_path / "x.jsonl")],
               cli_env)
    assert res.returncode == 2 and "nope.safetensors" in res.stderr
    res = _run(["info", "--config", str(TINY_CONFIG), "--set", "train.epochs=many"], cli_env)
    assert res.returncode == 2 and "train.epochs" in res.stderr


def test_info_reports_params(cli_env):
    res = _run(["info", "--config", str(TINY_CONFIG)], cli_env)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["params"] > info["prunable_params"] > 0


def test_paper_preset_has_the_papers_parameter_count(cli_env):
    res = _run(["info", "--config", str(TINY_CONFIG.parent / "ds2_paper.yaml")], cli_env)
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["params"] == 86_618_400 and info["feature_dim"] == 161 and info["vocab_size"] == 29


def test_noisy_training_through_a_noise_manifest(tiny_corpus, tmp_path, cli_env):
    res = _run(["data", "noise", "--out", str(tmp_path / "noise"), "--seconds", "5", "--sources", "sox"], cli_env)
    assert res.returncode == 0, res.stderr
    manifest = Path(res.stdout.strip().splitlines()[-1])
    records = read_manifest(manifest)
    assert len(records) == 9 and sum(r["split"] == "train" for r in records) == 3
    cfg = load_config(TINY_CONFIG, tiny_overrides(tiny_corpus, f"data.augment.noise_manifest={manifest}",
                                                  "data.augment.noise_prob=1.0", "data.augment.snr_min=5",
                                                  "data.augment.snr_max=10"))
    result = train_model(cfg, tmp_path / "noisy", progress=False)
    assert result["steps"] > 0 and result["skipped_steps"] == 0


def test_changed_config_is_refused_in_an_existing_folder(tiny_corpus, tmp_path):
    cfg = load_config(TINY_CONFIG, tiny_overrides(tiny_corpus))
    train_model(cfg, tmp_path / "r", progress=False)
    cfg.train.lr = 0.5
    with pytest.raises(ValueError, match="result.json.*other hyper-parameters"):
        train_model(cfg, tmp_path / "r", progress=False)
