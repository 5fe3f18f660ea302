"""Physical shrinking: a masked model whose pruned units are removed becomes a smaller dense model.

A unit of a shrinkable :class:`~audio_lottery.pruning.groups.StructureGroup` is removed when
every weight entry it owns is pruned; its weight rows and columns and its state (biases, norm
parameters, running statistics) are cut out of the state dict, the backbone's config section is
resized with :meth:`~audio_lottery.models.base.ASRModel.shrunk_config`, and the smaller model is
rebuilt from it. Outputs are unchanged (see :mod:`audio_lottery.pruning.groups`). Weights still
pruned inside surviving units stay zero and are described by the returned residual mask.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor

from audio_lottery.config import Config
from audio_lottery.models.base import ASRModel
from audio_lottery.models.registry import build_model
from audio_lottery.pruning.groups import StructureGroup, dead_units, usable_groups
from audio_lottery.pruning.mask import Mask


@dataclass
class Shrunk:
    """Result of :func:`shrink_model`."""

    model: ASRModel
    cfg: Config  # the full config with the backbone section resized
    mask: Mask  # residual mask over the shrunk model's prunable tensors
    sizes: dict[str, tuple[int, int]]  # group name -> (units before, units after)


def removable_units(model: ASRModel, mask: Mask) -> tuple[list[StructureGroup], dict[str, Tensor]]:
    """Shrinkable groups whose weights are all masked, and per group the bool vector of units to remove
    (every owned weight pruned; at least one unit of a group is always kept)."""
    groups = [g for g in usable_groups(model.structure_groups(), mask) if g.shrinkable]
    dead = dead_units(groups, mask.tensors())
    for g in groups:
        if bool(dead[g.name].all()):
            dead[g.name][0] = False
    return groups, dead


def _kept_positions(groups: list[StructureGroup], dead: dict[str, Tensor],
                    shapes: dict[str, torch.Size]) -> dict[tuple[str, int], Tensor]:
    """(tensor name, axis) -> sorted positions that survive along that axis."""
    drop: dict[tuple[str, int], Tensor] = {}
    for g in groups:
        for s in g.weights + g.state:
            key = (s.name, s.axis)
            vec = drop.setdefault(key, torch.zeros(shapes[s.name][s.axis], dtype=torch.bool))
            vec[s.index[dead[g.name]].flatten()] = True
    return {key: (~vec).nonzero().squeeze(1) for key, vec in drop.items()}


def slice_tensors(tensors: dict[str, Tensor], kept: dict[tuple[str, int], Tensor]) -> dict[str, Tensor]:
    """Every tensor with the surviving positions of each of its cut axes (others unchanged)."""
    out = dict(tensors)
    for (name, axis), index in kept.items():
        if name in out:
            out[name] = out[name].index_select(axis, index.to(out[name].device))
    return out


def shrink_model(model: ASRModel, mask: Mask, cfg: Config) -> Shrunk:
    """The smaller dense model equivalent to ``model`` under ``mask`` (``cfg``: the model's full config).
    ``model`` itself is not modified.

    Raises ``NotImplementedError`` naming the backbone if it has shrinkable groups but cannot be
    rebuilt. A model without removable units comes back as an equal copy.
    """
    groups, dead = removable_units(model, mask)
    state = {k: (v.detach() * mask[k].to(v.device) if k in mask else v.detach()).clone()
             for k, v in model.state_dict().items()}
    shapes = {k: v.shape for k, v in state.items()}
    kept = _kept_positions(groups, dead, shapes)
    new_state = slice_tensors(state, kept)
    sizes = {g.name: (g.size, g.size - int(dead[g.name].sum())) for g in groups}
    new_cfg = copy.deepcopy(cfg)
    if any(before != after for before, after in sizes.values()):
        section = model.shrunk_config({name: after for name, (_, after) in sizes.items()})
        setattr(new_cfg.model, new_cfg.model.name, section)
    vocab, feat_dim = model.vocab_size, model.feat_dim
    small = build_model(new_cfg.model, vocab, feat_dim)
    small.load_state_dict(new_state, strict=True)
    small.train(model.training)
    residual = Mask(slice_tensors(mask.tensors(), kept))
    return Shrunk(small, new_cfg, residual, sizes)
