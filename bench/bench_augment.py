"""Ablation of the training augmentations: ds2_small trained with each one on its own against none.

    python bench/bench_augment.py [--minutes 20] [--seeds 0 1] [--arms none,speed,...] [--data data/synth]
                                  [--asterisk data/asterisk/test.jsonl] [--runs runs/bench_augment]
                                  [--doc docs/bench_augment.md] [--set KEY=VALUE ...] [--jobs N] [--quick]

Every arm trains the preset (``--config``, default configs/ds2_small.yaml) for at most ``--minutes``
of training time per seed, from the same start with only ``data.augment`` changed: ``none`` has every
augmentation off (the preset's SpecAugment too), each other arm switches exactly one on. The best-dev
checkpoint of each run is scored on the test set (overall and on the voices held out of training,
``seen_voice: false``) and, when it is prepared, on the real-speech asterisk test split (records with
``raw_text`` scored through Whisper's English normaliser, as ``eval`` does). A difference counts only
when the mean over seeds differs from ``none`` by at least 3 points. Finished runs and their scores
are reused (each run folder is named by its arm, seed and configuration hash), so an interrupted
bench resumes where it stopped. ``--jobs N`` trains N runs side by side in their own processes, the
preset's ``train.threads`` split between them (the page says so; every arm runs under the same
conditions, so the differences stay fair, but each run gets less done in its minutes than alone).
Writes the page and its result JSON (results_io.write_page).

``--quick``: one seed and, unless ``--data`` is given, a tiny synthesised corpus: a smoke test of the
bench itself (pair it with a small ``--minutes`` and a ``--doc`` outside docs/).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import fields
from pathlib import Path

from audio_lottery.cli.common import add_set_arg
from audio_lottery.config import AugmentConfig, Config, config_hash, load_config
from audio_lottery.data.manifest import read_manifest
from audio_lottery.eval.evaluate import evaluate
from audio_lottery.eval.real_speech import real_test_manifest
from audio_lottery.files import atomic_write_json, file_fingerprint, read_json_or_none
from audio_lottery.layout import TrainLayout
from audio_lottery.lottery.branches import threads_per_job
from audio_lottery.provenance import corpus_version
from audio_lottery.recognizer import Recognizer
from audio_lottery.train.loop import train_model
from quick import ROOT, manifests, md_table, subset_scores, tiny_corpus
from results_io import command_line, write_page

# what each arm turns on; every arm starts from NONE: every mask count and probability of the
# augmentation config at zero, so an augmentation the preset itself switches on is off too
NONE = [f"data.augment.{f.name}={0 if f.name.endswith('_masks') else 0.0}" for f in fields(AugmentConfig)
        if f.name.endswith(("_masks", "_prob"))]
ARMS: dict[str, list[str]] = {
    "none": [],
    "specaugment": ["data.augment.freq_masks=1", "data.augment.freq_width=15", "data.augment.time_masks=1",
                    "data.augment.time_width=40"],  # ds2_small's own SpecAugment
    "speed": ["data.augment.speed_prob=1.0"],  # factors 0.9 / 1.0 / 1.1
    "vtlp": ["data.augment.vtlp_prob=1.0"],  # warp ~ U[0.9, 1.1]
    "reverb": ["data.augment.reverb_prob=0.5"],
    "telephone": ["data.augment.telephone_prob=0.5"],
}
THRESHOLD = 3.0  # points (percent of WER/CER) a mean difference must reach to count
MIN_SEEDS, MIN_MINUTES = 2, 20.0  # an ablation shorter than this is marked preliminary on its page
METRICS = [("test", "wer"), ("test", "cer"), ("held_out", "wer"), ("held_out", "cer"), ("asterisk", "wer"),
           ("asterisk", "cer")]
SCORES = "bench_augment_scores.json"  # beside each run's training folder


def arm_config(base: Path, arm: str, seed: int, data: list[str], minutes: float, extra: list[str]) -> Config:
    """The configuration of one run: the preset, all augmentation off, then the arm's own switch."""
    return load_config(base, [*data, *NONE, *ARMS[arm], f"train.seed={seed}", f"train.max_minutes={minutes}",
                              "train.epochs=40", *extra])


def run_dir(runs: Path, arm: str, seed: int, cfg: Config) -> Path:
    return runs / f"{arm}-seed{seed}-{config_hash(cfg)[:10]}"


def score_run(run: Path, test: Path, asterisk: Path | None) -> dict:
    """Test (overall, held-out voices) and asterisk scores of a run's best checkpoint, cached in the run folder."""
    key = {"test": file_fingerprint(test), "asterisk": file_fingerprint(asterisk) if asterisk else None}
    cache = run / SCORES
    saved = read_json_or_none(cache)
    if saved and saved.get("key") == key:
        return saved["scores"]
    rec = Recognizer.load(TrainLayout(run).best)
    test_records = read_manifest(test)
    hyps = evaluate(rec, test_records)["hyps"]
    scores = {"test": subset_scores(test_records, hyps),
              "held_out": subset_scores([r for r in test_records if r.get("seen_voice") is False], hyps)}
    if asterisk:
        ast_records = read_manifest(asterisk)
        ast = evaluate(rec, ast_records)
        scores["asterisk"] = {"wer": ast["wer"], "cer": ast["cer"], "utterances": len(ast_records)}
    atomic_write_json(cache, {"key": key, "scores": scores})
    return scores


