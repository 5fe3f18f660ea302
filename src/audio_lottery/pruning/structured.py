"""Structured mask strategies (block, N:M, channel) and the conversion of an unstructured ticket.

Registered in :data:`~audio_lottery.pruning.strategies.STRATEGIES` with the common signature
``(params, mask, fraction, generator, min_density=0, **options)``; like the unstructured ones
they prune ``round(fraction * remaining)`` of the weights the mask still keeps (up to the
granularity of a block or unit), never revive a pruned weight and never modify their inputs.

* ``block``: blocks of ``block_shape`` (rows x columns) tiling the 2-D view ``[out, in*kernel]``
  of every weight, ranked globally by the root mean square of their surviving weights (the block
  norm per weight; equal to the L2 norm order for full blocks). Edge blocks may be smaller.
* ``nm``: at most N of every M consecutive weights of a row are kept (the N largest), then
  global magnitude pruning among the survivors if the budget asks for more. A level can never keep
  more than N/M of a tensor, so the first level of an ``nm`` run already lands at <= N/M.
* ``channel``: whole units of the model's :meth:`~audio_lottery.models.base.ASRModel.structure_groups`
  (LSTM hidden units, conv channels, feed-forward neurons, attention heads). Within a group units are
  ranked by the root mean square of their surviving weights; across groups by that rank's quantile,
  so every group loses about the same fraction of its units per level. (Raw norms are not comparable
  across layers: an LSTM, a convolution and a Linear are initialised on different scales, and a
  global ranking of them, even normalised by the group mean, gutted whole layers in our tests.)
  Removing a unit clears its rows and the matching input columns of its consumers, so the budget is
  met by a search over how many units to drop.

``min_density`` keeps the layer-collapse guard's meaning: per tensor (block, nm) the top
``ceil(min_density * numel)`` weights' blocks survive; per group (channel) the top
``ceil(min_density * units)`` units (and always at least one) survive.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
from torch import Tensor

from audio_lottery.pruning.groups import (
    StructureGroup,
    structure_mask,
    unit_scores,
    usable_groups,
)
from audio_lottery.pruning.mask import Mask
from audio_lottery.pruning.strategies import (
    STRUCTURES,
    check_inputs,
    flat_mask,
    get_strategy,
    magnitudes,
    protect_floor,
    prune_count,
    register_strategy,
    unflat_mask,
)

# --------------------------------------------------------------------------- 2-D block views


def as_matrix(t: Tensor) -> Tensor:
    """The 2-D view ``[shape[0], prod(shape[1:])]`` a structure is defined on (a vector is one row)."""
    return t.reshape(t.shape[0], -1) if t.dim() > 1 else t.reshape(1, -1)


def to_blocks(t: Tensor, bh: int, bw: int, fill: float | bool = 0) -> Tensor:
    """``[n_blocks, bh * bw]``: the blocks of ``as_matrix(t)`` row by row, edges padded with ``fill``."""
    m = as_matrix(t)
    r, c = m.shape
    pr, pc = (-r) % bh, (-c) % bw
    if pr or pc:
        m = torch.nn.functional.pad(m.to(torch.float64) if m.dtype == torch.bool else m, (0, pc, 0, pr),
                                    value=float(fill)).to(m.dtype)
    rows, cols = m.shape[0] // bh, m.shape[1] // bw
    return m.reshape(rows, bh, cols, bw).permute(0, 2, 1, 3).reshape(rows * cols, bh * bw)


def from_blocks(blocks: Tensor, shape: torch.Size, bh: int, bw: int) -> Tensor:
    """Inverse of :func:`to_blocks` (padding dropped)."""
    r = shape[0] if len(shape) > 1 else 1
    c = math.prod(shape[1:]) if len(shape) > 1 else math.prod(shape)
    rows, cols = -(-r // bh), -(-c // bw)
    m = blocks.reshape(rows, cols, bh, bw).permute(0, 2, 1, 3).reshape(rows * bh, cols * bw)
    return m[:r, :c].reshape(shape)


# --------------------------------------------------------------------------- block


@register_strategy("block", {"block_shape": lambda prune, model_fn: tuple(prune.block_shape)}, structure=True)
def block_prune(
    params: Mapping[str, Tensor],
    mask: Mask,
    fraction: float,
    generator: torch.Generator | None = None,
    min_density: float = 0.0,
    block_shape: tuple[int, int] = (1, 4),
) -> Mask:
    """Prune whole ``block_shape`` blocks with the smallest norm per weight until ``round(fraction *
    remaining)`` weights are gone (the count closest to that at block granularity)."""
    check_inputs(params, mask, fraction)
    bh, bw = (int(v) for v in block_shape)
    names = mask.keys()
    if not names:
        return mask.clone()
    count = round(fraction * mask.remaining())
    scores, alive, owner, kept_blocks = [], [], [], []
    for i, name in enumerate(names):
        w = params[name].detach().to(device="cpu", dtype=torch.float64)
        keep = to_blocks(mask[name], bh, bw, False)
        valid = to_blocks(torch.ones_like(mask[name]), bh, bw, False)
        sq = (to_blocks(w, bh, bw) * keep).square().sum(1)
        scores.append((sq / valid.sum(1)).sqrt())
        alive.append(keep.sum(1))
        owner.append(torch.full((keep.shape[0],), i))
        kept_blocks.append(keep)
    score, alive_n, owner_t = torch.cat(scores), torch.cat(alive), torch.cat(owner)
    if min_density > 0:
        score = _protect_blocks(score, alive_n, owner_t, [mask[n].numel() for n in names], min_density)
    pruned = _smallest_covering(score, alive_n, count)
    out, start = {}, 0
    for name, keep in zip(names, kept_blocks):
        n = keep.shape[0]
        keep = keep & ~pruned[start:start + n, None]
        out[name] = from_blocks(keep, mask[name].shape, bh, bw)
        start += n
    return Mask(out)


def _protect_blocks(score: Tensor, alive: Tensor, owner: Tensor, numels: list[int], min_density: float) -> Tensor:
    """Scores with each tensor's best blocks set to +inf until they hold ``ceil(min_density * numel)`` weights."""
    score = score.clone()
    for i, numel in enumerate(numels):
        idx = ((owner == i) & (alive > 0)).nonzero().squeeze(1)
        order = idx[torch.sort(score[idx], descending=True, stable=True).indices]
        need = math.ceil(min_density * numel)
        cum = torch.cumsum(alive[order], 0)
        take = int((cum < need).sum()) + 1 if need > 0 else 0
        score[order[:take]] = math.inf
    return score


