"""The one ``audio-lottery`` command and its sub-commands (one module per command group)."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from audio_lottery.cli import data as cli_data
from audio_lottery.cli import eval as cli_eval
from audio_lottery.cli import export as cli_export
from audio_lottery.cli import lottery as cli_lottery
from audio_lottery.cli import noise as cli_noise
from audio_lottery.cli import pretrained as cli_pretrained
from audio_lottery.cli import train as cli_train
from audio_lottery.cli.lm import add_lm_commands
from audio_lottery.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    parser = argparse.ArgumentParser(prog="audio-lottery", description=__doc__, parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)
    cli_data.add_parsers(sub, common)  # data synth/noise/split-domain/prepare/check
    cli_train.add_parsers(sub, common)  # info, train
    cli_eval.add_parsers(sub, common)  # eval (--snr/--run: cli/noise.py), transcribe
    add_lm_commands(sub, common)  # lm build/tune
    cli_lottery.add_parsers(sub, common)  # lottery, branch NAME, report
    cli_noise.add_overlap_parser(sub, common)  # overlap
    cli_export.add_parsers(sub, common)  # export
    cli_pretrained.add_parsers(sub, common)  # pretrained [list], pretrained pack
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.verbose = getattr(args, "verbose", False)
    args.quiet = getattr(args, "quiet", False)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if os.environ.get("RANK", "0") != "0":  # torchrun: only rank 0 prints results and progress
        from audio_lottery.train.distributed import quiet_other_ranks

        quiet_other_ranks()
    try:
        rc = args.func(args)
    except (ConfigError, FileNotFoundError, ValueError, RuntimeError) as exc:
        if args.verbose:
            raise
        print(f"audio-lottery: error: {exc}", file=sys.stderr)
        return 2
    return rc or 0
