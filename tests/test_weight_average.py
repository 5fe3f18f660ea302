"""WeightAverage: the moving average against a float64 reference, pruned weights, checkpoints, the loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from audio_lottery.config import load_config
from audio_lottery.files import load_tensors
from audio_lottery.pruning.mask import Mask, MaskEnforcer
from audio_lottery.train.checkpoint import load_training_state, save_training_state
from audio_lottery.train.loop import train_model
from audio_lottery.train.weight_average import WeightAverage

from conftest import TINY_CONFIG, tiny_overrides


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.Linear(6, 3))


def _train_steps(model: nn.Module, average: WeightAverage, steps: int, enforcer: MaskEnforcer | None = None):
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    for step in range(1, steps + 1):
        opt.zero_grad()
        model(torch.randn(8, 4)).pow(2).mean().backward()
        if enforcer is not None:
            enforcer.mask_grads()
        opt.step()
        if enforcer is not None:
            enforcer.apply()
        average.update(model, step)
    return opt


def test_the_average_matches_a_float64_reference():
    model = _net()
    average = WeightAverage(model, decay=0.9)
    reference = {k: v.double().clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(1, 31):
        opt.zero_grad()
        model(torch.randn(8, 4)).pow(2).mean().backward()
        opt.step()
        average.update(model, step)
        d = min(0.9, (1 + step) / (10 + step))
        for k, ref in reference.items():
            ref.mul_(d).add_((1 - d) * model.state_dict()[k].double())
    assert average.decay_at(1) == pytest.approx(2 / 11) and average.decay_at(1000) == 0.9
    for k, ref in reference.items():
        assert torch.allclose(average.tensors[k].double(), ref, atol=1e-6), k
    # it is an average, not the last weights
    assert not torch.allclose(average.tensors["0.weight"], model.state_dict()["0.weight"])
    # integer buffers (batch norm's step counter) are copied, not averaged
    assert int(average.tensors["1.num_batches_tracked"]) == 30


def test_pruned_weights_stay_exactly_zero_in_the_average():
    model = _net()
    keep = torch.rand(6, 4) > 0.5
    mask = Mask({"0.weight": keep})
    enforcer = MaskEnforcer(model, mask)
    enforcer.apply()
    average = WeightAverage(model, decay=0.8)
    _train_steps(model, average, 20, enforcer)
    averaged = average.tensors["0.weight"]
    assert torch.count_nonzero(averaged[~keep]) == 0
    assert bool((averaged[keep] != 0).all())


def test_applied_swaps_the_average_in_and_always_restores():
    model = _net()
    average = WeightAverage(model, decay=0.5)
    _train_steps(model, average, 5)
    own = {k: v.clone() for k, v in model.state_dict().items()}
    with average.applied(model):
        assert torch.equal(model.state_dict()["2.weight"], average.tensors["2.weight"])
    with pytest.raises(RuntimeError), average.applied(model):
        raise RuntimeError("evaluation failed")
    for k, v in model.state_dict().items():
        assert torch.equal(v, own[k]), k


def test_decay_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="ema_decay"):
        WeightAverage(_net(), decay=1.0)


def test_checkpoint_round_trip_and_a_mismatched_average_is_refused(tmp_path):
    model = _net()
    average = WeightAverage(model, decay=0.7)
    opt = _train_steps(model, average, 6)
    save_training_state(tmp_path, "last", model, opt, {"state": {"epoch": 1}}, average)
    fresh_model = _net(seed=1)
    fresh = WeightAverage(fresh_model, decay=0.7)
    load_training_state(tmp_path, "last", fresh_model, torch.optim.AdamW(fresh_model.parameters()), average=fresh)
    for k, v in average.tensors.items():
        assert torch.equal(fresh.tensors[k], v), k
    other = nn.Sequential(nn.Linear(4, 6))
    with pytest.raises(ValueError, match="last.safetensors.*weight average"):
        WeightAverage(other, 0.7).load_checkpoint_tensors(load_tensors(tmp_path / "last.safetensors"),
                                                          str(tmp_path / "last.safetensors"))


def test_training_keeps_and_checkpoints_the_averaged_weights(tiny_corpus, tmp_path):
    cfg = load_config(TINY_CONFIG, tiny_overrides(tiny_corpus, "train.epochs=1", "train.ema_decay=0.9"))
    result = train_model(cfg, tmp_path / "run", progress=False)
    assert result["best_epoch"] == 1
    best = load_tensors(tmp_path / "run" / "best.safetensors")
    last = load_tensors(tmp_path / "run" / "last.safetensors")
    weights = [k for k in best if k.endswith("weight") and best[k].is_floating_point()]
    assert weights
    for k in weights:  # best = the average at the end of the epoch, not the live weights
        assert torch.equal(best[k], last[f"average.{k}"]), k
    assert any(not torch.equal(best[k], last[f"model.{k}"]) for k in weights)
