"""Run every benchmark in turn; each prints its figures and writes its docs/bench_*.md and .json;
docs/results.md is regenerated from the JSON at the end (bench/make_results.py).

    python bench/run_all.py [--skip-training] [--skip-robustness] [--lottery-run runs/lottery_<hash> [--noise]] [--transfer] [--augment]
                            [--demo-timings runs/lottery_<hash>/demo_timings.json]

Benchmarks run one after another (never in parallel: CPU timings on a shared machine are
only meaningful as ratios measured in one quiet run).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "src"))

from audio_lottery.layout import DEMO_TIMINGS, RUN_PREFIX, TrainLayout  # noqa: E402


def run(script: str, *args: str) -> None:
    print(f"\n=== {script} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, str(BENCH / script), *args], check=True)


def earlier(page: str) -> list[str]:
    """The result JSONs of earlier runs of a bench page kept in docs/history (``<page>_<what>.json``),
    relative to the working directory (the pages quote their command)."""
    return [os.path.relpath(p) for p in sorted((BENCH.parent / "docs" / "history").glob(f"{page}_*.json"))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--skip-training", action="store_true", help="skip the 60-minute ds2_small training (on a 32 h split)")
    p.add_argument("--lottery-run", help="summarise this lottery run (e.g. the one `make demo` made)")
    p.add_argument("--noise", action="store_true", help="with --lottery-run: the noise table (~30 min, 6 trainings)")
    p.add_argument("--transfer", action="store_true", help="the espeak -> flite+festival transfer table "
                   "(19 trainings on halves of the corpus, ~50 min)")
    p.add_argument("--augment", action="store_true", help="the augmentation ablation (~4-5 h: 6 arms x 2 seeds x "
                   "20 min of ds2_small training)")
    p.add_argument("--skip-robustness", action="store_true", help="skip the kill-and-resume matrix (~15 tiny runs)")
    p.add_argument("--demo-timings", help=f"a make demo timings file (runs/{RUN_PREFIX}<hash>/{DEMO_TIMINGS}) for results.md")
    args = p.parse_args()
    run("bench_synth.py", "0.1", "2")
    run("bench_voices.py")  # the voice catalogue: licences, speed and Whisper tiny.en WER per voice (~5 min)
    run("bench_asterisk_corpus.py")  # prepares data/asterisk, writes docs/bench_asterisk_corpus.md
    if importlib.util.find_spec("faster_whisper"):  # the [parity] extra
        run("bench_whisper_parity.py")  # Whisper tiny.en vs faster-whisper on asterisk test (~10-30 min, 1 thread)
    run("bench_features.py")
    run("bench_mask_overhead.py")
    run("bench_train_speed.py")  # bf16 autocast and the feature cache on the demo preset (~15 min)
    run("bench_ddp.py")
    run("bench_inference.py")  # speed and sizes on pruned random weights; pass --run for trained tickets
    if not args.skip_training:
        run("bench_ds2_small.py")
    if TrainLayout(BENCH.parent / "runs" / "ds2_small_bench").best.is_file():
        run("bench_lm.py")  # LM decoding of the ds2_small checkpoint
    if args.lottery_run:  # the earlier runs kept in docs/history go beside the new one
        run("bench_lottery.py", args.lottery_run, "--bootstrap", "--previous", *earlier("bench_lottery_demo"))
    if args.lottery_run and args.noise:
        run("bench_noise.py", "--run", args.lottery_run, "--previous", *earlier("bench_noise"))
    if args.transfer:
        run("bench_transfer.py", "--levels", "1,2,3,4", "--finetune", "--set", "prune.fraction=0.36",
            "--previous", *earlier("bench_transfer"))
    if args.augment:
        run("bench_augment.py")
    if not args.skip_robustness:
        run("bench_robustness.py")
    run("make_results.py", *(["--demo-timings", args.demo_timings] if args.demo_timings else []))


if __name__ == "__main__":
    main()
