"""Checks of an export folder's ``config.json`` before anything is allocated from it.

An export folder may come from someone else (a shared run or download), so its ``config.json``
is untrusted: the shapes and encoding parameters it lists decide how much memory decoding
allocates. :func:`model_shapes` builds the model the config describes on the ``meta`` device
(no memory), bounds its size, and :func:`check_tensor_infos` checks every listed tensor against
it, so that decoding allocates exactly the model's own tensors and nothing else.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from audio_lottery.config import Config
from audio_lottery.data.pipeline.features import build_featurizer
from audio_lottery.models.registry import build_model

MAX_ELEMENTS = 1 << 31  # tensor elements a loaded model may have in all (8 GiB of float32)
MAX_RICE_K = 16  # rice_encode chooses k in 0..16
ENCODINGS = ("dense", "bitmask", "rice", "csr")


def model_shapes(cfg: Config, vocab_size: int, where: Path, limit: int = MAX_ELEMENTS) -> dict[str, list[int]]:
    """``{state-dict name: shape}`` of the model ``cfg`` describes, built without allocating; a model
    larger than ``limit`` elements in all raises ValueError naming ``where``."""
    dim = build_featurizer(cfg.data.features).dim
    with torch.device("meta"):
        model = build_model(cfg.model, vocab_size, dim)
    shapes = {name: list(t.shape) for name, t in model.state_dict().items()}
    total = sum(math.prod(s) for s in shapes.values())
    if total > limit:
        raise ValueError(f"{where}: the model this config describes has {total:,} tensor elements, "
                         f"more than the {limit:,} a loaded model may have")
    return shapes


def _ints(value, n: int | None = None) -> bool:
    return (isinstance(value, list) and (n is None or len(value) == n)
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value))


def matrix_shape(shape: list[int]) -> list[int]:
    """The 2-D view a ``csr`` tensor is stored as (:func:`~audio_lottery.pruning.structured.as_matrix`)."""
    return [shape[0], math.prod(shape[1:])] if len(shape) > 1 else [1, math.prod(shape)]


def check_tensor_infos(infos, expected: dict[str, list[int]], where: Path) -> None:
    """Raise ValueError naming ``where`` and the tensor when ``infos`` (config.json's ``tensors``) lists
    a tensor the model lacks, misses one, or gives a shape or encoding parameter that does not fit."""
    if not isinstance(infos, dict):
        raise ValueError(f"{where}: 'tensors' must be a mapping of tensor name -> description")
    missing = sorted(set(expected) - set(infos))
    unexpected = sorted(set(infos) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{where}: the tensors listed do not fit the model built from the config "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    for name, info in infos.items():
        problem = _info_problem(info, expected[name])
        if problem:
            raise ValueError(f"{where}: tensor {name!r}: {problem}")


def _info_problem(info, shape: list[int]) -> str:
    if not isinstance(info, dict):
        return "the description is not a mapping"
    if info.get("shape") != shape or not _ints(info.get("shape")):
        return f"shape {info.get('shape')!r} does not fit the model built from the config ({shape})"
    enc = info.get("encoding")
    if enc not in ENCODINGS:
        return f"unknown encoding {enc!r} (known: {', '.join(ENCODINGS)})"
    if enc == "csr" and info.get("matrix") != matrix_shape(shape):
        return f"CSR matrix {info.get('matrix')!r} does not fit the shape {shape} ({matrix_shape(shape)})"
    if enc == "rice":
        k, count = info.get("k"), info.get("count")
        if not _ints([k]) or k > MAX_RICE_K:
            return f"rice parameter k={k!r} must be an integer in 0..{MAX_RICE_K}"
        if not _ints([count]) or count > math.prod(shape):
            return f"count={count!r} must be an integer in 0..{math.prod(shape)} (the tensor's size)"
    return ""
