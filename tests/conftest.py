"""Shared fixtures: a tiny synthesised corpus (built once per test session) and the tiny preset."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "configs" / "ds2_tiny.yaml"

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """A few dozen utterances from every TTS engine (a few seconds to synthesise)."""
    from audio_lottery.data.corpora.synth import synthesize_corpus

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


@contextmanager
def recorded_starts() -> Iterator[dict[Path, dict[str, torch.Tensor]]]:
    """Record the weights every training run inside the block starts from, by output folder
    (``.../level_L/train``), through :data:`audio_lottery.train.loop.START_HOOKS`."""
    from audio_lottery.train import loop

    starts: dict[Path, dict[str, torch.Tensor]] = {}

    def hook(out_dir: Path, state: dict[str, torch.Tensor]) -> None:
        starts[Path(out_dir).resolve()] = {k: v.detach().clone() for k, v in state.items()}

    loop.START_HOOKS.append(hook)
    try:
        yield starts
    finally:
        loop.START_HOOKS.remove(hook)


def assert_starts_from(start: dict[str, torch.Tensor], weights: dict[str, torch.Tensor], mask) -> None:
    """``start`` equals ``weights`` with ``mask`` applied, element by element, on every tensor."""
    assert start.keys() == weights.keys()
    for name, value in weights.items():
        expected = value * mask[name] if name in mask else value
        assert torch.equal(start[name], expected), f"{name}: the start weights differ from the masked rewind point"


def noise_utterances(folder: Path, n: int, first: int = 8000, step: int = 1600, sample_rate: int = 16000) -> list[dict]:
    """``n`` manifest records of white-noise FLAC files in ``folder`` (``first + step * i`` samples each)."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        samples = first + step * i
        path = folder / f"u{i}.flac"
        sf.write(path, (rng.standard_normal(samples) * 0.1).astype(np.float32), sample_rate)
        out.append({"id": f"u{i}", "audio": str(path), "duration": samples / sample_rate, "text": "a b"})
    return out
