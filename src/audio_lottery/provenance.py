"""Where a measurement came from: machine, threads, torch, commit, date, corpus version.

Benchmarks and ``make demo`` store this beside their figures (``conditions`` in their result
JSON), so docs/results.md can state the conditions of every number it shows.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path

import torch

PACKAGE_DIR = Path(__file__).resolve().parent


def git_commit(folder: Path = PACKAGE_DIR) -> str | None:
    """HEAD of the git checkout holding ``folder`` (``+dirty`` with uncommitted changes); None outside git."""
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


def corpus_version(data: Path | str | None) -> dict:
    """Version, hours and seed of the embedded corpus in ``data`` (its corpus.json), and whether its training
    split has pitch variants (only then); {} when absent."""
    meta = Path(data) / "corpus.json" if data else None
    if meta is None or not meta.is_file():
        return {}
    try:
        summary = json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    settings = summary.get("settings", summary)
    pitch = {"corpus_train_pitch_variants": True} if "train_pitch_variants" in settings else {}
    return {"corpus": str(data), **{f"corpus_{k}": settings[k] for k in ("version", "hours", "seed") if k in settings},
            **pitch}


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The processor's model name (Linux ``/proc/cpuinfo``, else ``platform.processor()``); None when unknown.

    Stated beside CPU figures: timings, and the kernels torch picks (bfloat16 ones included), depend
    on the processor, not only on the architecture and the core count."""
    try:
        for line in cpuinfo.read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def run_conditions(**extra) -> dict:
    """Date, machine, torch version and threads, commit of this checkout; ``extra`` adds or overrides keys."""
    return {
        "date": dt.date.today().isoformat(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "commit": git_commit(),
        **extra,
    }
