"""Structured sparsity: block / N:M / channel strategies, channel groups, ticket conversion, shrinking."""

from __future__ import annotations

import math

import pytest
import torch

from audio_lottery.config import ConfigError, ModelConfig, load_config
from audio_lottery.models.ds2 import DS2Config
from audio_lottery.models import build_model
from audio_lottery.pruning import Mask, get_strategy, global_magnitude
from audio_lottery.pruning.groups import dead_units, structure_mask, usable_groups
from audio_lottery.pruning.shrink import shrink_model
from audio_lottery.pruning.structured import as_matrix, convert_ticket, from_blocks, nm_keep, to_blocks

from conftest import ROOT

FEAT, VOCAB = 40, 29
BACKBONES = {
    "ds2": ("ds2_tiny", []),
    "ds2_uni_no_bn": ("ds2_tiny", ["model.ds2.bidirectional=false", "model.ds2.rnn_batch_norm=false",
                                   "model.ds2.rnn_layers=3"]),
    "conformer": ("conformer_tiny", ["model.conformer.prune_convolutions=true"]),
    "transformer": ("transformer_tiny", []),
    "rnnt": ("rnnt_tiny", ["model.rnnt.pred_layers=2"]),
    "rnnt_sum": ("rnnt_tiny", ["model.rnnt.merge_directions=sum"]),
}
SHRINKABLE = ["ds2", "ds2_uni_no_bn", "conformer", "transformer"]


def _weights(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"conv": torch.randn(6, 3, 5, 3, generator=g), "lstm": torch.randn(40, 13, generator=g),
            "fc": torch.randn(7, 22, generator=g), "vec": torch.randn(9, generator=g)}


def _model(name: str, seed: int = 0):
    preset, overrides = BACKBONES[name]
    cfg = load_config(ROOT / "configs" / f"{preset}.yaml", overrides)
    torch.manual_seed(seed)
    model = build_model(cfg.model, VOCAB, FEAT)
    model.train()
    with torch.no_grad():  # non-trivial batch-norm statistics
        for _ in range(2):
            model(torch.randn(3, 90, FEAT) * 2 + 1, torch.tensor([90, 70, 41]))
    return cfg, model.eval()


def _padded_batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lens = torch.tensor([120, 97, 61])
    feats = torch.randn(3, 130, FEAT, generator=g)
    feats[torch.arange(130)[None, :] >= lens[:, None]] = 100.0  # garbage padding
    return feats, lens


def _levels(strategy: str, params, mask: Mask, levels: int, **opts) -> list[Mask]:
    out = [mask]
    for _ in range(levels):
        out.append(get_strategy(strategy)(params, out[-1], 0.2, None, **opts))
    return out


def _never_revived(masks: list[Mask]) -> None:
    for a, b in zip(masks, masks[1:]):
        for n in a:
            assert not (b[n] & ~a[n]).any(), f"{n}: a pruned weight came back"


# --------------------------------------------------------------------------- block


def test_block_views_round_trip_with_edges() -> None:
    t = torch.arange(6 * 3 * 5 * 3).reshape(6, 3, 5, 3).float()
    for bh, bw in [(1, 4), (2, 3), (4, 4), (1, 1)]:
        blocks = to_blocks(t, bh, bw, fill=-1)
        assert blocks.shape[1] == bh * bw
        assert torch.equal(from_blocks(blocks, t.shape, bh, bw), t)
    blocks = to_blocks(torch.arange(8).float().reshape(2, 4), 1, 4)
    assert blocks.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]]


@pytest.mark.parametrize("shape", [(1, 4), (2, 3)])
def test_block_masks_are_whole_blocks_hit_the_budget_and_never_revive(shape) -> None:
    w = _weights()
    masks = _levels("block", w, Mask.ones_like(w), 6, block_shape=shape)
    _never_revived(masks)
    bh, bw = shape
    for prev, new in zip(masks, masks[1:]):
        target = prev.remaining() - round(0.2 * prev.remaining())
        assert abs(new.remaining() - target) <= bh * bw / 2
        for n, m in new.items():
            blocks = to_blocks(m, bh, bw, False)
            valid = to_blocks(torch.ones_like(m), bh, bw, False)
            kept = blocks.sum(1)
            assert torch.all((kept == 0) | (kept == valid.sum(1))), f"{n}: a block is partly pruned"
    assert masks[-1].density() == pytest.approx(0.8 ** 6, abs=0.01)


def test_block_1x1_is_global_magnitude() -> None:
    w = _weights(3)
    a = b = Mask.ones_like(w)
    for _ in range(4):
        a = get_strategy("block")(w, a, 0.2, None, block_shape=(1, 1))
        b = global_magnitude(w, b, 0.2)
    assert a == b


