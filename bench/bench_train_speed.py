"""CPU training speed of the demo recipe: bf16 autocast and the in-memory feature cache.

    python bench/bench_train_speed.py [--config configs/ds2_demo.yaml] [--utterances 900] [--rounds 3]

Trains the preset's model on the first ``--utterances`` training utterances for two epochs in four
variants: float32 or bf16 autocast (``train.amp``), feature cache off or on
(``data.feature_cache_mb``). Every training starts with an empty cache, so epoch 1 decodes every file
in all variants and only epoch 2 is timed (the epoch time of every later epoch and of every further
training of a lottery search, which shares the cache). The variants run in interleaved rounds, the
order rotated each round, and the page gives the median per-round ratio of epoch-2 time to float32
without the cache. It also checks that the cache changes no number: float32 with and without it must
log identical losses at every step. bf16 changes the numbers (the page gives the epoch-2 mean loss of
both precisions); whether that moves WER is a question for a full training, which this bench does not
answer. Writes docs/bench_train_speed.md and its JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from audio_lottery.config import load_config
from audio_lottery.data.pipeline.feature_cache import shared_cache
from audio_lottery.layout import TrainLayout
from audio_lottery.train.loop import train_model
from results_io import training_conditions, write_page

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "bench_train_speed.md"
BASELINE = "float32"


@dataclass(frozen=True)
class Variant:
    name: str
    amp: str
    cache_mb: int


VARIANTS = (Variant(BASELINE, "off", 0), Variant("float32 + cache", "off", 2048),
            Variant("bf16", "bf16", 0), Variant("bf16 + cache", "bf16", 2048))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "ds2_demo.yaml"))
    p.add_argument("--utterances", type=int, default=900, help="training utterances (the first of the manifest)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=DOC)
    return p.parse_args(argv)


def epoch_log(metrics: Path) -> dict[int, dict]:
    """Per epoch: training seconds spent in it and its logged losses (the step log of metrics.jsonl)."""
    steps = [e for e in map(json.loads, metrics.read_text().splitlines()) if "loss" in e and "event" not in e]
    out: dict[int, dict] = {}
    previous_end = 0.0
    for epoch in sorted({e["epoch"] for e in steps}):
        rows = [e for e in steps if e["epoch"] == epoch]
        out[epoch] = {"seconds": rows[-1]["train_seconds"] - previous_end, "losses": [e["loss"] for e in rows]}
        previous_end = rows[-1]["train_seconds"]
    return out


def train_once(args: argparse.Namespace, variant: Variant, work: Path) -> dict:
    """Two epochs of ``variant`` in a fresh folder: the timed (second) epoch's seconds and the losses."""
    cfg = load_config(args.config, [f"data.max_train_utterances={args.utterances}", "data.max_eval_utterances=20",
                                    "train.epochs=2", "train.log_every_steps=1", f"train.threads={args.threads}",
                                    f"train.amp={variant.amp}", f"data.feature_cache_mb={variant.cache_mb}"])
    out = work / f"{variant.name.replace(' + ', '_')}"
    shared_cache(0)  # every training starts without cached features (the process's cache outlives a training)
    train_model(cfg, out, progress=False)
    log = epoch_log(TrainLayout(out).metrics)
    if sorted(log) != [0, 1]:
        raise RuntimeError(f"{out}: expected a step log of epochs 0 and 1, got {sorted(log)}")
    return {"seconds": log[1]["seconds"], "losses": log[0]["losses"] + log[1]["losses"],
            "epoch2_mean_loss": statistics.fmean(log[1]["losses"])}


