"""Layers shared by the backbones: padding-safe masked batch norm (DDP-synchronisable), the
DeepSpeech2-style Conv2d stack and the bidirectional LSTM layer over per-sequence-reversed
padded input (no PackedSequence: its CPU backward is quadratic).

Every layer keeps padding from changing an utterance's valid outputs: positions beyond each
length are zeroed and batch-norm statistics are taken over valid frames only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audio_lottery.config import ConfigError
from audio_lottery.models.base import lengths_to_mask
from audio_lottery.models.structure import Slice, StructureGroup, block_index, lstm_unit_slices, norm_slices, strided_index


def check_conv_pairs(section: object, key: str) -> None:
    """``conv_channels``, ``conv_kernels`` and ``conv_strides`` of a config section: one entry per
    layer, kernels and strides as positive [freq, time] pairs (ConfigError naming ``key``)."""
    n = len(section.conv_channels)
    if not (len(section.conv_kernels) == n and len(section.conv_strides) == n):
        raise ConfigError(f"{key}.conv_channels, conv_kernels and conv_strides must have the same length "
                          f"(got {n}, {len(section.conv_kernels)}, {len(section.conv_strides)})")
    for name in ("conv_kernels", "conv_strides"):
        pairs = getattr(section, name)
        if not all(isinstance(p, list) and len(p) == 2 and all(isinstance(x, int) and x >= 1 for x in p)
                   for p in pairs):
            raise ConfigError(f"{key}.{name}: expected [freq, time] pairs of positive integers, got {pairs!r}")


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


