"""Feature front-ends and tokenizers are plug-ins: a new kind registers from its own module and
config, training components and ``info`` take it with no edit to config.py or cli/."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from audio_lottery import config as config_mod
from audio_lottery.config import ConfigError, DataConfig, FeatureConfig, describe, load_config, registered_choices
from audio_lottery.data.pipeline import features as feat_mod
from audio_lottery.data.pipeline import tokenizers as tok_mod
from audio_lottery.data.pipeline.features import build_featurizer, register_front_end
from audio_lottery.data.pipeline.tokenizers import (
    CharTokenizer,
    build_tokenizer,
    load_tokenizer,
    register_tokenizer,
    tokenizer_stand_in,
)

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "audio_lottery"


@pytest.fixture
def clean_registries(monkeypatch):
    """Registrations made by a test are undone afterwards."""
    monkeypatch.setattr(feat_mod, "FRONT_ENDS", dict(feat_mod.FRONT_ENDS))
    monkeypatch.setattr(tok_mod, "TOKENIZERS", dict(tok_mod.TOKENIZERS))
    monkeypatch.setattr(config_mod, "_CHOICES", {k: list(v) for k, v in config_mod._CHOICES.items()})
    monkeypatch.setattr(config_mod, "_CHOICE_HELP", dict(config_mod._CHOICE_HELP))


def test_built_in_kinds_are_registered_with_help():
    assert registered_choices("data.features.kind") == ("logmel", "linear", "whisper")
    assert registered_choices("data.tokenizer") == ("char", "bpe", "whisper")
    helps = {key: text for key, _, text in describe()}
    assert "whisper (Whisper's log-mel" in helps["data.features.kind"]
    assert "bpe (sentencepiece BPE" in helps["data.tokenizer"]


def test_a_new_front_end_and_tokenizer_plug_in(clean_registries, tmp_path):
    @register_front_end("frames", "raw 10 ms frames")
    class Frames(nn.Module):
        def __init__(self, cfg: FeatureConfig) -> None:
            super().__init__()
            self.dim = 160

        def num_frames(self, num_samples: int) -> int:
            return num_samples // 160

        def forward(self, wave: torch.Tensor) -> torch.Tensor:
            return wave[..., : self.num_frames(wave.shape[-1]) * 160].unflatten(-1, (-1, 160))

    @register_tokenizer("upper", "A-Z and space")
    class Upper(CharTokenizer):
        kind = "upper"

        @classmethod
        def build(cls, data_cfg, train_texts, out_dir):
            tok = cls()
            tok.save(out_dir)
            return tok

        @classmethod
        def stand_in(cls, data_cfg):
            return cls()

    cfg = load_config(None, ["data.features.kind=frames", "data.tokenizer=upper"])
    assert build_featurizer(cfg.data.features)(torch.zeros(1600)).shape == (10, 160)
    tok = build_tokenizer(cfg.data, [], tmp_path)
    assert json.loads((tmp_path / "tokenizer.json").read_text())["kind"] == "upper"
    assert type(load_tokenizer(tmp_path)) is Upper and type(tokenizer_stand_in(cfg.data)) is Upper
    assert tok.vocab_size == 29
    helps = {key: text for key, _, text in describe()}
    assert "frames (raw 10 ms frames)" in helps["data.features.kind"] and "upper (A-Z and space)" in helps["data.tokenizer"]


def test_unregistered_kinds_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="data.features.kind.*allowed values: logmel, linear, whisper"):
        load_config(None, ["data.features.kind=mfcc"])
    with pytest.raises(ValueError, match="unknown tokenizer 'nope'; registered: char, bpe, whisper"):
        build_tokenizer(DataConfig(tokenizer="nope"), [], tmp_path)
    with pytest.raises(ValueError, match="unknown feature kind 'mfcc'; registered: logmel, linear, whisper"):
        build_featurizer(FeatureConfig(kind="mfcc"))
    (tmp_path / "tokenizer.json").write_text('{"kind": "nope"}')
    with pytest.raises(ValueError, match="tokenizer.json: unknown tokenizer kind 'nope'"):
        load_tokenizer(tmp_path)


def test_registering_twice_or_under_another_kind_is_refused(clean_registries):
    with pytest.raises(ValueError, match="already registered"):
        register_front_end("logmel", "again")(nn.Identity)
    with pytest.raises(ValueError, match="kind is 'char', registered as 'chars'"):
        register_tokenizer("chars", "x")(CharTokenizer)


def _kind_literals(path: Path, kinds: set[str], nodes: tuple[type, ...]) -> list[str]:
    """String constants equal to a registered kind inside the ``nodes`` of ``path`` (comparisons:
    dispatch on a kind; tuples/lists/sets: a fixed list of choices)."""
    tree = ast.parse(path.read_text(), str(path))
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, nodes):
            for sub in ast.walk(node):
                if isinstance(sub, ast.Constant) and sub.value in kinds:
                    hits.append(f"{path.relative_to(ROOT)}:{sub.lineno}: {sub.value!r}")
    return hits


def test_config_and_cli_name_no_plug_in_front_end_or_tokenizer():
    plugged = (set(registered_choices("data.features.kind")) | set(registered_choices("data.tokenizer"))) - {
        FeatureConfig().kind, DataConfig().tokenizer}  # the defaults are the fields' default values
    hits = _kind_literals(PKG / "config.py", plugged, (ast.Compare, ast.Tuple, ast.List, ast.Set))
    # cli/: no dispatch on a kind (`lm build --unit` lists the LM's own units, not tokenizer kinds)
    hits += [h for f in sorted((PKG / "cli").glob("*.py")) for h in _kind_literals(f, plugged, (ast.Compare,))]
    assert hits == []
    assert "whisper" not in (PKG / "config.py").read_text().lower()
