"""Run folders and exports made before the architecture-v2 redesign still work after it.

tests/fixtures/prechange/ holds a one-level ds2_tiny run (with a random-reinit and a retrain
branch) and two exports, all written by the code before the redesign, plus the hashes and
outputs that code recorded (record.py). The stored config's manifests are gone, so any
stage that tried to train again would fail; the tests also forbid it explicitly.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from audio_lottery.config import config_hash, load_config
from audio_lottery.lottery import runner
from audio_lottery.lottery.branches import overrides_hash, run_branch
from audio_lottery.lottery.runner import next_mask, run_hash, run_levels
from audio_lottery.recognizer import Recognizer

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "prechange"
RUN_NAME = "lottery_f61ecd2237"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
ROOT = Path(__file__).resolve().parents[1]

import sys  # noqa: E402

sys.path.insert(0, str(FIXTURE))
from record import preset_run_hash, probe_features  # noqa: E402


@pytest.fixture
def run(tmp_path, monkeypatch) -> Path:
    out = tmp_path / RUN_NAME
    shutil.copytree(FIXTURE / RUN_NAME, out)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished stage of the pre-change run was trained again")

    monkeypatch.setattr(runner, "train_model", no_training)
    return out


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "branch.json"}


@pytest.mark.parametrize("preset", sorted(EXPECTED["presets"]))
def test_presets_keep_their_hashes(preset):
    """The code hashes each preset as recorded (fixtures/prechange/presets/ holds the files as they were
    then: a preset retuned since, e.g. for a new corpus, is a new configuration with a new hash)."""
    recorded = FIXTURE / "presets" / preset
    cfg = load_config(recorded)
    assert config_hash(cfg) == EXPECTED["presets"][preset]["config_hash"]
    assert preset_run_hash(recorded) == EXPECTED["presets"][preset]["run_hash"]


def test_prechange_run_resumes_with_the_same_hashes_and_redoes_nothing(run):
    cfg = load_config(run / "config.yaml")
    assert run_hash(cfg) == EXPECTED["run_hash"] == RUN_NAME.removeprefix("lottery_")
    assert overrides_hash(["train.lr=0.001", "train.threads=1"]) == EXPECTED["overrides_hash"]
    before = _digests(run)
    run_levels(cfg, run, 1, progress=False)
    assert run_branch("random-reinit", run, levels=[1], progress=False) == run / "branch_random-reinit"
    retrain = run_branch("retrain", run, levels=[1], overrides=["train.lr=0.001", "train.threads=1"], progress=False)
    assert retrain == run / f"branch_retrain-{EXPECTED['overrides_hash']}"
    assert _digests(run) == before  # nothing rewritten: every stage was skipped
    result = json.loads((run / "level_1" / "result.json").read_text())
    assert result["remaining"] == pytest.approx(0.8, abs=1e-3)


def test_prechange_run_prunes_its_next_level(run):
    cfg = load_config(run / "config.yaml")
    mask = next_mask(cfg, run, 2)
    assert mask.density() == pytest.approx(0.64, abs=2e-3)


@pytest.mark.parametrize("name", ["export_compact", "export_csr", "level_1"])
def test_prechange_models_load_and_compute_the_same(name):
    path = FIXTURE / RUN_NAME / "level_1" / "train" / "best.safetensors" if name == "level_1" else FIXTURE / name
    rec = Recognizer.load(path)
    feats, lens = probe_features(rec.featurizer.dim)
    with torch.no_grad():
        log_probs, _ = rec.ctc_log_probs(feats, lens)
    torch.testing.assert_close(log_probs, load_file(str(FIXTURE / "expected_outputs.safetensors"))[name],
                               rtol=1e-5, atol=1e-5)