def test_block_keeps_the_largest_norm_blocks() -> None:
    w = {"a": torch.ones(2, 8) * 0.1}
    w["a"][1, 4:] = 5.0  # one strong block
    w["a"][0, :4] = torch.tensor([3.0, 0.0, 0.0, 0.0])  # norm 3 < 5*2 but > 0.2
    new = get_strategy("block")(w, Mask.ones_like(w), 0.5, None, block_shape=(1, 4))
    assert new["a"].tolist() == [[True] * 4 + [False] * 4, [False] * 4 + [True] * 4]


def test_block_min_density_guard_keeps_a_floor_per_tensor() -> None:
    w = {"small": torch.randn(4, 8) * 1e-3, "big": torch.randn(64, 16)}
    plain = guarded = Mask.ones_like(w)
    for _ in range(6):
        plain = get_strategy("block")(w, plain, 0.2, None)
        guarded = get_strategy("block")(w, guarded, 0.2, None, min_density=0.25)
    assert plain["small"].sum() == 0
    assert guarded["small"].sum() >= math.ceil(0.25 * 32)
    assert abs(guarded.remaining() - plain.remaining()) <= 4


# --------------------------------------------------------------------------- N:M


def test_nm_pattern_keeps_the_n_largest_of_every_m() -> None:
    w = _weights(1)
    mask = Mask.ones_like(w)
    new = get_strategy("nm")(w, mask, 0.2, None, nm=(2, 4))
    for n, m in new.items():
        mat, wm = as_matrix(m), as_matrix(w[n]).abs()
        for r in range(mat.shape[0]):
            for c in range(0, mat.shape[1], 4):
                window, mags = mat[r, c:c + 4], wm[r, c:c + 4]
                assert int(window.sum()) == min(2, window.numel())
                if window.numel() > 2:
                    assert mags[window].min() >= mags[~window].max()
    # the pattern overrides a 20 % budget: 2 of every full window of 4, all of a partial window of <= 2
    expected = sum(as_matrix(t).shape[0] * sum(min(2, as_matrix(t).shape[1] - c)
                                                for c in range(0, as_matrix(t).shape[1], 4)) for t in w.values())
    assert new.remaining() == expected


def test_nm_levels_stay_nm_hit_larger_budgets_and_never_revive() -> None:
    w = _weights(2)
    masks = [Mask.ones_like(w)]
    for _ in range(3):
        masks.append(get_strategy("nm")(w, masks[-1], 0.6, None, nm=(2, 4)))
    _never_revived(masks)
    for prev, new in zip(masks[1:], masks[2:]):
        assert new.remaining() == prev.remaining() - round(0.6 * prev.remaining())
    for m in masks[1:]:
        for t in m.tensors().values():
            mat = as_matrix(t)
            pad = torch.nn.functional.pad(mat, (0, (-mat.shape[1]) % 4)).reshape(mat.shape[0], -1, 4)
            assert int(pad.sum(-1).max()) <= 2
    assert torch.equal(nm_keep(w["fc"], masks[1]["fc"], 2, 4), masks[1]["fc"])


# --------------------------------------------------------------------------- channel groups


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_channel_groups_are_consistent(backbone: str) -> None:
    _, model = _model(backbone)
    state = model.state_dict()
    prunable = set(model.prunable())
    groups = model.structure_groups()
    assert groups and len({g.name for g in groups}) == len(groups)
    for g in groups:
        assert set(s.name for s in g.weights) <= prunable, g.name
        for s in g.weights + g.state:
            assert s.name in state, f"{g.name}: {s.name}"
            assert int(s.index.max()) < state[s.name].shape[s.axis]
            flat = s.index.flatten()
            assert flat.unique().numel() == flat.numel(), f"{g.name}: units share positions of {s.name}"
        # a unit's rows are what it produces: every unit has its own non-empty slice of each weight
        assert all(s.index.shape[1] > 0 for s in g.weights)
    assert usable_groups(groups, prunable) == groups


def test_ds2_lstm_unit_owns_its_gate_rows_and_consumer_columns() -> None:
    _, model = _model("ds2")
    group = {g.name: g for g in model.structure_groups()}["rnns.0"]
    h = model.rnns[0].hidden
    keep = torch.ones(h, dtype=torch.bool)
    keep[3] = False
    shapes = {n: p.shape for n, p in model.named_parameters()}
    m = structure_mask([group], {"rnns.0": keep}, shapes)
    ih = m["rnns.0.fwd.weight_ih_l0"]
    assert (~ih).nonzero()[:, 0].unique().tolist() == [3, h + 3, 2 * h + 3, 3 * h + 3]
    assert not m["rnns.0.bwd.weight_hh_l0"][:, 3].any()
    assert not m["rnns.1.fwd.weight_ih_l0"][:, 3].any() and m["rnns.1.fwd.weight_ih_l0"][:, 4].all()


