"""Benchmark of the embedded corpus synthesis: audio seconds per wall second, overall and per engine.

Usage: python bench/bench_synth.py [HOURS=0.1] [WORKERS=2]
Writes docs/bench_synth.md.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from audio_lottery.data.corpora.sentences import load_sentence_records
from audio_lottery.data.corpora.synth import EVAL_FRACTION, synthesize_corpus
from results_io import write_page

DEFAULT_HOURS = 3.5
DOC = Path(__file__).resolve().parents[1] / "docs" / "bench_synth.md"


def run(hours: float, workers: int) -> dict:
    """Synthesise ``hours`` of training audio into a temp dir; returns timings and per-engine numbers."""
    t0 = time.perf_counter()
    load_sentence_records(0, limit=1)  # fixed cost (cached for the run below): reading and filtering the sources
    load_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        t0 = time.perf_counter()
        summary = synthesize_corpus(Path(tmp), hours=hours, seed=0, workers=workers, progress=False)
        wall = time.perf_counter() - t0
    engines: dict[str, dict] = {}
    for split in summary["splits"].values():
        for eng, e in split["engines"].items():
            row = engines.setdefault(eng, {"utterances": 0, "audio_s": 0.0})
            row["utterances"] += e["utterances"]
            row["audio_s"] += e["hours"] * 3600
    for eng, row in engines.items():
        row["per_core_s"] = summary["audio_seconds_per_synth_second"][eng]
    audio_s = sum(r["audio_s"] for r in engines.values())
    default_audio_s = DEFAULT_HOURS * 3600 * (1 + 2 * EVAL_FRACTION)
    estimate = load_s + wall * default_audio_s / audio_s
    return {"hours": hours, "workers": workers, "wall_s": wall, "load_s": load_s, "audio_s": audio_s,
            "engines": engines, "skipped": summary["skipped"], "default_estimate_s": estimate}  # fmt: skip


def markdown(res: dict) -> str:
    """The result as a small markdown report."""
    lines = [
        "# Embedded corpus synthesis benchmark",
        "",
        f"Date: {dt.date.today().isoformat()}; machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}); "
        f"workers: {res['workers']}; requested training audio: {res['hours']} h "
        f"(+ dev/test at {EVAL_FRACTION:.1%} each). `python bench/bench_synth.py {res['hours']} {res['workers']}`",
        "",
        f"| engine | utterances | audio s | audio s per core-second | audio s per wall s ({res['workers']} workers, est.) | share of audio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for eng, r in sorted(res["engines"].items()):
        lines.append(f"| {eng} | {r['utterances']} | {r['audio_s']:.1f} | {r['per_core_s']:.1f} | "
                     f"{r['per_core_s'] * res['workers']:.0f} | {r['audio_s'] / res['audio_s']:.0%} |")
    lines += [
        f"| **all** | {sum(r['utterances'] for r in res['engines'].values())} | {res['audio_s']:.1f} | "
        f"| **{res['audio_s'] / res['wall_s']:.1f}** (measured) | 100% |",
        "",
        "Core-seconds are measured inside the workers per utterance (engine call, resampling, FLAC write);",
        "per-engine wall rates assume all workers busy with that engine.",
        "",
        f"Synthesis wall time {res['wall_s']:.1f} s, plus {res['load_s']:.1f} s reading the sentence sources. "
        f"Skipped utterances: {res['skipped'] or 'none'}.",
        f"Estimated time for the default {DEFAULT_HOURS} h corpus with {res['workers']} workers: "
        f"~{res['default_estimate_s'] / 60:.0f} min.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    hours = float(argv[0]) if argv else 0.1
    workers = int(argv[1]) if len(argv) > 1 else 2
    res = run(hours, workers)
    text = markdown(res)
    print(text)
    write_page(DOC, text)


if __name__ == "__main__":
    main(sys.argv[1:])
