"""A fine-tuned ticket as small tensors on top of base weights: bit-packed masks plus int8 deltas.

A ticket fine-tuned from pretrained weights (``theta_0`` = the base) differs from the base only in
its surviving weights (and, with a wider training scope, in a few more tensors). It is stored as:

* **masks**: per masked tensor ``name``, its keep mask bit-packed (:func:`~audio_lottery.pruning.export.pack_bits`,
  8 positions per byte, least significant bit first, in row-major order of the tensor);
* **deltas**: per tensor that differs from the base, ``<name>.q`` (int8: the rounded delta of every
  surviving entry, row-major) and ``<name>.scale`` (float32, one per output row: the tensor viewed as
  ``[shape[0], -1]``, a 1-D tensor as one row), ``delta = q * scale`` with ``scale = max |delta| / 127``
  over the row's surviving entries, so each entry is off by at most ``scale / 2``; a non-float tensor
  that changed (a counter) is stored whole as ``<name>.exact``.

A tensor outside the mask that equals the base is not stored at all. Decoding gives
``where(mask, base + q * scale, 0)``: pruned entries are exactly zero. The shapes come from the base
(nothing in the files sizes an allocation), and every stored part is checked against them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor

from audio_lottery.pruning.export import pack_bits, unpack_bits
from audio_lottery.pruning.mask import Mask

QMAX = 127
PARTS = (".q", ".scale", ".exact")


def _rows(t: Tensor) -> Tensor:
    """The ``[rows, -1]`` view scales are taken over: dimension 0 is the output row; a vector is one row."""
    return t.reshape(t.shape[0], -1) if t.dim() > 1 else t.reshape(1, -1)


def quantize(delta: Tensor, keep: Tensor) -> tuple[Tensor, Tensor]:
    """``(q, scale)``: int8 ``q`` of ``delta``'s kept entries (row-major) and float32 per-row scales."""
    d, k = _rows(delta.detach().to(torch.float32)), _rows(keep)
    scale = (d.abs() * k).amax(dim=1) / QMAX
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(d / safe[:, None]).clamp(-QMAX, QMAX).to(torch.int8)
    return q[k], scale


def dequantize(q: Tensor, scale: Tensor, keep: Tensor) -> Tensor:
    """The float32 delta (zero where ``keep`` is False) of :func:`quantize`'s output, shaped like ``keep``."""
    k = _rows(keep)
    out = torch.zeros(k.shape, dtype=torch.float32)
    out[k] = q.to(torch.float32) * scale[:, None].expand(k.shape)[k]
    return out.reshape(keep.shape)


def encode_ticket(trained: Mapping[str, Tensor], base: Mapping[str, Tensor], mask: Mask
                  ) -> tuple[dict[str, Tensor], dict[str, Tensor], list[str]]:
    """``(masks, deltas, changed)`` of ``trained`` on ``base``: the bit-packed masks, the delta tensors
    (module docstring) and the names of tensors outside ``mask`` that differ from the base.

    ValueError when the two state dicts do not have the same tensors and shapes, when ``mask`` names
    a tensor neither has, or when a trained tensor is non-zero where its mask prunes it."""
    if set(trained) != set(base):
        raise ValueError(f"the trained model and the base differ in tensors: only trained "
                         f"{sorted(set(trained) - set(base))[:5]}, only base {sorted(set(base) - set(trained))[:5]}")
    unknown = [n for n in mask if n not in base]
    if unknown:
        raise ValueError(f"the mask names tensors the model does not have: {unknown[:5]}")
    masks: dict[str, Tensor] = {}
    deltas: dict[str, Tensor] = {}
    changed: list[str] = []
    for name, b in base.items():
        t = trained[name].detach().cpu()
        if t.shape != b.shape:
            raise ValueError(f"tensor {name!r}: trained shape {tuple(t.shape)} but base shape {tuple(b.shape)}")
        if name in mask:
            keep = mask[name]
            if bool((t[~keep] != 0).any()):
                raise ValueError(f"tensor {name!r}: trained weights are non-zero where the mask prunes them")
            masks[name] = pack_bits(keep)
        elif torch.equal(t, b.cpu()):
            continue
        else:
            keep = torch.ones(t.shape, dtype=torch.bool)
            changed.append(name)
        if not t.is_floating_point():
            deltas[f"{name}.exact"] = t.clone()
            continue
        q, scale = quantize(t.to(torch.float32) - b.cpu().to(torch.float32), keep)
        deltas[f"{name}.q"], deltas[f"{name}.scale"] = q, scale
    return masks, deltas, changed


def _stored_name(key: str) -> str:
    for part in PARTS:
        if key.endswith(part):
            return key[: -len(part)]
    return key


