"""``audio-lottery export``: a ticket as a dense, compact or CSR model folder (optionally ONNX)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from audio_lottery.layout import EXPORT_CONFIG, EXPORT_WEIGHTS, TOKENIZER, ExportLayout


def cmd_export(args: argparse.Namespace) -> None:
    from audio_lottery.lottery.export import add_onnx, export_ticket

    meta = export_ticket(Path(args.run), args.level, args.format, Path(args.out), branch=args.branch)
    summary = {k: meta[k] for k in ("export_format", "remaining", "params", "sizes")}
    summary["bytes"] = ExportLayout(Path(args.out)).weights.stat().st_size
    if args.onnx:
        summary["onnx"] = add_onnx(Path(args.out))
    print(json.dumps(summary))


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("export", help="export a ticket: dense, compact (shrunk / sparse-encoded) or csr",
                       parents=[common])
    p.add_argument("--run", required=True, help="the lottery run folder")
    p.add_argument("--level", type=int, required=True)
    p.add_argument("--branch", default="", help="export a branch's level, e.g. structured-<tag> (default: IMP)")
    p.add_argument("--format", choices=["dense", "compact", "csr"], default="compact")
    p.add_argument("--out", required=True, help=f"folder for {EXPORT_WEIGHTS}, {EXPORT_CONFIG} and {TOKENIZER}/")
    p.add_argument("--onnx", action="store_true", help="also write model.onnx (needs the [onnx] extra) and check it")
    p.set_defaults(func=cmd_export)
