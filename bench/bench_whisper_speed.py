"""CPU speed of structured Whisper tickets against the dense tiny.en: torch float32 and int8, faster-whisper.

For the dense model (``--dense``: default the pip-installed ``pretrained:whisper-tiny.en``) and each
shrunk ticket (``--ticket``: export folders of ``audio-lottery export --format compact`` of a
``branch structured --structure channel`` level), on the first N utterances of asterisk test:

* torch float32 and torch int8 (:func:`audio_lottery.recognizer.quantize_int8`), greedy, windows cut
  to the utterance (``pad_to_window=false``), one utterance at a time;
* faster-whisper (CTranslate2) float32 and int8 of the dense model (the wheel's own folder) and of
  each ticket written back to CTranslate2 (:func:`audio_lottery.models.whisper.ct2_export.write_ct2_folder`),
  greedy with the parity settings; faster-whisper always pads windows to 30 s.

Real-time factor = decoding seconds / audio seconds (features included), for torch threads t
(``torch.set_num_threads``; CTranslate2 ``cpu_threads=t``) in ``--threads``; the conditions are
interleaved within every repetition and the median repetition is reported. Speed-ups are ratios
to torch dense float32 at the same thread count. WER (Whisper's English normaliser on raw_text)
is scored on the first repetition's transcripts.

Run on an idle machine: ``python bench/bench_whisper_speed.py --ticket EXPORT [--ticket EXPORT2]``
(writes docs/bench_whisper_speed.md and .json). ``--quick``: 3 clips, 1 thread, 1 repetition, written
to a temporary folder (a smoke test, no timing claims).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_whisper_parity import faster_whisper_model, faster_whisper_transcribe  # noqa: E402
from quick import md_table  # noqa: E402
from results_io import write_page  # noqa: E402

from audio_lottery.data.audio import load_audio  # noqa: E402
from audio_lottery.data.manifest import read_manifest  # noqa: E402
from audio_lottery.data.whisper_assets import wheel_dir  # noqa: E402
from audio_lottery.eval.normalize import WHISPER_EN, score_texts  # noqa: E402
from audio_lottery.models.whisper.ct2_export import write_ct2_folder  # noqa: E402
from audio_lottery.pretrained import load_recognizer  # noqa: E402
from audio_lottery.recognizer import Recognizer, quantize_int8  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT_MD = ROOT / "docs" / "bench_whisper_speed.md"
DENSE = "pretrained:whisper-tiny.en"
TARGET_SPEEDUP = 1.5


@dataclass
class Condition:
    """One model in one runtime: ``make(threads)`` gives ``transcribe(wave) -> text``."""

    name: str  # e.g. "dense" or the ticket's folder name
    runtime: str  # "torch float32", "torch int8", "faster-whisper float32", "faster-whisper int8"
    params: int
    make: Callable[[int], Callable[[np.ndarray], str]]
    seconds: dict[int, list[float]] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)


def _torch_condition(name: str, rec: Recognizer, int8: bool) -> Condition:
    model_rec = quantize_int8(rec) if int8 else rec
    params = sum(p.numel() for p in rec.model.parameters())
    return Condition(name, f"torch {'int8' if int8 else 'float32'}", params,
                     lambda threads: lambda wave: model_rec.transcribe([wave])[0])


def _ct2_condition(name: str, folder: Path, params: int, compute_type: str) -> Condition:
    def make(threads: int):
        model = faster_whisper_model(threads, folder, compute_type)
        return lambda wave: faster_whisper_transcribe(model, wave)

    return Condition(name, f"faster-whisper {compute_type}", params, make)


def load_model(spec: str, guard: float) -> Recognizer:
    """A recogniser decoding greedily on windows cut to the utterance, at most ``guard`` tokens per second."""
    rec = load_recognizer(spec)
    rec.model.cfg.pad_to_window = False
    rec.model.cfg.beam_size = 1
    rec.model.cfg.max_tokens_per_second = guard
    return rec


def conditions(dense: str, tickets: list[str], work: Path, guard: float) -> list[Condition]:
    """Every (model, runtime) measured: torch float32/int8 and faster-whisper float32/int8 of each model."""
    out = []
    models = [("dense", load_model(dense, guard))] + [(Path(t).name, load_model(t, guard)) for t in tickets]
    for name, rec in models:
        params = sum(p.numel() for p in rec.model.parameters())
        out += [_torch_condition(name, rec, False), _torch_condition(name, rec, True)]
        folder = wheel_dir() if name == "dense" and dense == DENSE else write_ct2_folder(rec.model, work / name)
        out += [_ct2_condition(name, folder, params, ct) for ct in ("float32", "int8")]
    return out


def measure(conds: list[Condition], waves: list[np.ndarray], threads: list[int], reps: int) -> None:
    """Seconds per repetition of every condition, interleaved; transcripts of the first repetition."""
    for t in threads:
        torch.set_num_threads(t)
        runners = [c.make(t) for c in conds]
        for c, run in zip(conds, runners):
            run(waves[0])  # warm-up: first-call allocations and lazy initialisation
        for rep in range(reps):
            for c, run in zip(conds, runners):
                start = time.perf_counter()
                texts = [run(w) for w in waves]
                c.seconds.setdefault(t, []).append(time.perf_counter() - start)
                if not c.texts:
                    c.texts = texts
            print(f"threads {t}, repetition {rep + 1}/{reps} done", flush=True)


def summarise(conds: list[Condition], refs: list[str], audio_s: float, threads: list[int]) -> dict:
    """Typed rows (RTF, speed-up against torch dense float32 at the same threads, WER) and the verdict."""
    base = next(c for c in conds if c.name == "dense" and c.runtime == "torch float32")
    rows = []
    for c in conds:
        wer = score_texts(refs, c.texts, WHISPER_EN)["wer"]
        for t in threads:
            rtf = statistics.median(c.seconds[t]) / audio_s
            rows.append({"model": c.name, "runtime": c.runtime, "threads": t, "params": c.params, "rtf": rtf,
                         "speedup": statistics.median(base.seconds[t]) / statistics.median(c.seconds[t]),
                         "wer": wer})
    tickets = sorted({c.name for c in conds} - {"dense"})
    best = {}
    for name in tickets:
        ups = {r["threads"]: r["speedup"] for r in rows if r["model"] == name and r["runtime"] == "torch float32"}
        best[name] = ups
    fast = [n for n, ups in best.items() if all(ups.get(t, 0) >= TARGET_SPEEDUP for t in (1, 2))]
    return {"rows": rows, "torch_speedups": best, "target_speedup": TARGET_SPEEDUP, "met": bool(fast),
            "fast_tickets": fast, "dense_wer": score_texts(refs, base.texts, WHISPER_EN)["wer"]}


def verdict(summary: dict) -> str:
    """The page's ``Result:`` line."""
    ups = summary["torch_speedups"]
    if not ups:
        return "Result: no ticket given; dense model and runtimes only."
    shown = "; ".join(f"{n}: " + ", ".join(f"{u:.2f}x at {t} thread{'s' if t > 1 else ''}" for t, u in sorted(v.items()))
                      for n, v in ups.items())
    if summary["met"]:
        return (f"Result: {', '.join(summary['fast_tickets'])} is >= {TARGET_SPEEDUP}x faster than dense in torch "
                f"float32 on 1 and 2 threads ({shown}).")
    return f"Result: no ticket is >= {TARGET_SPEEDUP}x faster than dense in torch float32 on 1 and 2 threads ({shown})."


