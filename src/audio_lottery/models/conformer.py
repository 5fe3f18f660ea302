"""Conformer-CTC with the Efficient Conformer extensions (progressive downsampling, grouped attention).

Layout (Gulati et al. 2020; Burchi & Vielzeuf 2021, the model the Audio Lottery paper pruned):

    feats [B, T, F] -> Conv2d subsampling (each layer: k x k, stride 2 in time and frequency,
    masked batch norm, swish) -> Linear to the first stage's dim -> dropout
    -> N Conformer blocks -> Linear to the vocabulary -> log-softmax (CTC, blank 0)

A Conformer block (dims ``a`` in, ``b`` out; ``a != b`` or stride 2 only in a downsampling block):

    x = x + 1/2 FFN(x)                              LayerNorm, Linear a->r*a, swish, dropout, Linear, dropout
    x = x + dropout(MHSA(LayerNorm(x)))             relative positions, Transformer-XL style (models/attention.py)
    x = residual(x) + ConvModule(x)                 LayerNorm, pointwise Conv1d a->2b, GLU, depthwise Conv1d
                                                    (kernel K, stride s), masked BatchNorm, swish,
                                                    pointwise Conv1d b->b, dropout
    x = x + 1/2 FFN(x)                              at dim b
    x = LayerNorm(x)

``residual`` is the identity, every s-th frame (stride s, same dim) or a stride-s pointwise
Conv1d a->b (dim change), as in Efficient Conformer. Blocks are split into stages by
``downsample_blocks``: the block at each listed index runs its attention in the old stage
(dim, group size) and its convolution module downsamples and widens into the next stage.

Padding never changes an utterance's valid outputs: features are zeroed beyond each length, the
subsampling and depthwise convolutions only see zeros beyond the valid frames (padding is
re-zeroed before every time convolution), batch-norm statistics are taken over valid frames
only, attention masks padded keys and zeroes padded Q/K/V, and every block zeroes its padded
output frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import dataclasses

import torch.nn.functional as F
from torch import Tensor, nn

from audio_lottery.config import ConfigError, ModelConfig, hparam
from audio_lottery.models.attention import RelPositionMultiHeadAttention
from audio_lottery.models.base import ASRModel, lengths_to_mask
from audio_lottery.models.layers import MaskedBatchNorm2d, conv_out_len, masked_batch_norm
from audio_lottery.models.registry import register_model
from audio_lottery.models.structure import (
    Slice,
    StructureGroup,
    block_index,
    ffn_group,
    head_group,
    norm_slices,
    strided_index,
)

# --------------------------------------------------------------------------- building blocks


@dataclass
class ConformerConfig:
    subsampling_channels: list = hparam([256], "output channels of each Conv2d subsampling layer (each halves time and "
                                    "frequency: one layer = 2x as in Efficient Conformer, two = 4x)")
    subsampling_kernel: int = hparam(3, "kernel of the Conv2d subsampling layers (odd)", ge=1)
    num_blocks: int = hparam(16, "number of Conformer blocks", ge=1)
    stage_dims: list = hparam([256, 384, 512], "model dim of each stage (Efficient Conformer progressive downsampling)")
    downsample_blocks: list = hparam([4, 10], "indices of the blocks whose convolution module strides by "
                                 "downsample_stride and widens into the next stage (one per stage change)")
    downsample_stride: int = hparam(2, "time stride of a downsampling block", ge=1)
    attention_group_sizes: list = hparam([3, 1, 1], "grouped attention size of each stage (1 = plain attention)")
    num_heads: int = hparam(8, "attention heads", ge=1)
    ffn_ratio: int = hparam(4, "feed-forward hidden size / model dim", ge=1)
    ffn_hidden_sizes: list = hparam([], "[ff1, ff2] hidden sizes of each block (a shrunk model); empty = ffn_ratio * dim")
    kernel_size: int = hparam(15, "depthwise convolution kernel of the convolution module (odd)", ge=1)
    dropout: float = hparam(0.1, "dropout after subsampling, in feed-forward, attention and convolution modules",
                        ge=0, lt=1)
    prune_convolutions: bool = hparam(False, "prune the convolution weights too (default: Linear weights only, as the "
                                  "paper's official code)")


def check_section(c: ConformerConfig) -> None:
    """Config-time checks of ``model.conformer`` (ConfigError naming the keys)."""
    if not len(c.attention_group_sizes) == len(c.stage_dims) == len(c.downsample_blocks) + 1:
        raise ConfigError("model.conformer.stage_dims and attention_group_sizes need one entry per stage and "
                          f"downsample_blocks one fewer (got {len(c.stage_dims)}, {len(c.attention_group_sizes)}, "
                          f"{len(c.downsample_blocks)})")
    if c.kernel_size % 2 != 1:
        raise ConfigError(f"model.conformer.kernel_size must be odd, got {c.kernel_size}")



class MaskedBatchNorm1d(nn.BatchNorm1d):
    """BatchNorm1d over ``[B, C, T]`` whose statistics ignore padded time steps."""

    supports_sync = True  # see models.ds2.masked_batch_norm

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # type: ignore[override]
        """``mask``: bool ``[B, T]``, True at valid frames."""
        return masked_batch_norm(self, x, mask[:, None, :], channel_dim=1)


class ConvSubsampling(nn.Module):
    """Stride-2 Conv2d layers over (freq, time) with masked batch norm and swish, then a Linear.

    Each layer halves time and frequency: ``T -> (T - 1) // 2 + 1`` for an odd kernel.
    """

    def __init__(self, feat_dim: int, channels: list[int], kernel: int, out_dim: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        in_ch, freq = 1, feat_dim
        for ch in channels:
            self.convs.append(nn.Conv2d(in_ch, ch, kernel, stride=2, padding=kernel // 2))
            self.norms.append(MaskedBatchNorm2d(ch))
            in_ch, freq = ch, conv_out_len(freq, kernel, 2)
        if freq < 1:
            raise ConfigError(f"model.conformer: the subsampling reduces {feat_dim} feature bins to {freq}")
        self.freq = freq
        self.proj = nn.Linear(in_ch * freq, out_dim)

    def out_lens(self, lens: Tensor) -> Tensor:
        """Valid output frames for ``lens`` valid input frames."""
        for _ in self.convs:
            lens = conv_out_len(lens, self.kernel, 2).clamp(min=0)
        return lens

    def forward(self, x: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """``x``: ``[B, T, F]`` zero beyond ``lens`` -> ``[B, T', out_dim]`` and ``T'`` lengths."""
        x = x.transpose(1, 2).unsqueeze(1)  # [B, 1, F, T]
        for conv, norm in zip(self.convs, self.norms):
            x = conv(x)
            lens = conv_out_len(lens, self.kernel, 2).clamp(min=0)
            mask = lengths_to_mask(lens, x.shape[-1])[:, None, None, :]
            x = F.silu(norm(x, mask)) * mask
        b, c, f, t = x.shape
        return self.proj(x.permute(0, 3, 1, 2).reshape(b, t, c * f)), lens

    def channel_groups(self, prefix: str) -> list[StructureGroup]:
        """Output channels of every conv layer (the last read by ``proj``: channel ``c`` = columns ``c*F'..``)."""
        groups = []
        for i, conv in enumerate(self.convs):
            own = strided_index(conv.out_channels)
            weights = [Slice(f"{prefix}.convs.{i}.weight", 0, own)]
            if i + 1 < len(self.convs):
                weights.append(Slice(f"{prefix}.convs.{i + 1}.weight", 1, own))
            else:
                weights.append(Slice(f"{prefix}.proj.weight", 1, block_index(conv.out_channels, self.freq)))
            state = [Slice(f"{prefix}.convs.{i}.bias", 0, own)] + norm_slices(f"{prefix}.norms.{i}", own)
            groups.append(StructureGroup(f"{prefix}.convs.{i}", "conv_channel", conv.out_channels, weights, state))
        return groups


class FeedForward(nn.Module):
    """LayerNorm -> Linear(dim, hidden) -> swish -> dropout -> Linear -> dropout."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.fc2(self.dropout(F.silu(self.fc1(self.norm(x))))))


class ConvModule(nn.Module):
    """Conformer convolution module from ``in_dim`` to ``out_dim`` with an optional time stride."""

    def __init__(self, in_dim: int, out_dim: int, kernel: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.kernel, self.stride, self.out_dim = kernel, stride, out_dim
        self.norm = nn.LayerNorm(in_dim)
        self.pointwise_in = nn.Conv1d(in_dim, 2 * out_dim, 1)
        self.depthwise = nn.Conv1d(out_dim, out_dim, kernel, stride=stride, padding=kernel // 2, groups=out_dim)
        self.batch_norm = MaskedBatchNorm1d(out_dim)
        self.pointwise_out = nn.Conv1d(out_dim, out_dim, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor, out_mask: Tensor) -> Tensor:
        """``x``: ``[B, T, in_dim]``; ``mask`` ``[B, T]`` and ``out_mask`` ``[B, T']`` valid frames."""
        y = F.glu(self.pointwise_in(self.norm(x).transpose(1, 2)), dim=1)
        y = self.depthwise(y * mask[:, None, :].to(y.dtype))
        y = F.silu(self.batch_norm(y, out_mask))
        return self.dropout(self.pointwise_out(y).transpose(1, 2))

    def channel_group(self, prefix: str) -> StructureGroup:
        """Inner channels: GLU pair rows of ``pointwise_in``, the depthwise filter, ``pointwise_out`` columns."""
        own, pair = strided_index(self.out_dim), strided_index(self.out_dim, 2)
        weights = [Slice(f"{prefix}.pointwise_in.weight", 0, pair), Slice(f"{prefix}.depthwise.weight", 0, own),
                   Slice(f"{prefix}.pointwise_out.weight", 1, own)]
        state = [Slice(f"{prefix}.pointwise_in.bias", 0, pair), Slice(f"{prefix}.depthwise.bias", 0, own)]
        state += norm_slices(f"{prefix}.batch_norm", own)
        return StructureGroup(prefix, "conv_channel", self.out_dim, weights, state, shrinkable=False)


class ConformerBlock(nn.Module):
    """Macaron FFN, relative-position MHSA, convolution module, FFN, LayerNorm (see module doc)."""

    def __init__(self, in_dim: int, out_dim: int, stride: int, num_heads: int, group_size: int,
                 ffn_hidden: tuple[int, int], kernel: int, dropout: float) -> None:
        super().__init__()
        self.stride = stride
        self.ff1 = FeedForward(in_dim, ffn_hidden[0], dropout)
        self.attn_norm = nn.LayerNorm(in_dim)
        self.attn = RelPositionMultiHeadAttention(in_dim, num_heads, group_size, dropout)
        self.attn_dropout = nn.Dropout(dropout)
        self.conv = ConvModule(in_dim, out_dim, kernel, stride, dropout)
        self.residual = nn.Conv1d(in_dim, out_dim, 1, stride=stride) if in_dim != out_dim else None
        self.ff2 = FeedForward(out_dim, ffn_hidden[1], dropout)
        self.norm = nn.LayerNorm(out_dim)

    def out_lens(self, lens: Tensor) -> Tensor:
        """Valid output frames (``(T - 1) // stride + 1``)."""
        return conv_out_len(lens, self.conv.kernel, self.stride).clamp(min=0) if self.stride > 1 else lens

    def forward(self, x: Tensor, lens: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x`` ``[B, T, in_dim]`` with lengths/mask -> ``[B, T', out_dim]`` zero beyond the new lengths."""
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn_dropout(self.attn(self.attn_norm(x), mask))
        out_lens = self.out_lens(lens)
        t_out = conv_out_len(x.shape[1], self.conv.kernel, self.stride) if self.stride > 1 else x.shape[1]
        out_mask = lengths_to_mask(out_lens, t_out)
        if self.residual is not None:
            res = self.residual(x.transpose(1, 2)).transpose(1, 2)
        else:
            res = x[:, :: self.stride] if self.stride > 1 else x
        x = res + self.conv(x, mask, out_mask)
        x = x + 0.5 * self.ff2(x)
        x = self.norm(x) * out_mask[:, :, None].to(x.dtype)
        return x, out_lens, out_mask

    def structure_groups(self, prefix: str) -> list[StructureGroup]:
        """Feed-forward neurons of both FFNs, attention heads (plain attention only: a grouped head
        mixes projection rows of several frames) and the convolution module's inner channels."""
        groups = [ffn_group(f"{prefix}.ff1", self.ff1.fc1), ffn_group(f"{prefix}.ff2", self.ff2.fc1)]
        attn = self.attn
        if attn.group_size == 1:
            rows = {n: [0] for n in ("q_proj", "k_proj", "v_proj", "pos_proj")}
            group = head_group(f"{prefix}.attn", attn.num_heads, attn.head_dim, rows, "out_proj")
            own = block_index(attn.num_heads, attn.head_dim)
            group.state += [Slice(f"{prefix}.attn.u", 0, own), Slice(f"{prefix}.attn.v", 0, own)]
            groups.append(group)
        groups.append(self.conv.channel_group(f"{prefix}.conv"))
        return groups


# --------------------------------------------------------------------------- the model


def _check_config(cfg: ConformerConfig) -> None:
    def bad(msg: str) -> ConfigError:
        return ConfigError(f"model.conformer.{msg}")

    if cfg.num_blocks < 1:
        raise bad(f"num_blocks: must be positive, got {cfg.num_blocks}")
    if not cfg.stage_dims or any(int(d) < 1 for d in cfg.stage_dims):
        raise bad(f"stage_dims: need at least one positive dim, got {cfg.stage_dims}")
    blocks = [int(i) for i in cfg.downsample_blocks]
    if len(blocks) != len(cfg.stage_dims) - 1:
        raise bad(f"downsample_blocks: need one index per stage change ({len(cfg.stage_dims) - 1}), got {blocks}")
    if blocks != sorted(set(blocks)) or any(not 0 <= i < cfg.num_blocks for i in blocks):
        raise bad(f"downsample_blocks: need increasing block indices in [0, {cfg.num_blocks}), got {blocks}")
    if len(cfg.attention_group_sizes) != len(cfg.stage_dims) or any(int(g) < 1 for g in cfg.attention_group_sizes):
        raise bad(f"attention_group_sizes: need one size >= 1 per stage, got {cfg.attention_group_sizes}")
    for dim, group in zip(cfg.stage_dims, cfg.attention_group_sizes):
        if (int(dim) * int(group)) % cfg.num_heads:
            raise bad(f"num_heads: {cfg.num_heads} must divide stage dim x group size ({dim} x {group})")
    if cfg.kernel_size < 1 or cfg.kernel_size % 2 == 0:
        raise bad(f"kernel_size: must be odd, got {cfg.kernel_size}")
    if cfg.subsampling_kernel < 1 or cfg.subsampling_kernel % 2 == 0:
        raise bad(f"subsampling_kernel: must be odd, got {cfg.subsampling_kernel}")
    if any(int(c) < 1 for c in cfg.subsampling_channels):
        raise bad(f"subsampling_channels: must be positive, got {cfg.subsampling_channels}")
    if cfg.downsample_stride < 1 or cfg.ffn_ratio < 1 or cfg.num_heads < 1:
        raise bad("downsample_stride, ffn_ratio and num_heads must be positive")
    sizes = cfg.ffn_hidden_sizes
    if sizes and (len(sizes) != cfg.num_blocks or any(
            not isinstance(p, list) or len(p) != 2 or any(not isinstance(h, int) or h < 1 for h in p) for p in sizes)):
        raise bad(f"ffn_hidden_sizes: need {cfg.num_blocks} pairs [ff1, ff2] of positive integers, got {sizes!r}")
    if not 0.0 <= cfg.dropout < 1.0:
        raise bad(f"dropout: must be in [0, 1), got {cfg.dropout}")


@register_model("conformer", ConformerConfig, check=check_section)
class ConformerCTC(ASRModel):
    """Conformer encoder (Efficient Conformer stages optional) with a Linear CTC head."""

    def __init__(self, cfg: ConformerConfig, vocab_size: int, feat_dim: int) -> None:
        super().__init__()
        _check_config(cfg)
        self.cfg, self.vocab_size, self.feat_dim = cfg, vocab_size, feat_dim
        dims = [int(d) for d in cfg.stage_dims]
        groups = [int(g) for g in cfg.attention_group_sizes]
        self.subsample = ConvSubsampling(feat_dim, [int(c) for c in cfg.subsampling_channels],
                                           cfg.subsampling_kernel, dims[0])
        self.input_dropout = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList()
        stage = 0
        for i in range(cfg.num_blocks):
            down = i in cfg.downsample_blocks
            in_dim, out_dim = dims[stage], dims[stage + 1] if down else dims[stage]
            ffn = cfg.ffn_hidden_sizes[i] if cfg.ffn_hidden_sizes else (cfg.ffn_ratio * in_dim, cfg.ffn_ratio * out_dim)
            self.blocks.append(ConformerBlock(
                in_dim, out_dim, cfg.downsample_stride if down else 1,
                cfg.num_heads, groups[stage], (int(ffn[0]), int(ffn[1])), cfg.kernel_size, cfg.dropout,
            ))
            stage += int(down)
        self.out = nn.Linear(dims[-1], vocab_size)
        self.reset_parameters()

    @classmethod
    def from_config(cls, cfg: ModelConfig, vocab_size: int, feat_dim: int) -> "ConformerCTC":
        """Build from ``cfg.conformer`` (registry entry point)."""
        return cls(cfg.conformer, vocab_size, feat_dim)

    def output_lengths(self, feat_lens: Tensor) -> Tensor:
        """Frames after the subsampling convolutions and the downsampling blocks."""
        lens = self.subsample.out_lens(feat_lens)
        for block in self.blocks:
            lens = block.out_lens(lens)
        return lens

    def forward(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Log-probabilities ``[B, T', V]`` and output lengths ``[B]``."""
        lens = feat_lens.to(feats.device)
        x = feats * lengths_to_mask(lens, feats.shape[1])[:, :, None].to(feats.dtype)
        x, lens = self.subsample(x, lens)
        mask = lengths_to_mask(lens, x.shape[1])
        x = self.input_dropout(x) * mask[:, :, None].to(x.dtype)
        for block in self.blocks:
            x, lens, mask = block(x, lens, mask)
        return F.log_softmax(self.out(x).float(), dim=-1), lens  # fp32 under autocast (train.amp)

    def reset_parameters(self) -> None:
        """Every module's own reset (conv, norms and their running statistics, attention biases), then
        Xavier-uniform weights and zero biases for every Linear. Uses torch's global RNG."""
        super().reset_parameters()
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def prunable(self) -> dict[str, nn.Parameter]:
        """Every Linear weight (the paper's scope: the official code pruned ``nn.Linear`` only); with
        ``prune_convolutions`` also every convolution weight (subsampling, pointwise, depthwise, residual)."""
        kinds: tuple[type, ...] = (nn.Linear, nn.Conv1d, nn.Conv2d) if self.cfg.prune_convolutions else (nn.Linear,)
        return {f"{name}.weight": m.weight for name, m in self.named_modules() if isinstance(m, kinds)}

    def structure_groups(self) -> list[StructureGroup]:
        """Subsampling conv channels, then per block FFN neurons, attention heads, conv-module channels
        (convolution groups need ``prune_convolutions``: their weights must be prunable)."""
        groups = self.subsample.channel_groups("subsample")
        for i, block in enumerate(self.blocks):
            groups += block.structure_groups(f"blocks.{i}")
        return groups

    def shrunk_config(self, sizes: dict[str, int]) -> ConformerConfig:
        """``subsampling_channels`` and ``ffn_hidden_sizes`` from the group sizes (others unchanged)."""
        channels = [sizes.get(f"subsample.convs.{i}", c.out_channels) for i, c in enumerate(self.subsample.convs)]
        ffn = [[sizes.get(f"blocks.{i}.{f}", getattr(b, f).fc1.out_features) for f in ("ff1", "ff2")]
               for i, b in enumerate(self.blocks)]
        return dataclasses.replace(self.cfg, subsampling_channels=channels, ffn_hidden_sizes=ffn)
