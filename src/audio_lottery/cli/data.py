"""``audio-lottery data ...``: synthesise, prepare and check corpora (noise: :mod:`.noise`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from audio_lottery.cli import noise as cli_noise
from audio_lottery.cli.common import add_set_arg
from audio_lottery.config import load_config


def cmd_data_synth(args: argparse.Namespace) -> None:
    from audio_lottery.data.corpora.synth import synthesize_corpus

    summary = synthesize_corpus(Path(args.out), hours=args.hours, seed=args.seed, workers=args.workers,
                                train_pitch_variants=args.train_pitch_variants)
    print(json.dumps(summary))


def cmd_data_prepare(args: argparse.Namespace) -> None:
    from audio_lottery.data.corpora import prepare_corpus

    root = Path(args.root) if args.root else None
    print(json.dumps(prepare_corpus(args.name, root, Path(args.out))))


def cmd_data_combine(args: argparse.Namespace) -> None:
    from audio_lottery.data.manifest import combine_manifests

    print(json.dumps(combine_manifests(args.manifests, args.out)))


def cmd_data_check(args: argparse.Namespace) -> int:
    from audio_lottery.train.data_check import check_manifest

    cfg = load_config(args.config, args.overrides) if args.config else None
    report = check_manifest(args.manifest, cfg, args.role)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.render())
    return 0 if report.ok else 1


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    from audio_lottery.data.corpora import PREPARERS

    data = sub.add_parser("data", help="corpora and manifests").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("synth", help="synthesise the embedded default corpus offline", parents=[common])
    p.add_argument("--out", required=True)
    p.add_argument("--hours", type=float, default=3.5, help="hours of training audio")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--train-pitch-variants", action="store_true",
                   help="add training-only speakers at other mean f0s (flite and festival voices); dev and test "
                        "stay the corpus's own")
    p.set_defaults(func=cmd_data_synth)
    cli_noise.add_data_parsers(data, common)
    p = data.add_parser("prepare", help="manifests from an official corpus layout", parents=[common])
    p.add_argument("name", choices=list(PREPARERS))
    p.add_argument("--root", help="corpus folder (required, except asterisk: default / = the installed "
                   "Debian packages asterisk-core-sounds-en and asterisk-core-sounds-en-g722)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_data_prepare)
    p = data.add_parser("check", help="validate a manifest: malformed lines, unusable audio and transcripts "
                        "(exit 1 when training would refuse it)", parents=[common])
    p.add_argument("--manifest", required=True)
    p.add_argument("--role", choices=["train", "eval"], default="train", help="check as training or dev/test data")
    p.add_argument("--config", help="preset whose duration range, sample rate and model apply (default: defaults)")
    add_set_arg(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_data_check)
    p = data.add_parser("combine", help="one training manifest from several (e.g. data/synth/train.jsonl and "
                        "data/asterisk/adapt.jsonl for configs/whisper_tiny_en.yaml)", parents=[common])
    p.add_argument("manifests", nargs="+", help="source manifests, in order")
    p.add_argument("--out", required=True, help="the combined manifest (audio paths relative to its folder)")
    p.set_defaults(func=cmd_data_combine)
