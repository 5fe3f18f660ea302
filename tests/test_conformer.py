"""Conformer-CTC: parameter counts, prunable scope, padding invariance, lengths, init, training and a lottery level."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from audio_lottery.config import ConfigError, ModelConfig, load_config
from audio_lottery.models.conformer import ConformerConfig
from audio_lottery.files import load_tensors, read_json
from audio_lottery.models import build_model
from audio_lottery.models.attention import RelPositionMultiHeadAttention, rel_shift
from audio_lottery.models.conformer import ConformerCTC
from audio_lottery.pruning.mask import Mask, select_prunable

from conftest import tiny_overrides

torch.set_num_threads(1)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = CONFIGS / "conformer_tiny.yaml"
PAPER_PARAMS = 65_843_072  # this implementation of the paper preset (vocab 256, 80 log-mel)


def _model(vocab: int = 12, feat: int = 24, **changes) -> ConformerCTC:
    """A small model with three stages, two downsampling blocks and grouped attention (3, 2, 1)."""
    base = dict(subsampling_channels=[4], num_blocks=5, stage_dims=[12, 16, 20], downsample_blocks=[1, 3],
                attention_group_sizes=[3, 2, 1], num_heads=2, ffn_ratio=2, kernel_size=5, dropout=0.0)
    base.update(changes)
    return ConformerCTC(ConformerConfig(**base), vocab, feat)


def _perturb(model: nn.Module, scale: float = 0.1, seed: int = 0) -> nn.Module:
    """Add noise to every parameter: fresh biases and norms are 0/1, which would hide padding leaks."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))
    return model


def _linear_weights(model: nn.Module, kinds=(nn.Linear,)) -> set[str]:
    return {f"{n}.weight" for n, m in model.named_modules() if isinstance(m, kinds)}


# --------------------------------------------------------------------------- sizes


def test_paper_preset_parameter_count_matches_the_paper():
    cfg = load_config(CONFIGS / "conformer_paper.yaml")
    model = build_model(cfg.model, vocab_size=256, feat_dim=cfg.data.features.n_mels)
    n = model.num_params()
    assert n == PAPER_PARAMS
    assert abs(n - 65.84e6) / 65.84e6 < 0.03
    assert cfg.data.tokenizer == "bpe" and cfg.data.bpe_vocab_size == 256 and cfg.data.features.n_mels == 80
    assert cfg.train.schedule == "noam" and cfg.train.betas == [0.9, 0.98] and cfg.train.optimizer == "adam"
    assert (cfg.data.augment.freq_masks, cfg.data.augment.time_masks) == (2, 10)
    c = cfg.model.conformer
    assert (c.num_blocks, c.stage_dims, c.downsample_blocks, c.attention_group_sizes, c.num_heads, c.ffn_ratio,
            c.kernel_size) == (16, [256, 384, 512], [4, 10], [3, 1, 1], 8, 4, 15)
    assert sum(p.numel() for p in model.prunable().values()) == 57_311_232  # every Linear weight
    # the dataclass defaults are the paper preset's model
    assert dataclasses.asdict(c) == dataclasses.asdict(ConformerConfig())


def test_small_and_tiny_preset_sizes():
    small = load_config(CONFIGS / "conformer_small.yaml")
    n_small = build_model(small.model, 29, small.data.features.n_mels).num_params()
    assert n_small == 4_779_645 and 4e6 <= n_small <= 6e6
    tiny = load_config(TINY)
    assert build_model(tiny.model, 29, tiny.data.features.n_mels).num_params() == 23_917


# --------------------------------------------------------------------------- pruning scope


def test_prunable_is_every_linear_weight_by_default():
    model = _model()
    names = set(model.prunable())
    assert names == _linear_weights(model)
    assert {"subsample.proj.weight", "out.weight", "blocks.0.attn.pos_proj.weight", "blocks.0.ff1.fc1.weight",
            "blocks.4.attn.q_proj.weight"} <= names
    assert not any("conv" in n or "residual" in n or n.endswith(("bias", ".u", ".v")) for n in names)
    params = dict(model.named_parameters())
    assert all(model.prunable()[n] is params[n] for n in names)
    assert set(select_prunable(model, [], [])) == names


