"""``audio-lottery lottery``, ``branch NAME`` (one sub-command per registered branch, its declared
parameters as options) and ``report``."""

from __future__ import annotations

import argparse
from pathlib import Path

from audio_lottery.cli.common import add_config_args, add_device_arg, add_set_arg, device_override
from audio_lottery.config import load_config
from audio_lottery.layout import REPORT_HTML, REPORT_MD, RUN_PREFIX


def cmd_lottery(args: argparse.Namespace) -> None:
    from audio_lottery.lottery.runner import run_lottery

    cfg = load_config(args.config, args.overrides + device_override(args))
    if args.levels is not None:
        cfg.lottery.levels = args.levels
    run_dir = run_lottery(cfg, Path(args.root), progress=not args.quiet)
    print(run_dir)


def cmd_branch(args: argparse.Namespace) -> None:
    from audio_lottery.lottery.branches import run_branch

    levels = [int(x) for x in args.levels.split(",")] if args.levels else None
    params = {name: getattr(args, name) for name in args.branch_params}
    out = run_branch(args.name, Path(args.run), levels=levels, overrides=args.overrides, tag=args.tag,
                     progress=not args.quiet, device=args.device, params=params)
    print(out)


def cmd_report(args: argparse.Namespace) -> None:
    from audio_lottery.lottery.report import write_report

    md, html = write_report(Path(args.run))
    print(md)
    print(html)


def add_branch_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """``branch NAME``: one parser per registered branch, built from its declared parameters."""
    from audio_lottery.lottery import BRANCHES

    p = sub.add_parser("branch", help="a control experiment over an existing lottery run", parents=[common])
    names = p.add_subparsers(dest="name", required=True, metavar="NAME",
                             help="the branch (audio-lottery branch NAME --help lists its parameters)")
    for name, branch in BRANCHES.items():
        b = names.add_parser(name, help=branch.description, description=branch.description, parents=[common])
        b.add_argument("--run", "--run-dir", dest="run", required=True, help="the lottery run folder "
                       "(under torchrun write --run-dir: torchrun takes --run for its own)")
        b.add_argument("--levels", default=None, help="comma-separated levels (default: all pruned levels)")
        b.add_argument("--tag", default="", help="suffix of the branch folder (default: a short hash of the --set "
                                                  "overrides and parameters given, if any)")
        add_set_arg(b, "override a config key of the run (repeatable)")
        add_device_arg(b)
        group = b.add_argument_group(f"parameters of {name}")
        for param in branch.params.values():
            if param.key:
                group.add_argument(param.flag, dest=param.name, default=None, choices=param.choices or None,
                                   metavar="'[A, B]'" if param.type is list else None,
                                   help=f"{param.help} (sets {param.key}; default: the run's value)")
            else:
                group.add_argument(param.flag, dest=param.name, type=param.type, default=None,
                                   help=f"{param.help} (default: {param.default})")
        b.set_defaults(func=cmd_branch, branch_params=tuple(branch.params))


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("lottery", help="iterative magnitude pruning with rewinding", parents=[common])
    add_config_args(p)
    add_device_arg(p)
    p.add_argument("--levels", type=int, default=None, help="pruning levels after the dense level 0")
    p.add_argument("--root", required=True, help=f"runs are created under ROOT/{RUN_PREFIX}<hash>")
    p.set_defaults(func=cmd_lottery)

    add_branch_parser(sub, common)

    p = sub.add_parser("report", help=f"write {REPORT_MD} and {REPORT_HTML} for a run", parents=[common])
    p.add_argument("run")
    p.set_defaults(func=cmd_report)
