"""Export a ticket as a self-contained model folder: ``model.safetensors`` + ``config.json`` + ``tokenizer/``.

Formats:

* ``dense``: every weight stored dense (pruned ones as zeros); runs as the masked model.
* ``compact``: only what survives. The model is first shrunk (channel-pruned units removed,
  :mod:`audio_lottery.pruning.shrink`); each still-masked tensor is then stored in the smallest
  of three encodings: ``dense``; ``bitmask`` (one bit per position + the kept values); ``rice``
  (the kept values + their positions as Golomb-Rice coded gaps, ~5 bits per kept weight at
  10 % density). Values stay float32, so the loaded model is exact. Loads as a dense (shrunk) model.
* ``csr``: shrunk like ``compact``; every still-masked tensor stored as CSR of its 2-D view
  (``crow`` int32, ``col`` int16/int32, values). Loads with the CSR execution path
  (:func:`audio_lottery.pruning.csr.to_csr`).

``config.json`` holds the full (resized) config, the format, the encoding of every tensor and
the source ticket; :func:`read_export` reads it back without executing anything from the files
(``Recognizer.load`` rebuilds the recogniser from it, hence ``eval`` and ``transcribe``).
"""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path

import torch
from torch import Tensor

from audio_lottery.config import config_from_dict, to_dict
from audio_lottery.data.pipeline.tokenizers import load_tokenizer
from audio_lottery.fallbacks import UnshrunkExportWarning
from audio_lottery.files import atomic_write_json, load_tensors, read_json, save_tensors
from audio_lottery.layout import EXPORT_CONFIG, EXPORT_WEIGHTS, ExportLayout
from audio_lottery.pruning.bundle_check import check_tensor_infos, model_shapes
from audio_lottery.pruning.csr import csr_tensor
from audio_lottery.pruning.mask import Mask
from audio_lottery.pruning.structured import as_matrix

FORMATS = ("dense", "compact", "csr")
WEIGHTS = EXPORT_WEIGHTS
MARKER = "audio-lottery-export"

# --------------------------------------------------------------------------- encodings


def pack_bits(keep: Tensor) -> Tensor:
    """Bool tensor -> uint8 bytes, 8 positions per byte (least significant bit first)."""
    flat = keep.flatten().to(torch.uint8)
    flat = torch.nn.functional.pad(flat, (0, (-flat.numel()) % 8))
    weights = (2 ** torch.arange(8, dtype=torch.int32))
    return (flat.view(-1, 8).to(torch.int32) * weights).sum(1).to(torch.uint8)


def unpack_bits(packed: Tensor, numel: int) -> Tensor:
    """Inverse of :func:`pack_bits` for ``numel`` positions."""
    bits = (packed.to(torch.int32)[:, None] >> torch.arange(8, dtype=torch.int32)) & 1
    return bits.flatten()[:numel].bool()


def rice_encode(keep: Tensor) -> tuple[Tensor, Tensor, int]:
    """Positions of ``keep`` as Golomb-Rice coded gaps: ``(unary bytes, remainder bytes, k)``.

    Gap ``g = position - previous position - 1`` (the first from -1) splits into ``q = g >> k`` (unary:
    ``q`` one-bits then a zero, all gaps in one bit stream) and ``g mod 2**k`` (``k`` bits each, a second
    stream); ``k`` minimises the total. About 5 bits per kept weight at 10 % density (entropy: 4.6).
    """
    pos = keep.flatten().nonzero().squeeze(1)
    gaps = torch.diff(pos, prepend=torch.tensor([-1])) - 1
    k = min(range(17), key=lambda j: int((gaps >> j).sum()) + gaps.numel() * (j + 1))
    q = gaps >> k
    ends = torch.cumsum(q + 1, 0) - 1
    unary = torch.ones(int(ends[-1]) + 1 if ends.numel() else 0, dtype=torch.bool)
    unary[ends] = False
    rem = ((gaps[:, None] >> torch.arange(k)) & 1).bool().flatten() if k else torch.zeros(0, dtype=torch.bool)
    return pack_bits(unary), pack_bits(rem), k


