"""Atomic training checkpoints in safetensors + JSON: model, optimizer, scheduler, counters.

The optimizer state is flattened to ``optim.<param index>.<key>`` tensors; everything
else (param groups, epoch, step, best score) goes to a JSON file beside it. The JSON is
written last, so a checkpoint is complete exactly when its JSON exists and names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from audio_lottery.io import atomic_write_json, load_tensors, read_json, save_tensors


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
    out_dir: Path, name: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer, info: dict
) -> None:
    """Write ``<name>.safetensors`` (model + optimizer tensors) then ``<name>.json``."""
    out_dir = Path(out_dir)
    opt_tensors, opt_meta = flatten_optimizer(optimizer.state_dict())
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update(opt_tensors)
    save_tensors(out_dir / f"{name}.safetensors", tensors)
    atomic_write_json(out_dir / f"{name}.json", {"tensors": f"{name}.safetensors", "optimizer": opt_meta, **info})


def load_training_state(
    out_dir: Path, name: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> dict | None:
    """Restore model and optimizer from ``<name>``; returns the info dict, or None if absent."""
    out_dir = Path(out_dir)
    meta_path = out_dir / f"{name}.json"
    if not meta_path.is_file():
        return None
    meta = read_json(meta_path)
    tensors = load_tensors(out_dir / meta["tensors"])
    model.load_state_dict(model_tensors(tensors))
    optimizer.load_state_dict(unflatten_optimizer(tensors, meta["optimizer"]))
    return meta


def model_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's state dict inside a training-state file (keys without their ``model.`` prefix)."""
    return {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}


def save_model(path: Path, model: torch.nn.Module, metadata: dict[str, str] | None = None) -> None:
    """Save model weights and buffers as safetensors (atomic)."""
    save_tensors(Path(path), model.state_dict(), metadata)


def load_model_weights(path: Path, model: torch.nn.Module) -> None:
    """Load safetensors weights into ``model``; a mismatch names the file and the keys."""
    state = load_tensors(Path(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})")
