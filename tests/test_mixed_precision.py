"""bf16 autocast (``train.amp=bf16``, also on CPU): the CTC heads return float32 log-probabilities,
so the loss is computed from full-precision values and stays close to the float32 loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from audio_lottery.config import load_config
from audio_lottery.models import build_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("preset", ["ds2_tiny", "conformer_tiny", "transformer_tiny"])
def test_ctc_log_probs_are_float32_under_bf16_autocast(preset):
    cfg = load_config(CONFIGS / f"{preset}.yaml")
    torch.manual_seed(0)
    model = build_model(cfg.model, vocab_size=29, feat_dim=cfg.data.features.n_mels).eval()
    feats = torch.randn(2, 120, cfg.data.features.n_mels)
    lens = torch.tensor([120, 90])
    targets, target_lens = torch.randint(1, 29, (2, 6)), torch.tensor([6, 4])
    with torch.no_grad():
        full = model.loss(feats, lens, targets, target_lens)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            log_probs, _ = model(feats, lens)
            mixed = model.loss(feats, lens, targets, target_lens)
    assert log_probs.dtype == torch.float32
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(()), atol=1e-4)  # normalised in float32
    assert mixed.dtype == torch.float32 and abs(float(mixed) - float(full)) < 0.05 * abs(float(full))
