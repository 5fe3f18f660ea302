"""Sub-commands for noise robustness and transfer: ``data noise``, ``data split-domain``,
``eval --snr/--run`` and ``overlap`` (parsers and handlers; cli.py only wires them in)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from audio_lottery.layout import EVAL_NOISE, LEVEL_PREFIX


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what}: expected comma-separated integers or 'all', got {text!r}") from None


# --------------------------------------------------------------------------- data noise


def cmd_data_noise(args: argparse.Namespace) -> None:
    from audio_lottery.data.noise.bank import BankSettings, build_noise_bank

    settings = BankSettings(seed=args.seed, sample_rate=args.sample_rate, sox_seconds=args.seconds,
                            sources=tuple(s.strip() for s in args.sources.split(",") if s.strip()),
                            segment_seconds=args.segment_seconds, babble_clips=args.babble_clips, limit=args.limit)
    summary = build_noise_bank(Path(args.out), args.speech_manifest, args.test_speech_manifest, settings)
    for problem in summary["missing"]:
        print(f"audio-lottery: note: {problem}", file=sys.stderr)
    print(json.dumps({k: v for k, v in summary.items() if k != "key"}))
    print(summary["manifest"])


def cmd_split_domain(args: argparse.Namespace) -> None:
    from audio_lottery.data.corpora.domains import write_domain

    values = [v.strip() for v in args.values.split(",") if v.strip()]
    counts = write_domain(args.manifest, args.field, values, Path(args.out), exclude=args.exclude)
    print(json.dumps(counts))


def add_data_parsers(data: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``data noise`` and ``data split-domain``."""
    p = data.add_parser("noise", parents=[common], help="build a split noise bank (sox noise, Debian ambience and "
                        "effects recordings, babble); prints a summary and the manifest path last")
    p.add_argument("--out", required=True)
    p.add_argument("--speech-manifest", help="babble talkers (e.g. the training manifest); speakers are split "
                   "between train/dev/test noise")
    p.add_argument("--test-speech-manifest", help="take test babble from this manifest's speakers instead "
                   "(those not in --speech-manifest)")
    p.add_argument("--sources", default="sox,ambience,effects,babble", help="comma-separated noise sources")
    p.add_argument("--seconds", type=float, default=30.0, help="length of each sox noise file")
    p.add_argument("--segment-seconds", type=float, default=10.0, help="long recordings are cut to this")
    p.add_argument("--babble-clips", type=int, default=20, help="babble clips over all splits")
    p.add_argument("--sample-rate", type=int, default=16000, help="the corpus sample rate")
    p.add_argument("--limit", type=int, default=0, help="at most N recordings per Debian package (0 = all)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_data_noise)
    p = data.add_parser("split-domain", parents=[common], help="keep the utterances whose FIELD is one of VALUES "
                        "(e.g. --field engine --values espeak), for source/target corpora")
    p.add_argument("--manifest", action="append", required=True, help="input manifest (repeatable: train, dev, test)")
    p.add_argument("--field", required=True, help="manifest field, e.g. engine or voice")
    p.add_argument("--values", required=True, help="comma-separated values to keep")
    p.add_argument("--exclude", action="store_true", help="keep the utterances whose field is NOT in VALUES")
    p.add_argument("--out", required=True, help="folder; each manifest is written under its own file name")
    p.set_defaults(func=cmd_split_domain)


# --------------------------------------------------------------------------- eval under noise


def add_eval_args(p: argparse.ArgumentParser) -> None:
    """Options of ``eval`` for evaluation under noise and for whole runs."""
    p.add_argument("--snr", help="comma-separated test SNRs in dB, 'clean' for none: e.g. clean,20,10,5,0")
    p.add_argument("--noise", help="noise bank manifest (its test split is mixed in)")
    p.add_argument("--run", help=f"evaluate the levels of this lottery run (results in {LEVEL_PREFIX}L/{EVAL_NOISE})")
    p.add_argument("--levels", default="all", help="with --run: 'all' or comma-separated levels")
    p.add_argument("--branches", default="", help="with --run: also these branches ('all' or comma-separated)")
    p.add_argument("--seed", type=int, default=0, help="noise placement seed")
    p.add_argument("--out", help="also write the JSON result here")


def cmd_eval_noise(args: argparse.Namespace) -> None:
    """``eval --snr ... [--run RUN | --model M]``: WER/CER per SNR as a table and one JSON line."""
    from audio_lottery.eval.noisy import (
        CLEAN,
        eval_run,
        evaluate_under_noise,
        parse_snrs,
        snr_table,
    )
    from audio_lottery.files import atomic_write_json

    snrs = parse_snrs(args.snr or CLEAN)
    if args.run:
        levels = "all" if args.levels == "all" else _ints(args.levels, "--levels")
        branches = "all" if args.branches == "all" else [b for b in args.branches.split(",") if b.strip()]
        results = eval_run(Path(args.run), snrs, args.noise, levels, branches, args.seed, progress=not args.quiet)
    else:
        from audio_lottery.data.manifest import read_manifest
        from audio_lottery.recognizer import Recognizer

        if not args.model:
            raise ValueError("eval needs --model (or --run)")
        rec = Recognizer.load(args.model)
        manifest = args.manifest or rec.cfg.data.test_manifest
        records = read_manifest(manifest)[: args.limit or None]
        results = {str(args.model): evaluate_under_noise(rec, records, snrs, args.noise, args.seed,
                                                         progress=not args.quiet)}
    print(snr_table(results))
    if args.out:
        atomic_write_json(Path(args.out), results)
    print(json.dumps(results))


# --------------------------------------------------------------------------- overlap


def cmd_overlap(args: argparse.Namespace) -> None:
    from audio_lottery.pruning.overlap import compare_runs, overlap_table, save_overlap

    levels = None if args.levels == "all" else _ints(args.levels, "--levels")
    result = compare_runs(Path(args.run_a), Path(args.run_b), levels)
    print(overlap_table(result))
    if not args.no_save:
        print(f"saved: {save_overlap(Path(args.run_a), Path(args.run_b), result)}", file=sys.stderr)
    print(json.dumps({str(lv): r["global"] for lv, r in result.items()}))


def add_overlap_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("overlap", parents=[common], help="IoU of the kept weights of two runs' tickets (per tensor "
                       "and global), stored in RUN_A/overlap/ for its report")
    p.add_argument("run_a", help="lottery run (or branch folder)")
    p.add_argument("run_b", help="another lottery run or branch folder (other corpus or seed)")
    p.add_argument("--levels", default="all", help="'all' (the pruned levels both have) or comma-separated levels")
    p.add_argument("--no-save", action="store_true", help="do not store the result in RUN_A/overlap/")
    p.set_defaults(func=cmd_overlap)