def test_prune_convolutions_adds_every_conv_weight():
    model = _model(prune_convolutions=True)
    names = set(model.prunable())
    convs = _linear_weights(model, (nn.Conv1d, nn.Conv2d))
    assert names == _linear_weights(model) | convs
    assert {"subsample.convs.0.weight", "blocks.0.conv.pointwise_in.weight", "blocks.0.conv.depthwise.weight",
            "blocks.0.conv.pointwise_out.weight", "blocks.1.residual.weight"} <= convs
    assert not any(n.endswith("bias") or "norm" in n for n in names)


# --------------------------------------------------------------------------- padding and lengths


def _batch(lengths: list[int], feat: int, extra: int = 0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    t = max(lengths) + extra
    x = torch.randn(len(lengths), t, feat, generator=gen)
    lens = torch.tensor(lengths)
    x = x.masked_fill(~(torch.arange(t)[None, :] < lens[:, None])[:, :, None], 7.0)  # padding is not zero
    return x, lens


def test_padding_never_changes_an_utterance_and_decode_is_identical():
    torch.manual_seed(0)
    model = _perturb(_model())
    lengths = [131, 96, 61, 40, 9]  # group remainders 0, 1 and 2 at every stage
    x, lens = _batch(lengths, 24, extra=13)
    model.train()
    for _ in range(3):  # non-trivial batch-norm running statistics
        model(x, lens)
    model.eval()
    with torch.no_grad():
        log_probs, out_lens = model(x, lens)
    assert torch.equal(out_lens, model.output_lengths(lens))
    batch_ids = model.decode(x, lens)
    for b, n in enumerate(lengths):
        with torch.no_grad():
            alone, alone_len = model(x[b : b + 1, :n], lens[b : b + 1])
        assert alone.shape[1] == int(alone_len) == int(out_lens[b])
        torch.testing.assert_close(alone[0], log_probs[b, : out_lens[b]], atol=1e-4, rtol=0)
        assert model.decode(x[b : b + 1, :n], lens[b : b + 1])[0] == batch_ids[b]
    assert torch.isfinite(log_probs).all()


def test_extra_padding_changes_nothing_in_training_mode():
    """Batch-norm statistics use valid frames only, so more padding leaves the training forward unchanged."""
    model = _perturb(_model())
    model.train()
    x, lens = _batch([50, 33, 20], 24)
    x_more = torch.cat([x, torch.full((3, 29, 24), -3.0)], dim=1)
    torch.manual_seed(1)
    a, a_len = model(x, lens)
    b, b_len = model(x_more, lens)
    assert torch.equal(a_len, b_len)
    for i, n in enumerate(a_len.tolist()):
        torch.testing.assert_close(a[i, :n], b[i, :n], atol=1e-4, rtol=0)


@pytest.mark.parametrize("changes", [{}, {"subsampling_channels": [4, 4], "subsampling_kernel": 5},
                                     {"downsample_stride": 3}])
def test_output_lengths_equal_the_actual_output_length(changes):
    model = _model(**changes).eval()
    lengths = list(range(1, 70)) + [97, 128, 129, 255]
    with torch.no_grad():
        for n in lengths:
            x = torch.randn(1, n, 24)
            out, out_len = model(x, torch.tensor([n]))
            assert out.shape[1] == int(out_len) == int(model.output_lengths(torch.tensor([n]))), n
    expected = model.output_lengths(torch.tensor(lengths))
    assert (expected >= 1).all()


def test_loss_backward_gives_finite_gradients():
    model = _model()
    x, lens = _batch([60, 41], 24)
    targets = torch.tensor([[1, 2, 3], [4, 5, 0]])
    loss = model.loss(x, lens, targets, torch.tensor([3, 2]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


# --------------------------------------------------------------------------- attention


def test_rel_shift_matches_the_definition():
    t = 6
    scores = torch.randn(2, 3, t, 2 * t - 1)
    expected = torch.empty(2, 3, t, t)
    for i in range(t):
        for j in range(t):
            expected[..., i, j] = scores[..., i, (t - 1) - (i - j)]
    assert torch.equal(rel_shift(scores), expected)


@pytest.mark.parametrize("group", [1, 2, 3])
def test_attention_ignores_padded_frames(group):
    torch.manual_seed(0)
    attn = _perturb(RelPositionMultiHeadAttention(8, 2, group_size=group)).eval()
    x = torch.randn(1, 11, 8)
    padded = torch.cat([x, torch.randn(1, 6, 8) * 100], dim=1)
    mask = torch.arange(17)[None, :] < 11
    torch.testing.assert_close(attn(padded, mask)[:, :11], attn(x, torch.ones(1, 11, dtype=torch.bool)),
                               atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- init and config


def test_reset_parameters_is_reproducible_under_a_seed():
    model = _model()
    model.train()
    x, lens = _batch([40, 30], 24)
    model(x, lens)  # move the batch-norm running statistics
    torch.manual_seed(5)
    model.reset_parameters()
    first = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model(x, lens)
    torch.manual_seed(5)
    model.reset_parameters()
    for k, v in model.state_dict().items():
        assert torch.equal(v, first[k]), k
    assert torch.equal(model.blocks[0].conv.batch_norm.running_mean, torch.zeros(12))
    torch.manual_seed(6)
    model.reset_parameters()
    assert not torch.equal(model.out.weight, first["out.weight"])
    assert torch.equal(model.out.bias, torch.zeros_like(model.out.bias))


@pytest.mark.parametrize("changes, key", [
    ({"downsample_blocks": [1]}, "downsample_blocks"),
    ({"downsample_blocks": [3, 1]}, "downsample_blocks"),
    ({"downsample_blocks": [1, 9]}, "downsample_blocks"),
    ({"attention_group_sizes": [1, 1]}, "attention_group_sizes"),
    ({"num_heads": 5}, "num_heads"),
    ({"kernel_size": 4}, "kernel_size"),
])
def test_bad_configs_name_the_key(changes, key):
    with pytest.raises(ConfigError, match=f"model.conformer.{key}"):
        _model(**changes)


def test_registered_and_built_from_model_config():
    cfg = ModelConfig(name="conformer", conformer=ConformerConfig(**{
        "subsampling_channels": [2], "num_blocks": 1, "stage_dims": [8], "downsample_blocks": [],
        "attention_group_sizes": [1], "num_heads": 2, "ffn_ratio": 1, "kernel_size": 3}))
    model = build_model(cfg, 5, 10)
    assert isinstance(model, ConformerCTC) and model.out.out_features == 5


# --------------------------------------------------------------------------- end to end on the tiny corpus


def test_train_two_steps_on_the_tiny_corpus(tiny_corpus, tmp_path):
    from audio_lottery.train.loop import train_model

    cfg = load_config(TINY, tiny_overrides(tiny_corpus, "train.max_steps=2", "train.threads=1"))
    result = train_model(cfg, tmp_path / "run", progress=False)
    assert result["steps"] == 2 and result["skipped_steps"] == 0 and result["kept"] > 0
    weights = load_tensors(tmp_path / "run" / "best.safetensors")
    assert "blocks.1.residual.weight" in weights
    assert all(torch.isfinite(v.float()).all() for v in weights.values())


def test_one_lottery_level_on_the_tiny_corpus(tiny_corpus, tmp_path):
    from audio_lottery.lottery.runner import run_lottery

    cfg = load_config(TINY, tiny_overrides(tiny_corpus, "train.max_steps=2", "train.threads=1", "lottery.levels=1"))
    run = run_lottery(cfg, tmp_path, progress=False)
    res = read_json(run / "level_1" / "result.json")
    assert res["remaining"] == pytest.approx(0.8, abs=1e-3)
    mask = Mask.load(run / "level_1" / "mask.safetensors")
    model = build_model(cfg.model, 29, cfg.data.features.n_mels)
    assert set(mask.keys()) == set(model.prunable())
    weights = load_tensors(run / "level_1" / "train" / "best.safetensors")
    for name, keep in mask.items():
        assert (weights[name][~keep] == 0).all(), name
