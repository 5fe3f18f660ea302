"""Multi-process training under ``torchrun``: process group, ranks, devices, rank-0 writes.

Every training path calls :func:`setup` first. Without ``torchrun`` (``WORLD_SIZE`` unset
or 1) nothing is initialised and every helper degrades to the single-process answer
(rank 0 of 1, barriers do nothing), so the single-process path is unchanged.

Under ``torchrun --nproc_per_node=N`` each process joins one process group (gloo on CPU,
nccl on CUDA, each process on ``cuda:LOCAL_RANK``). Rank 0 writes every file (checkpoints,
logs, masks, reports); the other ranks wait at a :func:`barrier` and then read what it
wrote, so the run folder must be on a file system every node sees.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import sys
from datetime import timedelta
from typing import Callable, Mapping, TypeVar

import torch
import torch.distributed as dist

from audio_lottery.config import ConfigError

T = TypeVar("T")

# Rank 0 may evaluate a whole dev/test set while the others wait at a barrier.
TIMEOUT_ENV = "AUDIO_LOTTERY_DIST_TIMEOUT_MIN"


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def local_rank() -> int:
    """This process's index on its node (torchrun's ``LOCAL_RANK``; 0 without torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """True on the process that writes files and logs (rank 0)."""
    return rank() == 0


def barrier() -> None:
    """Wait until every rank arrives (no-op in a single process)."""
    if is_distributed():
        dist.barrier()


def resolve_device(name: str) -> torch.device:
    """``train.device`` -> a torch device: cpu, cuda, cuda:N or auto (cuda when available).

    Under torchrun a bare ``cuda`` means ``cuda:LOCAL_RANK``.
    """
    text = str(name).strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text != "cpu" and not text.startswith("cuda"):
        raise ConfigError(f"train.device: {name!r} is not one of cpu, cuda, cuda:N, auto")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise ConfigError(f"train.device: {name!r} is not one of cpu, cuda, cuda:N, auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device: {name!r} asked for CUDA but torch sees no GPU "
                              f"(torch {torch.__version__}); use --device cpu or auto")
        if device.index is None:
            device = torch.device("cuda", local_rank() if "LOCAL_RANK" in os.environ else torch.cuda.current_device())
    return device


def setup(device_name: str) -> torch.device:
    """Join torchrun's process group when ``WORLD_SIZE`` > 1 (once) and return this process's device."""
    device = resolve_device(device_name)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        minutes = float(os.environ.get(TIMEOUT_ENV, "180"))
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend, timeout=timedelta(minutes=minutes), **kwargs)
        atexit.register(_shutdown)
    return device


def _shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def on_main(fn: Callable[..., T], *args, **kwargs) -> T | None:
    """Run ``fn`` on rank 0 only, then wait at a barrier so every rank sees what it wrote.

    Every rank must call this at the same point. Put any "skip if the file exists" test
    inside ``fn``: then only rank 0 decides, and no rank can race past the barrier.
    Returns ``fn``'s value on rank 0 and None elsewhere.
    """
    out = fn(*args, **kwargs) if is_main() else None
    barrier()
    return out


def main_first(fn: Callable[..., T], *args, **kwargs) -> T:
    """Run ``fn`` on rank 0, wait, then on the other ranks, which find and read what rank 0 wrote
    (for "load it, or build and save it" functions such as ``prepare_tokenizer``)."""
    out = on_main(fn, *args, **kwargs)
    return out if is_main() else fn(*args, **kwargs)


def quiet_other_ranks() -> None:
    """Under torchrun, ranks other than 0 print nothing to stdout and log warnings only."""
    if os.environ.get("RANK", "0") != "0":
        logging.getLogger().setLevel(logging.WARNING)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


def _device_of_group() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum ``values`` over all ranks, as float64 on the input's device (identity in one process)."""
    if not is_distributed():
        return values
    buf = values.detach().to(_device_of_group(), dtype=torch.float64).clone()
    dist.all_reduce(buf)
    return buf.to(values.device)


def max_over_ranks(value: float) -> float:
    """The largest ``value`` of all ranks, on every rank (``value`` itself in one process)."""
    if not is_distributed():
        return value
    buf = torch.tensor([value], dtype=torch.float64, device=_device_of_group())
    dist.all_reduce(buf, op=dist.ReduceOp.MAX)
    return float(buf[0])


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is True on at least one (a collective decision)."""
    if not is_distributed():
        return flag
    return bool(all_reduce_sum(torch.tensor([1.0 if flag else 0.0]))[0] > 0)


def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over names, shapes, dtypes and bytes of ``tensors`` (a checksum of a mask or weights)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def check_same_on_all_ranks(digest: str, what: str) -> None:
    """Raise on every rank unless ``digest`` (hex) is identical on all ranks; ``what`` names the object."""
    if not is_distributed():
        return
    mine = torch.tensor([int(digest[i:i + 15], 16) for i in range(0, 60, 15)], dtype=torch.int64)
    ref = mine.clone().to(_device_of_group())
    dist.broadcast(ref, src=0)
    if any_rank(not torch.equal(ref.cpu(), mine)):
        raise RuntimeError(f"{what} differs between ranks (rank {rank()} has checksum {digest[:16]}); "
                           "every rank must train the same mask and weights")


def enable_sync_batch_norm(model: torch.nn.Module) -> int:
    """Make the model's masked batch norms take statistics over the global batch; returns how many.

    The masked batch norm (``models.ds2.masked_batch_norm``) sums its statistics with a
    differentiable all-reduce when the module has a ``sync_group``; torch's own
    ``SyncBatchNorm`` cannot be used because it drops the padding mask.
    """
    if not is_distributed():
        return 0
    count = 0
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            if not getattr(type(module), "supports_sync", False):
                raise TypeError(f"{type(module).__name__}: only masked batch norms can be synchronised; "
                                "set train.sync_batchnorm=false")
            module.sync_group = dist.group.WORLD
            count += 1
    return count
