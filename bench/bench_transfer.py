"""Ticket transfer between domains of the embedded corpus (espeak -> flite + festival by default).

Target test WER against remaining weight for: the target's own IMP ticket, the source's ticket
transferred (source mask + source theta_0, trained on the target: the ``transfer`` branch), the
dense target model, and optionally IMP on the target started from the source-trained weights
(``transfer-finetune``); plus the mask overlap (IoU) of source and target tickets.

    python bench/bench_transfer.py --config configs/ds2_demo.yaml --data data/synth \\
        --levels 1,2,3,4 --set prune.fraction=0.36      # 64, 41, 26, 17 %: 14 trainings
    python bench/bench_transfer.py --quick                # tiny corpus + ds2_tiny, under 2 minutes

``--previous`` puts earlier pages' cells (docs/history/bench_transfer_*.json) beside the new ones, level by level.

Trainings: source IMP (max level + 1), target IMP (max level + 1), transfer (one per level), and
with ``--finetune`` another max level + 1. Every stage is skipped when done (rerun to resume).
Writes docs/bench_transfer.md (``--quick``: runs/bench_quick/bench_transfer.md) and a plot.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from audio_lottery.cli.common import add_set_arg
from audio_lottery.config import load_config
from audio_lottery.data.corpora.domains import write_domain
from audio_lottery.files import load_tensors, read_json
from audio_lottery.layout import RunLayout
from audio_lottery.lottery.branches import run_branch
from audio_lottery.lottery.runner import run_lottery
from audio_lottery.lottery.tickets import level_results
from audio_lottery.pruning.overlap import compare_runs, save_overlap
from audio_lottery.provenance import corpus_version

from quick import ROOT, TINY_CONFIG, manifests, md_table, pct, plot_against_remaining, tiny_corpus
from results_io import before_and_after_heading, beside_previous, command_line, previous_intro, write_page

QUICK = ROOT / "runs" / "bench_quick"
SPLITS = ("train", "dev", "test")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs" / "ds2_demo.yaml"))
    p.add_argument("--data", default=str(ROOT / "data" / "synth"), help="corpus folder with train/dev/test.jsonl")
    p.add_argument("--field", default="engine", help="manifest field that defines the domains")
    p.add_argument("--source", default="espeak", help="comma-separated field values of the source domain")
    p.add_argument("--target", default="", help="values of the target domain (default: every other value)")
    p.add_argument("--levels", default="1,2,3,4", help="levels at which the source ticket is transferred")
    p.add_argument("--finetune", action="store_true", help="also IMP on the target from source-trained weights")
    p.add_argument("--root", default=str(ROOT / "runs" / "transfer"))
    add_set_arg(p)
    p.add_argument("--target-set", action="append", default=[], metavar="KEY=VALUE",
                   help="overrides of the target's own IMP run only (e.g. train.seed=1: another theta_0)")
    p.add_argument("--doc", default=str(ROOT / "docs" / "bench_transfer.md"))
    p.add_argument("--quick", action="store_true", help="tiny corpus and model: checks the pipeline in < 2 min")
    p.add_argument("--previous", type=Path, nargs="*", default=[],
                   help="result JSONs of earlier pages (e.g. docs/history/bench_transfer_corpus1.json): their "
                        "cells beside the new ones, level by level")
    return p.parse_args()


def make_domains(data: Path, out: Path, field: str, source: list[str], target: list[str]) -> dict[str, Path]:
    """Source and target manifests (train/dev/test) filtered by ``field``."""
    files = [data / f"{s}.jsonl" for s in SPLITS]
    dirs = {"source": out / "source", "target": out / "target"}
    write_domain(files, field, source, dirs["source"])
    write_domain(files, field, target or source, dirs["target"], exclude=not target)
    return dirs


def same_theta0(a: Path, b: Path) -> bool:
    ta, tb = load_tensors(RunLayout(a).init), load_tensors(RunLayout(b).init)
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def main() -> None:
    args = parse_args()
    if args.quick:
        args.data, args.config = str(tiny_corpus(QUICK / "corpus")), str(TINY_CONFIG)
        args.root, args.doc, args.levels = str(QUICK / "transfer"), str(QUICK / "bench_transfer.md"), "1,2"
    levels = sorted(int(x) for x in args.levels.split(","))
    top = max(levels)
    root = Path(args.root)
    dirs = make_domains(Path(args.data), root / "domains", args.field, args.source.split(","),
                        [v for v in args.target.split(",") if v])
    runs = {}
    for side in ("source", "target"):
        extra = args.target_set if side == "target" else []
        cfg = load_config(args.config, args.overrides + extra + manifests(dirs[side]))
        cfg.lottery.levels = top
        print(f"{side} lottery ({dirs[side]}) to level {top}", flush=True)
        runs[side] = run_lottery(cfg, root, progress=not args.quick)
    target_sets = args.overrides + manifests(dirs["target"])
    # with a shared theta_0 the target run's level 0 is the transfer branch's level 0: not trained twice
    transfer_levels = levels if same_theta0(runs["source"], runs["target"]) else [0, *levels]
    print(f"transfer of the source tickets at levels {transfer_levels}", flush=True)
    branch = run_branch("transfer", runs["source"], levels=transfer_levels, overrides=target_sets,
                        progress=not args.quick)
    finetune = None
    if args.finetune:
        print(f"IMP on the target from the source-trained weights to level {top}", flush=True)
        finetune = run_branch("transfer-finetune", runs["source"], levels=[top], overrides=target_sets,
                              progress=not args.quick)
    overlap = compare_runs(runs["source"], runs["target"], levels)
    save_overlap(runs["source"], runs["target"], overlap)
    doc, verdicts = render(args, runs, branch, finetune, levels, overlap)
    conditions = corpus_version(args.data)
    for path in args.previous:
        doc += "\n" + previous_section(read_json(path), doc, conditions.get("corpus_version"), path.name)
    Path(args.doc).parent.mkdir(parents=True, exist_ok=True)
    write_page(Path(args.doc), doc, conditions=conditions, verdicts=verdicts)
    print(doc)


def previous_section(previous: dict, markdown: str, version: int | None, label: str) -> str:
    """An earlier page's target WER / CER cells beside this page's, paired by remaining weight (another
    pruning rate per level numbers its levels differently)."""
    columns = ["target's own ticket", "transferred ticket", "dense (target)"]
    return "\n".join([before_and_after_heading(label), "",
                      previous_intro(previous, "The transfer table", version, "row by row at the same remaining weight"),
                      "", beside_previous(previous, markdown, "level", columns, match="remaining %"), ""])


def plot_path(doc: str) -> Path:
    return Path(doc).parent / "plots" / f"{Path(doc).stem}_wer.png"


def below_dense(name: str, series: dict[int, dict], dense: dict, levels: list[int]) -> str:
    """A verdict: the pruned levels at which ``series`` has a lower target test WER than the dense target model."""
    measured = [lv for lv in levels if lv in series]
    below = [lv for lv in measured if series[lv]["test_wer"] < dense["test_wer"]]
    where = ", ".join(f"{100 * series[lv]['remaining']:.1f} %" for lv in below) or "none"
    return (f"- {name}: target test WER below the dense target model's ({pct(dense['test_wer'])} %) at "
            f"{len(below)} of {len(measured)} pruned levels measured ({where}).")


def render(args, runs: dict, branch: Path, finetune: Path | None, levels: list[int],
           overlap: dict) -> tuple[str, list[str]]:
    """The page and its verdicts (where each series beats the dense target model)."""
    src, tgt, tr = level_results(runs["source"]), level_results(runs["target"]), level_results(branch)
    ft = level_results(finetune) if finetune else {}
    trainings = [r for res in (src, tgt, tr, ft) for r in res.values()]
    minutes = sum(r["wall_seconds"] for r in trainings) / 60  # from the runs, so resumed invocations count
    dense = tgt[0]
    headers = ["level", "remaining %", "target's own ticket", "transferred ticket",
               *(["IMP from source-trained"] if finetune else []), "dense (target)", "source ticket on source",
               "IoU source/target masks", "chance IoU"]
    rows = []
    for lv in [0, *levels]:
        r_t, r_tr, r_s = tgt.get(lv), tr.get(lv, tgt.get(0) if lv == 0 else None), src.get(lv)
        g = overlap[lv]["global"] if lv in overlap else None
        rows.append([str(lv), f"{100 * (r_t or r_tr)['remaining']:.1f}", wer_cer(r_t), wer_cer(r_tr),
                     *([wer_cer(ft.get(lv))] if finetune else []), wer_cer(dense), wer_cer(r_s),
                     f"{g['iou']:.3f}" if g else "–", f"{g['chance_iou']:.3f}" if g else "–"])
    plot(tgt, tr, ft, levels, plot_path(args.doc))
    verdicts = [below_dense("Target's own ticket", tgt, dense, levels), below_dense("Transferred ticket", tr, dense, levels),
                *([below_dense("IMP from source-trained", ft, dense, levels)] if finetune else [])]
    cfg = load_config(RunLayout(runs["source"]).config)
    same = same_theta0(runs["source"], runs["target"])
    theta = ("identical, so it is also the transfer branch's level 0" if same else
             "different: the transferred row at level 0 is dense training on the target from the source's theta_0")
    iou_note = ("Source and target runs share theta_0, and magnitude masks partly follow the initial weights, so "
                "part of the overlap comes from the common start; `--target-set train.seed=1` separates the two."
                if same else "Source and target runs start from different theta_0 (seeds).")
    return "\n".join([
        "# Ticket transfer between corpora", "",
        f"Generated by `{command_line()}`: {len(trainings)} trainings, {minutes:.1f} min of training and scoring. Domains by manifest field `{args.field}`: source "
        f"`{args.source}`, target `{args.target or 'every other value'}`; {cfg.model.name}, prune fraction "
        f"{cfg.prune.fraction} per level.", "",
        "Test WER / CER (%) on the **target** test set. *Target's own ticket*: IMP on the target (mask and theta_0 "
        "of the target run). *Transferred ticket*: the source run's IMP mask, rewound to the source's theta_0, "
        "trained on the target (`transfer` branch). *Dense*: level 0 of the target run (theta_0 of source and "
        f"target runs: {theta}). Selection on target dev only. IoU: overlap of the kept weights of the source "
        f"and target IMP tickets at the same level (chance: independent random masks). {iou_note}", "",
        md_table(headers, rows), "", *verdicts, "",
        f"![target WER against remaining weight]({plot_path(args.doc).relative_to(Path(args.doc).parent)})", "",
        f"Runs: source `{runs['source']}`, target `{runs['target']}`; branch `{branch.name}`"
        + (f", `{finetune.name}`" if finetune else "") + ".", "",
    ]), verdicts


def wer_cer(result: dict | None) -> str:
    """``"WER / CER"`` in % of a level result, or a dash."""
    return "–" if result is None else f"{pct(result['test_wer'])} / {pct(result.get('test_cer'))}"


def plot(tgt: dict, tr: dict, ft: dict, levels: list[int], out: Path) -> None:
    series = {"target's own ticket": [tgt[lv] for lv in [0, *levels] if lv in tgt],
              "transferred ticket": [tr.get(0, tgt[0]), *[tr[lv] for lv in levels if lv in tr]],
              **({"IMP from source-trained": list(ft.values())} if ft else {})}
    plot_against_remaining(series, {"test_wer": "target test WER (%)", "test_cer": "target test CER (%)"}, out,
                           title="Ticket transfer", reference=("dense (target)", tgt[0]),
                           ticks=[100 * r["remaining"] for r in tgt.values()])

if __name__ == "__main__":
    main()
