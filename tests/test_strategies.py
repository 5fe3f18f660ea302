"""Mask strategies: agreement with torch.nn.utils.prune, count rule, purity, registry."""

from __future__ import annotations

import pytest
import torch
import torch.nn.utils.prune as prune
from torch import nn

from audio_lottery.pruning import (
    STRATEGIES,
    Mask,
    get_strategy,
    global_magnitude,
    lamp,
    lamp_scores,
    layerwise_magnitude,
    random_prune,
    remaining_after,
)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.ModuleDict(
        {
            "conv": nn.Conv2d(1, 4, (5, 3)),
            "rnn": nn.LSTM(16, 12, num_layers=2, bidirectional=True),
            "fc": nn.Linear(24, 7),
        }
    )


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "weight" in n}


def _torch_global_mask(weights: dict[str, torch.Tensor], amount: float | int) -> Mask:
    """Reference: prune.global_unstructured(L1Unstructured) on plain holder modules."""
    holders = []
    for w in weights.values():
        h = nn.Module()
        h.weight = nn.Parameter(w.clone())
        holders.append(h)
    prune.global_unstructured([(h, "weight") for h in holders], prune.L1Unstructured, amount=amount)
    return Mask({n: h.weight_mask.bool() for n, h in zip(weights, holders)})


def test_registry_and_unknown_name() -> None:
    assert {"global_magnitude", "lamp", "layerwise_magnitude", "random", "block", "nm", "channel"} == set(STRATEGIES)
    assert get_strategy("global_magnitude") is global_magnitude
    with pytest.raises(ValueError, match="global_magnitude.*layerwise_magnitude.*random"):
        get_strategy("magnitude")


def test_global_magnitude_matches_torch_prune_first_level() -> None:
    w = _weights(_model())
    ours = global_magnitude(w, Mask.ones_like(w), 0.2)
    assert ours == _torch_global_mask(w, 0.2)


def test_global_magnitude_matches_torch_prune_second_level() -> None:
    w = _weights(_model())
    first = global_magnitude(w, Mask.ones_like(w), 0.2)
    zeroed = {n: t * first[n] for n, t in w.items()}
    second = global_magnitude(zeroed, first, 0.2)
    already = first.numel() - first.remaining()
    reference = _torch_global_mask(zeroed, already + round(0.2 * first.remaining()))
    assert second == reference
    # already-pruned weights stay pruned even when their (old) magnitude is large
    second_from_original = global_magnitude(w, first, 0.2)
    for n in w:
        assert not torch.any(second_from_original[n] & ~first[n])


def test_global_is_global_not_per_layer() -> None:
    w = {"big": torch.full((10,), 5.0) + torch.arange(10.0), "small": torch.arange(1.0, 11.0) * 0.01}
    out = global_magnitude(w, Mask.ones_like(w), 0.5)
    assert out["small"].sum() == 0 and out["big"].all()
    per_layer = layerwise_magnitude(w, Mask.ones_like(w), 0.5)
    assert per_layer["small"].sum() == 5 and per_layer["big"].sum() == 5
    assert per_layer["big"][5:].all()  # the largest halves survive


def test_ties_are_deterministic() -> None:
    w = {"a": torch.ones(6), "b": torch.ones(4)}
    out = global_magnitude(w, Mask.ones_like(w), 0.3)
    assert out == global_magnitude(w, Mask.ones_like(w), 0.3)
    assert out["a"].tolist() == [False, False, False, True, True, True]  # lower flat index first


@pytest.mark.parametrize("strategy", ["global_magnitude", "lamp", "layerwise_magnitude", "random"])
def test_repeated_levels_follow_geometric_schedule(strategy: str) -> None:
    w = _weights(_model())
    mask, gen = Mask.ones_like(w), torch.Generator().manual_seed(0)
    total = mask.numel()
    tolerance = len(mask) if strategy == "layerwise_magnitude" else 1  # one weight per tensor / per level
    for k in range(1, 8):
        mask = get_strategy(strategy)(w, mask, 0.2, gen)
        assert abs(mask.remaining() - remaining_after(k, 0.2) * total) <= k * tolerance


def test_random_keeps_global_count_and_is_deterministic() -> None:
    w = _weights(_model())
    start = global_magnitude(w, Mask.ones_like(w), 0.2)
    a = random_prune(w, start, 0.2, torch.Generator().manual_seed(7))
    b = random_prune(w, start, 0.2, torch.Generator().manual_seed(7))
    c = random_prune(w, start, 0.2, torch.Generator().manual_seed(8))
    assert a == b and a != c
    assert a.remaining() == start.remaining() - round(0.2 * start.remaining())
    assert a.remaining() == global_magnitude(w, start, 0.2).remaining()
    for n in w:
        assert not torch.any(a[n] & ~start[n])


