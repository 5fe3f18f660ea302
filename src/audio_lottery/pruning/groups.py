"""What pruning does with a model's declared structure (:mod:`audio_lottery.models.structure`):
channel masks, unit scores and dead units, generic over :class:`StructureGroup`."""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from audio_lottery.models.structure import Slice, StructureGroup

__all__ = ["StructureGroup", "dead_units", "structure_mask", "unit_scores", "usable_groups"]


def usable_groups(groups: list[StructureGroup], names: Mapping[str, object] | list[str]) -> list[StructureGroup]:
    """The groups whose every weight tensor is in ``names`` (a mask): only those can be pruned whole."""
    return [g for g in groups if all(s.name in names for s in g.weights)]


def structure_mask(groups: list[StructureGroup], keep: Mapping[str, Tensor],
                   shapes: Mapping[str, torch.Size]) -> dict[str, Tensor]:
    """Bool tensors (for the weights named in ``groups``) that drop every entry of a unit with ``keep`` False.

    ``keep`` maps group name -> bool ``[size]``. An entry survives when every unit owning it survives.
    """
    axes: dict[tuple[str, int], Tensor] = {}
    for g in groups:
        dead = ~keep[g.name]
        for s in g.weights:
            vec = axes.setdefault((s.name, s.axis), torch.ones(shapes[s.name][s.axis], dtype=torch.bool))
            vec[s.index[dead].flatten()] = False
    out: dict[str, Tensor] = {}
    for (name, axis), vec in axes.items():
        shape = [1] * len(shapes[name])
        shape[axis] = -1
        m = vec.view(shape).expand(shapes[name])
        out[name] = m if name not in out else out[name] & m
    return {n: m.clone() for n, m in out.items()}


def _gather(t: Tensor, s: Slice) -> Tensor:
    """``t``'s entries of every unit: ``[units, -1]``."""
    picked = t.index_select(s.axis, s.index.flatten()).movedim(s.axis, 0)
    return picked.reshape(s.index.shape[0], -1)


def unit_scores(groups: list[StructureGroup], params: Mapping[str, Tensor], mask: Mapping[str, Tensor]
                ) -> dict[str, tuple[Tensor, Tensor]]:
    """Per group: ``(score, alive)``. ``score[u]`` is the root mean square of unit ``u``'s surviving
    weights over all its entries (magnitude per weight it costs); ``alive[u]`` is True when any of them survives.
    """
    out = {}
    for g in groups:
        sq = torch.zeros(g.size, dtype=torch.float64)
        count = torch.zeros(g.size, dtype=torch.float64)
        alive = torch.zeros(g.size, dtype=torch.bool)
        for s in g.weights:
            w = params[s.name].detach().to(device="cpu", dtype=torch.float64)
            m = mask[s.name]
            kept = _gather(m, s)
            sq += (_gather(w, s) * kept).square().sum(1)
            count += kept.shape[1]
            alive |= kept.any(1)
        out[g.name] = ((sq / count.clamp(min=1)).sqrt(), alive)
    return out


def dead_units(groups: list[StructureGroup], mask: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Per group: bool ``[size]``, True for units whose every weight entry is pruned in ``mask``."""
    out = {}
    for g in groups:
        alive = torch.zeros(g.size, dtype=torch.bool)
        for s in g.weights:
            alive |= _gather(mask[s.name], s).any(1)
        out[g.name] = ~alive
    return out
