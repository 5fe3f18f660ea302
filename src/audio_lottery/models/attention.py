"""Multi-head self-attention with relative positional encoding, padding-safe and optionally grouped.

Relative positions follow Transformer-XL (Dai et al. 2019, section 3.3): the score of query
frame ``i`` against key frame ``j`` is

    ((q_i + u) . k_j  +  (q_i + v) . W_R r(i - j)) / sqrt(d_head)

where ``r(d)`` is a sinusoidal encoding of the signed distance ``d = i - j``, ``W_R`` a learned
projection (``pos_proj``) and ``u``, ``v`` learned content and position biases shared by all
positions. Because ``r`` depends on the distance alone, the scores of two valid frames never
depend on how long the padded batch is.

Grouped attention (Efficient Conformer, Burchi & Vielzeuf 2021): with ``group_size`` G > 1,
G neighbouring frames are concatenated along the feature axis after the Q/K/V projections,
so attention runs over ceil(T / G) groups with heads of ``G * dim / num_heads`` features (the
attention cost falls by G). Group ``g`` sits at frame distance ``G * (i - j)`` from group
``j``; its positional vector is ``W_R r(G * (i - j))`` repeated for each of the G slots. The
parameter count does not depend on G.

Padding: ``mask`` (True at valid frames) zeroes Q, K and V at padded frames (so a group that
straddles the end of an utterance holds the same values whether the batch is padded further
or not) and masks padded key groups out of the softmax.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def sinusoidal_encoding(positions: Tensor, dim: int) -> Tensor:
    """Sinusoidal encodings ``[N, dim]`` of real-valued ``positions`` ``[N]`` (sin on even, cos on odd features)."""
    half = (dim + 1) // 2
    inv_freq = torch.exp(
        torch.arange(half, device=positions.device, dtype=torch.float32) * (-2.0 * math.log(10000.0) / dim)
    )
    angles = positions.to(torch.float32)[:, None] * inv_freq[None, :]
    enc = torch.stack((angles.sin(), angles.cos()), dim=-1).reshape(positions.shape[0], 2 * half)
    return enc[:, :dim]


def rel_shift(scores: Tensor) -> Tensor:
    """Turn query-by-distance scores ``[..., T, 2T-1]`` into query-by-key scores ``[..., T, T]``.

    Column ``c`` of the input holds distance ``T - 1 - c`` (from ``T - 1`` down to ``-(T - 1)``);
    the output at ``[i, j]`` is the input at ``[i, T - 1 - i + j]``, i.e. distance ``i - j``.
    Done with one pad and two reshapes (no gather): after appending a zero column, row ``i``
    of the flattened ``[T, 2T]`` array starts at ``i * 2T``, so the wanted run of ``T`` values
    starts at ``(T - 1) + i * (2T - 1)``.
    """
    *lead, t, width = scores.shape
    if width != 2 * t - 1:
        raise ValueError(f"rel_shift expects [..., T, 2T-1] scores, got {tuple(scores.shape)}")
    flat = F.pad(scores, (0, 1)).reshape(*lead, t * (width + 1))
    return flat[..., t - 1 : t - 1 + t * width].reshape(*lead, t, width)[..., :t]


class RelPositionMultiHeadAttention(nn.Module):
    """Self-attention over ``[B, T, dim]`` with Transformer-XL relative positions (see module doc).

    Parameters: ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` and ``pos_proj`` (all
    ``nn.Linear(dim, dim)``) plus the biases ``u`` and ``v`` (``[dim]`` each).
    """

    def __init__(self, dim: int, num_heads: int, group_size: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        if group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {group_size}")
        if (group_size * dim) % num_heads:
            raise ValueError(f"num_heads {num_heads} must divide group_size * dim = {group_size * dim}")
        self.dim, self.num_heads, self.group_size = dim, num_heads, group_size
        self.head_dim = group_size * dim // num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.pos_proj = nn.Linear(dim, dim)
        self.u = nn.Parameter(torch.empty(dim))
        self.v = nn.Parameter(torch.empty(dim))
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw the biases ``u`` and ``v`` (the Linear layers reset themselves)."""
        nn.init.trunc_normal_(self.u, std=0.02)
        nn.init.trunc_normal_(self.v, std=0.02)

    def _heads(self, x: Tensor, groups: int) -> Tensor:
        """``[B, groups * G, dim]`` -> ``[B, H, groups, head_dim]``."""
        return x.reshape(x.shape[0], groups, self.num_heads, self.head_dim).transpose(1, 2)

    def positions(self, groups: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """Projected relative encodings ``[H, 2*groups-1, head_dim]`` for distances ``groups-1 .. -(groups-1)``."""
        dist = torch.arange(groups - 1, -groups, -1, device=device) * self.group_size
        enc = self.pos_proj(sinusoidal_encoding(dist, self.dim).to(dtype))  # [2g-1, dim]
        if self.group_size > 1:
            enc = enc.repeat(1, self.group_size)
        return enc.reshape(2 * groups - 1, self.num_heads, self.head_dim).transpose(0, 1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """``x``: ``[B, T, dim]``; ``mask``: bool ``[B, T]``, True at valid frames. Returns ``[B, T, dim]``.

        Outputs at padded frames are unspecified (finite); valid frames never see padded ones.
        """
        b, t, _ = x.shape
        g = self.group_size
        keep = mask[:, :, None].to(x.dtype)
        q, k, v = self.q_proj(x) * keep, self.k_proj(x) * keep, self.v_proj(x) * keep
        pad = (-t) % g
        if pad:
            q, k, v = (F.pad(z, (0, 0, 0, pad)) for z in (q, k, v))
        groups = (t + pad) // g
        key_valid = mask[:, ::g]  # a group is valid when its first frame is: [B, groups]

        content = self._heads(q + self.u, groups) @ self._heads(k, groups).transpose(-1, -2)
        pos = self.positions(groups, x.device, x.dtype)  # [H, 2g-1, d]
        position = rel_shift(self._heads(q + self.v, groups) @ pos.transpose(-1, -2).unsqueeze(0))
        scores = (content + position) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~key_valid[:, None, None, :], torch.finfo(scores.dtype).min)
        weights = self.dropout(scores.softmax(dim=-1))
        out = (weights @ self._heads(v, groups)).transpose(1, 2).reshape(b, groups * g, self.dim)
        return self.out_proj(out[:, :t])
