"""``audio-lottery pretrained``: list the models that need no training (``pretrained list``, the default)
and pack a trained lottery level as a shipped ticket (``pretrained pack``)."""

from __future__ import annotations

import argparse
import json
import sys

from audio_lottery.layout import TICKET_JSON


def _percent(value) -> str:
    return f"{100 * value:.2f}" if isinstance(value, (int, float)) else "-"


def cmd_list(args: argparse.Namespace) -> None:
    """One line per model: name, remaining % of the prunable scope, size on disk, WERs from ticket.json."""
    from audio_lottery.pretrained import PREFIX, available, tickets_dir

    rows = available(args.tickets)
    if args.json:
        print(json.dumps([vars(r) for r in rows]))
        return
    print(f"{'model':<34} {'remaining %':>11} {'MB':>7} {'WER % trained':>14} {'WER % shipped':>14}  test set")
    for r in rows:
        name = PREFIX + r.name + (" (shrunk)" if r.shrink else "")
        print(f"{name:<34} {100 * r.remaining:>11.1f} {r.bytes / 1e6:>7.2f} {_percent(r.wer.get('trained')):>14} "
              f"{_percent(r.wer.get('shipped')):>14}  {r.wer.get('manifest', '-')}")
    print(f"(ticket packs from {tickets_dir(args.tickets)}; the dense model's size is the pip-installed wheel's)")


def cmd_pack(args: argparse.Namespace) -> None:
    from audio_lottery.lottery.ship import pack_level

    meta = pack_level(args.level_dir, args.name, out=args.out, shrink=args.shrink, manifest=args.manifest,
                      limit=args.limit, progress=not args.quiet)
    keys = ("name", "path", "remaining", "shrink", "params", "max_abs_weight_error", "wer", "pack_bytes",
            "tickets_bytes", "tickets_limit_bytes")
    print(json.dumps({k: meta.get(k) for k in keys}))
    if meta["tickets_bytes"] > meta["tickets_limit_bytes"]:
        print(f"audio-lottery: warning: the packs in {args.out or 'the tickets folder'} take "
              f"{meta['tickets_bytes'] / 1e6:.1f} MB, over the {meta['tickets_limit_bytes'] / 1e6:.0f} MB the "
              "repository allows", file=sys.stderr)


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("pretrained", help="list the models that need no training (pretrained:<name>); "
                                          "'pretrained pack' ships a trained level", parents=[common])
    _list_args(p, None, False)
    p.set_defaults(func=cmd_list)
    actions = p.add_subparsers(dest="pretrained_command")
    q = actions.add_parser("list", help="name, remaining weights, size and recorded WERs of every pretrained model "
                                        "(the default)", parents=[common])
    _list_args(q, argparse.SUPPRESS, argparse.SUPPRESS)  # given before or after `list`, either counts
    q.set_defaults(func=cmd_list)
    q = actions.add_parser("pack", help=f"pack a trained level (LEVEL_DIR: level_L of a lottery run on tiny.en) as a "
                                        f"ticket: bit-packed mask + int8 deltas + {TICKET_JSON}, with measured WERs",
                           parents=[common])
    q.add_argument("level_dir", help="the level folder (its trained weights and mask are read)")
    q.add_argument("--name", required=True, help="the pack's name: loads as pretrained:NAME")
    q.add_argument("--shrink", action="store_true", help="ship the physically shrunk model (pruned heads / "
                                                         "channels removed; needs shrinkable structure groups)")
    q.add_argument("--out", help="the tickets folder to write into (default: the package's)")
    q.add_argument("--manifest", help="measure the WERs here (default: the run config's data.test_manifest)")
    q.add_argument("--limit", type=int, default=0, help="first N utterances only (a quick check)")
    q.set_defaults(func=cmd_pack)


def _list_args(p: argparse.ArgumentParser, tickets, as_json) -> None:
    p.add_argument("--tickets", default=tickets, help="the folder of ticket packs (default: $AUDIO_LOTTERY_TICKETS "
                                                      "or the package's)")
    p.add_argument("--json", action="store_true", default=as_json, help="one JSON list instead of the table")
