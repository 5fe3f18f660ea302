"""Safe loading and config validation.

A pickle-based checkpoint whose unpickling writes a file is refused by every loading path
(and nothing is written); configs are validated with messages naming the dotted key and
the allowed values, type or range.
"""

from __future__ import annotations

import pathlib
import shutil

import pytest
import torch
import yaml

from audio_lottery.config import ConfigError, load_config
from audio_lottery.data.pipeline.tokenizers import CharTokenizer
from audio_lottery.files import load_tensors, load_tensors_any
from audio_lottery.pruning.mask import Mask
from audio_lottery.recognizer import Recognizer
from audio_lottery.train.checkpoint import load_training_state, save_training_state

from conftest import TINY_CONFIG, tiny_overrides


class _WritesAFile:
    """Unpickling this calls ``Path(victim).write_text("pwned")``."""

    def __init__(self, victim: pathlib.Path) -> None:
        self.victim = victim

    def __reduce__(self):
        return (pathlib.Path.write_text, (pathlib.Path(self.victim), "pwned"))


@pytest.fixture
def evil(tmp_path):
    """(a torch.save pickle checkpoint with the payload, the file its unpickling would write)."""
    victim = tmp_path / "victim.txt"
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.ones(2)}, "payload": _WritesAFile(victim)}, path)
    torch.load(path, weights_only=False)  # control: the payload is live when code is unpickled
    assert victim.read_text() == "pwned"
    victim.unlink()
    return path, victim


