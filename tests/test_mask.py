"""Mask, MaskEnforcer, select_prunable and MAC counting on tiny plain models."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.utils.prune
from torch import nn

from audio_lottery.pruning import Mask, MaskEnforcer, effective_macs, macs_per_second, select_prunable
from audio_lottery.pruning.strategies import random_prune


class TinyASR(nn.Module):
    """Conv2d (freq stride 2) -> 2-layer BiLSTM -> Linear, with the ASRModel ``prunable()`` hook."""

    def __init__(self, feat: int = 8, ch: int = 3, hidden: int = 6, vocab: int = 5) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, ch, kernel_size=(3, 3), stride=(1, 2), padding=(1, 1))
        self.rnn = nn.LSTM(ch * feat // 2, hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(2 * hidden, vocab)

    def forward(self, feats: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(feats.unsqueeze(1))
        b, c, t, f = x.shape
        x, _ = self.rnn(x.permute(0, 2, 1, 3).reshape(b, t, c * f))
        return self.fc(x), lens

    def prunable(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if "weight" in n}


@pytest.fixture
def model() -> TinyASR:
    torch.manual_seed(0)
    return TinyASR()


# ----------------------------------------------------------------- select_prunable


def test_select_prunable_defaults_include_exclude(model: TinyASR) -> None:
    assert list(select_prunable(model)) == list(model.prunable())
    with_bias = select_prunable(model, include=["fc.bias"])
    assert "fc.bias" in with_bias and set(model.prunable()) < set(with_bias)
    no_l1 = select_prunable(model, exclude=["rnn.*_l1*"])
    assert "rnn.weight_ih_l1" not in no_l1 and "rnn.weight_hh_l1_reverse" not in no_l1
    assert "rnn.weight_ih_l0_reverse" in no_l1
    names = list(dict(model.named_parameters()))
    assert list(with_bias) == [n for n in names if n in with_bias]  # named_parameters order


def test_select_prunable_unmatched_include_raises(model: TinyASR) -> None:
    with pytest.raises(ValueError, match="decoder.*"):
        select_prunable(model, include=["decoder.*"])


# ----------------------------------------------------------------- Mask basics


def test_mask_counts_and_report(model: TinyASR) -> None:
    mask = Mask.from_patterns(model, [], [])
    assert mask.density() == 1.0 and mask.remaining() == mask.numel()
    t = mask.tensors()
    t["fc.weight"] = torch.zeros_like(t["fc.weight"])
    mask = Mask(t)
    rep = mask.report()
    assert rep["tensors"]["fc.weight"] == {"shape": [5, 12], "numel": 60, "remaining": 0, "density": 0.0}
    assert rep["global"]["numel"] == mask.numel()
    assert rep["global"]["remaining"] == mask.numel() - 60
    assert rep["global"]["density"] == pytest.approx(1 - 60 / mask.numel())


def test_save_load_roundtrip(tmp_path, model: TinyASR) -> None:
    mask = random_prune(model.prunable(), Mask.ones_like(model.prunable()), 0.5, torch.Generator().manual_seed(1))
    path = tmp_path / "level_1" / "mask.safetensors"
    mask.save(path)
    assert path.is_file() and (tmp_path / "level_1" / "mask.json").is_file()
    report = json.loads((tmp_path / "level_1" / "mask.json").read_text())
    assert report == json.loads(json.dumps(mask.report()))
    loaded = Mask.load(path)
    assert loaded == mask and loaded.keys() == mask.keys()  # order kept, not sorted
    assert all(t.dtype == torch.bool for _, t in loaded.items())


def test_load_refuses_non_binary(tmp_path) -> None:
    from audio_lottery.files import save_tensors

    save_tensors(tmp_path / "bad.safetensors", {"w": torch.tensor([0, 2], dtype=torch.uint8)})
    with pytest.raises(ValueError, match="0/1"):
        Mask.load(tmp_path / "bad.safetensors")
    with pytest.raises(FileNotFoundError):
        Mask.load(tmp_path / "missing.safetensors")


def test_apply_zeroes_pruned_weights(model: TinyASR) -> None:
    mask = random_prune(model.prunable(), Mask.ones_like(model.prunable()), 0.5, torch.Generator().manual_seed(2))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    mask.apply_(model)
    for name, p in model.named_parameters():
        if name in mask:
            assert torch.all(p[~mask[name]] == 0)
            assert torch.equal(p[mask[name]], before[name][mask[name]])
        else:
            assert torch.equal(p, before[name])


def test_mismatched_mask_is_refused(model: TinyASR) -> None:
    with pytest.raises(KeyError, match="nope"):
        Mask({"nope": torch.ones(3, dtype=torch.bool)}).apply_(model)
    with pytest.raises(ValueError, match="fc.weight"):
        MaskEnforcer(model, Mask({"fc.weight": torch.ones(3, dtype=torch.bool)}))


# ----------------------------------------------------------------- MaskEnforcer during training


@pytest.mark.parametrize("fused", [False, True])
def test_enforcer_keeps_pruned_weights_zero_under_adamw(model: TinyASR, fused: bool) -> None:
    mask = random_prune(model.prunable(), Mask.ones_like(model.prunable()), 0.5, torch.Generator().manual_seed(3))
    assert mask.density() == pytest.approx(0.5, abs=1e-3)
    mask.apply_(model)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    enforcer = MaskEnforcer(model, mask)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1, fused=fused)
    torch.manual_seed(4)
    feats, lens = torch.randn(4, 10, 8), torch.full((4,), 10)
    target = torch.randn(4, 10, 5)
    for _ in range(200):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(feats, lens)[0], target)
        loss.backward()
        enforcer.mask_grads()
        opt.step()
        enforcer.apply()
    for name, m in mask.items():
        p = dict(model.named_parameters())[name].detach()
        assert torch.all(p[~m] == 0.0), name
        changed = (p[m] != start[name][m]).float().mean()
        assert changed > 0.95, name
    # the model stays a plain module: no re-parametrisation, deepcopy and state_dict work
    assert not torch.nn.utils.prune.is_pruned(model)
    assert list(model.state_dict()) == [n for n, _ in model.named_parameters()]
    clone = copy.deepcopy(model)
    for name, m in mask.items():
        assert torch.all(clone.state_dict()[name][~m] == 0.0)


def test_enforcer_skips_dense_tensors_and_missing_grads(model: TinyASR) -> None:
    mask = Mask.ones_like(model.prunable())
    t = mask.tensors()
    t["fc.weight"] = torch.zeros_like(t["fc.weight"])
    enforcer = MaskEnforcer(model, Mask(t))
    assert len(enforcer) == 1
    enforcer.mask_grads()  # no gradients yet: nothing to do
    enforcer.apply()
    assert torch.all(model.fc.weight == 0)


# ----------------------------------------------------------------- MACs

# TinyASR(feat=8, ch=3, hidden=6, vocab=5) on T frames:
#   conv: out [1, 3, T, 4] -> 12 T outputs x (1*3*3) = 108 T
#   LSTM: 2 layers x 2 directions x 4*6*(12+6) = 1728 T
#   fc:   T rows x 12*5 = 60 T
DENSE_PER_FRAME = 108 + 1728 + 60


def test_dense_macs_hand_computed(model: TinyASR) -> None:
    out = effective_macs(model, None, torch.randn(1, 10, 8), torch.tensor([10]))
    assert out["dense_macs"] == 10 * DENSE_PER_FRAME
    assert out["effective_macs"] == pytest.approx(out["dense_macs"])
    assert out["weights"]["rnn.weight_hh_l1_reverse"]["dense"] == 10 * 4 * 6 * 6
    assert model.training  # mode restored


def test_effective_macs_scaled_by_density(model: TinyASR) -> None:
    t = Mask.ones_like(model.prunable()).tensors()
    t["conv.weight"].view(-1)[:18] = False  # density 1/3
    t["fc.weight"].view(-1)[:30] = False  # density 1/2
    t["rnn.weight_ih_l0"].view(-1)[:144] = False  # 24x12 weight, density 1/2
    out = effective_macs(model, Mask(t), torch.randn(1, 10, 8), torch.tensor([10]))
    expected = 10 * (108 / 3 + 60 / 2 + 1728 - 288 / 2)
    assert out["effective_macs"] == pytest.approx(expected)
    assert out["dense_macs"] == 10 * DENSE_PER_FRAME


def test_macs_per_second_and_per_direction_lstms() -> None:
    class TwoWay(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fwd = nn.LSTM(4, 3, batch_first=True)
            self.bwd = nn.LSTM(4, 3, batch_first=True)
            self.conv = nn.Conv1d(4, 2, kernel_size=3, padding=1)

        def forward(self, x: torch.Tensor, lens: torch.Tensor):
            a, _ = self.fwd(x)
            b, _ = self.bwd(x.flip(1))
            return a + b.flip(1) + self.conv(x.transpose(1, 2)).sum(), lens

    out = macs_per_second(TwoWay(), None, feat_dim=4, frames_per_second=100)
    assert out["dense_macs"] == 100 * (2 * 4 * 3 * (4 + 3) + 2 * 4 * 3)


def test_multihead_attention_projections_counted() -> None:
    class Att(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.att = nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x: torch.Tensor, lens: torch.Tensor):
            return self.att(x, x, x, need_weights=False)[0], lens

    out = effective_macs(Att(), None, torch.randn(1, 5, 8), torch.tensor([5]))
    assert out["dense_macs"] == 5 * (3 * 64 + 64)
