"""Channel structure of a model: which weight entries belong to one hidden unit, channel or head.

A :class:`StructureGroup` is one layer's set of interchangeable *units* (LSTM hidden units,
convolution output channels, feed-forward neurons, attention heads). Each unit owns slices of
several tensors: the rows that produce it and the columns that consume it. Removing a unit
(all its weight slices zero) never changes the model's outputs, because every path from the
unit to the output goes through a consumer column that is zero; so a model whose pruned units
are removed (:mod:`audio_lottery.pruning.shrink`) computes exactly what the masked model does.

Backbones describe their groups in ``ASRModel.structure_groups()`` with the helpers below;
everything else (channel masks, unit scores, shrinking) is generic over groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch
from torch import Tensor


@dataclass(frozen=True)
class Slice:
    """Entries of state tensor ``name`` owned by each unit: ``index[u]`` are positions along ``axis``."""

    name: str
    axis: int
    index: Tensor  # long [units, k]


@dataclass
class StructureGroup:
    """One layer's units. ``weights`` are prunable tensors (mask entries); ``state`` are the other
    state-dict tensors sliced with the unit when the model is shrunk (biases, norms, statistics).

    ``shrinkable`` is False where the backbone cannot be rebuilt with fewer units (then pruned units
    stay as zero weights in a shrunk model).
    """

    name: str
    kind: str
    size: int
    weights: list[Slice]
    state: list[Slice] = field(default_factory=list)
    shrinkable: bool = True

    def __post_init__(self) -> None:
        for s in self.weights + self.state:
            if s.index.dim() != 2 or s.index.shape[0] != self.size:
                raise ValueError(f"group {self.name}: slice of {s.name} has index shape {tuple(s.index.shape)}, "
                                 f"expected [{self.size}, k]")


# --------------------------------------------------------------------------- index helpers


def strided_index(units: int, k: int = 1, stride: int | None = None, offset: int = 0) -> Tensor:
    """``index[u] = offset + u + j * stride`` for ``j < k`` (e.g. the 4 gate rows of an LSTM unit)."""
    stride = units if stride is None else stride
    return offset + torch.arange(units)[:, None] + stride * torch.arange(k)[None, :]


def block_index(units: int, width: int, offset: int = 0) -> Tensor:
    """``index[u] = offset + u * width + arange(width)`` (a head's rows, a channel's flattened columns)."""
    return offset + width * torch.arange(units)[:, None] + torch.arange(width)[None, :]


def lstm_unit_slices(prefix: str, hidden: int, suffix: str = "_l0") -> tuple[list[Slice], list[Slice]]:
    """Weight and state slices of the hidden units of the ``nn.LSTM`` at ``prefix`` (one layer).

    Unit ``j`` owns gate rows ``j, H+j, 2H+j, 3H+j`` of ``weight_ih``/``weight_hh`` and the biases,
    and column ``j`` of ``weight_hh`` (its recurrent input to every unit).
    """
    gates = strided_index(hidden, 4)
    own = strided_index(hidden)
    weights = [Slice(f"{prefix}.weight_ih{suffix}", 0, gates), Slice(f"{prefix}.weight_hh{suffix}", 0, gates),
               Slice(f"{prefix}.weight_hh{suffix}", 1, own)]
    state = [Slice(f"{prefix}.bias_ih{suffix}", 0, gates), Slice(f"{prefix}.bias_hh{suffix}", 0, gates)]
    return weights, state


def norm_slices(prefix: str, index: Tensor, running: bool = True) -> list[Slice]:
    """Slices of a norm layer's affine parameters (and batch-norm running statistics) at ``prefix``."""
    names = ["weight", "bias"] + (["running_mean", "running_var"] if running else [])
    return [Slice(f"{prefix}.{n}", 0, index) for n in names]


# --------------------------------------------------------------------------- groups and masks


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
