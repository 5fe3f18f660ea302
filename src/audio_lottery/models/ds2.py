"""DeepSpeech2 CNN-LSTM CTC model (deepspeech.pytorch layout), padding-invariant.

Conv2d blocks over (freq, time) -> sequence-wise batch norm + bidirectional LSTMs with
directions summed -> batch norm + Linear (no bias) -> log-softmax.

Every step is computed so that padding never changes an utterance's valid outputs:
positions beyond each length are zeroed after every conv block and LSTM layer, batch-norm
statistics are taken over valid frames only, and the backward LSTM direction runs on
per-sequence-reversed padded input (no PackedSequence: its CPU backward is quadratic).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audio_lottery.config import ConfigError, DS2Config, ModelConfig
from audio_lottery.models.base import default_prunable, ASRModel, lengths_to_mask
from audio_lottery.models.registry import register_model
from audio_lottery.pruning.groups import (
    Slice,
    StructureGroup,
    block_index,
    lstm_unit_slices,
    norm_slices,
    strided_index,
)

# --------------------------------------------------------------------------- masked batch norm


def _update_running(bn: nn.modules.batchnorm._BatchNorm, mean: Tensor, var: Tensor, count: Tensor) -> None:
    """Update ``bn``'s running statistics like torch's BatchNorm (unbiased running variance)."""
    bn.num_batches_tracked.add_(1)
    factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    unbiased = var * (count / (count - 1).clamp(min=1))
    bn.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
    bn.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)


def masked_batch_norm(bn: nn.modules.batchnorm._BatchNorm, x: Tensor, mask: Tensor, channel_dim: int) -> Tensor:
    """Batch-normalise ``x`` using statistics of the positions where ``mask`` is True.

    ``mask`` broadcasts against ``x`` and has size 1 along ``channel_dim``. In training
    mode (or without running statistics) the batch statistics are used and the running
    ones updated; in eval mode the running statistics are used. Statistics are taken in
    float32 (safe under fp16/bf16 autocast). When ``bn.sync_group`` is set (multi-process
    training, see ``train.distributed.enable_sync_batch_norm``) the sums behind them are
    all-reduced over that group, differentiably: every rank then normalises with the
    statistics of the global batch, as one process with the whole batch would.
    """
    xs = x.float()
    shape = [1] * x.dim()
    shape[channel_dim] = -1
    if bn.training or bn.running_mean is None:
        dims = tuple(d for d in range(x.dim()) if d != channel_dim)
        w = mask.to(xs.dtype)
        group = getattr(bn, "sync_group", None) if bn.training else None
        count = w.expand([1 if d == channel_dim else n for d, n in enumerate(x.shape)]).sum()
        total = (xs * w).sum(dims, keepdim=True)
        if group is not None:
            packed = _all_reduce(torch.cat([total.reshape(-1), count.reshape(1)]), group)
            total, count = packed[:-1].view_as(total), packed[-1]
        count = count.clamp(min=1)
        mean = total / count
        squares = ((xs - mean).square() * w).sum(dims, keepdim=True)
        if group is not None:
            squares = _all_reduce(squares, group)
        var = squares / count
        if bn.training and bn.track_running_stats:
            with torch.no_grad():
                _update_running(bn, mean.detach().view(-1), var.detach().view(-1), count.detach())
    else:
        mean, var = bn.running_mean.view(shape), bn.running_var.view(shape)
    y = (xs - mean) * torch.rsqrt(var + bn.eps)
    if bn.affine:
        y = y * bn.weight.view(shape) + bn.bias.view(shape)
    return y.to(x.dtype)


def _all_reduce(t: Tensor, group) -> Tensor:
    """Differentiable sum over the ranks of ``group``."""
    return _AllReduceSum.apply(t, group)


class _AllReduceSum(torch.autograd.Function):
    """y = sum over ranks of x; the gradient of x is the sum over ranks of the gradients of y."""

    @staticmethod
    def forward(ctx, x: Tensor, group) -> Tensor:  # type: ignore[override]
        ctx.group = group
        y = x.clone(memory_format=torch.contiguous_format)
        torch.distributed.all_reduce(y, group=group)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return _AllReduceSum.apply(grad, ctx.group), None


class MaskedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d over ``[B, C, F, T]`` whose statistics ignore padded time steps."""

    supports_sync = True  # see masked_batch_norm

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # type: ignore[override]
        """``mask``: bool ``[B, 1, 1, T]``, True at valid frames."""
        return masked_batch_norm(self, x, mask, channel_dim=1)


