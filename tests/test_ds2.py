"""DeepSpeech2 model: size, prunable scope, lengths, padding invariance, loss, re-init, dropout."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from audio_lottery.config import ConfigError, ModelConfig, load_config
from audio_lottery.models.ds2 import DS2Config
from audio_lottery.models import MODEL_NAMES, ASRModel, DeepSpeech2, build_model
from audio_lottery.models.base import ctc_min_frames
from audio_lottery.models.layers import SequenceBatchNorm, reverse_index, reverse_padded
from conftest import ROOT

VOCAB, FEAT = 7, 20


def small_cfg(layers: int = 2, bidirectional: bool = True) -> ModelConfig:
    ds2 = DS2Config(
        conv_channels=[4, 4],
        conv_kernels=[[5, 5], [3, 5]],
        conv_strides=[[2, 2], [2, 2]],
        rnn_layers=layers,
        rnn_hidden=8,
        bidirectional=bidirectional,
    )
    return ModelConfig(name="ds2", ds2=ds2)


def small_model(seed: int = 0, **kw: object) -> DeepSpeech2:
    torch.manual_seed(seed)
    model = build_model(small_cfg(**kw), VOCAB, FEAT)
    assert isinstance(model, DeepSpeech2)
    return model


def warm_up_stats(model: ASRModel) -> None:
    """Give batch norms non-trivial running statistics, then switch to eval."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(3, 40, FEAT) * 2 + 1, torch.tensor([40, 31, 17]))
    model.eval()


