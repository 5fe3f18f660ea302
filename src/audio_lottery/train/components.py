"""Builders that turn config sections into data-side components for training."""

from __future__ import annotations

from pathlib import Path

import torch

from audio_lottery.config import Config
from audio_lottery.data.noise.mix import NoiseMixer
from audio_lottery.data.pipeline import augmentation
from audio_lottery.data.text import out_of_vocabulary
from audio_lottery.data.pipeline.tokenizers import build_tokenizer, load_tokenizer, tokenizer_saved


def prepare_tokenizer(cfg: Config, train_texts: list[str], tok_dir: Path):
    """Load the tokenizer saved in ``tok_dir`` or build it (BPE is trained on ``train_texts``)."""
    tok_dir = Path(tok_dir)
    if tokenizer_saved(tok_dir):
        return load_tokenizer(tok_dir)
    usable = [t for t in train_texts if t.strip() and not out_of_vocabulary(t)]
    tok = build_tokenizer(cfg.data, usable, tok_dir)
    tok.save(tok_dir)
    return tok


def build_augmentation(cfg: Config, featurizer: torch.nn.Module) -> augmentation.Augmentation | None:
    """Every training augmentation of ``cfg`` composed (:mod:`audio_lottery.data.pipeline.augmentation`),
    background noise from the noise bank's train split included; None when all are off."""
    a, sr = cfg.data.augment, cfg.data.features.sample_rate
    noise = NoiseMixer.from_config(a, sr, seed=cfg.train.seed)  # train split only
    return augmentation.build_augmentation(a, sr, featurizer, noise)