def measure(args: argparse.Namespace) -> dict[str, list[dict]]:
    """Every variant once per round, the order rotated each round."""
    runs: dict[str, list[dict]] = {v.name: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench_train_speed_") as tmp:
        for r in range(args.rounds):
            for variant in VARIANTS[r % len(VARIANTS):] + VARIANTS[: r % len(VARIANTS)]:
                runs[variant.name].append(train_once(args, variant, Path(tmp) / f"round{r}"))
                print(f"round {r + 1}/{args.rounds} {variant.name}: epoch 2 "
                      f"{runs[variant.name][-1]['seconds']:.1f} s", flush=True)
    return runs


def summarise(runs: dict[str, list[dict]]) -> dict:
    """Median epoch seconds and per-round ratios to the float32 baseline; the cache's identity check."""
    rounds = len(runs[BASELINE])
    rows = {}
    for name, results in runs.items():
        ratios = [runs[BASELINE][i]["seconds"] / results[i]["seconds"] for i in range(rounds)]
        rows[name] = {"epoch_s": round(statistics.median(r["seconds"] for r in results), 1),
                      "speedup": round(statistics.median(ratios), 2), "speedup_min": round(min(ratios), 2),
                      "speedup_max": round(max(ratios), 2),
                      "epoch2_mean_loss": round(statistics.fmean(r["epoch2_mean_loss"] for r in results), 4)}
    identical = all(a["losses"] == b["losses"] for a, b in zip(runs[BASELINE], runs["float32 + cache"]))
    deterministic = all(r["losses"] == runs[BASELINE][0]["losses"] for r in runs[BASELINE])
    return {"rows": rows, "cache_identical": identical, "float32_repeatable": deterministic, "rounds": rounds,
            "epoch_s_per_round": {name: [round(r["seconds"], 2) for r in results] for name, results in runs.items()}}


def cpu_bf16() -> str:
    """Whether this CPU has bfloat16 instructions (Linux: the avx512_bf16 or amx_bf16 flag of /proc/cpuinfo)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "whether this CPU has bfloat16 instructions is unknown"
    found = sorted(flags & {"avx512_bf16", "amx_bf16"})
    return f"this CPU has {' and '.join(f.upper().replace('_', '-') for f in found)}" if found else \
        "this CPU has no bfloat16 instructions, so expect little gain"


def markdown(args: argparse.Namespace, summary: dict) -> tuple[str, list[str]]:
    rows, both = summary["rows"], summary["rows"]["bf16 + cache"]
    cache, bf16 = rows["float32 + cache"], rows["bf16"]
    verdicts = [
        f"- Result: the feature cache alone makes a float32 epoch {cache['speedup']}x as fast "
        f"({cache['speedup_min']}-{cache['speedup_max']} over the rounds), bf16 autocast alone "
        f"{bf16['speedup']}x ({bf16['speedup_min']}-{bf16['speedup_max']}), both together {both['speedup']}x "
        f"({both['speedup_min']}-{both['speedup_max']}) (medians of {summary['rounds']} rounds, {args.threads} threads).",
        "- Result: the feature cache changes no number: float32 with and without it logged identical losses at "
        "every step of every round." if summary["cache_identical"] else
        "- Result: the feature cache changed the logged losses of float32 training (a fault: it must not).",
    ]
    lines = [
        "# Training speed on CPU: bf16 autocast and the feature cache (bench/bench_train_speed.py)",
        "",
        f"Preset `{Path(args.config).name}` on the first {args.utterances} training utterances, 2 epochs per "
        f"training, epoch 2 timed (epoch 1 fills the cache, which every training starts without); "
        f"{summary['rounds']} interleaved rounds; torch {torch.__version__}, {args.threads} threads.",
        "",
        "| variant | train.amp | data.feature_cache_mb | epoch 2 (s, median) | speed-up vs float32 (median) | "
        "range over rounds | epoch-2 mean loss |",
        "|---|---|---|---|---|---|---|",
    ]
    for v in VARIANTS:
        r = rows[v.name]
        lines.append(f"| {v.name} | {v.amp} | {v.cache_mb} | {r['epoch_s']} | {r['speedup']} | "
                     f"{r['speedup_min']}-{r['speedup_max']} | {r['epoch2_mean_loss']} |")
    lines += ["", *verdicts, "",
              "The cache keeps the un-augmented features of an utterance (SpecAugment masks a copy each epoch) when "
              "no waveform augmentation and no VTLP is on (the demo preset); otherwise it keeps the decoded audio "
              "(ds2_small, which uses VTLP: docs/bench_audio_read.md measures that). bf16 autocast runs the "
              f"convolutions, LSTMs and linear layers in bfloat16 ({cpu_bf16()}); "
              "the CTC log-probabilities and loss stay float32. Each variant sets `train.amp` itself; it is off by "
              f"default, and the preset `{Path(args.config).name}` trains with `train.amp: "
              f"{load_config(args.config).train.amp}`.",
              f"Float32 trainings repeat exactly across rounds: {'yes' if summary['float32_repeatable'] else 'no'}.",
              ""]
    return "\n".join(lines), verdicts


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    summary = summarise(measure(args))
    text, verdicts = markdown(args, summary)
    cfg = load_config(args.config)
    write_page(args.out, text, verdicts=verdicts,
               figures={"bf16_cache_speedup": summary["rows"]["bf16 + cache"]["speedup"],
                        "cache_speedup": summary["rows"]["float32 + cache"]["speedup"],
                        "bf16_speedup": summary["rows"]["bf16"]["speedup"]},
               conditions={**training_conditions(cfg), "torch_threads": args.threads},
               data={"variants": summary["rows"], "epoch_s_per_round": summary["epoch_s_per_round"],
                     "cache_identical": summary["cache_identical"],
                     "float32_repeatable": summary["float32_repeatable"], "utterances": args.utterances})
    print(text)
    return 0 if summary["cache_identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