def pad_batch(items: list[torch.Tensor], extra: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad ``[T_i, F]`` items with garbage (not zeros) to ``max T + extra`` frames."""
    t_max = max(x.shape[0] for x in items) + extra
    out = torch.randn(len(items), t_max, items[0].shape[1]) * 100
    for i, x in enumerate(items):
        out[i, : x.shape[0]] = x
    return out, torch.tensor([x.shape[0] for x in items])


def test_registry_knows_ds2() -> None:
    assert "ds2" in MODEL_NAMES
    with pytest.raises(ValueError):
        build_model(ModelConfig(name="nope"), VOCAB, FEAT)


def test_paper_model_has_86_618_400_parameters() -> None:
    model = build_model(ModelConfig(), vocab_size=29, feat_dim=161)
    assert model.num_params() == 86_618_400
    assert model.rnn_input_dim == 32 * 41


def test_prunable_scope() -> None:
    model = small_model(layers=2)
    expected = {"conv.0.conv.weight", "conv.1.conv.weight", "out.weight"}
    for layer in range(2):
        for direction in ("fwd", "bwd"):
            for kind in ("ih", "hh"):
                expected.add(f"rnns.{layer}.{direction}.weight_{kind}_l0")
    prunable = model.prunable()
    assert set(prunable) == expected
    params = dict(model.named_parameters())
    assert all(prunable[name] is params[name] for name in prunable)
    assert not any("bias" in n or "norm" in n or ".bn." in n for n in prunable)


def test_output_lengths_match_forward() -> None:
    model = small_model().eval()
    for t in [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 50]:
        out, lens = model(torch.randn(1, t, FEAT), torch.tensor([t]))
        assert out.shape[1] == lens.item() == model.output_lengths(torch.tensor([t])).item(), t
        assert model.subsampling(torch.tensor([t])).item() == lens.item()


@pytest.mark.parametrize("train", [False, True])
def test_padding_invariance(train: bool) -> None:
    model = small_model(layers=3)
    warm_up_stats(model)
    torch.manual_seed(1)
    items = [torch.randn(t, FEAT) for t in (37, 12, 25)]
    feats, lens = pad_batch(items, extra=6)
    if train:  # batch statistics: same valid frames, different padding -> same result
        model.train()
        other, other_lens = pad_batch(items, extra=20)
        a, a_lens = model(feats, lens)
        b, _ = model(other, other_lens)
        for i, n in enumerate(a_lens.tolist()):
            torch.testing.assert_close(a[i, :n], b[i, :n], atol=1e-5, rtol=1e-5)
        return
    batch_out, batch_lens = model(feats, lens)
    for i, x in enumerate(items):
        alone, alone_lens = model(x[None], torch.tensor([x.shape[0]]))
        n = alone_lens.item()
        assert batch_lens[i].item() == n == alone.shape[1]
        torch.testing.assert_close(batch_out[i, :n], alone[0], atol=1e-5, rtol=1e-5)
        assert model.decode(feats, lens)[i] == model.decode(x[None], torch.tensor([x.shape[0]]))[0]


def test_sequence_batch_norm_ignores_padding() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 10, 5) * 3 + 2
    lens = torch.tensor([10, 6, 3])
    stats = []
    for extra in (0, 7):
        padded = torch.cat([x, torch.randn(3, extra, 5) * 50], dim=1)
        mask = torch.arange(padded.shape[1])[None, :] < lens[:, None]
        padded = padded.masked_fill(~mask[:, :, None], 0.0) if extra == 0 else padded
        bn = SequenceBatchNorm(5).train()
        y = bn(padded, mask)
        stats.append((bn.running_mean.clone(), bn.running_var.clone(), y[mask]))
    valid = x[torch.arange(10)[None, :] < lens[:, None]]  # [N, 5]
    torch.testing.assert_close(stats[0][0], 0.1 * valid.mean(0))
    torch.testing.assert_close(stats[0][1], 0.9 + 0.1 * valid.var(0, unbiased=True))
    for a, b in zip(stats[0], stats[1]):
        torch.testing.assert_close(a, b)


def test_reverse_index_is_per_sequence_involution() -> None:
    x = torch.arange(10.0).view(2, 5, 1)
    idx = reverse_index(torch.tensor([5, 3]), 5)
    rev = reverse_padded(x, idx)
    assert rev[:, :, 0].tolist() == [[4, 3, 2, 1, 0], [7, 6, 5, 8, 9]]
    assert torch.equal(reverse_padded(rev, idx), x)


def test_loss_matches_reference_ctc() -> None:
    model = small_model().eval()
    torch.manual_seed(2)
    feats, lens = pad_batch([torch.randn(t, FEAT) for t in (40, 30, 24)])
    targets = torch.tensor([[1, 2, 3, 4], [2, 2, 5, 0], [6, 1, 0, 0]])
    target_lens = torch.tensor([4, 3, 2])
    loss = model.loss(feats, lens, targets, target_lens)
    ref = []
    for i in range(3):
        lp, n = model(feats[i : i + 1, : lens[i]], lens[i : i + 1])
        per = F.ctc_loss(lp.transpose(0, 1), targets[i : i + 1, : target_lens[i]], n, target_lens[i : i + 1],
                         blank=0, reduction="sum")
        ref.append(per / target_lens[i])
    torch.testing.assert_close(loss, torch.stack(ref).mean(), atol=1e-5, rtol=1e-5)
    assert model.last_infeasible == 0


def test_infeasible_utterance_is_counted_and_harmless() -> None:
    model = small_model().train()
    feats, lens = pad_batch([torch.randn(t, FEAT) for t in (40, 5)])  # 5 frames -> 2 outputs
    targets = torch.tensor([[1, 2, 3], [1, 1, 2]])  # second needs 4 frames
    target_lens = torch.tensor([3, 3])
    assert ctc_min_frames(targets, target_lens).tolist() == [3, 4]
    loss = model.loss(feats, lens, targets, target_lens)
    assert model.last_infeasible == 1
    assert torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_ctc_min_frames_ignores_padding() -> None:
    targets = torch.tensor([[3, 3, 3, 0, 0], [1, 2, 2, 2, 2]])
    assert ctc_min_frames(targets, torch.tensor([3, 3])).tolist() == [5, 4]


def test_reset_parameters_is_seeded() -> None:
    model = small_model(seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(123)
    model.reset_parameters()
    first = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(123)
    model.reset_parameters()
    for k, v in model.state_dict().items():
        assert torch.equal(v, first[k]), k
    for name in model.prunable():
        assert not torch.equal(first[name], before[name]), name


def test_unidirectional_without_batch_norm_runs() -> None:
    cfg = small_cfg(bidirectional=False)
    cfg.ds2.rnn_batch_norm = False
    model = build_model(cfg, VOCAB, FEAT)
    out, lens = model(torch.randn(2, 30, FEAT), torch.tensor([30, 20]))
    assert out.shape == (2, 8, VOCAB) and lens.tolist() == [8, 5]
    assert not any("bwd" in n for n in model.prunable())


def test_default_prunable_covers_every_weight_kind():
    from torch import nn

    from audio_lottery.models.base import default_prunable

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 8)
            self.c1 = nn.Conv1d(8, 8, 3)
            self.c2 = nn.Conv2d(1, 2, 3)
            self.gru = nn.GRU(8, 8, num_layers=2, bidirectional=True)
            self.mha = nn.MultiheadAttention(8, 2)
            self.mha_kv = nn.MultiheadAttention(8, 2, kdim=4, vdim=4)
            self.norm = nn.LayerNorm(8)
            self.out = nn.Linear(8, 3)

    names = set(default_prunable(Toy()))
    expected = {"emb.weight", "c1.weight", "c2.weight", "mha.in_proj_weight", "mha.out_proj.weight",
                "mha_kv.q_proj_weight", "mha_kv.k_proj_weight", "mha_kv.v_proj_weight", "mha_kv.out_proj.weight",
                "out.weight"}
    expected |= {f"gru.weight_{k}_l{l}{s}" for k in ("ih", "hh") for l in (0, 1) for s in ("", "_reverse")}
    assert names == expected


def test_rnn_dropout_acts_in_training_only() -> None:
    plain = small_model(layers=3)
    cfg = small_cfg(layers=3)
    cfg.ds2.rnn_dropout = 0.5
    dropped = build_model(cfg, VOCAB, FEAT)
    assert dropped.state_dict().keys() == plain.state_dict().keys()  # dropout adds no parameters or buffers
    warm_up_stats(plain)
    dropped.load_state_dict(plain.state_dict())
    feats, lens = pad_batch([torch.randn(t, FEAT) for t in (37, 12, 25)], extra=6)
    dropped.eval()
    torch.testing.assert_close(dropped(feats, lens)[0], plain(feats, lens)[0])
    plain.train(), dropped.train()
    reference = plain(feats, lens)[0]
    torch.manual_seed(3)
    first = dropped(feats, lens)[0]
    torch.manual_seed(4)
    second = dropped(feats, lens)[0]
    assert not torch.allclose(first, reference, atol=1e-3) and not torch.allclose(first, second, atol=1e-3)
    torch.manual_seed(3)
    torch.testing.assert_close(dropped(feats, lens)[0], first)  # seeded: reproducible


def test_rnn_dropout_must_be_below_one() -> None:
    config = ROOT / "configs" / "ds2_small.yaml"
    assert load_config(config, ["model.ds2.rnn_dropout=0.35"]).model.ds2.rnn_dropout == 0.35
    with pytest.raises(ConfigError, match="rnn_dropout"):
        load_config(config, ["model.ds2.rnn_dropout=1.0"])
