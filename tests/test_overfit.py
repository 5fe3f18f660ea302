"""Every backbone learns: its tiny preset memorises one short synthetic utterance.

A deterministic 1.5 s waveform (twelve Hann-windowed tones of fixed random pitch) is paired with
a fixed transcript. Each backbone trains on it alone through the real optimizer and step
(:func:`make_optimizer`, :class:`TrainStep`) until its loss is at least 10x lower than at the
first step, then must transcribe it greedily with a character error rate of at most 0.2. A model
that cannot learn (a broken loss, gradient, mask or decoder) fails here within seconds.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audio_lottery.config import load_config
from audio_lottery.data.pipeline.dataset import Batch
from audio_lottery.data.pipeline.tokenizers import CharTokenizer
from audio_lottery.eval.metrics import error_rates
from audio_lottery.recognizer import Recognizer
from audio_lottery.train.loop import make_optimizer
from audio_lottery.train.step import TrainStep

from conftest import ROOT

TEXT = "open the door"
SAMPLE_RATE = 16000

# backbone -> (optimizer steps, learning rate, extra overrides). The transformer decodes greedily
# with its attention decoder alone (beam 1, no CTC prefix score) and trains without label
# smoothing, whose entropy floor would keep its loss from falling 10x.
SETUPS = {
    "ds2": (200, 3e-3, []),
    "conformer": (200, 3e-3, []),
    "transformer": (200, 3e-3, ["model.transformer.label_smoothing=0", "model.transformer.beam_size=1",
                                "model.transformer.ctc_prefix_weight=0"]),
    "rnnt": (400, 5e-3, []),
}


def tone_sequence(seconds: float = 1.5, tones: int = 12, seed: int = 0) -> np.ndarray:
    """A deterministic waveform: ``tones`` Hann-windowed sine bursts of random pitch (200-3500 Hz)."""
    rng = np.random.default_rng(seed)
    n = int(SAMPLE_RATE * seconds) // tones
    t = np.arange(n) / SAMPLE_RATE
    return np.concatenate([0.3 * np.hanning(n) * np.sin(2 * np.pi * f * t)
                           for f in rng.uniform(200, 3500, tones)]).astype(np.float32)


@pytest.mark.parametrize("backbone", sorted(SETUPS))
def test_backbone_memorises_one_utterance(backbone, one_thread):
    steps, lr, extra = SETUPS[backbone]
    cfg = load_config(ROOT / "configs" / f"{backbone}_tiny.yaml", [f"train.lr={lr}", "train.threads=1", *extra])
    torch.manual_seed(0)
    tokenizer = CharTokenizer()
    rec = Recognizer.build(cfg, tokenizer)
    wave = tone_sequence()
    feats, lens = rec.features([wave])
    ids = tokenizer.encode(TEXT)
    batch = Batch(feats, lens, torch.tensor([ids]), torch.tensor([len(ids)]), ["u"], [TEXT])
    step = TrainStep(cfg, rec.model, make_optimizer(rec.model, cfg), None, torch.device("cpu"))

    rec.model.train()
    losses = [step(batch).loss for _ in range(steps)]
    assert all(loss is not None for loss in losses), "a step was skipped (non-finite loss or gradient)"
    final = float(np.mean(losses[-5:]))
    assert final * 10 <= losses[0], f"loss only fell from {losses[0]:.3f} to {final:.3f}"

    hyp = rec.transcribe([wave])[0]
    assert error_rates([TEXT], [hyp])["cer"] <= 0.2, f"memorised {TEXT!r} decodes as {hyp!r}"
