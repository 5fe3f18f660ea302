"""Atomic training checkpoints in safetensors + JSON: model, optimizer, weight average, counters.

The optimizer state is flattened to ``optim.<param index>.<key>`` tensors; everything
else (param groups, epoch, step, best score) is JSON, stored twice: inside the
safetensors header (``training_state`` metadata) and in ``<name>.json`` beside it for
people and tools. The header copy is the one that counts on resume: it was renamed into
place together with the weights, so a crash between the two writes can never pair new
weights with old counters. Unreadable checkpoint files are moved aside
(``*.corrupt``) and the checkpoint counts as absent. torch's random state is saved too
(``rng.*`` tensors) and restored on resume, so dropout draws continue as if uninterrupted.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from audio_lottery.files import (
    atomic_write_json,
    load_tensors_and_metadata,
    quarantine,
    read_json_or_none,
    remove_stale_temps,
    save_tensors,
)
from audio_lottery.layout import checkpoint_files
from audio_lottery.train.weight_average import WeightAverage

log = logging.getLogger(__name__)
STATE_KEY = "training_state"


def flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into tensors and JSON-able metadata."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, pstate in state["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Inverse of :func:`flatten_optimizer`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if not name.startswith("optim."):
            continue
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    for idx, values in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_training_state(
    out_dir: Path, name: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer, info: dict,
    average: WeightAverage | None = None,
) -> None:
    """Write ``<name>.safetensors`` (model + optimizer tensors and the weight average if any, info in its
    header) then ``<name>.json``."""
    tensors_file, json_file = checkpoint_files(out_dir, name)
    opt_tensors, opt_meta = flatten_optimizer(optimizer.state_dict())
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update(opt_tensors)
    if average is not None:
        tensors.update(average.checkpoint_tensors())
    tensors.update(rng_state())
    meta = {"tensors": tensors_file.name, "optimizer": opt_meta, **info}
    header = {STATE_KEY: json.dumps(meta, sort_keys=True, default=str)}
    save_tensors(tensors_file, tensors, metadata=header)
    atomic_write_json(json_file, meta)


def read_training_state(out_dir: Path, name: str) -> tuple[dict, dict[str, torch.Tensor]] | None:
    """(info, tensors) of checkpoint ``name`` in ``out_dir``, or None when there is none.

    A truncated or garbage ``<name>.safetensors`` (or, for checkpoints without the header
    copy, ``<name>.json``) is moved aside with a warning naming it, and gives None: the
    caller starts that training run afresh instead of loading half a file.
    """
    out_dir = Path(out_dir)
    remove_stale_temps(out_dir)
    path, json_file = checkpoint_files(out_dir, name)
    if not path.is_file():
        if json_file.is_file():
            log.warning("%s: names %s, which is missing; starting afresh", json_file, path.name)
        return None
    try:
        tensors, header = load_tensors_and_metadata(path)
    except ValueError as exc:
        quarantine(path, str(exc).removeprefix(f"{path}: "))
        return None
    if STATE_KEY in header:
        try:
            return json.loads(header[STATE_KEY]), tensors
        except json.JSONDecodeError:
            quarantine(path, "its training_state header is not valid JSON")
            return None
    meta = read_json_or_none(json_file)  # checkpoints written before the header copy
    if meta is None:
        log.warning("%s: no readable %s beside it; starting afresh", path, json_file.name)
        return None
    return meta, tensors


def load_training_state(
    out_dir: Path, name: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
    config_hash: str | None = None, average: WeightAverage | None = None,
) -> dict | None:
    """Restore model, optimizer (and ``average``, when given) from ``<name>``; returns the info dict, or
    None if absent.

    With ``config_hash``, a checkpoint of other hyper-parameters is refused (ValueError)
    before anything is loaded into ``model``.
    """
    saved = read_training_state(out_dir, name)
    if saved is None:
        return None
    meta, tensors = saved
    if config_hash is not None and meta.get("config_hash", config_hash) != config_hash:
        raise ValueError(f"{checkpoint_files(out_dir, name)[1]}: this folder holds a run with other hyper-parameters; "
                         "use another --out")
    model.load_state_dict(model_tensors(tensors))
    optimizer.load_state_dict(unflatten_optimizer(tensors, meta["optimizer"]))
    if average is not None:
        average.load_checkpoint_tensors(tensors, str(checkpoint_files(out_dir, name)[0]))
    set_rng_state(tensors)
    return meta


def rng_state() -> dict[str, torch.Tensor]:
    """torch's global random state (CPU, and every CUDA device in use) as ``rng.*`` tensors."""
    state = {"rng.cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state.update({f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return state


def set_rng_state(tensors: dict[str, torch.Tensor]) -> None:
    """Restore what :func:`rng_state` saved, so a resumed run draws the same dropout masks as an
    uninterrupted one (checkpoints without it leave the random state alone)."""
    if "rng.cpu" in tensors:
        torch.set_rng_state(tensors["rng.cpu"].to(torch.uint8))
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("rng.cuda.")),
                                       key=lambda k: int(k.rsplit(".", 1)[1]))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([t.to(torch.uint8) for t in cuda])


def model_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's state dict inside a training-state file (keys without their ``model.`` prefix)."""
    return {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
