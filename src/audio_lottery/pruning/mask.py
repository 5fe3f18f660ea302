"""The pruning mask: one boolean tensor per prunable weight, keyed by parameter name.

A :class:`Mask` is a plain artifact (no ``torch.nn.utils.prune`` re-parametrisation):
``True`` keeps a weight, ``False`` prunes it. The training loop keeps pruned weights
exactly zero with a :class:`MaskEnforcer` (mask the gradients after ``backward()``,
zero the weights after every ``optimizer.step()``).
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import torch
from torch import Tensor, nn

from audio_lottery.files import atomic_write_json, load_tensors_and_metadata, save_tensors

_FORMAT = "audio-lottery-mask"


def select_prunable(
    model: nn.Module, include: Iterable[str] = (), exclude: Iterable[str] = ()
) -> dict[str, nn.Parameter]:
    """The parameters to prune: ``model.prunable()`` plus ``include`` globs minus ``exclude`` globs.

    Patterns are :mod:`fnmatch` globs over ``named_parameters()`` names. An include
    pattern may add any parameter (e.g. biases); one that matches nothing raises
    ``ValueError`` naming it. The result follows ``named_parameters()`` order.
    """
    named = dict(model.named_parameters())
    chosen = set(model.prunable())
    unknown = chosen - set(named)
    if unknown:
        raise ValueError(f"prunable() names parameters the model does not have: {sorted(unknown)}")
    for pattern in include:
        hits = fnmatch.filter(named, pattern)
        if not hits:
            raise ValueError(f"include pattern {pattern!r} matches no parameter of the model")
        chosen.update(hits)
    for pattern in exclude:
        chosen.difference_update(fnmatch.filter(chosen, pattern))
    return {name: p for name, p in named.items() if name in chosen}


def _saved_names(meta: Mapping[str, str]) -> list[str]:
    """Tensor names in the order they were saved (safetensors itself sorts them)."""
    try:
        names = json.loads(meta.get("names", "[]"))
    except ValueError:
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def _check_shape(name: str, mask: Tensor, param: Tensor) -> None:
    if tuple(mask.shape) != tuple(param.shape):
        raise ValueError(f"mask {name!r} has shape {tuple(mask.shape)} but the weight has {tuple(param.shape)}")


def _lookup(named: Mapping[str, Tensor], name: str, mask: Tensor) -> Tensor:
    if name not in named:
        raise KeyError(f"mask tensor {name!r} is not a parameter of the model")
    _check_shape(name, mask, named[name])
    return named[name]


class Mask:
    """``dict[str, BoolTensor]`` keyed by parameter name; ``True`` = weight kept."""

    def __init__(self, tensors: Mapping[str, Tensor]) -> None:
        self._t: dict[str, Tensor] = {
            name: t.detach().to(device="cpu", dtype=torch.bool).clone() for name, t in tensors.items()
        }

    # ------------------------------------------------------------------ construction
    @classmethod
    def ones_like(cls, params: Mapping[str, Tensor]) -> "Mask":
        """A dense mask (nothing pruned) with one tensor per entry of ``params``."""
        return cls({name: torch.ones(p.shape, dtype=torch.bool) for name, p in params.items()})

    @classmethod
    def from_patterns(
        cls, model: nn.Module, include: Iterable[str] = (), exclude: Iterable[str] = ()
    ) -> "Mask":
        """A dense mask over :func:`select_prunable` ``(model, include, exclude)``."""
        return cls.ones_like(select_prunable(model, include, exclude))

    @classmethod
    def from_nonzero(cls, params: Mapping[str, Tensor]) -> "Mask":
        """A mask keeping exactly the non-zero entries of ``params``."""
        return cls({name: p.detach() != 0 for name, p in params.items()})

    # ------------------------------------------------------------------ mapping protocol
    def __getitem__(self, name: str) -> Tensor:
        return self._t[name]

    def __contains__(self, name: object) -> bool:
        return name in self._t

    def __iter__(self) -> Iterator[str]:
        return iter(self._t)

    def __len__(self) -> int:
        return len(self._t)

    def keys(self) -> list[str]:
        return list(self._t)

    def items(self) -> list[tuple[str, Tensor]]:
        return list(self._t.items())

    def tensors(self) -> dict[str, Tensor]:
        """A shallow copy of the name -> bool tensor dict."""
        return dict(self._t)

    def clone(self) -> "Mask":
        return Mask(self._t)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mask) or set(self.keys()) != set(other.keys()):
            return False
        return all(torch.equal(a, other[n]) for n, a in self._t.items())

    def __repr__(self) -> str:
        return f"Mask({len(self)} tensors, density={self.density():.4f})"

    # ------------------------------------------------------------------ statistics
    def numel(self) -> int:
        """Total number of maskable weights."""
        return sum(t.numel() for t in self._t.values())

    def remaining(self) -> int:
        """Number of kept (unpruned) weights."""
        return sum(int(t.sum()) for t in self._t.values())

    def density(self) -> float:
        """Fraction of weights kept (1.0 for an empty mask)."""
        n = self.numel()
        return self.remaining() / n if n else 1.0

    def report(self) -> dict:
        """Sparsity report: per tensor ``{shape, numel, remaining, density}`` and a global total."""
        tensors = {}
        for name, t in self._t.items():
            kept = int(t.sum())
            tensors[name] = {
                "shape": list(t.shape),
                "numel": t.numel(),
                "remaining": kept,
                "density": kept / t.numel() if t.numel() else 1.0,
            }
        glob = {"numel": self.numel(), "remaining": self.remaining(), "density": self.density()}
        return {"tensors": tensors, "global": glob}

    # ------------------------------------------------------------------ persistence
    @staticmethod
    def report_path(path: str | Path) -> Path:
        """Where :meth:`save` puts the JSON report: ``<stem>.json`` beside ``path``."""
        return Path(path).with_suffix(".json")

    def save(self, path: str | Path) -> None:
        """Write the JSON sparsity report, then ``path`` (safetensors, bools as uint8), each atomically.

        The mask file is written last, so its presence means both are complete.
        """
        path = Path(path)
        meta = {"format": _FORMAT, "names": json.dumps(self.keys())}
        atomic_write_json(self.report_path(path), self.report())
        save_tensors(path, {n: t.to(torch.uint8) for n, t in self._t.items()}, metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> "Mask":
        """Read a mask written by :meth:`save` (tensor order kept); values other than 0/1 are refused."""
        tensors, meta = load_tensors_and_metadata(Path(path))
        for name, t in tensors.items():
            if t.dtype not in (torch.uint8, torch.bool) or bool(((t != 0) & (t != 1)).any()):
                raise ValueError(f"{path}: tensor {name!r} is not a 0/1 mask")
        order = [n for n in _saved_names(meta) if n in tensors]
        order += [n for n in tensors if n not in order]
        return cls({n: tensors[n] for n in order})

    # ------------------------------------------------------------------ model interaction
    @torch.no_grad()
    def apply_(self, model: nn.Module) -> None:
        """Zero the pruned weights of ``model`` in place."""
        named = dict(model.named_parameters())
        for name, m in self._t.items():
            p = _lookup(named, name, m)
            p.masked_fill_(~m.to(p.device), 0)


class MaskEnforcer:
    """Keeps a model's pruned weights at exactly zero during training.

    Call :meth:`mask_grads` after ``loss.backward()`` (and before gradient clipping) and
    :meth:`apply` after every ``optimizer.step()``. Masks are precomputed on the
    parameters' device and dtype and applied with one fused ``torch._foreach_mul_``;
    tensors with nothing pruned are skipped. Build it after moving the model to its device.
    """

    def __init__(self, model: nn.Module, mask: Mask) -> None:
        named = dict(model.named_parameters())
        self._params: list[Tensor] = []
        self._masks: list[Tensor] = []
        for name, m in mask.items():
            p = _lookup(named, name, m)
            if bool(m.all()):
                continue
            self._params.append(p)
            self._masks.append(m.to(device=p.device, dtype=p.dtype))

    def __len__(self) -> int:
        """Number of tensors with at least one pruned weight."""
        return len(self._params)

    @torch.no_grad()
    def mask_grads(self) -> None:
        """Multiply each gradient by its mask (parameters without a gradient are skipped)."""
        pairs = [(p.grad, m) for p, m in zip(self._params, self._masks) if p.grad is not None]
        if pairs:
            grads, masks = zip(*pairs)
            torch._foreach_mul_(list(grads), list(masks))

    @torch.no_grad()
    def apply(self) -> None:
        """Zero the pruned weights in place."""
        if self._params:
            torch._foreach_mul_(self._params, self._masks)