@pytest.mark.parametrize("strategy", sorted(set(STRATEGIES) - {"channel"}))  # channel: test_structured.py
def test_strategies_are_pure(strategy: str) -> None:
    w = _weights(_model())
    w_copy = {n: t.clone() for n, t in w.items()}
    mask = Mask.ones_like(w)
    mask_copy = mask.clone()
    get_strategy(strategy)(w, mask, 0.5, torch.Generator().manual_seed(0))
    assert mask == mask_copy
    assert all(torch.equal(w[n], w_copy[n]) for n in w)


def test_strategy_argument_checks() -> None:
    w = {"a": torch.randn(3)}
    with pytest.raises(ValueError, match="fraction"):
        global_magnitude(w, Mask.ones_like(w), 1.5)
    with pytest.raises(KeyError, match="'b'"):
        global_magnitude(w, Mask({"b": torch.ones(3, dtype=torch.bool)}), 0.2)
    with pytest.raises(ValueError, match="shape"):
        global_magnitude(w, Mask({"a": torch.ones(4, dtype=torch.bool)}), 0.2)


def test_remaining_after_paper_schedule() -> None:
    expected = [80, 64, 51.2, 41.0, 32.8, 26.2, 21.0, 16.8, 13.4, 10.7, 8.6, 6.9, 5.5, 4.4]
    got = [round(100 * remaining_after(k, 0.2), 1) for k in range(1, 15)]
    assert got == expected
    assert remaining_after(0, 0.2) == 1.0


def test_min_density_guard_stops_layer_collapse_and_keeps_the_global_count():
    torch.manual_seed(0)
    params = {"small": torch.randn(50) * 1e-3, "big": torch.randn(950)}
    mask = Mask.ones_like(params)
    plain = guarded = mask
    for _ in range(5):
        plain = global_magnitude(params, plain, 0.2)
        guarded = global_magnitude(params, guarded, 0.2, min_density=0.1)
    assert plain["small"].sum() == 0, "without the guard the small-magnitude tensor collapses"
    assert guarded["small"].sum() == 5  # ceil(0.1 * 50), its largest weights
    top5 = params["small"].abs().topk(5).indices
    assert guarded["small"][top5].all()
    assert guarded.remaining() == plain.remaining()


def _lamp_reference(w: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """LAMP by its definition, one weight at a time (distinct magnitudes): w_u^2 over the energy of
    the surviving weights at least as large as u."""
    flat, keep = w.flatten().double(), alive.flatten()
    out = torch.zeros_like(flat)
    for u in keep.nonzero().squeeze(1).tolist():
        larger = keep & (flat.abs() >= flat[u].abs())
        out[u] = flat[u] ** 2 / flat[larger].pow(2).sum()
    return out


def test_lamp_scores_match_the_definition() -> None:
    torch.manual_seed(3)
    w = {"a": torch.randn(4, 5), "b": torch.randn(7) * 0.01}
    mask = Mask({"a": torch.rand(4, 5) < 0.7, "b": torch.ones(7, dtype=torch.bool)})
    got = lamp_scores(w, mask, ["a", "b"])
    want = torch.cat([_lamp_reference(w["a"], mask["a"]), _lamp_reference(w["b"], mask["b"])])
    assert torch.allclose(got, want, rtol=1e-12, atol=0)
    assert got[:20][~mask["a"].flatten()].eq(0).all()  # pruned entries score 0
    assert got[:20].max() == 1.0 and got[20:].max() == 1.0  # every tensor's largest survivor


def test_lamp_is_scale_free_per_tensor_where_global_magnitude_is_not() -> None:
    torch.manual_seed(0)
    w = {"small": torch.randn(50), "big": torch.randn(950)}
    shrunk = {"small": w["small"] * 1e-3, "big": w["big"]}
    plain, lamp_mask, lamp_shrunk = Mask.ones_like(w), Mask.ones_like(w), Mask.ones_like(w)
    for _ in range(8):
        plain = global_magnitude(shrunk, plain, 0.2)
        lamp_mask = lamp(w, lamp_mask, 0.2)
        lamp_shrunk = lamp(shrunk, lamp_shrunk, 0.2)
    assert plain["small"].sum() == 0, "global magnitude strips the small-scale tensor"
    assert lamp_shrunk == lamp_mask  # LAMP does not see the tensor's scale
    assert lamp_shrunk.remaining() == plain.remaining()
    # LAMP's known lean: the smaller tensor keeps more than the global 16.8 %, the larger one less
    assert lamp_shrunk["small"].float().mean() > 0.168 > lamp_shrunk["big"].float().mean()