def _smallest_covering(score: Tensor, weight: Tensor, count: int) -> Tensor:
    """Bool mask of the items (in ascending ``score`` order, stable, finite scores with ``weight > 0``)
    whose summed ``weight`` comes closest to ``count`` (ties: prune more)."""
    chosen = torch.zeros(score.shape[0], dtype=torch.bool)
    cand = ((weight > 0) & torch.isfinite(score)).nonzero().squeeze(1)
    if count <= 0 or cand.numel() == 0:
        return chosen
    order = cand[torch.sort(score[cand], stable=True).indices]
    cum = torch.cumsum(weight[order], 0)
    k = int((cum < count).sum()) + 1  # smallest prefix reaching count
    k = min(k, order.numel())
    if k > 0 and k <= order.numel():
        over = int(cum[k - 1]) - count
        under = count - (int(cum[k - 2]) if k >= 2 else 0)
        if over > under:
            k -= 1
    chosen[order[:k]] = True
    return chosen


# --------------------------------------------------------------------------- N:M


def nm_keep(weight: Tensor, keep: Tensor, n: int, m: int) -> Tensor:
    """``keep`` restricted to the ``n`` largest surviving |w| of every ``m`` consecutive entries of each
    row of the 2-D view (stable ties: the lower index wins)."""
    mat_keep = as_matrix(keep)
    score = torch.where(mat_keep, as_matrix(weight).abs().to(torch.float64), torch.tensor(-1.0, dtype=torch.float64))
    r, c = score.shape
    pad = (-c) % m
    score = torch.nn.functional.pad(score, (0, pad), value=-1.0).reshape(r, -1, m)
    top = torch.sort(score, dim=-1, descending=True, stable=True).indices[..., :n]
    chosen = torch.zeros_like(score, dtype=torch.bool).scatter_(-1, top, True)
    chosen = chosen.reshape(r, -1)[:, :c]
    return (chosen & mat_keep).reshape(keep.shape)


