"""Arguments several command groups share."""

from __future__ import annotations

import argparse


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="YAML preset, e.g. configs/ds2_small.yaml")
    add_set_arg(p, "override any config key, e.g. --set train.epochs=3 (repeatable)")


def add_set_arg(p: argparse.ArgumentParser, help: str | None = None) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default=None,
                   help="train.device (auto: cuda when available); under torchrun each process takes cuda:LOCAL_RANK")


def device_override(args: argparse.Namespace) -> list[str]:
    return [f"train.device={args.device}"] if args.device else []
