"""Mask strategies: pure functions ``(params, mask, fraction, generator) -> new Mask``.

Each prunes ``fraction`` of the weights that the current mask still keeps
(``count = round(fraction * remaining)``); already-pruned weights stay pruned and the
inputs are never modified. Strategies are registered by name in :data:`STRATEGIES`.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import torch
from torch import Tensor

from audio_lottery.pruning.mask import Mask

Strategy = Callable[[Mapping[str, Tensor], Mask, float, "torch.Generator | None"], Mask]
STRATEGIES: dict[str, Strategy] = {}


def register_strategy(name: str) -> Callable[[Strategy], Strategy]:
    """Decorator: register a strategy under ``name``."""

    def deco(fn: Strategy) -> Strategy:
        if name in STRATEGIES:
            raise ValueError(f"strategy {name!r} is already registered")
        STRATEGIES[name] = fn
        return fn

    return deco


def get_strategy(name: str) -> Strategy:
    """The strategy registered as ``name``; unknown names raise ``ValueError`` listing the known ones."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown pruning strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}") from None


def remaining_after(levels: int, fraction: float) -> float:
    """Fraction of weights left after ``levels`` rounds pruning ``fraction`` of the remainder."""
    return (1.0 - fraction) ** levels


# --------------------------------------------------------------------------- helpers


def _check(params: Mapping[str, Tensor], mask: Mask, fraction: float) -> None:
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    for name in mask:
        if name not in params:
            raise KeyError(f"mask tensor {name!r} has no weight in params")
        if tuple(params[name].shape) != tuple(mask[name].shape):
            raise ValueError(
                f"mask {name!r} has shape {tuple(mask[name].shape)} but the weight has {tuple(params[name].shape)}"
            )


def _magnitudes(params: Mapping[str, Tensor], names: list[str]) -> Tensor:
    """|w| of the named tensors, flattened and concatenated (on CPU, in a common dtype)."""
    dtype = torch.float32
    for n in names:
        dtype = torch.promote_types(dtype, params[n].dtype)
    return torch.cat([params[n].detach().to(device="cpu", dtype=dtype).abs().flatten() for n in names])


def _flat(mask: Mask, names: list[str]) -> Tensor:
    return torch.cat([mask[n].flatten() for n in names]) if names else torch.zeros(0, dtype=torch.bool)


def _unflat(flat: Tensor, mask: Mask, names: list[str]) -> Mask:
    out, start = {}, 0
    for n in names:
        size = mask[n].numel()
        out[n] = flat[start : start + size].view(mask[n].shape)
        start += size
    return Mask(out)


def _prune_smallest(scores: Tensor, keep: Tensor, fraction: float) -> Tensor:
    """New flat keep-vector: drop ``round(fraction * kept)`` kept entries with the smallest score.

    Ties are broken deterministically: a stable sort prunes the lower flat index first.
    Entries scored ``+inf`` (protected, see :func:`_protect_floor`) are never dropped, even
    when fewer than the count remain unprotected.
    """
    return prune_count(scores, keep, round(fraction * int(keep.sum())))


def prune_count(scores: Tensor, keep: Tensor, count: int) -> Tensor:
    """New flat keep-vector: drop the ``count`` kept entries with the smallest score (stable ties)."""
    alive = keep.nonzero().squeeze(1)
    count = min(count, int((scores[alive] != math.inf).sum()))  # +inf = protected, never dropped
    order = torch.sort(scores[alive], stable=True).indices[:count]
    new = keep.clone()
    new[alive[order]] = False
    return new


# --------------------------------------------------------------------------- strategies


@register_strategy("global_magnitude")
def global_magnitude(
    params: Mapping[str, Tensor],
    mask: Mask,
    fraction: float,
    generator: torch.Generator | None = None,
    min_density: float = 0.0,
) -> Mask:
    """Prune the ``fraction`` of remaining weights with the smallest |w| over all tensors together.

    ``min_density`` (default 0: the paper's rule) guards against layer collapse: the largest
    ``ceil(min_density * numel)`` surviving weights of every tensor are never pruned, and the
    global count is taken from the other weights instead (deep in a schedule, when fewer
    unprotected weights remain than the count, only those are pruned).
    """
    _check(params, mask, fraction)
    names = mask.keys()
    if not names:
        return mask.clone()
    scores = _magnitudes(params, names)
    if min_density > 0:
        scores = _protect_floor(scores, mask, names, min_density)
    keep = _prune_smallest(scores, _flat(mask, names), fraction)
    return _unflat(keep, mask, names)


def _protect_floor(scores: Tensor, mask: Mask, names: list[str], min_density: float) -> Tensor:
    """Scores with each tensor's top ``ceil(min_density * numel)`` surviving entries set to +inf."""
    scores, start = scores.clone(), 0
    for n in names:
        size = mask[n].numel()
        part, alive = scores[start : start + size], mask[n].flatten()
        floor = min(int(alive.sum()), math.ceil(min_density * size))
        if floor > 0:
            idx = alive.nonzero().squeeze(1)
            top = torch.topk(part[idx], floor).indices
            part[idx[top]] = math.inf
        start += size
    return scores


@register_strategy("layerwise_magnitude")
def layerwise_magnitude(
    params: Mapping[str, Tensor],
    mask: Mask,
    fraction: float,
    generator: torch.Generator | None = None,
    min_density: float = 0.0,
) -> Mask:
    """Prune the ``fraction`` of remaining weights with the smallest |w| in every tensor separately.

    Every tensor keeps the global density, so ``min_density`` (accepted for a uniform signature) never binds.
    """
    _check(params, mask, fraction)
    out = {}
    for name in mask:
        keep = _prune_smallest(_magnitudes(params, [name]), mask[name].flatten(), fraction)
        out[name] = keep.view(mask[name].shape)
    return Mask(out)


@register_strategy("random")
def random_prune(
    params: Mapping[str, Tensor],
    mask: Mask,
    fraction: float,
    generator: torch.Generator | None = None,
    min_density: float = 0.0,
) -> Mask:
    """Prune ``round(fraction * remaining)`` remaining weights chosen uniformly over all tensors.

    Deterministic for a given ``generator`` state (a CPU ``torch.Generator``). Every tensor keeps
    about the global density, so ``min_density`` (accepted for a uniform signature) is not applied.
    """
    _check(params, mask, fraction)
    names = mask.keys()
    if not names:
        return mask.clone()
    keep = _flat(mask, names)
    alive = keep.nonzero().squeeze(1)
    count = round(fraction * alive.numel())
    chosen = torch.randperm(alive.numel(), generator=generator)[:count]
    new = keep.clone()
    new[alive[chosen]] = False
    return _unflat(new, mask, names)