@register_strategy("nm", {"nm": lambda prune, model_fn: tuple(prune.nm)}, structure=True)
def nm_prune(
    params: Mapping[str, Tensor],
    mask: Mask,
    fraction: float,
    generator: torch.Generator | None = None,
    min_density: float = 0.0,
    nm: tuple[int, int] = (2, 4),
) -> Mask:
    """N:M pattern (at most N kept of every M consecutive weights per row), then global magnitude
    among the survivors up to ``round(fraction * remaining)`` pruned weights."""
    check_inputs(params, mask, fraction)
    n, m = (int(v) for v in nm)
    names = mask.keys()
    if not names:
        return mask.clone()
    count = round(fraction * mask.remaining())
    pattern = Mask({name: nm_keep(params[name].detach().cpu(), mask[name], n, m) for name in names})
    extra = count - (mask.remaining() - pattern.remaining())
    if extra <= 0:
        return pattern
    scores = magnitudes(params, names)
    if min_density > 0:
        scores = protect_floor(scores, pattern, names, min_density)
    return unflat_mask(prune_count(scores, flat_mask(pattern, names), extra), pattern, names)


# --------------------------------------------------------------------------- channel


@register_strategy("channel", {"groups": lambda prune, model_fn: model_fn().structure_groups()},
                   structure=True)
def channel_prune(
    params: Mapping[str, Tensor],
    mask: Mask,
    fraction: float,
    generator: torch.Generator | None = None,
    min_density: float = 0.0,
    groups: list[StructureGroup] | None = None,
) -> Mask:
    """Prune whole units of ``groups`` (weakest within their group first, groups interleaved by rank
    quantile) until the mask keeps the count closest to ``remaining - round(fraction * remaining)``."""
    check_inputs(params, mask, fraction)
    usable = usable_groups(groups or [], mask)
    if not usable:
        raise ValueError("channel pruning needs the model's structure groups with all their weights in the "
                         "pruned scope; none given or usable (see ASRModel.structure_groups and prune.include)")
    remaining = mask.remaining()
    target = remaining - round(fraction * remaining)
    scored = unit_scores(usable, params, mask.tensors())
    cand_group, cand_unit, cand_score = [], [], []
    for gi, g in enumerate(usable):
        score, alive = scored[g.name]
        idx = alive.nonzero().squeeze(1)
        ranked = idx[torch.sort(score[idx], stable=True).indices]  # weakest first
        floor = min(idx.numel(), max(1, math.ceil(min_density * g.size)))
        free = ranked[: ranked.numel() - floor]
        cand_group.append(torch.full((free.numel(),), gi))
        cand_unit.append(free)
        cand_score.append((torch.arange(free.numel(), dtype=torch.float64) + 1) / max(idx.numel(), 1))
    order = torch.sort(torch.cat(cand_score), stable=True).indices
    cgroup, cunit = torch.cat(cand_group)[order], torch.cat(cand_unit)[order]
    shapes = {n: t.shape for n, t in mask.items()}

    def apply(k: int) -> Mask:
        keep = {g.name: scored[g.name][1].clone() for g in usable}
        for gi, u in zip(cgroup[:k].tolist(), cunit[:k].tolist()):
            keep[usable[gi].name][u] = False
        sm = structure_mask(usable, keep, shapes)
        return Mask({n: (t & sm[n]) if n in sm else t for n, t in mask.items()})

    lo, hi = 0, int(cgroup.numel())  # smallest k with remaining(k) <= target, by bisection (monotone)
    if apply(hi).remaining() > target:
        return apply(hi)
    while lo < hi:
        mid = (lo + hi) // 2
        if apply(mid).remaining() <= target:
            hi = mid
        else:
            lo = mid + 1
    best = apply(lo)
    if lo > 0:
        fewer = apply(lo - 1)
        if fewer.remaining() - target < target - best.remaining():
            best = fewer
    return best


# --------------------------------------------------------------------------- config and conversion


def convert_ticket(params: Mapping[str, Tensor], ticket: Mask, structure: str, **options) -> Mask:
    """``ticket`` re-expressed in ``structure`` at the same number of remaining weights: starting from the
    dense mask, the blocks / N:M survivors / units holding most of the ticket's surviving magnitude
    (``params`` restricted to the ticket) are kept. Pruned weights of the ticket score zero."""
    if structure not in STRUCTURES:
        raise ValueError(f"unknown structure {structure!r}; known: {', '.join(STRUCTURES)}")
    surviving = {n: params[n].detach().cpu() * ticket[n] for n in ticket}
    dense = Mask.ones_like(ticket.tensors())
    fraction = 1.0 - ticket.remaining() / dense.numel() if dense.numel() else 0.0
    return get_strategy(structure)(surviving, dense, fraction, None, **options)
