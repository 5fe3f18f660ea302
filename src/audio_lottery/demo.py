"""`make demo`: the whole pipeline on the embedded corpus, on a fresh machine, within ~90 minutes.

1. synthesise the embedded corpus (skipped when present);
2. IMP with rewinding on the demo preset until <= 10.7 % of the weights remain;
3. the random-reinit and random-prune control branches;
4. the report (WER against remaining weight for the three, per-layer sparsity, curves);
5. dense and extreme-ticket test WER/CER and the transcription of a test file.
"""

from __future__ import annotations

from audio_lottery.layout import RunLayout

import argparse
import json
import logging
import time
from pathlib import Path

from audio_lottery.config import load_config
from audio_lottery.data.manifest import read_manifest
from audio_lottery.files import read_json


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/synth", help="corpus folder (synthesised when missing)")
    p.add_argument("--runs", default="runs", help="root of the lottery runs")
    p.add_argument("--config", default="configs/ds2_demo.yaml")
    p.add_argument("--hours", type=float, default=3.5, help="hours of training audio to synthesise")
    p.add_argument("--branch-every", type=int, default=2, help="run the control branches on every N-th level")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    return p.parse_args(argv)


def ensure_corpus(data: Path, hours: float) -> None:
    """Synthesise the embedded corpus unless its manifests exist."""
    if all((data / f"{s}.jsonl").is_file() for s in ("train", "dev", "test")):
        print(f"corpus: {data} (present)")
        return
    from audio_lottery.data.synth import synthesize_corpus

    t0 = time.time()
    summary = synthesize_corpus(data, hours=hours)
    print(f"corpus: {data} synthesised in {time.time() - t0:.0f} s: {json.dumps(summary)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from audio_lottery.lottery.branches import run_branch
    from audio_lottery.lottery.report import write_report
    from audio_lottery.lottery.runner import run_lottery
    from audio_lottery.lottery.tickets import select_tickets

    data = Path(args.data)
    ensure_corpus(data, args.hours)
    overrides = [f"data.{s}_manifest={data / f'{s}.jsonl'}" for s in ("train", "dev", "test")] + args.overrides
    cfg = load_config(args.config, overrides)
    t0 = time.time()
    run_dir = run_lottery(cfg, Path(args.runs))
    results = [read_json(lv.result) for lv in RunLayout(run_dir).levels() if lv.result.is_file()]
    tickets = select_tickets(results, cfg.lottery.match_tolerance)
    levels = set(range(args.branch_every, cfg.lottery.levels + 1, args.branch_every))
    levels |= {t["level"] for t in (tickets["extreme"], tickets["best"]) if t and t["level"] > 0}
    for name in ("random-reinit", "random-prune"):
        run_branch(name, run_dir, levels=sorted(levels))
    md, html = write_report(run_dir, cfg.lottery.match_tolerance)
    print(f"\nlottery search: {(time.time() - t0) / 60:.1f} min; report: {md} and {html}")
    for kind in ("dense", "extreme", "best"):
        t = tickets.get(kind)
        print(f"{kind:8s} " + ("none" if not t else f"level {t['level']:2d}  remaining {100 * t['remaining']:5.1f} %  "
                                f"test WER {t['test_wer']:.3f}  CER {t['test_cer']:.3f}"))
    show_transcriptions(run_dir, cfg, tickets)
    print(run_dir)
    return 0


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
