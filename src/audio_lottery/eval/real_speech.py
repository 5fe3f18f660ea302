"""A real-speech test beside the synthetic one: a trained level scored on the asterisk test split
(or any manifest named by ``data.real_test_manifest``), for the report and the demo.

The scores of a lottery level are kept beside it as ``<level dir>/eval_real.json`` (any other
checkpoint's in the file :func:`score_model` is given)::

    {"manifest", "manifest_fingerprint", "model", "model_stamp", "wer", "cer", "utterances"}

and reused while the model and the manifest's content are unchanged. Records with ``raw_text`` are
scored through Whisper's English normaliser, as ``eval`` scores them. Nothing here selects a
model: tickets are chosen on dev WER only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audio_lottery.data.manifest import read_manifest
from audio_lottery.eval.evaluate import evaluate
from audio_lottery.eval.noisy import model_path, model_stamp
from audio_lottery.files import atomic_write_json, file_fingerprint, read_json_or_none
from audio_lottery.layout import LevelLayout
from audio_lottery.recognizer import Recognizer

# `audio-lottery data prepare asterisk --out data/asterisk`, beside the embedded corpus in data/synth
ASTERISK_TEST = Path("asterisk") / "test.jsonl"


def real_test_manifest(data_config: dict[str, Any] | None) -> Path | None:
    """The real-speech test of a run (``data_config``: its ``data`` section as a dict): its
    ``data.real_test_manifest``, else the asterisk test split prepared beside the run's corpus
    (``data/asterisk/test.jsonl`` for a test set in ``data/synth/``) when it exists; None otherwise."""
    data_config = data_config or {}
    named = data_config.get("real_test_manifest") or ""
    if named:
        path = Path(named)
        if not path.is_file():
            raise FileNotFoundError(f"data.real_test_manifest: {path} not found")
        return path
    test = data_config.get("test_manifest") or ""
    beside = Path(test).resolve().parent.parent / ASTERISK_TEST if test else None
    return beside if beside is not None and beside.is_file() else None


def score_level(level_dir: Path, manifest: Path) -> dict:
    """WER/CER of a trained level's best-dev model on ``manifest`` (cached in the level folder)."""
    return score_model(model_path(level_dir), manifest, LevelLayout(Path(level_dir)).eval_real)


def score_model(weights: Path, manifest: Path, cache: Path) -> dict:
    """WER/CER of the checkpoint ``weights`` on ``manifest``, kept in the JSON file ``cache`` and
    reused while the checkpoint and the manifest's content are unchanged."""
    identity = {"manifest": str(Path(manifest).resolve()), "manifest_fingerprint": file_fingerprint(manifest),
                "model": str(weights), "model_stamp": model_stamp(weights)}
    old = read_json_or_none(cache)
    if old and all(old.get(k) == v for k, v in identity.items() if k != "model"):
        return old
    records = read_manifest(manifest)
    scores = evaluate(Recognizer.load(weights), records)
    out = {**identity, "wer": scores["wer"], "cer": scores["cer"], "utterances": len(records)}
    atomic_write_json(cache, out)
    return out
