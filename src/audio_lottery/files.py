"""Atomic file writes and safe tensor (de)serialisation: nothing here ever unpickles."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save_file

from audio_lottery.faultpoints import faultpoint

log = logging.getLogger(__name__)
_UMASK = os.umask(0o022)
os.umask(_UMASK)


_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.tmp$")


def _atomic_replace(path: Path, write_to: Callable[[str], None]) -> None:
    """Call ``write_to(tmp)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    The temporary name carries this process id (``.<name>.<pid>.<random>.tmp``) so that
    :func:`remove_stale_temps` can tell a dead writer's leftovers from a live one's.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
    os.close(fd)
    try:
        write_to(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        faultpoint("write:" + path.name)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (power loss); best effort where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_file(data: bytes) -> Callable[[str], None]:
    def write_to(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)

    return write_to


def remove_stale_temps(folder: Path) -> int:
    """Delete temporary files under ``folder`` left by writers that no longer run (killed
    mid-write); returns how many. Files of live processes are left alone."""
    removed = 0
    for tmp in Path(folder).rglob(".*.tmp"):
        match = _TEMP_RE.match(tmp.name)
        if not match or _alive(int(match["pid"])):
            continue
        try:
            tmp.unlink()
            removed += 1
        except FileNotFoundError:
            continue
    if removed:
        log.info("%s: removed %d temporary file(s) left by interrupted writes", folder, removed)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def quarantine(path: Path, problem: str) -> Path:
    """Move an unreadable file aside to ``<name>.corrupt`` (kept for inspection) and log why;
    the caller then treats it as absent and redoes the work that wrote it."""
    path = Path(path)
    dest = path.with_name(path.name + ".corrupt")
    os.replace(path, dest)
    log.warning("%s: %s; moved aside to %s and treated as absent (the step that wrote it is redone)",
                path, problem, dest.name)
    return dest


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    _atomic_replace(path, _write_file(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def read_json(path: Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None


def read_json_or_none(path: Path) -> dict | None:
    """The JSON object in ``path``; None when the file is absent. A file that is not a valid
    JSON object (truncated, garbage) is moved aside with a warning (:func:`quarantine`) and
    also gives None, so callers redo the step that should have written it."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        quarantine(path, f"not valid JSON ({exc})")
        return None
    if not isinstance(obj, dict):
        quarantine(path, f"expected a JSON object, found {type(obj).__name__}")
        return None
    return obj


def file_beside(meta_path: Path, named: Any, expected: str, key: str) -> Path:
    """The file ``expected`` next to ``meta_path``, which names it under ``key`` as ``named``.

    A run or export folder may come from someone else, so its description files are untrusted:
    only the fixed file name inside the same folder is accepted (an absolute path, ``../`` or a
    symlink out of the folder raises ValueError naming ``meta_path``); a missing file raises
    FileNotFoundError.
    """
    folder = Path(meta_path).parent
    if named != expected:
        raise ValueError(f"{meta_path}: {key!r} must be {expected!r} (the file beside it), got {named!r}")
    path = folder / expected
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (named by {meta_path})")
    if path.resolve().parent != folder.resolve():
        raise ValueError(f"{path}: a link out of the folder (to {path.resolve()}); refused")
    return path


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomically save a flat dict of tensors as safetensors."""
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    _atomic_replace(Path(path), lambda tmp: save_file(flat, tmp, metadata=metadata))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file; a clear error names a missing or corrupt file."""
    return load_tensors_and_metadata(path)[0]


def load_tensors_and_metadata(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and string metadata of a safetensors file, read fully into memory.

    The tensors own their memory (``safetensors.torch.load_file`` maps the file instead, so a
    file rewritten in place -- by a user, a sync tool, another run -- would change loaded
    weights underneath or kill the process with SIGBUS). A missing, truncated or foreign
    file raises an error naming it; nothing is ever unpickled.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        data = path.read_bytes()
        tensors = safetensors_load(data)
        size = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8 : 8 + size]).get("__metadata__") or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from None
    return tensors, dict(meta)


def load_tensors_any(path: Path) -> dict[str, torch.Tensor]:
    """Load tensors from safetensors, or from a ``.pt`` file with ``weights_only=True`` (never unpickles code)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_tensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - anything but plain tensors is refused
        raise ValueError(f"{path}: refused to load (not a plain-tensor checkpoint: {exc})") from None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a dict of tensors")
    return obj


def file_fingerprint(path: Path, length: int = 16) -> str:
    """Short SHA-256 of a file's bytes (identifies the content of a manifest behind a path)."""
    import hashlib

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    return hashlib.sha256(path.read_bytes()).hexdigest()[:length]