def _plant(evil_path: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(evil_path, dest)
    return dest


def test_tensor_loaders_refuse_the_pickle(evil, tmp_path):
    path, victim = evil
    with pytest.raises(ValueError, match=r"evil\.pt: refused to load"):
        load_tensors_any(path)
    for name in ("disguised.safetensors", "disguised.pt"):
        planted = _plant(path, tmp_path / name)
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            load_tensors_any(planted)
    with pytest.raises(ValueError, match=r"mask\.safetensors: not a readable safetensors file"):
        Mask.load(_plant(path, tmp_path / "mask.safetensors"))
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_tensors(tmp_path / "disguised.safetensors")
    assert not victim.exists()


def test_recognizer_and_cli_refuse_a_pickled_model(evil, tmp_path, capsys):
    from audio_lottery.cli import main

    path, victim = evil
    model_dir = tmp_path / "model"
    Recognizer.build(load_config(TINY_CONFIG), CharTokenizer()).save(model_dir)
    _plant(path, model_dir / "best.safetensors")
    _plant(path, model_dir / "model.pt")
    for target in (model_dir, model_dir / "best.safetensors", model_dir / "model.pt"):
        with pytest.raises(ValueError, match="not a readable safetensors file"):
            Recognizer.load(target)
    assert main(["-q", "transcribe", "--model", str(model_dir / "model.pt"), str(tmp_path / "x.wav")]) == 2
    assert "model.pt: not a readable safetensors file" in capsys.readouterr().err
    assert not victim.exists()


def test_resume_treats_a_pickled_checkpoint_as_damaged(evil, tmp_path):
    path, victim = evil
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    save_training_state(tmp_path / "run", "last", model, opt, {"state": {"epoch": 1}})
    _plant(path, tmp_path / "run" / "last.safetensors")
    assert load_training_state(tmp_path / "run", "last", model, opt) is None
    assert (tmp_path / "run" / "last.safetensors.corrupt").is_file()
    assert not victim.exists()


def test_lottery_run_regenerates_a_pickled_theta0(evil, tiny_corpus, tmp_path):
    from audio_lottery.lottery.runner import prepare_run

    path, victim = evil
    cfg = load_config(TINY_CONFIG, tiny_overrides(tiny_corpus))
    run = prepare_run(cfg, tmp_path)
    good = load_tensors(run / "init.safetensors")
    _plant(path, run / "init.safetensors")
    assert prepare_run(cfg, tmp_path) == run
    again = load_tensors(run / "init.safetensors")
    assert all(torch.equal(good[k], again[k]) for k in good)  # same seed, same theta_0
    assert not victim.exists()


def test_yaml_with_python_tags_is_refused(tmp_path):
    victim = tmp_path / "victim.txt"
    bad = tmp_path / "config.yaml"
    bad.write_text(f"train: !!python/object/apply:pathlib.Path.write_text [!!python/object/apply:pathlib.Path "
                   f"['{victim}'], 'pwned']\n")
    with pytest.raises(ConfigError, match=r"config\.yaml: not valid YAML"):
        load_config(bad)
    assert not victim.exists()


# --------------------------------------------------------------------------- config validation


@pytest.mark.parametrize("override, needles", [
    # unknown keys: the dotted path and the keys that exist there
    ("model.ds2.rnn_hiden=8", ["unknown key 'model.ds2.rnn_hiden'", "allowed:", "rnn_hidden"]),
    ("modle.name=ds2", ["unknown key 'modle'", "model"]),
    # wrong types: the key and the expected type
    ("train.epochs=2.5", ["train.epochs: expected an integer, got 2.5"]),
    ("train.lr=fast", ["train.lr: expected a number"]),
    ("train.lr=true", ["train.lr: expected a number"]),
    ("train.sortagrad=maybe", ["train.sortagrad: expected true/false"]),
    ("train.betas=0.9", ["train.betas: expected a list"]),
    ("model.ds2.conv_channels=[8, x]", ["model.ds2.conv_channels: expected a list of integers"]),
    ("prune.include=[1, 2]", ["prune.include: expected a list of strings"]),
    ("model.ds2=3", ["model.ds2: expected a mapping"]),
    # out-of-range values: the key and the rule
    ("train.epochs=0", ["train.epochs: must be >= 1, got 0"]),
    ("train.lr=-0.1", ["train.lr: must be > 0"]),
    ("train.lr=.nan", ["train.lr: must be > 0, got nan"]),
    ("prune.fraction=1.0", ["prune.fraction: must be >= 0 and < 1, got 1.0"]),
    ("data.augment.noise_prob=1.5", ["data.augment.noise_prob: must be >= 0 and <= 1"]),
    ("data.max_batch_size=0", ["data.max_batch_size: must be >= 1"]),
    ("lottery.levels=-1", ["lottery.levels: must be >= 0"]),
    # invalid enum values: the key and the allowed values
    ("data.tokenizer=words", ["data.tokenizer: 'words' is not allowed; allowed values: char, bpe"]),
    ("model.name=lstm", ["model.name: 'lstm' is not allowed; allowed values:", "ds2", "conformer", "rnnt", "transformer"]),
    ("prune.strategy=magic", ["prune.strategy", "global_magnitude, lamp, layerwise_magnitude, random"]),
    ("train.schedule=cosine", ["train.schedule", "anneal, noam"]),
    ("data.features.kind=mfcc", ["data.features.kind", "logmel, linear"]),
    # rules between keys: every key involved
    ("data.min_duration=30", ["data.min_duration (30.0) must be < data.max_duration (20.0)"]),
    ("model.transformer.heads=3", ["model.transformer.heads (3) must divide model.transformer.d_model"]),
    ("model.conformer.kernel_size=8", ["model.conformer.kernel_size must be odd"]),
    ("train.betas=[0.9]", ["train.betas: expected two numbers in [0, 1)"]),
    ("model.ds2.conv_strides=[[2, 2]]", ["model.ds2.conv_channels, conv_kernels and conv_strides"]),
    ("prune.rewind=5", ["prune.rewind", "needs a unit"]),
])
def test_bad_config_values_name_the_key_and_what_is_allowed(override, needles):
    with pytest.raises(ConfigError) as info:
        load_config(TINY_CONFIG, [override])
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


def test_config_file_errors_name_the_file_and_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"train": {"epochs": 0}}))
    with pytest.raises(ConfigError, match=r"bad\.yaml: train\.epochs: must be >= 1, got 0"):
        load_config(bad)
    bad.write_text(yaml.safe_dump({"data": {"augment": {"snr_min": 30.0}}}))
    with pytest.raises(ConfigError, match=r"bad\.yaml: data\.augment\.snr_min \(30\.0\) must be <= "):
        load_config(bad)


def test_every_preset_validates_and_valid_edges_pass():
    root = pathlib.Path(TINY_CONFIG).parent
    for preset in root.glob("*.yaml"):
        load_config(preset)
    cfg = load_config(TINY_CONFIG, ["prune.fraction=0", "train.lr=1e-9", "data.augment.noise_prob=1",
                                    "lottery.levels=0", "train.betas=[0, 0.5]", "model.ds2.conv_channels=[1, 2]"])
    assert cfg.prune.fraction == 0.0 and cfg.train.betas == [0, 0.5]