def markdown(result: dict) -> str:
    s = result["summary"]
    rows = [[r["model"], r["runtime"], str(r["threads"]), f"{r['params'] / 1e6:.2f}", f"{r['rtf']:.4f}",
             f"{r['speedup']:.2f}", f"{100 * r['wer']:.2f}"] for r in s["rows"]]
    return "\n".join([
        "# Whisper tiny.en: CPU speed of structured tickets, int8 and faster-whisper",
        "",
        f"`{result['command']}`",
        "",
        f"{result['utterances']} utterances of asterisk {result['split']} ({result['audio_s']:.1f} s of audio), "
        f"greedy, one utterance at a time, {result['reps']} interleaved repetitions (median). Torch decodes "
        f"windows cut to the utterance with at most {result['guard']:g} tokens per second of audio; "
        "faster-whisper pads to 30 s as it always does. Speed-up: torch dense "
        "float32 seconds / the condition's at the same thread count. WER through Whisper's English normaliser.",
        "",
        md_table(["model", "runtime", "threads", "params (M)", "RTF", "speed-up", "WER %"], rows),
        "",
        f"- {verdict(s)}",
        "",
    ])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dense", default=DENSE, help="the dense model: pretrained:whisper-tiny.en, a level's "
                   "trained model or an export folder")
    p.add_argument("--ticket", action="append", default=[], help="a shrunk ticket's export folder (repeatable)")
    p.add_argument("--data", default=str(ROOT / "data" / "asterisk"), help="folder of `data prepare asterisk`")
    p.add_argument("--split", default="test")
    p.add_argument("--n", type=int, default=30, help="utterances")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--guard", type=float, default=12.0, help="torch decoding guard: at most this many tokens per "
                   "second of audio (model.whisper.max_tokens_per_second of configs/whisper_tiny_en.yaml), so a "
                   "looping hypothesis does not dominate the time")
    p.add_argument("--work", help="folder for the tickets' CTranslate2 copies (default: a temporary one)")
    p.add_argument("--out-md", default=str(OUT_MD))
    p.add_argument("--quick", action="store_true", help="3 utterances, 1 thread, 1 repetition, page in a temporary "
                   "folder (a smoke test)")
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    n, reps, out_md = args.n, args.reps, Path(args.out_md)
    tmp = tempfile.TemporaryDirectory()
    if args.quick:
        n, reps, threads, out_md = 3, 1, [1], Path(tmp.name) / "bench_whisper_speed.md"
    manifest = Path(args.data) / f"{args.split}.jsonl"
    records = read_manifest(manifest)[:n]
    if not records or "raw_text" not in records[0]:
        raise SystemExit(f"{manifest}: no records with raw_text; run `audio-lottery data prepare asterisk`")
    waves = [load_audio(r["audio"], 16000, r.get("offset", 0.0), r["duration"]) for r in records]
    audio_s = sum(len(w) for w in waves) / 16000
    conds = conditions(args.dense, args.ticket, Path(args.work) if args.work else Path(tmp.name), args.guard)
    measure(conds, waves, threads, reps)
    summary = summarise(conds, [r["raw_text"] for r in records], audio_s, threads)
    result = {"command": "python bench/bench_whisper_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "utterances": len(records), "split": args.split, "audio_s": audio_s, "reps": reps, "guard": args.guard,
              "summary": summary}
    text = markdown(result)
    json_path = write_page(out_md, text, verdicts=[f"- {verdict(summary)}"],
                           data={**summary, "utterances": len(records), "audio_s": audio_s, "reps": reps})
    print(text)
    print(f"wrote {out_md} and {json_path}")


if __name__ == "__main__":
    main()