class SequenceBatchNorm(nn.BatchNorm1d):
    """Sequence-wise BatchNorm1d over ``[B, T, C]`` whose statistics ignore padded frames."""

    supports_sync = True  # see masked_batch_norm

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # type: ignore[override]
        """``mask``: bool ``[B, T]``, True at valid frames."""
        return masked_batch_norm(self, x, mask[:, :, None], channel_dim=2)


# --------------------------------------------------------------------------- building blocks


def reverse_index(lens: Tensor, max_len: int) -> Tensor:
    """Time index ``[B, T]`` reversing each sequence within its length (padding stays put)."""
    t = torch.arange(max_len, device=lens.device)[None, :]
    return torch.where(t < lens[:, None], lens[:, None] - 1 - t, t)


def reverse_padded(x: Tensor, index: Tensor) -> Tensor:
    """Apply a :func:`reverse_index` to ``x`` ``[B, T, C]`` (it is its own inverse)."""
    return x.gather(1, index[:, :, None].expand(-1, -1, x.shape[2]))


def conv_out_len(length: Tensor | int, kernel: int, stride: int) -> Tensor | int:
    """Output length of a convolution with padding ``kernel // 2``."""
    return (length + 2 * (kernel // 2) - kernel) // stride + 1


class ConvBlock(nn.Module):
    """Conv2d -> masked BatchNorm2d -> Hardtanh(0, 20) -> zero the padded frames."""

    def __init__(self, in_ch: int, out_ch: int, kernel: tuple[int, int], stride: tuple[int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        padding = (kernel[0] // 2, kernel[1] // 2)
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding)
        self.bn = MaskedBatchNorm2d(out_ch)

    def out_lens(self, lens: Tensor) -> Tensor:
        """Valid output frames for ``lens`` valid input frames."""
        return conv_out_len(lens, self.kernel[1], self.stride[1]).clamp(min=0)

    def forward(self, x: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """``x``: ``[B, C, F, T]`` zero beyond ``lens``; returns the same for the output."""
        x = self.conv(x)
        lens = self.out_lens(lens)
        mask = lengths_to_mask(lens, x.shape[-1])[:, None, None, :]
        x = F.hardtanh(self.bn(x, mask), 0.0, 20.0)
        return x * mask, lens


class ConvStack(nn.ModuleList):
    """Conv2d blocks over (freq, time) that keep padding at zero; a ModuleList, so parameter
    names stay ``<name>.<i>.conv.weight``. ``key`` names the config section in errors."""

    def __init__(self, channels: list, kernels: list, strides: list, feat_dim: int, key: str) -> None:
        n = len(channels)
        if n == 0 or len(kernels) != n or len(strides) != n:
            raise ConfigError(f"{key}: conv_channels, conv_kernels and conv_strides need the same non-zero length")
        for name, pairs in (("conv_kernels", kernels), ("conv_strides", strides)):
            if any(len(pair) != 2 for pair in pairs):
                raise ConfigError(f"{key}.{name}: every entry must be a (freq, time) pair")
        blocks, in_ch, freq = [], 1, feat_dim
        for ch, k, s in zip(channels, kernels, strides):
            blocks.append(ConvBlock(in_ch, ch, (int(k[0]), int(k[1])), (int(s[0]), int(s[1]))))
            in_ch, freq = ch, conv_out_len(freq, int(k[0]), int(s[0]))
        if freq < 1:
            raise ConfigError(f"{key}: the conv stack reduces {feat_dim} feature bins to {freq}")
        super().__init__(blocks)
        self.out_dim = in_ch * freq

    def out_lens(self, lens: Tensor) -> Tensor:
        """Frames after the stack's time strides."""
        for block in self:
            lens = block.out_lens(lens)
        return lens

    def channel_groups(self, prefix: str, consumers: list[str]) -> list[StructureGroup]:
        """Output channels of every block; the last block's are read by the ``consumers`` weights
        (``[out, C*F']`` matrices, channel ``c`` = columns ``c*F' .. c*F'+F'-1``)."""
        groups = []
        for i, block in enumerate(self):
            ch = block.conv.out_channels
            own = strided_index(ch)
            weights = [Slice(f"{prefix}.{i}.conv.weight", 0, own)]
            state = [Slice(f"{prefix}.{i}.conv.bias", 0, own)] + norm_slices(f"{prefix}.{i}.bn", own)
            if i + 1 < len(self):
                weights.append(Slice(f"{prefix}.{i + 1}.conv.weight", 1, own))
            else:
                cols = block_index(ch, self.out_dim // ch)
                weights += [Slice(name, 1, cols) for name in consumers]
            groups.append(StructureGroup(f"{prefix}.{i}", "conv_channel", ch, weights, state))
        return groups

    def encode(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, T, F]`` features -> ``[B, T', C*F']`` (zero beyond each length) and lengths."""
        lens = feat_lens.to(feats.device)
        x = feats * lengths_to_mask(lens, feats.shape[1])[:, :, None].to(feats.dtype)
        x = x.transpose(1, 2).unsqueeze(1)  # [B, 1, F, T]
        for block in self:
            x, lens = block(x, lens)
        b, c, f, t = x.shape
        return x.reshape(b, c * f, t).transpose(1, 2), lens


class BiLSTMLayer(nn.Module):
    """(Sequence batch norm) -> LSTM per direction, directions summed, padding zeroed."""

    def __init__(self, in_dim: int, hidden: int, bidirectional: bool, batch_norm: bool) -> None:
        super().__init__()
        self.hidden = hidden
        self.norm = SequenceBatchNorm(in_dim) if batch_norm else None
        self.fwd = nn.LSTM(in_dim, hidden, batch_first=True)
        self.bwd = nn.LSTM(in_dim, hidden, batch_first=True) if bidirectional else None

    def forward(self, x: Tensor, lens: Tensor, mask: Tensor) -> Tensor:
        """``x``: ``[B, T, in_dim]``, ``mask``: ``[B, T]``; returns ``[B, T, hidden]``."""
        if self.norm is not None:
            x = self.norm(x, mask)
        y, _ = self.fwd(x)
        if self.bwd is not None:
            index = reverse_index(lens, x.shape[1])
            y_rev, _ = self.bwd(reverse_padded(x, index))
            y = y + reverse_padded(y_rev, index)
        return y * mask[:, :, None].to(y.dtype)

    def directions(self, prefix: str) -> list[str]:
        """Names of the layer's ``nn.LSTM`` modules (``<prefix>.fwd`` and, if bidirectional, ``<prefix>.bwd``)."""
        return [f"{prefix}.fwd"] + ([f"{prefix}.bwd"] if self.bwd is not None else [])

    def unit_slices(self, prefix: str) -> tuple[list[Slice], list[Slice]]:
        """Weight and state slices of the hidden units of every direction (unit ``j`` of both
        directions is one unit: their outputs are summed)."""
        weights, state = [], []
        for name in self.directions(prefix):
            w, s = lstm_unit_slices(name, self.hidden)
            weights += w
            state += s
        return weights, state

    def input_slices(self, prefix: str, index: Tensor) -> tuple[list[Slice], list[Slice]]:
        """Slices that read input features ``index`` (``[units, k]``, a unit of the layer below per
        row): the input columns of every direction and, with batch norm, the norm's entries."""
        weights = [Slice(f"{d}.weight_ih_l0", 1, index) for d in self.directions(prefix)]
        state = norm_slices(f"{prefix}.norm", index) if self.norm is not None else []
        return weights, state


# --------------------------------------------------------------------------- the model


def _check_config(cfg: DS2Config) -> None:
    if cfg.rnn_layers < 1 or cfg.rnn_hidden < 1:
        raise ConfigError("model.ds2: rnn_layers and rnn_hidden must be positive")
    sizes = cfg.rnn_hidden_sizes
    if sizes and (len(sizes) != cfg.rnn_layers or any(not isinstance(h, int) or h < 1 for h in sizes)):
        raise ConfigError(f"model.ds2.rnn_hidden_sizes: need {cfg.rnn_layers} positive integers, got {sizes!r}")


def hidden_sizes(cfg: DS2Config) -> list[int]:
    """Hidden size of every LSTM layer."""
    return [int(h) for h in cfg.rnn_hidden_sizes] or [cfg.rnn_hidden] * cfg.rnn_layers


@register_model("ds2")
class DeepSpeech2(ASRModel):
    """DeepSpeech2: Conv2d stack, (bi)LSTMs with summed directions, BN + Linear, CTC."""

    def __init__(self, cfg: DS2Config, vocab_size: int, feat_dim: int) -> None:
        super().__init__()
        _check_config(cfg)
        self.cfg, self.vocab_size, self.feat_dim = cfg, vocab_size, feat_dim
        self.conv = ConvStack(cfg.conv_channels, cfg.conv_kernels, cfg.conv_strides, feat_dim, "model.ds2")
        self.rnn_input_dim = self.conv.out_dim
        hidden = hidden_sizes(cfg)
        self.rnns = nn.ModuleList(
            BiLSTMLayer(
                self.rnn_input_dim if i == 0 else hidden[i - 1],
                hidden[i],
                cfg.bidirectional,
                batch_norm=cfg.rnn_batch_norm and i > 0,
            )
            for i in range(cfg.rnn_layers)
        )
        self.out_norm = SequenceBatchNorm(hidden[-1]) if cfg.rnn_batch_norm else None
        self.out = nn.Linear(hidden[-1], vocab_size, bias=False)

    @classmethod
    def from_config(cls, cfg: ModelConfig, vocab_size: int, feat_dim: int) -> "DeepSpeech2":
        """Build from ``cfg.ds2`` (registry entry point)."""
        return cls(cfg.ds2, vocab_size, feat_dim)

    def output_lengths(self, feat_lens: Tensor) -> Tensor:
        """Frames after the conv stack's time strides."""
        return self.conv.out_lens(feat_lens)

    def forward(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Log-probabilities ``[B, T', V]`` and output lengths ``[B]``."""
        x, lens = self.conv.encode(feats, feat_lens)
        mask = lengths_to_mask(lens, x.shape[1])
        for layer in self.rnns:
            x = layer(x, lens, mask)
        if self.out_norm is not None:
            x = self.out_norm(x, mask)
        return F.log_softmax(self.out(x), dim=-1), lens

    def prunable(self) -> dict[str, nn.Parameter]:
        """Conv weights, every LSTM weight_ih/weight_hh, the output Linear weight (the paper's scope)."""
        return default_prunable(self)

    def structure_groups(self) -> list[StructureGroup]:
        """Conv output channels and LSTM hidden units (all 4 gate rows of both directions, the
        recurrent column, and the input columns of the next layer or the output Linear)."""
        groups = self.conv.channel_groups("conv", [f"{d}.weight_ih_l0" for d in self.rnns[0].directions("rnns.0")])
        for i, layer in enumerate(self.rnns):
            weights, state = layer.unit_slices(f"rnns.{i}")
            own = strided_index(layer.hidden)
            if i + 1 < len(self.rnns):
                w, st = self.rnns[i + 1].input_slices(f"rnns.{i + 1}", own)
                weights, state = weights + w, state + st
            else:
                weights.append(Slice("out.weight", 1, own))
                if self.out_norm is not None:
                    state += norm_slices("out_norm", own)
            groups.append(StructureGroup(f"rnns.{i}", "lstm_unit", layer.hidden, weights, state))
        return groups

    def shrunk_config(self, sizes: dict[str, int]) -> DS2Config:
        """``conv_channels`` and ``rnn_hidden_sizes`` from the group sizes (others unchanged)."""
        channels = [sizes.get(f"conv.{i}", b.conv.out_channels) for i, b in enumerate(self.conv)]
        hidden = [sizes.get(f"rnns.{i}", layer.hidden) for i, layer in enumerate(self.rnns)]
        return dataclasses.replace(self.cfg, conv_channels=channels, rnn_hidden_sizes=hidden)
