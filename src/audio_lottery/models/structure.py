"""Channel structure of a model: which weight entries belong to one hidden unit, channel or head.

A :class:`StructureGroup` is one layer's set of interchangeable *units* (LSTM hidden units,
convolution output channels, feed-forward neurons, attention heads). Each unit owns slices of
several tensors: the rows that produce it and the columns that consume it. Removing a unit
(all its weight slices zero) never changes the model's outputs, because every path from the
unit to the output goes through a consumer column that is zero; so a model whose pruned units
are removed (:mod:`audio_lottery.pruning.shrink`) computes exactly what the masked model does.

Backbones describe their groups in ``ASRModel.structure_groups()`` with the helpers below (index
helpers, ``ffn_group`` and ``head_group`` for the feed-forward and attention blocks every transformer shares);
what pruning does with them (channel masks, unit scores, shrinking) lives in
:mod:`audio_lottery.pruning.groups` and is generic over groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn


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


def ffn_group(prefix: str, fc1: nn.Linear, names: tuple[str, str] = ("fc1", "fc2")) -> StructureGroup:
    """Hidden neurons of a ``fc1 -> activation -> fc2`` feed-forward block at ``prefix`` (``names``: the
    two Linears' names under ``prefix``)."""
    own = strided_index(fc1.out_features)
    weights = [Slice(f"{prefix}.{names[0]}.weight", 0, own), Slice(f"{prefix}.{names[1]}.weight", 1, own)]
    return StructureGroup(prefix, "ffn_neuron", fc1.out_features, weights,
                          [Slice(f"{prefix}.{names[0]}.bias", 0, own)])


def head_group(prefix: str, heads: int, head_dim: int, rows: dict[str, list[int]], out: str, *,
               unbiased: tuple[str, ...] = (), shrinkable: bool = False) -> StructureGroup:
    """Attention heads at ``prefix``: head ``h`` owns rows ``offset + h*head_dim ..`` of each projection
    in ``rows`` (name -> row offsets, e.g. q/k/v thirds of a fused projection) and of its bias (except the
    projections named in ``unbiased``), and those columns of ``out``. ``shrinkable``: the backbone can be
    rebuilt with fewer heads."""
    weights, state = [], []
    for name, offsets in rows.items():
        index = torch.cat([block_index(heads, head_dim, off) for off in offsets], dim=1)
        weights.append(Slice(f"{prefix}.{name}.weight", 0, index))
        if name not in unbiased:
            state.append(Slice(f"{prefix}.{name}.bias", 0, index))
    weights.append(Slice(f"{prefix}.{out}.weight", 1, block_index(heads, head_dim)))
    return StructureGroup(prefix, "attention_head", heads, weights, state, shrinkable=shrinkable)


# --------------------------------------------------------------------------- groups and masks