def decode_ticket(masks: Mapping[str, Tensor], deltas: Mapping[str, Tensor], base: Mapping[str, Tensor],
                  where: tuple[Path, Path]) -> tuple[dict[str, Tensor], Mask]:
    """The trained state dict and the :class:`Mask` from :func:`encode_ticket`'s tensors and ``base``;
    ``where`` = (mask file, delta file), named by the ValueError a tensor that does not fit raises."""
    mask_file, delta_file = where
    unknown = sorted({n for n in masks if n not in base} | {_stored_name(k) for k in deltas} - set(base))
    if unknown:
        raise ValueError(f"{mask_file.parent}: tensors {unknown[:5]} are not in the base model")
    keeps: dict[str, Tensor] = {}
    for name, packed in masks.items():
        numel = base[name].numel()
        if packed.dtype != torch.uint8 or packed.dim() != 1 or packed.numel() != -(-numel // 8):
            raise ValueError(f"{mask_file}: tensor {name!r} is not {-(-numel // 8)} packed bytes "
                             f"for {numel} positions")
        keeps[name] = unpack_bits(packed, numel).view(base[name].shape)
    state = {}
    for name, b in base.items():
        keep = keeps.get(name, torch.ones(b.shape, dtype=torch.bool))
        state[name] = _decode_one(name, b, keep, deltas, delta_file)
    return state, Mask(keeps)


def _decode_one(name: str, base: Tensor, keep: Tensor, deltas: Mapping[str, Tensor], path: Path) -> Tensor:
    if f"{name}.exact" in deltas:
        exact = deltas[f"{name}.exact"]
        if exact.shape != base.shape or exact.dtype != base.dtype:
            raise ValueError(f"{path}: {name}.exact is {exact.dtype} {tuple(exact.shape)}, the base "
                             f"{base.dtype} {tuple(base.shape)}")
        return exact.clone()
    value = base.detach().cpu().to(torch.float32) if base.is_floating_point() else base.detach().cpu()
    if f"{name}.q" in deltas or f"{name}.scale" in deltas:
        q, scale = deltas.get(f"{name}.q"), deltas.get(f"{name}.scale")
        rows, kept = _rows(keep).shape[0], int(keep.sum())
        if q is None or scale is None:
            raise ValueError(f"{path}: tensor {name!r} has only one of its .q and .scale parts")
        if q.dtype != torch.int8 or q.shape != (kept,):
            raise ValueError(f"{path}: {name}.q must be int8 [{kept}] (the kept entries), got {q.dtype} "
                             f"{list(q.shape)}")
        if scale.dtype != torch.float32 or scale.shape != (rows,) or not bool(torch.isfinite(scale).all()):
            raise ValueError(f"{path}: {name}.scale must be {rows} finite float32 row scales")
        if not base.is_floating_point():
            raise ValueError(f"{path}: tensor {name!r} is {base.dtype}; it cannot take a quantised delta")
        value = value + dequantize(q, scale, keep)
    return (value * keep).to(base.dtype)


def error_bound(deltas: Mapping[str, Tensor], name: str, shape: torch.Size) -> Tensor:
    """Largest quantisation error of each entry of tensor ``name`` (``scale / 2`` of its row; 0 when not
    stored as a quantised delta), shaped ``shape``."""
    scale = deltas.get(f"{name}.scale")
    if scale is None:
        return torch.zeros(shape)
    rows = _rows(torch.empty(shape, device="meta"))
    return (scale[:, None] / 2).expand(rows.shape).reshape(shape)


def check_decoded(trained: Mapping[str, Tensor], decoded: Mapping[str, Tensor], deltas: Mapping[str, Tensor],
                  mask: Mask) -> float:
    """The largest absolute difference between ``decoded`` and ``trained``; ValueError naming the tensor
    where an entry is off by more than its quantisation bound (plus float32 rounding) or a pruned
    entry is not exactly zero."""
    worst = 0.0
    for name, t in trained.items():
        t = t.detach().cpu()
        d = decoded[name].detach().cpu()
        if d.shape != t.shape:
            raise ValueError(f"tensor {name!r}: decoded shape {tuple(d.shape)}, trained {tuple(t.shape)}")
        if name in mask and bool((d[~mask[name]] != 0).any()):
            raise ValueError(f"tensor {name!r}: a pruned entry is not exactly zero after decoding")
        if not t.is_floating_point():
            if not torch.equal(d, t):
                raise ValueError(f"tensor {name!r}: decoded values differ")
            continue
        diff = (d.to(torch.float32) - t.to(torch.float32)).abs()
        slack = error_bound(deltas, name, t.shape) + 1e-6 * (1 + t.abs().to(torch.float32))
        if bool((diff > slack).any()):
            raise ValueError(f"tensor {name!r}: decoded entries differ by up to {float(diff.max()):.3g}, "
                             "beyond the quantisation bound")
        worst = max(worst, float(diff.max()) if diff.numel() else 0.0)
    return worst
