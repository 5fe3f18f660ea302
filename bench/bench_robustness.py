"""Robustness figures: kill points survived, bad-input cases handled, hypothesis properties.

* **Crash safety** -- a two-level lottery run of the tiny preset (2 epochs per level) is
  SIGKILLed at every kill point of :func:`audio_lottery.testing.crash.kill_points` (one
  fresh run per point), rerun, and compared with an uninterrupted run: identical masks and
  final weights, WER/CER within 1e-6, finished levels untouched, no temporary file left.
  Then one run is killed six times in a row, and a Conformer (dropout) training is killed
  mid-epoch and resumed.
* **Bad inputs** -- :func:`audio_lottery.testing.badcorpus.write_bad_corpus` cases, each
  run through the training path's checks (skipped and counted, used after conversion, or
  refused with the file and line named).
* **Properties** -- ``tests/test_properties.py`` with hypothesis statistics.

Run: ``.venv/bin/python bench/bench_robustness.py`` (about 15 tiny lottery runs: minutes on
a quiet machine; writes docs/bench_robustness.md). ``--quick`` checks the script with
three kill points on a one-level run.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from audio_lottery.config import load_config
from audio_lottery.data.manifest import read_manifest
from audio_lottery.files import read_json
from audio_lottery.layout import LAST_JSON, LAST_TENSORS, RunLayout, TrainLayout
from audio_lottery.testing import crash
from results_io import write_page
from audio_lottery.testing.badcorpus import observe, write_bad_corpus

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "bench_robustness.md"
TINY = ROOT / "configs" / "ds2_tiny.yaml"
EPOCHS = 2


def overrides(data: Path) -> list[str]:
    return [f"data.{s}_manifest={data / f'{s}.jsonl'}" for s in ("train", "dev", "test")] + [
        f"train.epochs={EPOCHS}", "train.threads=1"]


def crash_section(data: Path, work: Path, levels: int, quick: bool, env: dict) -> tuple[list[str], int, int]:
    ref_root = work / "reference"
    cmd = crash.lottery_command(TINY, ref_root, levels, overrides(data))
    started = time.perf_counter()
    ref = crash.run(cmd, env=env)
    if ref.returncode != 0:
        raise SystemExit(f"reference run failed: {ref.stderr[-2000:]}")
    ref_seconds = time.perf_counter() - started
    ref_dir = Path(ref.stdout.strip().splitlines()[-1])
    train = read_json(RunLayout(ref_dir).level(0).train.result)
    points = crash.kill_points(train["steps"] // train["epochs"], EPOCHS, levels)
    if quick:
        points = [points[1], points[4], points[-2]]
    rows = ["| # | kill point (`AUDIO_LOTTERY_KILL_AT`) | moment | levels finished before | temp files after kill "
            "| survived | seconds |", "|---|---|---|---|---|---|---|"]
    survived = 0
    for i, point in enumerate(points, 1):
        root = work / f"kill_{i:02d}"
        t0 = time.perf_counter()
        out = crash.kill_and_resume(crash.lottery_command(TINY, root, levels, overrides(data)), root, ref_dir,
                                    point, env=env)
        survived += out.ok
        verdict = "yes" if out.ok else "NO: " + "; ".join(out.problems)[:300].replace("|", "/")
        rows.append(f"| {i} | `{point.spec}` | {point.moment} | {', '.join(out.finished_before) or '-'} "
                    f"| {out.temps_after_kill} | {verdict} | {time.perf_counter() - t0:.0f} |")
        print(rows[-1], flush=True)
    total = len(points)
    if not quick:
        ok, line = repeated_kills(data, work / "chain", ref_dir, levels, train["steps"], env)
        survived, total = survived + ok, total + 1
        rows.append(line)
        ok, line = dropout_resume(data, work / "dropout", env)
        survived, total = survived + ok, total + 1
        rows.append(line)
        print(rows[-2], rows[-1], sep="\n", flush=True)
    head = [f"Reference run (uninterrupted, {levels + 1} levels x {EPOCHS} epochs of {train['steps'] // EPOCHS} "
            f"steps): {ref_seconds:.0f} s wall.", ""]
    return head + rows, survived, total


def repeated_kills(data: Path, root: Path, ref_dir: Path, levels: int, steps: int, env: dict) -> tuple[bool, str]:
    cmd = crash.lottery_command(TINY, root, levels, overrides(data))
    chain = ["train.step:3", f"write:{LAST_JSON}:{EPOCHS}", "runner.pruned:1", f"write:{LAST_TENSORS}:1",
             f"train.step:{steps + 2}", "report.write:1"]
    problems = [f"{spec}: not reached" for spec in chain if not crash.was_killed(crash.run(cmd, spec, env=env))]
    final = crash.run(cmd, env=env)
    problems += [] if final.returncode == 0 else [f"final rerun failed: {final.stderr[-300:]}"]
    if not problems:
        problems = crash.compare_runs(root / ref_dir.name, ref_dir)
    verdict = "yes" if not problems else "NO: " + "; ".join(problems)[:300]
    return not problems, (f"| chain | `{' -> '.join(chain)}` | one run killed six times, then finished | - | - "
                          f"| {verdict} | - |")


def dropout_resume(data: Path, root: Path, env: dict) -> tuple[bool, str]:
    from audio_lottery.files import load_tensors
    from audio_lottery.train.checkpoint import model_tensors

    def cmd(out: Path) -> list[str]:
        args = [sys.executable, "-m", "audio_lottery.cli", "-q", "train", "--config",
                str(ROOT / "configs" / "conformer_tiny.yaml"), "--out", str(out)]
        return args + sum((["--set", o] for o in overrides(data)), [])

    ok = crash.run(cmd(root / "ref"), env=env).returncode == 0
    steps = read_json(TrainLayout(root / "ref").result)["steps"] // EPOCHS if ok else 0
    ok = ok and crash.was_killed(crash.run(cmd(root / "run"), f"train.step:{steps + 2}", env=env))
    ok = ok and crash.run(cmd(root / "run"), env=env).returncode == 0
    if ok:
        a = model_tensors(load_tensors(TrainLayout(root / "ref").last))
        b = model_tensors(load_tensors(TrainLayout(root / "run").last))
        ok = all(torch.equal(a[k], b[k]) for k in a)
    return ok, (f"| dropout | `train.step:{steps + 2}` | Conformer-CTC (dropout 0.1) training, mid-epoch 2 | - | - "
                f"| {'yes (bit-identical weights)' if ok else 'NO'} | - |")


def fuzz_section(data: Path, work: Path) -> tuple[list[str], int, int]:
    corpus = write_bad_corpus(work / "bad", read_manifest(data / "train.jsonl")[:6])
    cfg = load_config(TINY, overrides(data))
    obs = observe(corpus, cfg, work / "bad")
    rows = ["| case | expected | observed | handled | message (start) |", "|---|---|---|---|---|"]
    for o in obs:
        msg = o.message.splitlines()[0][:110].replace("|", "/") if o.message else ""
        rows.append(f"| {o.case.name} | {o.case.outcome} | {o.outcome} | {'yes' if o.handled else 'NO'} | {msg} |")
    return rows, sum(o.handled for o in obs), len(obs)


def properties_section(env: dict) -> tuple[list[str], int, int, int]:
    started = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA",
                          "--hypothesis-show-statistics", str(ROOT / "tests" / "test_properties.py")],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - started
    passed = len(re.findall(r"^PASSED ", res.stdout, re.M))
    failed = len(re.findall(r"^(FAILED|ERROR) ", res.stdout, re.M))
    examples = sum(int(n) for n in re.findall(r"(\d+) passing(?: examples?)?,", res.stdout))
    rows = [f"{passed} properties passed, {failed} failed, {examples} generated examples in all, "
            f"{seconds:.1f} s wall (pytest included)."]
    return rows, passed, passed + failed, examples


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="a tiny corpus (default: synthesise one, 0.04 h)")
    p.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    p.add_argument("--quick", action="store_true", help="three kill points on a one-level run")
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_robustness_"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    data = args.data
    if data is None:
        from audio_lottery.data.corpora.synth import synthesize_corpus

        data = work / "tiny"
        synthesize_corpus(data, hours=0.04, seed=0, workers=1, progress=False)
    levels = 1 if args.quick else 2
    fuzz, handled, cases = fuzz_section(data, work)
    print(f"bad inputs handled: {handled}/{cases}", flush=True)
    props, prop_ok, prop_n, examples = properties_section(env)
    print(props[0], flush=True)
    kills, survived, points = crash_section(data, work, levels, args.quick, env)
    print(f"kill points survived: {survived}/{points}", flush=True)
    doc = [
        "# Robustness figures", "",
        f"Written by `bench/bench_robustness.py{' --quick' if args.quick else ''}` on {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}. Narrative and guarantees: [robustness.md](robustness.md).",
        "", "| figure | value |", "|---|---|",
        f"| kill points survived (nothing lost, same masks/weights/WER) | **{survived} / {points}** |",
        f"| bad-input cases handled (skipped+counted, converted, or refused naming file and line) | **{handled} / {cases}** |",
        f"| hypothesis properties passing | **{prop_ok} / {prop_n}** ({examples} examples) |",
        "", "## Kill points", "", *kills, "", "## Bad inputs", "", *fuzz, "", "## Properties", "", *props, "",
    ]
    write_page(DOC, "\n".join(doc))
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
