"""Mask strategies: pure functions ``(params, mask, fraction, generator) -> new Mask``.

Each prunes ``fraction`` of the weights that the current mask still keeps
(``count = round(fraction * remaining)``); already-pruned weights stay pruned and the
inputs are never modified. Strategies are registered by name in :data:`STRATEGIES`.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from audio_lottery.config import register_choice
from audio_lottery.pruning.mask import Mask

Strategy = Callable[[Mapping[str, Tensor], Mask, float, "torch.Generator | None"], Mask]
# An option maker turns the prune config (and, lazily, the model) into one keyword option.
OptionMaker = Callable[[Any, Callable[[], Any]], Any]
STRATEGIES: dict[str, Strategy] = {}
OPTIONS: dict[str, dict[str, OptionMaker]] = {}
STRUCTURES: list[str] = []  # strategies an unstructured ticket can be converted to (the `structured` branch)


def register_strategy(name: str, options: dict[str, OptionMaker] | None = None,
                      structure: bool = False) -> Callable[[Strategy], Strategy]:
    """Decorator: register a strategy under ``name``.

    ``options`` declares its keyword options beyond ``min_density``: keyword -> ``make(prune_config,
    model_fn)`` (``model_fn()`` builds the model, e.g. for its structure groups); ``structure`` makes it
    a target of ticket conversion. The name becomes a choice of ``prune.strategy`` (and of
    ``prune.structure``) in the config.
    """

    def deco(fn: Strategy) -> Strategy:
        if name in STRATEGIES:
            raise ValueError(f"strategy {name!r} is already registered")
        STRATEGIES[name] = fn
        OPTIONS[name] = dict(options or {})
        register_choice("prune.strategy", name)
        if structure:
            STRUCTURES.append(name)
            register_choice("prune.structure", name)
        return fn

    return deco


def strategy_options(prune: Any, name: str, model_fn: Callable[[], Any]) -> dict:
    """Keyword options of strategy ``name`` from the prune config: ``min_density`` plus what the
    strategy declared (``model_fn`` is only called by options that need the model)."""
    get_strategy(name)
    return {"min_density": prune.min_tensor_density, **{k: make(prune, model_fn) for k, make in OPTIONS[name].items()}}


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


def check_inputs(params: Mapping[str, Tensor], mask: Mask, fraction: float) -> None:
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    for name in mask:
        if name not in params:
            raise KeyError(f"mask tensor {name!r} has no weight in params")
        if tuple(params[name].shape) != tuple(mask[name].shape):
            raise ValueError(
                f"mask {name!r} has shape {tuple(mask[name].shape)} but the weight has {tuple(params[name].shape)}"
            )


def magnitudes(params: Mapping[str, Tensor], names: list[str]) -> Tensor:
    """|w| of the named tensors, flattened and concatenated (on CPU, in a common dtype)."""
    dtype = torch.float32
    for n in names:
        dtype = torch.promote_types(dtype, params[n].dtype)
    return torch.cat([params[n].detach().to(device="cpu", dtype=dtype).abs().flatten() for n in names])


def flat_mask(mask: Mask, names: list[str]) -> Tensor:
    return torch.cat([mask[n].flatten() for n in names]) if names else torch.zeros(0, dtype=torch.bool)


def unflat_mask(flat: Tensor, mask: Mask, names: list[str]) -> Mask:
    out, start = {}, 0
    for n in names:
        size = mask[n].numel()
        out[n] = flat[start : start + size].view(mask[n].shape)
        start += size
    return Mask(out)


def _prune_smallest(scores: Tensor, keep: Tensor, fraction: float) -> Tensor:
    """New flat keep-vector: drop ``round(fraction * kept)`` kept entries with the smallest score.

    Ties are broken deterministically: a stable sort prunes the lower flat index first.
    Entries scored ``+inf`` (protected, see :func:`protect_floor`) are never dropped, even
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
    return prune_by_global_score(lambda p, m, names: magnitudes(p, names), params, mask, fraction, min_density)


def prune_by_global_score(score: Callable[[Mapping[str, Tensor], Mask, list[str]], Tensor],
                          params: Mapping[str, Tensor], mask: Mask, fraction: float, min_density: float) -> Mask:
    """Drop the ``fraction`` of surviving weights with the smallest ``score(params, mask, names)`` (flat,
    in ``names`` order) over all tensors together; ``min_density`` protects each tensor's top entries
    (:func:`protect_floor`)."""
    check_inputs(params, mask, fraction)
    names = mask.keys()
    if not names:
        return mask.clone()
    scores = score(params, mask, names)
    if min_density > 0:
        scores = protect_floor(scores, mask, names, min_density)
    keep = _prune_smallest(scores, flat_mask(mask, names), fraction)
    return unflat_mask(keep, mask, names)


def lamp_scores(params: Mapping[str, Tensor], mask: Mask, names: list[str]) -> Tensor:
    """LAMP scores (Lee et al., ICLR 2021) of the named tensors, flattened and concatenated.

    Within a tensor, a surviving weight ``u`` scores ``w_u^2 / sum(w_v^2 for surviving v with
    |w_v| >= |w_u|)``: the share of the tensor's remaining energy that ``u`` and the weights it
    would leave behind hold. Only the largest survivor of a tensor scores 1, so a global ranking of the
    scores takes a tensor's last weight only once every tensor is down to its last, and a tensor's
    scores do not change when it is scaled (layers on different initialisation scales compete
    fairly). Pruned entries score 0; among equal magnitudes the lower flat index counts as the
    smaller. Computed in float64.
    """
    parts = []
    for n in names:
        w2 = magnitudes(params, [n]).double().pow(2)
        alive = mask[n].flatten().nonzero().squeeze(1)
        order = alive[torch.sort(w2[alive], stable=True).indices]  # survivors, smallest first
        ascending = w2[order]
        tail = ascending.flip(0).cumsum(0).flip(0)  # energy of this weight and every larger one
        score = torch.zeros_like(w2)
        score[order] = torch.where(tail > 0, ascending / tail, torch.zeros_like(ascending))
        parts.append(score)
    return torch.cat(parts)


def protect_floor(scores: Tensor, mask: Mask, names: list[str], min_density: float) -> Tensor:
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


@register_strategy("lamp")
def lamp(
    params: Mapping[str, Tensor],
    mask: Mask,
    fraction: float,
    generator: torch.Generator | None = None,
    min_density: float = 0.0,
) -> Mask:
    """Layer-adaptive magnitude pruning (LAMP, Lee et al., ICLR 2021): global pruning of the
    ``fraction`` of remaining weights with the smallest :func:`lamp_scores`.

    Within each tensor the order is that of |w| (so a tensor loses its smallest weights first, as
    with magnitude pruning), but the share each tensor loses follows from its own weight
    distribution instead of its raw scale: global magnitude pruning strips small-scale layers (a
    small convolution beside LSTMs) far faster than the rest. ``min_density`` guards as in
    :func:`global_magnitude`.
    """
    return prune_by_global_score(lamp_scores, params, mask, fraction, min_density)


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
    check_inputs(params, mask, fraction)
    out = {}
    for name in mask:
        keep = _prune_smallest(magnitudes(params, [name]), mask[name].flatten(), fraction)
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
    check_inputs(params, mask, fraction)
    names = mask.keys()
    if not names:
        return mask.clone()
    keep = flat_mask(mask, names)
    alive = keep.nonzero().squeeze(1)
    count = round(fraction * alive.numel())
    chosen = torch.randperm(alive.numel(), generator=generator)[:count]
    new = keep.clone()
    new[alive[chosen]] = False
    return unflat_mask(new, mask, names)
