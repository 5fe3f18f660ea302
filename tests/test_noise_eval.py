"""Noisy training and evaluation under noise: true SNR, deterministic test mixing, train-only
training noise, branch hash, eval_noise.json, the CLI and the report on a tiny lottery run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from audio_lottery.config import load_config
from audio_lottery.data.noise.mix import NOISE_LEVELS, NoiseMixer, noise_overrides
from audio_lottery.data.manifest import read_manifest, write_manifest
from audio_lottery.data.noise.bank import BankSettings, build_noise_bank
from audio_lottery.data.pipeline.features import build_featurizer
from audio_lottery.eval import noisy
from audio_lottery.files import read_json
from audio_lottery.lottery.branches import branch_dir, run_branch
from audio_lottery.lottery.runner import run_lottery
from audio_lottery.train.components import build_augmentation

from conftest import CLI, ONE, TINY_CONFIG, run_cli, tiny_overrides

pytestmark = pytest.mark.usefixtures("one_thread")

SR = 16000


def _snr(speech: np.ndarray, mixed: np.ndarray) -> float:
    noise = mixed.astype(np.float64) - speech.astype(np.float64)
    return 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(noise**2))


@pytest.fixture(scope="module")
def bank(tmp_path_factory) -> Path:
    """A sox-only bank (every split), fast and independent of Debian packages."""
    out = tmp_path_factory.mktemp("bank")
    build_noise_bank(out, settings=BankSettings(sources=("sox",), sox_seconds=2.0))
    return out / "noise.jsonl"


def _speech(seed: int = 0, seconds: float = 1.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.2 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
            + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


# ----------------------------------------------------------------- mixing


def test_test_mixing_true_snr_deterministic_and_per_utterance(bank):
    mixer = noisy.NoiseMixer(bank, 1.0, 0.0, 0.0, SR, seed=0, split="test")
    assert {r["split"] for r in mixer.records} == {"test"}
    speech = _speech()
    for snr in (20.0, 10.0, 5.0, 0.0, -5.0):
        mixed = mixer.mix_fixed(speech, "utt-1", snr)
        assert abs(_snr(speech, mixed) - snr) < 0.1
    a = mixer.mix_fixed(speech, "utt-1", 10.0)
    again = NoiseMixer(bank, 1.0, 0.0, 0.0, SR, seed=0, split="test").mix_fixed(speech, "utt-1", 10.0)
    assert np.array_equal(a, again)  # same noise for every model that is evaluated
    others = [mixer.mix_fixed(speech, f"utt-{i}", 10.0) for i in range(2, 8)]
    assert all(not np.allclose(a, o) for o in others)  # but different per utterance
    # same noise file and offset at every SNR: the added noise only changes its gain
    n10, n0 = a - speech, mixer.mix_fixed(speech, "utt-1", 0.0) - speech
    ratio = n0 / np.where(np.abs(n10) > 1e-4, n10, np.nan)
    assert np.nanstd(ratio) < 1e-2 * np.nanmean(ratio) and np.nanmean(ratio) == pytest.approx(10 ** 0.5, rel=1e-2)
    assert not np.array_equal(a, NoiseMixer(bank, 1.0, 0.0, 0.0, SR, seed=1, split="test").mix_fixed(speech, "utt-1", 10.0))


def test_training_noise_comes_only_from_the_train_split(bank):
    cfg = load_config(TINY_CONFIG, noise_overrides("high", bank))
    mixer = build_augmentation(cfg, build_featurizer(cfg.data.features)).noise
    assert mixer is not None and mixer.records and {r["split"] for r in mixer.records} == {"train"}
    assert (mixer.prob, mixer.snr_min, mixer.snr_max) == (1.0, 0.0, 10.0)
    speech, rng = _speech(), np.random.default_rng(0)
    snrs = [_snr(speech, mixer(speech, rng)) for _ in range(20)]
    assert all(-0.1 < s < 10.1 for s in snrs) and np.std(snrs) > 1.0
    assert noise_overrides("clean", bank) == [] and set(NOISE_LEVELS) == {"clean", "low", "high"}
    with pytest.raises(ValueError, match="unknown noise level"):
        noise_overrides("medium", bank)


def test_split_selection_errors_name_the_manifest(tmp_path, bank):
    rows = [r for r in read_manifest(bank) if r["split"] == "train"]
    write_manifest(tmp_path / "train_only.jsonl", rows)
    with pytest.raises(ValueError, match="train_only.jsonl.*split 'test'"):
        NoiseMixer(tmp_path / "train_only.jsonl", 1.0, 0, 0, SR, split="test")
    legacy = [{k: v for k, v in r.items() if k != "split"} for r in rows]
    write_manifest(tmp_path / "legacy.jsonl", legacy)
    assert len(NoiseMixer(tmp_path / "legacy.jsonl", 1.0, 0, 0, SR, split="train").records) == len(rows)


def test_parse_snrs():
    assert noisy.parse_snrs("clean, 20,10.0,5,0,-5") == ["clean", "20", "10", "5", "0", "-5"]
    for bad in ("", "loud", "nan"):
        with pytest.raises(ValueError, match="--snr"):
            noisy.parse_snrs(bad)


def test_branch_folder_changes_with_noise_settings(tmp_path, bank, monkeypatch):
    run = tmp_path / "lottery_x"
    low, high = noise_overrides("low", bank), noise_overrides("high", bank)
    assert branch_dir(run, "retrain", "", low) != branch_dir(run, "retrain", "", high)
    assert branch_dir(run, "retrain", "", low) == branch_dir(run, "retrain", "", list(reversed(low)))
    monkeypatch.chdir(bank.parent)
    relative = [o.replace(str(bank), bank.name) for o in low]
    assert relative != low and branch_dir(run, "retrain", "", relative) == branch_dir(run, "retrain", "", low)
    other = tmp_path / "noise.jsonl"
    other.write_text(bank.read_text())
    moved = [o.replace(str(bank), str(other)) for o in low]
    assert branch_dir(run, "retrain", "", moved) != branch_dir(run, "retrain", "", low)  # another path
    content = bank.parent / "copy" / "noise.jsonl"
    content.parent.mkdir()
    content.write_text(bank.read_text())
    a = branch_dir(run, "retrain", "", [o.replace(str(bank), str(content)) for o in low])
    content.write_text(bank.read_text().replace('"split": "test"', '"split": "train"', 1))
    b = branch_dir(run, "retrain", "", [o.replace(str(bank), str(content)) for o in low])
    assert a != b  # same path, other noise bank content


# ----------------------------------------------------------------- on a tiny lottery run


@pytest.fixture(scope="module")
def run_dir(tiny_corpus, tmp_path_factory) -> Path:
    cfg = load_config(TINY_CONFIG, tiny_overrides(tiny_corpus, ONE))
    cfg.lottery.levels = 1
    return run_lottery(cfg, tmp_path_factory.mktemp("runs"), progress=False)


def test_noisy_retrain_branch_and_eval_levels(run_dir, bank, monkeypatch):
    out = run_branch("retrain", run_dir, levels=[1], overrides=noise_overrides("high", bank) + [ONE], progress=False)
    assert out == branch_dir(run_dir, "retrain", "", noise_overrides("high", bank))  # threads do not count
    trained = load_config(out / "level_1" / "train" / "config.yaml")
    assert trained.data.augment.noise_prob == 1.0 and trained.data.augment.snr_max == 10.0
    assert trained.data.augment.noise_manifest == str(bank.resolve())
    assert read_json(out / "branch.json")["overrides"] == noise_overrides("high", bank) + [ONE]
    assert read_json(out / "level_1" / "result.json")["branch"] == "retrain"

    calls = []
    real = noisy.evaluate
    monkeypatch.setattr(noisy, "evaluate", lambda *a, **k: calls.append(k.get("desc")) or real(*a, **k))
    first = noisy.eval_level(run_dir / "level_1", ["clean", "10"], bank)
    assert calls == ["snr clean", "snr 10"] and set(first) == {"clean", "10"}
    assert first["clean"]["wer"] == pytest.approx(read_json(run_dir / "level_1" / "result.json")["test_wer"])
    calls.clear()
    again = noisy.eval_level(run_dir / "level_1", ["clean", "10", "0"], bank)  # only 0 dB is new
    assert calls == ["snr 0"] and again["10"] == first["10"]
    stored = read_json(run_dir / "level_1" / noisy.RESULT_FILE)
    assert stored["noise_split"] == "test" and set(stored["results"]) == {"clean", "10", "0"}


def test_eval_cli_on_a_run_and_the_report(run_dir, bank, env, tmp_path, capsys):
    res = subprocess.run(CLI + ["eval", "--run", str(run_dir), "--levels", "all", "--branches", "all",
                                "--snr", "clean,10,0", "--noise", str(bank), "--out", str(tmp_path / "r.json")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    results = json.loads(lines[-1])
    assert {"imp/0", "imp/1"} <= set(results) and all(set(v) == {"clean", "10", "0"} for v in results.values())
    assert lines[0].startswith("| model | clean | 10 dB | 0 dB |")
    assert json.loads((tmp_path / "r.json").read_text()) == results
    for label in ("imp/0", "imp/1"):
        assert (run_dir / f"level_{label[-1]}" / noisy.RESULT_FILE).is_file()
    code, out, _ = run_cli(capsys, "eval", "--model", str(run_dir / "level_0" / "train" / "best.safetensors"),
                           "--snr", "clean,5", "--noise", str(bank), "--limit", "3")
    assert code == 0
    single = json.loads(out.strip().splitlines()[-1])
    assert list(single.values())[0]["5"]["utterances"] == 3
    code, _, err = run_cli(capsys, "eval", "--run", str(run_dir), "--snr", "10")
    assert code == 2 and "--noise" in err
    code, _, err = run_cli(capsys, "eval", "--manifest", str(bank))
    assert code == 2 and "--model" in err
    assert run_cli(capsys, "report", str(run_dir))[0] == 0
    md = (run_dir / "report.md").read_text()
    assert "Test WER under noise" in md and "WER 0 dB" in md and "plots/wer_snr.png" in md
    assert (run_dir / "plots" / "wer_snr.png").is_file() and (run_dir / "plots" / "wer_remaining_snr.png").is_file()