@pytest.mark.parametrize("backbone", ["ds2", "conformer"])
def test_channel_strategy_prunes_whole_units_to_budget(backbone: str) -> None:
    _, model = _model(backbone)
    params = {n: p.detach() for n, p in model.named_parameters()}
    start = Mask.from_patterns(model)
    groups = model.structure_groups()
    masks = _levels("channel", params, start, 5, groups=groups, min_density=0.1)
    _never_revived(masks)
    shapes = {n: t.shape for n, t in start.items()}
    biggest_unit = max(sum(s.index.shape[1] * math.prod(shapes[s.name]) // shapes[s.name][s.axis] for s in g.weights)
                       for g in groups)
    for prev, new in zip(masks, masks[1:]):
        assert abs(new.remaining() - (prev.remaining() - round(0.2 * prev.remaining()))) <= biggest_unit
    final = masks[-1]
    dead = dead_units(groups, final.tensors())
    rebuilt = structure_mask(groups, {g: ~d for g, d in dead.items()}, shapes)
    for n, m in rebuilt.items():
        assert torch.equal(final[n], m), f"{n}: pruning is not a union of whole units"
    for g in groups:
        assert int((~dead[g.name]).sum()) >= max(1, math.ceil(0.1 * g.size)), g.name
    assert 0.25 < final.density() < 0.42


def test_channel_strategy_is_pure_and_needs_groups() -> None:
    _, model = _model("ds2")
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    copy = {n: t.clone() for n, t in params.items()}
    mask = Mask.from_patterns(model)
    before = mask.clone()
    get_strategy("channel")(params, mask, 0.5, None, groups=model.structure_groups())
    assert mask == before and all(torch.equal(params[n], copy[n]) for n in params)
    with pytest.raises(ValueError, match="structure groups"):
        get_strategy("channel")(params, mask, 0.5, None)


# --------------------------------------------------------------------------- conversion


def test_conversion_keeps_the_budget_and_more_magnitude_than_random_blocks() -> None:
    w = _weights(4)
    ticket = Mask.ones_like(w)
    for _ in range(5):
        ticket = global_magnitude(w, ticket, 0.2)
    block = convert_ticket(w, ticket, "block", block_shape=(1, 4))
    assert abs(block.remaining() - ticket.remaining()) <= 2
    nm = convert_ticket(w, ticket, "nm", nm=(2, 4))
    assert nm.remaining() == ticket.remaining()

    def kept(m: Mask) -> float:
        return sum(float((w[n] * ticket[n] * m[n]).abs().sum()) for n in m)

    random_blocks = get_strategy("block")({n: torch.rand(t.shape) for n, t in w.items()}, Mask.ones_like(w),
                                          1 - ticket.density(), None)
    assert kept(block) > kept(random_blocks) * 1.3
    assert kept(nm) > kept(block)


def test_converting_a_block_ticket_to_the_same_blocks_is_the_identity() -> None:
    w = _weights(5)
    ticket = Mask.ones_like(w)
    for _ in range(4):
        ticket = get_strategy("block")(w, ticket, 0.2, None, block_shape=(1, 4))
    assert convert_ticket(w, ticket, "block", block_shape=(1, 4)) == ticket


def test_channel_conversion_of_a_ds2_ticket() -> None:
    _, model = _model("ds2")
    params = {n: p.detach() for n, p in model.named_parameters()}
    ticket = Mask.from_patterns(model)
    for _ in range(3):
        ticket = global_magnitude(params, ticket, 0.2)
    channel = convert_ticket(params, ticket, "channel", groups=model.structure_groups())
    assert channel.density() == pytest.approx(ticket.density(), abs=0.04)
    assert any(bool(d.any()) for d in dead_units(model.structure_groups(), channel.tensors()).values())
    with pytest.raises(ValueError, match="unknown structure"):
        convert_ticket(params, ticket, "diagonal")


def test_structured_prune_config_is_validated() -> None:
    cfg = load_config(None, ["prune.strategy=channel", "prune.structure=nm", "prune.nm=[1, 8]",
                             "prune.block_shape=[2, 2]"])
    assert cfg.prune.nm == [1, 8] and cfg.prune.block_shape == [2, 2]
    for bad, key in [("prune.block_shape=[0, 4]", "block_shape"), ("prune.block_shape=[4]", "block_shape"),
                     ("prune.nm=[4, 4]", "prune.nm"), ("prune.nm=[2, x]", "prune.nm"),
                     ("prune.structure=diagonal", "prune.structure")]:
        with pytest.raises(ConfigError, match=key):
            load_config(None, [bad])


# --------------------------------------------------------------------------- shrink


def _channel_ticket(model, levels: int = 4) -> Mask:
    params = {n: p.detach() for n, p in model.named_parameters()}
    mask = Mask.from_patterns(model)
    for _ in range(levels):
        mask = get_strategy("channel")(params, mask, 0.25, None, groups=model.structure_groups())
    return mask


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_pruned_units_have_no_influence_on_outputs_or_loss(backbone: str) -> None:
    """Scramble the biases and norm state of every removed unit: forward outputs and the loss
    (which also runs the Transformer decoder and the RNN-T prediction and joint networks) stay equal."""
    _, model = _model(backbone)
    mask = _channel_ticket(model, levels=3)
    mask.apply_(model)
    groups = usable_groups(model.structure_groups(), mask)
    dead = dead_units(groups, mask.tensors())
    assert sum(int(d.sum()) for d in dead.values()) > 0
    feats, lens = _padded_batch()
    targets, target_lens = torch.randint(1, VOCAB, (3, 6)), torch.tensor([6, 4, 2])

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(0)
        with torch.no_grad():
            out, out_lens = model(feats, lens)
            valid = torch.arange(out.shape[1])[None, :] < out_lens[:, None]
            return out[valid], model.loss(feats, lens, targets, target_lens)

    ref_out, ref_loss = run()
    state = model.state_dict()
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():
        for group in groups:
            for s in group.state:
                t = state[s.name]
                idx = s.index[dead[group.name]].flatten()
                noise = torch.rand(t.index_select(s.axis, idx).shape, generator=g) * 3 + 0.5
                t.index_copy_(s.axis, idx, noise)
    out, loss = run()
    if not backbone.startswith("rnnt"):  # the RNN-T's forward is its encoder output, dead columns included
        assert torch.allclose(out, ref_out, atol=1e-5, rtol=1e-5)
    assert torch.allclose(loss, ref_loss, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backbone", SHRINKABLE)
def test_shrunk_model_has_the_masked_models_outputs(backbone: str) -> None:
    cfg, model = _model(backbone)
    mask = _channel_ticket(model)
    mask.apply_(model)
    shrunk = shrink_model(model, mask, cfg)
    feats, lens = _padded_batch()
    with torch.no_grad():
        ref, ref_lens = model(feats, lens)
        got, got_lens = shrunk.model(feats, lens)
    assert torch.equal(ref_lens, got_lens)
    valid = torch.arange(ref.shape[1])[None, :] < ref_lens[:, None]
    assert torch.allclose(ref[valid], got[valid], atol=1e-5, rtol=1e-5)
    n_before = sum(p.numel() for p in model.parameters())
    n_after = sum(p.numel() for p in shrunk.model.parameters())
    assert n_after < 0.85 * n_before
    assert any(after < before for before, after in shrunk.sizes.values())
    # loadable: the resized config alone rebuilds a model the shrunk weights fit
    rebuilt = build_model(shrunk.cfg.model, VOCAB, FEAT)
    rebuilt.load_state_dict(shrunk.model.state_dict(), strict=True)
    # the residual mask describes the shrunk model's still-pruned weights
    params = dict(shrunk.model.named_parameters())
    for n, keep in shrunk.mask.items():
        assert keep.shape == params[n].shape and not params[n].detach()[~keep].any()


def test_shrink_ds2_sizes_land_in_the_config() -> None:
    cfg, model = _model("ds2")
    mask = _channel_ticket(model)
    shrunk = shrink_model(model, mask, cfg)
    ds2 = shrunk.cfg.model.ds2
    assert ds2.rnn_hidden_sizes == [shrunk.sizes[f"rnns.{i}"][1] for i in range(cfg.model.ds2.rnn_layers)]
    assert ds2.conv_channels == [shrunk.sizes[f"conv.{i}"][1] for i in range(2)]
    assert cfg.model.ds2.rnn_hidden_sizes == []  # the input config is untouched
    with pytest.raises(ConfigError, match="rnn_hidden_sizes"):
        build_model(ModelConfig(ds2=DS2Config(rnn_layers=2, rnn_hidden_sizes=[4])), VOCAB, FEAT)


def test_shrinking_an_unpruned_model_is_an_equal_copy() -> None:
    cfg, model = _model("ds2")
    shrunk = shrink_model(model, Mask.from_patterns(model), cfg)
    assert all(b == a for b, a in shrunk.sizes.values())
    assert all(torch.equal(shrunk.model.state_dict()[k], v) for k, v in model.state_dict().items())
