"""ds2_small on the embedded corpus: test WER/CER (greedy), throughput, wall time, learning curve.

    python bench/bench_ds2_small.py [--run runs/ds2_small_bench] [--minutes 30]

Trains the preset for at most ``--minutes`` of training time (resuming/reusing ``--run`` when
it exists), evaluates the best-dev checkpoint on test, and writes docs/bench_ds2_small.md and
docs/plots/ds2_small_curve.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from audio_lottery.config import load_config  # noqa: E402
from audio_lottery.data.manifest import read_manifest  # noqa: E402
from audio_lottery.eval.evaluate import evaluate  # noqa: E402
from audio_lottery.layout import TrainLayout  # noqa: E402
from audio_lottery.eval.metrics import error_rates  # noqa: E402
from audio_lottery.recognizer import Recognizer  # noqa: E402
from audio_lottery.provenance import corpus_version  # noqa: E402
from audio_lottery.train.loop import train_model  # noqa: E402
from results_io import write_page  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGET_CER, TARGET_WER = 0.15, 0.40  # test, after at most 30 min of training on 2 cores (the issue)


def load_metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in TrainLayout(run).metrics.read_text().splitlines() if x.strip()]


def curve_plot(dev: list[dict], out: Path) -> None:
    minutes = [d["train_seconds"] / 60 for d in dev]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(minutes, [d["dev_wer"] for d in dev], "o-", label="dev WER")
    ax.plot(minutes, [d["dev_cer"] for d in dev], "s-", label="dev CER")
    ax.axhline(0.40, color="C0", ls=":", lw=1, label="WER target 0.40")
    ax.axhline(0.15, color="C1", ls=":", lw=1, label="CER target 0.15")
    ax.set_xlabel("training time (min, 2 cores)")
    ax.set_ylabel("error rate")
    ax.set_ylim(0, min(1.2, max(d["dev_wer"] for d in dev) + 0.05))
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("ds2_small on the embedded corpus")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def subset_rows(records: list[dict], hyps: dict[str, str]) -> list[str]:
    """WER/CER of the test set split by seen/unseen voice and by engine."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault("seen voices" if r.get("seen_voice", True) else "unseen voices", []).append(r)
        key = f"{r.get('engine', '?')}, {'seen' if r.get('seen_voice', True) else 'unseen'}"
        groups.setdefault(key, []).append(r)
    rows = []
    for name in sorted(groups, key=lambda k: ("," in k, k)):
        recs = groups[name]
        er = error_rates([r["text"] for r in recs], [hyps[r["id"]] for r in recs])
        rows.append(f"| {name} | {len(recs)} | {er['wer']:.3f} | {er['cer']:.3f} |")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--run", default=str(ROOT / "runs" / "ds2_small_bench"))
    p.add_argument("--config", default=str(ROOT / "configs" / "ds2_small.yaml"))
    p.add_argument("--data", default=str(ROOT / "data" / "synth"))
    p.add_argument("--minutes", type=float, default=30.0)
    args = p.parse_args()
    data = Path(args.data)
    cfg = load_config(args.config, [f"data.{s}_manifest={data / f'{s}.jsonl'}" for s in ("train", "dev", "test")]
                      + [f"train.max_minutes={args.minutes}", "train.epochs=40"])
    run = Path(args.run)
    result = train_model(cfg, run)
    metrics = load_metrics(run)
    dev = [m for m in metrics if "dev_wer" in m]
    wall = metrics[-1]["time"] - metrics[0]["time"]
    first_nonblank = next((d for d in dev if d.get("dev_nonblank", 0) >= 0.5), None)
    rec = Recognizer.load(TrainLayout(run).best)
    t0 = time.perf_counter()
    test = evaluate(rec, read_manifest(cfg.data.test_manifest))
    decode_s = time.perf_counter() - t0
    test_records = read_manifest(cfg.data.test_manifest)
    test_audio = sum(r["duration"] for r in test_records)
    subsets = subset_rows(test_records, test["hyps"])
    train_hours = sum(r["duration"] for r in read_manifest(cfg.data.train_manifest)
                      if cfg.data.min_duration <= r["duration"] <= cfg.data.max_duration) / 3600
    curve_plot(dev, ROOT / "docs" / "plots" / "ds2_small_curve.png")
    rows = [
        ("parameters", f"{sum(p.numel() for p in rec.model.parameters()):,}"),
        ("training audio", f"{result['kept']} utterances ({train_hours:.2f} h)"),
        ("training time (excl. dev evaluation)", f"{result['train_seconds'] / 60:.1f} min, {result['epochs']} epochs"),
        ("wall time incl. dev evaluation", f"{wall / 60:.1f} min"),
        ("training throughput", f"{result['audio_seconds_per_second']:.1f} audio s per wall s"),
        ("first dev pass (once per epoch) with >= 50 % non-empty hypotheses",
         f"{first_nonblank['train_seconds'] / 60:.1f} min (epoch {first_nonblank['epoch']})" if first_nonblank else "never"),
        ("best dev epoch", f"{result['best_epoch']} (dev WER {result['best_dev_wer']:.3f}, CER {result['best_dev_cer']:.3f})"),
        ("**test WER (greedy)**", f"**{test['wer']:.3f}**"),
        ("**test CER (greedy)**", f"**{test['cer']:.3f}**"),
        ("test decoding real-time factor", f"{decode_s / test_audio:.4f} (batched, 2 threads)"),
    ]
    lines = [
        "# ds2_small on the embedded corpus", "",
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores ({platform.machine()}), torch threads "
        f"{cfg.train.threads}, by `python bench/bench_ds2_small.py --minutes {args.minutes:g}`.", "",
        "| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows], "",
        f"Targets (issue): after at most 30 min of training on 2 cores, test CER <= {TARGET_CER} and WER <= "
        f"{TARGET_WER} (stretch WER <= 0.25). The test set holds one unseen voice per engine for half of its utterances.",
        "",
        f"Result: test CER {test['cer']:.3f} (target <= {TARGET_CER}): {'met' if test['cer'] <= TARGET_CER else 'not met'}; "
        f"test WER {test['wer']:.3f} (target <= {TARGET_WER}): {'met' if test['wer'] <= TARGET_WER else 'not met'}.", "",
        "Test set by subset (voices held out of training vs voices seen in training; per engine):", "",
        "| subset | utterances | WER | CER |", "|---|---|---|---|", *subsets, "",
        "![learning curve](plots/ds2_small_curve.png)", "",
        "| epoch | train min | dev WER | dev CER | non-empty hyps |", "|---|---|---|---|---|",
        *[f"| {d['epoch']} | {d['train_seconds'] / 60:.1f} | {d['dev_wer']:.3f} | {d['dev_cer']:.3f} | "
          f"{d.get('dev_nonblank', float('nan')):.2f} |" for d in dev],
    ]
    write_page(ROOT / "docs" / "bench_ds2_small.md", "\n".join(lines) + "\n", conditions=corpus_version(data))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
