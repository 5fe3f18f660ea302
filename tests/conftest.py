"""Shared fixtures: a tiny synthesised corpus (built once per test session) and the tiny preset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "configs" / "ds2_tiny.yaml"

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A few dozen utterances from every TTS engine (a few seconds to synthesise)."""
    from audio_lottery.data.synth import synthesize_corpus

    out = tmp_path_factory.mktemp("tiny_corpus")
    synthesize_corpus(out, hours=0.04, seed=0, workers=2, progress=False)
    return out


def tiny_overrides(corpus: Path, *extra: str) -> list[str]:
    """Overrides pointing the tiny preset at ``corpus``."""
    return [f"data.{s}_manifest={corpus / f'{s}.jsonl'}" for s in ("train", "dev", "test")] + list(extra)


@pytest.fixture
def cli_env() -> dict:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "2"
    return env