def rice_decode(unary: Tensor, rem: Tensor, k: int, count: int, numel: int) -> Tensor:
    """Flat positions (``[count]``) from :func:`rice_encode`'s streams; ``ValueError`` if they do not fit."""
    zeros = (~unpack_bits(unary, unary.numel() * 8)).nonzero().squeeze(1)[:count]
    if zeros.numel() != count or rem.numel() * 8 < count * k:
        raise ValueError("the coded positions are truncated")
    q = torch.diff(zeros, prepend=torch.tensor([-1])) - 1
    bits = unpack_bits(rem, count * k).view(count, k).to(torch.int64)
    low = (bits << torch.arange(k)).sum(1) if k else torch.zeros(count, dtype=torch.int64)
    pos = torch.cumsum((q << k) + low + 1, 0) - 1
    if count and int(pos[-1]) >= numel:
        raise ValueError(f"a coded position lies beyond the tensor's {numel} entries")
    return pos


def encoded_sizes(keep: Tensor, itemsize: int) -> dict[str, int]:
    """Bytes of each compact encoding of a tensor with mask ``keep``."""
    n, kept = keep.numel(), int(keep.sum())
    unary, rem, _ = rice_encode(keep)
    return {"dense": n * itemsize, "bitmask": -(-n // 8) + kept * itemsize,
            "rice": unary.numel() + rem.numel() + kept * itemsize}


def encode(name: str, t: Tensor, keep: Tensor | None, fmt: str) -> tuple[dict[str, Tensor], dict]:
    """Stored tensors and the JSON description of tensor ``name`` under export format ``fmt``."""
    info: dict = {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")}
    if keep is None or fmt == "dense" or bool(keep.all()):
        return {name: t}, {**info, "encoding": "dense"}
    t = t * keep
    if fmt == "csr":
        csr = csr_tensor(as_matrix(t))
        cols = as_matrix(t).shape[1]
        col_dtype = torch.int16 if cols <= torch.iinfo(torch.int16).max else torch.int32
        stored = {f"{name}.crow": csr.crow_indices().to(torch.int32), f"{name}.col": csr.col_indices().to(col_dtype),
                  f"{name}.values": csr.values()}
        return stored, {**info, "encoding": "csr", "matrix": list(as_matrix(t).shape)}
    sizes = encoded_sizes(keep, t.element_size())
    best = min(sizes, key=sizes.get)
    if best == "bitmask":
        return {f"{name}.bits": pack_bits(keep), f"{name}.values": t[keep]}, {**info, "encoding": "bitmask"}
    if best == "rice":
        unary, rem, k = rice_encode(keep)
        stored = {f"{name}.unary": unary, f"{name}.rem": rem, f"{name}.values": t[keep]}
        return stored, {**info, "encoding": "rice", "k": k, "count": int(keep.sum())}
    return {name: t}, {**info, "encoding": "dense"}


def decode(name: str, info: dict, stored: dict[str, Tensor], path: Path) -> Tensor:
    """The dense tensor ``name`` from the stored tensors (a missing part names ``path``)."""
    enc, shape = info.get("encoding"), list(info["shape"])

    def part(suffix: str) -> Tensor:
        key = f"{name}{suffix}"
        if key not in stored:
            raise ValueError(f"{path}: tensor {key!r} of encoding {enc!r} is missing")
        return stored[key]

    if enc == "dense":
        return part("").view(shape)
    if enc == "bitmask":
        values = part(".values")
        out = torch.zeros(math.prod(shape), dtype=values.dtype)
        keep = unpack_bits(part(".bits"), out.numel())
        if int(keep.sum()) != values.numel():
            raise ValueError(f"{path}: tensor {name!r}: {int(keep.sum())} mask bits but {values.numel()} values")
        out[keep] = values
        return out.view(shape)
    if enc == "rice":
        values, count = part(".values"), int(info["count"])
        if values.numel() != count:
            raise ValueError(f"{path}: tensor {name!r}: {values.numel()} values but {count} positions")
        try:
            pos = rice_decode(part(".unary"), part(".rem"), int(info["k"]), count, math.prod(shape))
        except ValueError as exc:
            raise ValueError(f"{path}: tensor {name!r}: {exc}") from None
        out = torch.zeros(math.prod(shape), dtype=values.dtype)
        out[pos] = values
        return out.view(shape)
    if enc == "csr":
        rows, cols = info["matrix"]
        try:
            csr = torch.sparse_csr_tensor(part(".crow").to(torch.int64), part(".col").to(torch.int64),
                                          part(".values"), size=(rows, cols), check_invariants=True)
        except RuntimeError as exc:
            raise ValueError(f"{path}: tensor {name!r} is not a valid CSR matrix ({exc})") from None
        return csr.to_dense().view(shape)
    raise ValueError(f"{path}: tensor {name!r} has unknown encoding {enc!r}")


# --------------------------------------------------------------------------- export / load


def export_recognizer(rec, mask: Mask, fmt: str, out_dir: Path, source: dict | None = None) -> dict:
    """Write ``rec`` (pruned by ``mask``) into ``out_dir`` in format ``fmt``; returns the written config.json.

    ``compact`` and ``csr`` shrink models whose backbone supports it (a model without structure groups
    or removable units is exported at full size).
    """
    from audio_lottery.pruning.shrink import shrink_model

    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    model, cfg, residual, sizes = copy.deepcopy(rec.model), rec.cfg, mask, {}
    mask.apply_(model)
    if fmt != "dense":
        try:
            shrunk = shrink_model(model, mask, cfg)
            model, cfg, residual, sizes = shrunk.model, shrunk.cfg, shrunk.mask, shrunk.sizes
        except NotImplementedError as exc:
            warnings.warn(f"{fmt} export of a {cfg.model.name} model: not shrunk, exported at full size ({exc})",
                          UnshrunkExportWarning, stacklevel=2)
    tensors: dict[str, Tensor] = {}
    encodings: dict[str, dict] = {}
    for name, t in model.state_dict().items():
        stored, info = encode(name, t.detach().cpu(), residual[name] if name in residual else None, fmt)
        tensors.update(stored)
        encodings[name] = info
    save_tensors(out_dir / WEIGHTS, tensors, metadata={"format": MARKER, "export_format": fmt})
    rec.tokenizer.save(ExportLayout(out_dir).tokenizer)
    meta = {
        "format": MARKER, "export_format": fmt, "runtime": "csr" if fmt == "csr" else "dense",
        "remaining": mask.density(), "prunable_params": mask.numel(),
        "params": sum(p.numel() for p in model.parameters()),
        "sizes": {k: list(v) for k, v in sizes.items()},
        "source": source or {}, "config": to_dict(cfg), "tensors": encodings,
    }
    atomic_write_json(out_dir / EXPORT_CONFIG, meta)
    return meta


def is_export_dir(path: Path) -> bool:
    """True when ``path`` is a folder written by :func:`export_recognizer`."""
    return Path(path).is_dir() and (Path(path) / EXPORT_CONFIG).is_file() and (Path(path) / WEIGHTS).is_file()


def read_export(path: Path) -> tuple[dict, object, object, dict[str, Tensor]]:
    """(``config.json`` contents, the resized Config, the tokenizer, the decoded state dict) of an export
    folder, its tensor list checked against the model the config describes before anything is allocated;
    a ValueError names the file that is not a valid export."""
    files = ExportLayout(Path(path))
    meta = read_json(files.config)
    if not isinstance(meta, dict) or meta.get("format") != MARKER:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{files.config}: not an audio-lottery export (format {found!r})")
    if not isinstance(meta.get("config"), dict):
        raise ValueError(f"{files.config}: no 'config' object")
    cfg = config_from_dict(meta["config"])
    tokenizer = load_tokenizer(files.tokenizer)
    check_tensor_infos(meta.get("tensors"), model_shapes(cfg, tokenizer.vocab_size, files.config), files.config)
    stored = load_tensors(files.weights)
    state = {name: decode(name, info, stored, files.weights) for name, info in meta["tensors"].items()}
    return meta, cfg, tokenizer, state
