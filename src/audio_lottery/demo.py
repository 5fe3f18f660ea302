"""`make demo`: the whole pipeline on the embedded corpus, on a fresh machine.

1. synthesise the embedded corpus and prepare the real-speech test beside it (the Asterisk prompts
   that ``make setup`` installs, in ``data/asterisk/``), each skipped when present;
2. IMP with rewinding on the demo preset until <= 10.7 % of the weights remain;
3. the random-reinit and random-prune control branches (the extreme ticket's level, or the last one
   when no level matches dense, and every ``--branch-every``-th level if given), side by side at one
   thread each (``--branch-jobs``);
4. the report (WER against remaining weight for the three, per-layer sparsity, curves);
5. dense and extreme-ticket test WER/CER, the same on the real-speech test, and the transcription
   of a test file;
6. its own timings (each phase, machine, threads) in ``demo_timings.json`` of the run folder,
   which ``make results DEMO_TIMINGS=...`` adds to docs/results.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict
from pathlib import Path

from audio_lottery.config import ConfigError, load_config
from audio_lottery.data.manifest import read_manifest
from audio_lottery.files import atomic_write_json, read_json
from audio_lottery.layout import DEMO_TIMINGS, RunLayout
from audio_lottery.provenance import corpus_version, git_commit, run_conditions

TIMINGS = DEMO_TIMINGS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/synth", help="corpus folder (synthesised when missing)")
    p.add_argument("--runs", default="runs", help="root of the lottery runs")
    p.add_argument("--config", default="configs/ds2_demo.yaml")
    p.add_argument("--hours", type=float, default=3.5, help="hours of training audio to synthesise")
    p.add_argument("--branch-every", type=int, default=0,
                   help="also run the control branches on every N-th level (they always run on the extreme ticket's "
                        "level, or the last level when no level matches dense); 0 = only there, 1 = every level "
                        "(~6 min per branch training with the demo preset)")
    p.add_argument("--branch-jobs", type=int, default=2,
                   help="control branches trained side by side, train.threads split between them (1 = one after "
                        "the other)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return p.parse_args(argv)


def ensure_corpus(data: Path, hours: float) -> float | None:
    """Synthesise the embedded corpus unless its manifests exist; returns the seconds it took (None: present)."""
    if all((data / f"{s}.jsonl").is_file() for s in ("train", "dev", "test")):
        print(f"corpus: {data} (present)")
        return None
    from audio_lottery.data.corpora.synth import synthesize_corpus

    t0 = time.time()
    summary = synthesize_corpus(data, hours=hours)
    seconds = time.time() - t0
    print(f"corpus: {data} synthesised in {seconds:.0f} s: {json.dumps(summary)}")
    return seconds


def ensure_real_speech(data: Path) -> tuple[float | None, str | None]:
    """Prepare the real-speech test (the Asterisk prompts of the Debian packages ``make setup`` installs)
    beside the corpus, where the report and the demo look for it, unless it is there; returns the seconds
    it took, or None and why nothing was prepared (present, or the prompts could not be read: then the
    demo goes on without it)."""
    from audio_lottery.data.corpora import CorpusLayoutError, prepare_corpus
    from audio_lottery.eval.real_speech import ASTERISK_TEST

    out = data.resolve().parent / ASTERISK_TEST.parent
    if (out / ASTERISK_TEST.name).is_file():
        print(f"real-speech test: {out} (present)")
        return None, "present"
    t0 = time.time()
    try:
        summary = prepare_corpus("asterisk", None, out, progress=False)
    except CorpusLayoutError as exc:
        print(f"real-speech test: not prepared ({exc})")
        return None, f"not prepared: {exc}"
    seconds = time.time() - t0
    print(f"real-speech test: {out} prepared in {seconds:.0f} s: {json.dumps(summary)}")
    return seconds, None


def corpus_sizes(data: Path) -> dict:
    """Utterances and hours per split of the corpus in ``data`` (its corpus.json); {} when absent."""
    meta = data / "corpus.json"
    splits = read_json(meta).get("splits", {}) if meta.is_file() else {}
    return {s: {"utterances": v["utterances"], "hours": round(v["hours"], 3)} for s, v in splits.items()}


def write_timings(run_dir: Path, phases: dict[str, float | None], *, data: Path, cfg, levels_done: int,
                  levels_wall_s: float | None = None, skipped: dict[str, str] | None = None,
                  branch_jobs: int = 1, commit: str | None = None) -> Path:
    """The demo's own timings (seconds per phase, rounded to 0.1) and conditions, in the run folder;
    ``levels_wall_s``: the IMP levels' own wall time summed over their results, levels that an
    earlier, interrupted demo trained included (the search phase counts only this invocation's);
    ``skipped``: why a phase without seconds did no work, beside the corpus (present when its phase is None);
    ``branch_jobs``: how many control branches trained side by side; ``commit``: the checkout's commit
    when the demo started, the code it ran (default: the commit now)."""
    path = RunLayout(run_dir).demo_timings
    atomic_write_json(path, {
        "run": run_dir.name, "phases_s": {k: None if v is None else round(v, 1) for k, v in phases.items()},
        "skipped": ({"corpus": "present"} if phases["corpus"] is None else {}) | (skipped or {}),
        "levels_wall_s": None if levels_wall_s is None else round(levels_wall_s, 1),
        "corpus_present": phases["corpus"] is None, "levels_done_at_start": levels_done,
        "levels": cfg.lottery.levels, "branch_jobs": branch_jobs, "corpus": corpus_sizes(data),
        "conditions": run_conditions(train_threads=cfg.train.threads, **corpus_version(data),
                                     **({"commit": commit} if commit else {})),
    })
    return path


def branch_levels(levels: int, every: int, tickets: dict) -> list[int]:
    """Levels the control branches run on: the extreme ticket's level (the last level when no pruned
    level matches dense) and, for ``every`` > 0, every ``every``-th pruned level."""
    from audio_lottery.lottery.tickets import control_level

    if every < 0:
        raise ValueError(f"--branch-every must be >= 0, got {every}")
    return sorted((set(range(every, levels + 1, every)) if every else set()) | {control_level(tickets, levels)})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from audio_lottery.lottery.branches import run_branches
    from audio_lottery.lottery.report import write_report
    from audio_lottery.lottery.runner import run_dir_for, run_lottery
    from audio_lottery.lottery.tickets import level_results, select_tickets

    start = time.time()
    data = Path(args.data)
    overrides = [f"data.{s}_manifest={data / f'{s}.jsonl'}" for s in ("train", "dev", "test")] + args.overrides
    try:  # before the corpus: a bad preset or --set fails here, not after minutes of synthesis
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"demo: error: {exc} (config {args.config}, --set {' '.join(args.overrides) or 'none'})", file=sys.stderr)
        return 2
    commit = git_commit()  # the code this demo runs: commits made while it trains are not its code
    phases: dict[str, float | None] = {"corpus": ensure_corpus(data, args.hours)}
    if cfg.data.real_test_manifest:
        phases["real_speech"], real_speech_skipped = None, "given by data.real_test_manifest"
    else:
        phases["real_speech"], real_speech_skipped = ensure_real_speech(data)
    levels_done = len(RunLayout(run_dir_for(cfg, Path(args.runs))).level_results())
    t0 = time.time()
    run_dir = run_lottery(cfg, Path(args.runs))
    phases["search"] = time.time() - t0
    results = list(level_results(run_dir).values())
    tickets = select_tickets(results, cfg.lottery.match_tolerance)
    levels = branch_levels(cfg.lottery.levels, args.branch_every, tickets)
    t1 = time.time()
    run_branches(("random-reinit", "random-prune"), run_dir, levels=levels, jobs=args.branch_jobs)
    phases["branches"] = time.time() - t1
    t2 = time.time()
    md, html = write_report(run_dir, cfg.lottery.match_tolerance)
    print(f"\nlottery search: {(time.time() - t0) / 60:.1f} min; report: {md} and {html}")
    for kind in ("dense", "extreme", "best"):
        t = tickets.get(kind)
        print(f"{kind:8s} " + ("none" if not t else f"level {t['level']:2d}  remaining {100 * t['remaining']:5.1f} %  "
                                f"test WER {t['test_wer']:.3f}  CER {t['test_cer']:.3f}"))
    show_real_speech(run_dir, cfg, tickets)
    show_transcriptions(run_dir, cfg, tickets)
    phases["report"] = time.time() - t2
    phases["total"] = time.time() - start
    timings = write_timings(run_dir, phases, data=data, cfg=cfg, levels_done=levels_done,
                            levels_wall_s=sum(r["wall_seconds"] for r in results),
                            skipped={"real_speech": real_speech_skipped} if real_speech_skipped else None,
                            branch_jobs=args.branch_jobs, commit=commit)
    print(f"timings: {timings}")
    print(run_dir)
    return 0


def show_real_speech(run_dir: Path, cfg, tickets: dict) -> None:
    """Print the dense model's and the tickets' WER/CER on the real-speech test (asterisk), when prepared
    (the report scored them already; its scores are reused)."""
    from audio_lottery.eval.real_speech import real_test_manifest, score_level

    manifest = real_test_manifest(asdict(cfg.data))
    if manifest is None:
        print("real speech: no test set (`audio-lottery data prepare asterisk --out data/asterisk` prepares one)")
        return
    print(f"real speech ({manifest}):")
    for kind in ("dense", "extreme", "best"):
        t = tickets.get(kind)
        if t:
            s = score_level(RunLayout(run_dir).level(t["level"]).dir, manifest)
            print(f"{kind:8s} level {t['level']:2d}  remaining {100 * t['remaining']:5.1f} %  "
                  f"WER {s['wer']:.3f}  CER {s['cer']:.3f}  ({s['utterances']} utterances)")


def show_transcriptions(run_dir: Path, cfg, tickets: dict) -> None:
    """Print a test utterance's reference and what the dense model and the extreme ticket hear."""
    from audio_lottery.data.audio import load_audio
    from audio_lottery.recognizer import Recognizer

    test = read_manifest(cfg.data.test_manifest)[0]
    wave = load_audio(test["audio"], cfg.data.features.sample_rate, test["offset"], test["duration"])
    print(f"\n{test['audio']}\n  reference      : {test['text']}")
    for kind in ("dense", "extreme"):
        t = tickets.get(kind)
        if t:
            rec = Recognizer.load(RunLayout(run_dir).level(t["level"]).trained)
            print(f"  {kind:7s} ({100 * t['remaining']:5.1f} %): {rec.transcribe([wave])[0]}")


if __name__ == "__main__":
    raise SystemExit(main())
