"""Evaluation under noise: WER/CER per SNR on test audio mixed with unseen (test-split) noise.

Mixing is deterministic per utterance: the noise recording and the offset into it depend only
on the utterance id and a seed (:meth:`NoiseMixer.mix_fixed`), so every model, and every SNR,
hears the same noise at the same place. Results of a trained level are stored beside it as
``<level dir>/eval_noise.json``::

    {"noise_manifest", "noise_fingerprint", "noise_split": "test", "seed", "test_manifest",
     "test_fingerprint", "model", "model_stamp", "utterances",
     "results": {"clean": {"wer", "cer", "utterances"}, "20": {...}, ...}}

and reused (per SNR) while the model, test set, noise bank and seed are unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from audio_lottery.data.noise.mix import NoiseMixer
from audio_lottery.data.manifest import read_manifest
from audio_lottery.eval.evaluate import evaluate
from audio_lottery.files import atomic_write_json, read_json
from audio_lottery.files import file_fingerprint as fingerprint
from audio_lottery.layout import EVAL_NOISE, LevelLayout, RunLayout
from audio_lottery.recognizer import Recognizer

CLEAN = "clean"
RESULT_FILE = EVAL_NOISE
NOISE_SPLIT = "test"


def parse_snrs(text: str | Sequence) -> list[str]:
    """``"clean,20,10,5,0"`` -> ``["clean", "20", "10", "5", "0"]`` (keys as stored; numbers checked)."""
    items = [str(x).strip() for x in (text.split(",") if isinstance(text, str) else text) if str(x).strip()]
    if not items:
        raise ValueError("--snr: give at least one SNR, e.g. clean,20,10,5,0")
    out = []
    for item in items:
        if item.lower() == CLEAN:
            out.append(CLEAN)
            continue
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"--snr: {item!r} is neither 'clean' nor a number of dB") from None
        if not math.isfinite(value):
            raise ValueError(f"--snr: {item!r} is not a finite number of dB")
        out.append(f"{value:g}")
    return list(dict.fromkeys(out))


def evaluate_under_noise(rec: Recognizer, records: list[dict], snrs: Sequence[str], noise_manifest: str | Path | None,
                         seed: int = 0, progress: bool = False, done: dict | None = None) -> dict[str, dict]:
    """``{snr: {"wer", "cer", "utterances"}}`` for each SNR key (``clean`` = no noise).

    Noise comes from the ``test`` split of ``noise_manifest``. Entries of ``done`` are reused.
    """
    snrs = parse_snrs(snrs)
    noisy = [s for s in snrs if s != CLEAN]
    mixer = None
    if noisy:
        if not noise_manifest:
            raise ValueError(f"SNRs {noisy} need a noise manifest (--noise)")
        mixer = NoiseMixer(noise_manifest, prob=1.0, snr_min=0.0, snr_max=0.0,
                           sample_rate=rec.cfg.data.features.sample_rate, seed=seed, split=NOISE_SPLIT)
    out = {}
    for snr in snrs:
        if done and snr in done:
            out[snr] = done[snr]
            continue
        transform = None
        if snr != CLEAN:
            transform = lambda wave, r, db=float(snr): mixer.mix_fixed(wave, r["id"], db)  # noqa: E731
        scores = evaluate(rec, records, transform=transform, progress=progress, desc=f"snr {snr}")
        out[snr] = {"wer": scores["wer"], "cer": scores["cer"], "utterances": scores["utterances"]}
    return out


def model_path(level_dir: Path) -> Path:
    """The best-dev checkpoint of a trained level."""
    path = LevelLayout(Path(level_dir)).trained
    if not path.is_file():
        raise FileNotFoundError(f"{path}: level not trained yet")
    return path


def model_stamp(weights: Path) -> str:
    """Size and modification time of a checkpoint: a retrained level gets another stamp."""
    st = Path(weights).stat()
    return f"{st.st_size}-{st.st_mtime_ns}"


def eval_level(level_dir: Path, snrs: Sequence[str], noise_manifest: str | Path | None, seed: int = 0,
               manifest: str | Path | None = None, progress: bool = False) -> dict:
    """Evaluate a trained level under noise and store ``level_dir/eval_noise.json`` (resumable).

    The test manifest is the one in the level's own training config (a transfer branch's target
    test set), unless ``manifest`` is given.
    """
    level_dir = Path(level_dir)
    rec = Recognizer.load(model_path(level_dir))
    test = Path(manifest or rec.cfg.data.test_manifest)
    if not str(test) or not test.is_file():
        raise FileNotFoundError(f"{level_dir}: test manifest {str(test)!r} not found")
    weights = model_path(level_dir)
    identity = {"noise_manifest": str(Path(noise_manifest).resolve()) if noise_manifest else "",
                "noise_fingerprint": fingerprint(noise_manifest) if noise_manifest else "",
                "noise_split": NOISE_SPLIT, "seed": seed, "test_manifest": str(test.resolve()),
                "test_fingerprint": fingerprint(test), "model": str(weights),
                "model_stamp": model_stamp(weights)}
    path = LevelLayout(level_dir).eval_noise
    done: dict = {}
    if path.is_file():  # reuse what the same model on the same test set already has
        old = read_json(path)
        same_test = all(old.get(k) == identity[k] for k in ("test_fingerprint", "model_stamp"))
        same_noise = same_test and all(old.get(k) == identity[k] for k in ("noise_fingerprint", "seed"))
        res = old.get("results", {})
        done = res if same_noise else ({CLEAN: res[CLEAN]} if same_test and CLEAN in res else {})
    records = read_manifest(test)
    results = evaluate_under_noise(rec, records, snrs, noise_manifest, seed, progress, done)
    merged = {**done, **results}
    atomic_write_json(path, {**identity, "utterances": len(records), "results": merged})
    return {snr: merged[snr] for snr in parse_snrs(snrs)}


def level_dirs(run_dir: Path, levels: str | Sequence[int] = "all", branches: str | Sequence[str] = ()) -> dict[str, Path]:
    """Label -> trained level folder: ``imp/L`` for IMP levels, ``<branch>/L`` for branch levels.

    ``levels`` is ``"all"`` or level numbers; ``branches`` is ``"all"`` or branch names (without
    the ``branch_`` prefix). Untrained levels are skipped.
    """
    run_dir = Path(run_dir)
    run = RunLayout(run_dir)
    if not run.config.is_file():
        raise FileNotFoundError(f"{run_dir}: not a lottery run (no {run.config.name})")
    folders = {"imp": run}
    found = run.branches()
    names = list(found)
    wanted = names if branches == "all" else list(branches)
    for name in wanted:
        if name not in names:
            raise FileNotFoundError(f"{run_dir}: no branch {name!r} (have: {', '.join(names) or 'none'})")
        folders[name] = found[name]
    out = {}
    for series, folder in folders.items():
        for sub in folder.levels():
            if (levels == "all" or sub.number in levels) and sub.trained.is_file():
                out[f"{series}/{sub.number}"] = sub.dir
    if not out:
        raise FileNotFoundError(f"{run_dir}: no trained level matches levels={levels} branches={branches}")
    return out


def eval_run(run_dir: Path, snrs: Sequence[str], noise_manifest: str | Path | None, levels: str | Sequence[int] = "all",
             branches: str | Sequence[str] = (), seed: int = 0, progress: bool = False) -> dict[str, dict]:
    """:func:`eval_level` for every selected level of a run; label -> {snr: scores}."""
    return {label: eval_level(path, snrs, noise_manifest, seed, progress=progress)
            for label, path in level_dirs(run_dir, levels, branches).items()}


def snr_table(results: dict[str, dict], metric: str = "wer") -> str:
    """Markdown table: one row per model label, one column per SNR, ``metric`` in %."""
    snrs: list[str] = []
    for per_snr in results.values():
        snrs += [s for s in per_snr if s not in snrs]
    lines = ["| model | " + " | ".join(f"{s} dB" if s != CLEAN else s for s in snrs) + " |",
             "|---|" + "---|" * len(snrs)]
    for label, per_snr in results.items():
        cells = [f"{100 * per_snr[s][metric]:.2f}" if s in per_snr else "–" for s in snrs]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