def train_and_score(cfg: Config, run: Path, asterisk: Path | None, progress: bool = True) -> dict:
    """Train one run (at once when it is finished) and score its best checkpoint."""
    import torch

    train_model(cfg, run, progress=progress)
    torch.set_num_threads(cfg.train.threads)  # scoring at the run's own thread count, also when it was done
    return score_run(run, Path(cfg.data.test_manifest), asterisk)


def run_all(plan: list[tuple[str, Config, Path]], asterisk: Path | None, jobs: int) -> dict[str, list[dict]]:
    """Scores per arm, in ``plan``'s order; with ``jobs`` > 1 the runs train side by side in that many
    processes (each configuration already carries its share of the threads)."""
    scores: dict[str, list[dict]] = {}
    if jobs == 1:
        for arm, cfg, run in plan:
            print(f"=== {arm}, seed {cfg.train.seed}: {run}", flush=True)
            scores.setdefault(arm, []).append(train_and_score(cfg, run, asterisk))
        return scores
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(train_and_score, cfg, run, asterisk, False) for _, cfg, run in plan]
        for (arm, cfg, run), future in zip(plan, futures):
            scores.setdefault(arm, []).append(future.result())
            print(f"=== {arm}, seed {cfg.train.seed}: {run} scored", flush=True)
    return scores


def mean_of(runs: list[dict], subset: str, metric: str) -> float | None:
    values = [r[subset][metric] for r in runs if r.get(subset)]
    return statistics.fmean(values) if values else None


def summarise(scores: dict[str, list[dict]]) -> dict[str, dict]:
    """Per arm: mean over seeds of each metric (points) and its difference from ``none``."""
    out = {}
    for arm, runs in scores.items():
        means = {f"{s}_{m}": mean_of(runs, s, m) for s, m in METRICS}
        out[arm] = {"seeds": len(runs), **{k: None if v is None else 100 * v for k, v in means.items()}}
    base = out.get("none")
    for arm, row in out.items():
        row["diff"] = {k: (row[k] - base[k] if base and row[k] is not None and base[k] is not None else None)
                       for k in (f"{s}_{m}" for s, m in METRICS)}
    return out


def rounded(obj):
    """``obj`` with every float rounded to 2 decimals (points of WER/CER)."""
    if isinstance(obj, dict):
        return {k: rounded(v) for k, v in obj.items()}
    return round(obj, 2) if isinstance(obj, float) else obj


def verdict(row: dict) -> str:
    """helps / hurts / mixed / no difference, counting only differences of at least THRESHOLD points
    as the page shows them (one decimal), so a difference printed as 3.0 counts."""
    counted = {k: d for k, d in row["diff"].items() if d is not None and abs(round(d, 1)) >= THRESHOLD}
    better, worse = [k for k, d in counted.items() if d < 0], [k for k, d in counted.items() if d > 0]
    if better and not worse:
        return "helps"
    if worse and not better:
        return "hurts"
    return "mixed" if better else "no difference"


def fmt(value: float | None, signed: bool = False) -> str:
    return "–" if value is None else (f"{value:+.1f}" if signed else f"{value:.1f}")


