"""Shared fixtures: a tiny synthesised corpus (built once per test session) and the tiny preset."""

from __future__ import annotations

import os
import sys
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


CLI = [sys.executable, "-m", "audio_lottery.cli", "-q"]
ONE = "train.threads=1"  # one thread: two contend badly on a busy 2-core machine (runtime key, not hashed)


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (two contend badly on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1")


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in-process (no torch re-import): (exit code, stdout, stderr)."""
    from audio_lottery.cli import main

    code = main(["-q", *args])
    out = capsys.readouterr()
    return code, out.out, out.err
