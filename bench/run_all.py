"""Run every benchmark in turn; each prints its figures and writes its docs/bench_*.md.

    python bench/run_all.py [--skip-training] [--lottery-run runs/lottery_<hash>]

Benchmarks run one after another (never in parallel: CPU timings on a shared machine are
only meaningful as ratios measured in one quiet run).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def run(script: str, *args: str) -> None:
    print(f"\n=== {script} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, str(BENCH / script), *args], check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--skip-training", action="store_true", help="skip the 30-minute ds2_small training")
    p.add_argument("--lottery-run", help="summarise this lottery run (e.g. the one `make demo` made)")
    args = p.parse_args()
    run("bench_synth.py", "0.1", "2")
    run("bench_features.py")
    run("bench_mask_overhead.py")
    run("bench_inference.py")  # speed and sizes on pruned random weights; pass --run for trained tickets
    if not args.skip_training:
        run("bench_ds2_small.py")
    if args.lottery_run:
        run("bench_lottery.py", args.lottery_run)


if __name__ == "__main__":
    main()