def markdown(summary: dict, scores: dict[str, list[dict]], args, setup: dict) -> str:
    """The page (its last line is the Result verdict)."""
    cols = [f"{s}_{m}" for s, m in METRICS]
    names = {"test_wer": "test WER", "test_cer": "test CER", "held_out_wer": "held-out WER",
             "held_out_cer": "held-out CER", "asterisk_wer": "asterisk WER", "asterisk_cer": "asterisk CER"}
    rows = [[arm, str(r["seeds"]), *[fmt(r[c]) for c in cols], verdict(r) if arm != "none" else "(baseline)"]
            for arm, r in summary.items()]
    diff_rows = [[arm, *[fmt(r["diff"][c], signed=True) for c in cols]] for arm, r in summary.items() if arm != "none"]
    seed_rows = [[arm, str(i), *[fmt(100 * run[s][m]) if run.get(s) else "–" for s, m in METRICS]]
                 for arm, runs in scores.items() for i, run in zip(args.seeds, runs)]
    groups = {v: [a for a, r in summary.items() if a != "none" and verdict(r) == v]
              for v in ("helps", "hurts", "mixed", "no difference")}
    result = (f"Result: with {len(args.seeds)} seed(s) of {args.minutes:g} min per run, keep "
              + (", ".join(groups["helps"]) or "none of them") + f" (a difference of at least "
              f"{THRESHOLD:g} points, mean over seeds, and none against it); hurts: {', '.join(groups['hurts']) or 'none'}; "
              f"mixed: {', '.join(groups['mixed']) or 'none'}; no difference that counts: "
              f"{', '.join(groups['no difference']) or 'none'}.")
    if len(args.seeds) < MIN_SEEDS or args.minutes < MIN_MINUTES:
        result += f" Preliminary: the issue's ablation asks for {MIN_SEEDS} seeds of {MIN_MINUTES:g} min."
    threads = f"{setup['threads']} torch thread" + ("s" if setup["threads"] != 1 else "")
    lines = [
        "# Augmentation ablation (ds2_small)", "",
        f"Measured {time.strftime('%Y-%m-%d')}, by `{setup['command']}`: the preset `{setup['config']}` trained for at "
        f"most {args.minutes:g} min of training time per run, seeds {', '.join(map(str, args.seeds))}, every arm from "
        "the same start with all augmentation off except its own; "
        + (f"{setup['jobs']} runs side by side at {threads} each. " if setup["jobs"] > 1
           else f"one run at a time at {threads}. ")
        + "Greedy decoding of the best-dev checkpoint. "
        f"Test set: {setup['test_utterances']} utterances, {setup['held_out_utterances']} of them from voices held "
        f"out of training; asterisk (real speech, Whisper-normalised): {setup['asterisk']}.", "",
        "Error rates in % (mean over seeds):", "",
        md_table(["arm", "seeds", *[names[c] for c in cols], "verdict"], rows), "",
        f"Difference from `none` in points (counted when |difference| >= {THRESHOLD:g}):", "",
        md_table(["arm", *[names[c] for c in cols]], diff_rows) if diff_rows else "(no arm besides none)", "",
        "Per run:", "",
        md_table(["arm", "seed", *[names[c] for c in cols]], seed_rows), "",
        "Arms: " + "; ".join(f"{arm}: `{' '.join(ARMS[arm]) or 'all off'}`" for arm in summary) + ".", "",
        f"**{result}**",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "ds2_small.yaml")
    p.add_argument("--data", type=Path, help="corpus folder with train/dev/test.jsonl (default data/synth)")
    p.add_argument("--asterisk", help="asterisk test manifest (default: asterisk/test.jsonl beside the corpus folder, "
                   "i.e. data/asterisk/test.jsonl for data/synth, when prepared; '' = none)")
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench_augment")
    p.add_argument("--doc", type=Path, default=ROOT / "docs" / "bench_augment.md")
    p.add_argument("--minutes", type=float, default=20.0, help="training minutes per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {', '.join(ARMS)}")
    add_set_arg(p, "extra override for every run (e.g. train.threads=1)")
    p.add_argument("--jobs", type=int, default=1, help="runs trained side by side, the preset's threads split "
                   "between them (default 1: one run at a time)")
    p.add_argument("--quick", action="store_true", help="one seed, a tiny corpus unless --data: a smoke test")
    args = p.parse_args(argv)
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be >= 1, got {args.jobs}")
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"unknown arm(s) {unknown}; choose from {', '.join(ARMS)}")
    arms = ["none", *[a for a in arms if a != "none"]]  # the baseline every difference is taken from
    if args.quick:
        args.seeds = args.seeds[:1]
    data = args.data or (tiny_corpus(args.runs / "tiny_corpus") if args.quick else ROOT / "data" / "synth")
    if args.asterisk is None:  # the asterisk test prepared beside the corpus, as the report finds it
        asterisk = real_test_manifest({"test_manifest": str(Path(data) / "test.jsonl")})
    else:
        asterisk = Path(args.asterisk) if args.asterisk and Path(args.asterisk).is_file() else None
        if args.asterisk and asterisk is None:
            raise SystemExit(f"{args.asterisk}: no such manifest (prepare it with `audio-lottery data prepare asterisk`)")
    plan = []
    for arm in arms:
        for seed in args.seeds:
            cfg = arm_config(args.config, arm, seed, manifests(data), args.minutes, args.overrides)
            if args.jobs > 1:  # train.threads is a runtime key: the run folder stays the same
                cfg.train.threads = threads_per_job(cfg.train.threads, args.jobs)
            plan.append((arm, cfg, run_dir(args.runs, arm, seed, cfg)))
    scores = run_all(plan, asterisk, args.jobs)
    summary = summarise(scores)
    test_records = read_manifest(Path(data) / "test.jsonl")
    setup = {"command": command_line(), "config": Path(args.config).name, "jobs": args.jobs,
             "threads": plan[0][1].train.threads,
             "test_utterances": len(test_records),
             "held_out_utterances": sum(r.get("seen_voice") is False for r in test_records),
             "asterisk": f"{len(read_manifest(asterisk))} utterances" if asterisk else "not prepared"}
    page = markdown(summary, scores, args, setup)
    data_out = {"minutes": args.minutes, "seeds": args.seeds, "jobs": args.jobs, "threads": setup["threads"],
                "threshold_points": THRESHOLD, "arms": rounded(summary),
                "verdicts": {a: verdict(r) for a, r in summary.items() if a != "none"},
                "asterisk": asterisk is not None}
    write_page(args.doc, page,  # the Result line is the page's verdict (results_io finds it)
               conditions={**corpus_version(data), "asterisk_test": str(asterisk) if asterisk else None},
               data=data_out)
    print(page)


if __name__ == "__main__":
    main()
