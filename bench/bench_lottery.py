"""Summarise a lottery run for docs/: ticket table, extreme/best tickets, cost of the search.

    python bench/bench_lottery.py runs/lottery_<hash> [--name demo] [--previous OLD_RESULT.json ...]
                                  [--seed-result SEED=RESULT.json ...] [--bootstrap]

Reads the run's result.json files (IMP levels and branches), writes docs/bench_lottery_<name>.md
and copies the report's plots to docs/plots/lottery_<name>_*.png. ``--previous`` names the result
JSON(s) of earlier runs of the same search (e.g. on an older corpus version): their test WERs are put
beside the new ones, matched by remaining weights. ``--seed-result SEED=RESULT.json`` names the page
of the same search (corpus version, pruning rate and strategy, rewind point) with another seed: a section puts each seed's dense
model, tickets and controls side by side. ``--bootstrap`` decodes dev and test again with every IMP
level and puts its WER above dense beside a 95 % paired bootstrap interval over the split's
utterances: how far the match rule's margin lies inside the dev set's own noise. The run's corpus
version, seed, training threads, pruning rate, pruning strategy and rewind point are stamped into the result.
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audio_lottery.config import Config, PruneConfig
from audio_lottery.eval.bootstrap import Errors, corpus_wer, paired_difference, resamples, utterance_errors
from audio_lottery.eval.evaluate import evaluate
from audio_lottery.eval.noisy import model_path
from audio_lottery.files import read_json
from audio_lottery.layout import RunLayout
from audio_lottery.lottery.branches import CONTROL_BRANCHES, is_control_branch, threads_per_job
from audio_lottery.lottery.report import write_report
from audio_lottery.lottery.runner import load_run_config
from audio_lottery.lottery.tickets import level_results, matches_dense, select_tickets
from audio_lottery.recognizer import Recognizer
from audio_lottery.rewind import describe_rewind
from audio_lottery.train.loop import load_split
from quick import md_table, threads_phrase
from results_io import (beside_previous, before_and_after_heading, command_line, describe_strategy, parse_tables,
                        previous_intro, pruning_strategy, rewind_point, training_conditions, write_page)

ROOT = Path(__file__).resolve().parents[1]

PLOT_PREFIX = "lottery"  # docs/plots/lottery_<name>_<plot>.png
PAPER_FRACTION = PruneConfig().fraction  # the paper's rate, 20 % of the remaining weights per round


def pruning_rate(fraction: float) -> tuple[str, dict[str, float]]:
    """The page's sentence on a run's pruning rate and its figures: the percentage pruned per level
    and, when one level equals a whole number of the paper's rounds, that number
    (36 % = two rounds of 20 %: 0.64 = 0.8 ** 2)."""
    figures = {"prune_percent_per_level": _percent(fraction), "paper_prune_percent": _percent(PAPER_FRACTION)}
    text = f"pruning {figures['prune_percent_per_level']} % of the remaining weights per level"
    rounds = math.log1p(-fraction) / math.log1p(-PAPER_FRACTION) if 0 < fraction < 1 else 0.0
    if round(rounds) >= 1 and abs(rounds - round(rounds)) < 0.02:
        figures["paper_rounds_per_level"] = round(rounds)
        text += (" (the paper's rate)" if round(rounds) == 1 else
                 f" ({round(rounds)} of the paper's rounds of {figures['paper_prune_percent']} %)")
    return text, figures


def _percent(fraction: float) -> int | float:
    """0.36 -> 36, 0.125 -> 12.5: a percentage written as the page shows it."""
    percent = round(100 * fraction, 1)
    return int(percent) if percent.is_integer() else percent


def control_branches(run: Path) -> tuple[dict[str, dict[int, dict]], list[str]]:
    """The results of the run's control branches by folder name, and the names of its other branches
    (e.g. bench_noise's retrain-noise-*), which are neither controls nor part of the search's cost."""
    folders = RunLayout(run).branches()
    return ({name: level_results(folder) for name, folder in folders.items() if is_control_branch(name)},
            sorted(name for name in folders if not is_control_branch(name)))


def cost_lines(imp: dict, branches: dict[str, dict], side_by_side: int = 1, threads_each: int = 1) -> list[str]:
    """Wall time (training, validation and scoring) per level and in total, as multiples of dense;
    ``side_by_side``: how many control branches trained at once (`make demo --branch-jobs`), each in its
    own process with ``threads_each`` torch threads. When all of them did, their wall time is the longest
    branch's, not the sum."""
    dense = imp[0]["wall_seconds"]
    imp_total = sum(r["wall_seconds"] for r in imp.values())
    per_branch = [sum(r["wall_seconds"] for r in b.values()) for b in branches.values()]
    br_total = sum(per_branch)
    together = side_by_side > 1 and 1 < len(per_branch) <= side_by_side
    br_wall = max(per_branch) if together else br_total
    lines = ["| level | remaining % | wall min | x dense |", "|---|---|---|---|"]
    lines += [f"| {lv} | {100 * r['remaining']:.1f} | {r['wall_seconds'] / 60:.1f} | {r['wall_seconds'] / dense:.2f} |"
              for lv, r in sorted(imp.items())]
    lines += [
        "",
        f"- one dense training (level 0, incl. validation and scoring): {dense / 60:.1f} min",
        f"- IMP search, {len(imp)} levels: {imp_total / 60:.1f} min = {imp_total / dense:.1f} x dense",
        f"- control branches ({sum(len(b) for b in branches.values())} trainings): {br_total / 60:.1f} min",
    ]
    if together:
        lines.append(f"  - trained side by side, {len(per_branch)} processes at "
                     f"{threads_phrase(threads_each)} each: {br_wall / 60:.1f} min "
                     "of wall time, the longest branch")
    return lines + [f"- search + branches: {(imp_total + br_wall) / 60:.1f} min = {(imp_total + br_wall) / dense:.1f} "
                    "x dense"]


def branch_jobs(run: Path) -> int:
    """How many control branches `make demo` trained side by side in ``run`` (its demo_timings.json; 1 without)."""
    timings = RunLayout(run).demo_timings
    return int(read_json(timings).get("branch_jobs", 1)) if timings.is_file() else 1


def previous_section(previous: dict, markdown: str, version: int | None = None, label: str = "") -> list[str]:
    """The earlier run's test WERs beside this run's, matched by remaining weights (runs with
    other pruning rates number their levels differently); ``version``: this run's corpus version;
    ``label`` (e.g. the earlier result's file name) tells several earlier runs' sections apart."""
    return [before_and_after_heading(label), "",
            previous_intro(previous, "The search", version, "row by row at the same remaining weights"), "",
            beside_previous(previous, markdown, "Level", ["Level", "Test WER", "Test CER", "random-prune test WER",
                                                          "random-reinit test WER"], match="Remaining"), ""]


# ----------------------------------------------------------------- the same search with other seeds

SEEDS_HEADING = "Across seeds"
LEVELS_SECTION = "Levels"


def seed_result_arg(text: str) -> tuple[int, Path]:
    """``--seed-result`` value ``SEED=RESULT.json`` -> ``(seed, path)``."""
    seed, sep, path = text.partition("=")
    if not sep or not seed.strip().isdigit() or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected SEED=RESULT.json, e.g. 0=docs/bench_lottery_demo.json")
    return int(seed), Path(path)


def levels_table(tables: list[dict], where: str) -> dict:
    """The IMP levels table (section 'Levels') of a lottery page's tables; ``where`` names the page in the error."""
    for t in tables:
        if t["section"] == LEVELS_SECTION and t["headers"][:2] == ["Level", "Remaining"]:
            return t
    raise ValueError(f"{where}: no '{LEVELS_SECTION}' table of a lottery search")


def _marked(levels: dict, mark: str) -> list[str] | None:
    """The row whose level label carries ``mark`` ('3 (best)', '8 (extreme, best)'); None without one."""
    return next((r for r in levels["rows"] if mark in r[0].partition(" (")[2].rstrip(")").split(", ")), None)


def _percent_value(cell: str) -> float | None:
    """'56.41 %' -> 56.41; '–' -> None."""
    text = cell.rstrip(" %")
    return None if text in ("", "–") else float(text)


def seed_summary(seed: int, label: str, levels: dict, dev_margins: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One seed's search as its page's levels table states it: dense, extreme and best ticket (the page's
    own marks, chosen on dev), the controls' test WER at the extreme level, and each level's dev WER
    (percentages as numbers); with the page's dev bootstrap margins (:func:`split_margins`), also its
    sparsest level not significantly worse than dense (``not_worse``: remaining weights, or None)."""
    col = {h: i for i, h in enumerate(levels["headers"])}
    dense = levels["rows"][0]

    def ticket(row: list[str] | None) -> dict[str, Any] | None:
        return None if row is None else {"level": int(row[0].split()[0]), "remaining": row[col["Remaining"]],
                                         "dev_wer": _percent_value(row[col["Dev WER"]]),
                                         "test_wer": _percent_value(row[col["Test WER"]])}

    extreme = _marked(levels, "extreme")
    controls = {name: _percent_value(extreme[col[f"{name} test WER"]]) if extreme and f"{name} test WER" in col else None
                for name in CONTROL_BRANCHES}
    kept = sparsest_not_worse(dev_margins) if dev_margins is not None else None
    return {"seed": seed, "label": label, "dense": ticket(dense), "extreme": ticket(extreme),
            "best": ticket(_marked(levels, "best")), "controls": controls,
            "dev_wer": {r[col["Remaining"]]: _percent_value(r[col["Dev WER"]]) for r in levels["rows"]},
            "bootstrap": dev_margins is not None, "not_worse": None if kept is None else _remaining_text(kept)}


def _remaining_text(margin: dict[str, Any]) -> str:
    """A margin's remaining weights as the levels table writes them ('10.7 %')."""
    return f"{100 * margin['remaining']:.1f} %"


def sparsest_not_worse(dev_margins: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The sparsest level whose 95 % paired interval on dev reaches 0 (not significantly worse than dense)."""
    return min((d for d in dev_margins if not d["worse"]), key=lambda d: d["remaining"], default=None)


def _wer_pair(t: dict[str, Any] | None) -> str:
    return "–" if t is None else f"{t['dev_wer']:.2f} / {t['test_wer']:.2f} %"


def seeds_section(seeds: list[dict[str, Any]], tolerance: float) -> tuple[list[str], str]:
    """The page's section on the same search with several seeds (:func:`seed_summary` each, this run
    first) and its verdict line: the tickets and controls per seed, then each level's dev WER above
    its own dense model's, the margin the extreme ticket is chosen by."""
    tested = [s for s in seeds if s["bootstrap"]]
    rows = [[str(s["seed"]), s["label"], _wer_pair(s["dense"]),
             s["extreme"]["remaining"] if s["extreme"] else "none matches", _wer_pair(s["extreme"]),
             " / ".join("–" if s["controls"][n] is None else f"{s['controls'][n]:.2f} %" for n in CONTROL_BRANCHES),
             s["best"]["remaining"] if s["best"] else "–", _wer_pair(s["best"]),
             *([(s["not_worse"] or "none") if s["bootstrap"] else "–"] if tested else [])] for s in seeds]
    remaining = list(dict.fromkeys(r for s in seeds for r in s["dev_wer"]))
    margins = [[r, *("–" if s["dev_wer"].get(r) is None else f"{s['dev_wer'][r] - s['dense']['dev_wer']:+.2f}"
                     for s in seeds)] for r in remaining[1:]]
    last = remaining[-1]
    at_last = sum(1 for s in seeds if s["extreme"] and s["extreme"]["remaining"] == last)
    beaten = sum(1 for s in seeds if s["extreme"] and all(v is not None and v > s["extreme"]["test_wer"]
                                                          for v in s["controls"].values()))
    verdict = ("Result: across {n} seeds the extreme ticket is at {where}; the sparsest level, {last}, matches dense "
               "in {at_last} of {n}; both controls have a higher test WER than the extreme ticket in {beaten} of {n}."
               ).format(n=len(seeds), last=last, at_last=at_last, beaten=beaten,
                        where=", ".join(f"{s['extreme']['remaining'] if s['extreme'] else 'no level'} (seed {s['seed']})"
                                        for s in seeds))
    if tested:
        verdict = verdict[:-1] + f"; {_bootstrap_clause(seeds, last)}."
    lines = [f"## {SEEDS_HEADING}", "",
             "The same search (preset, corpus, pruning rate) with other seeds (`seed`: initial weights, batch order, "
             "augmentation), each from its own page's levels table; this run first. Dev / test WER; the controls "
             f"are tested at the seed's extreme ticket ({' / '.join(CONTROL_BRANCHES)}).", "",
             md_table(["Seed", "Result", "Dense dev / test WER", "Extreme ticket", "Extreme dev / test WER",
                       "Controls' test WER there", "Best ticket", "Best dev / test WER",
                       *(["Sparsest not significantly worse on dev"] if tested else [])], rows), "",
             *([f"The last column: the sparsest level whose 95 % paired bootstrap interval of dev WER above dense "
                f"reaches 0 (the section '{BOOTSTRAP_HEADING}' of the seed's page).", ""] if tested else []),
             f"Dev WER above the seed's own dense model, in points, by remaining weights (a level matches dense "
             f"at <= {100 * tolerance:+.2f}):", "",
             md_table(["Remaining", *(f"seed {s['seed']}" for s in seeds)], margins), "",
             f"**{verdict}**", ""]
    return lines, verdict


def _bootstrap_clause(seeds: list[dict[str, Any]], last: str) -> str:
    """The seeds verdict's clause on the bootstrap rule: the same question asked of the dev set's noise
    instead of the fixed tolerance, for the seeds whose page has the bootstrap section."""
    tested = [s for s in seeds if s["bootstrap"]]
    text = ("the sparsest level not significantly worse than dense on dev (95 % paired bootstrap) is "
            + ", ".join(f"{s['not_worse'] or 'no level'} (seed {s['seed']})" for s in tested))
    if len(tested) > 1:
        text += f"; {last} in {sum(1 for s in tested if s['not_worse'] == last)} of {len(tested)}"
    untested = [str(s["seed"]) for s in seeds if not s["bootstrap"]]
    return text + (f" (seed {', '.join(untested)}: no bootstrap on its page)" if untested else "")


def search_identity(result: dict[str, Any]) -> dict[str, Any]:
    """What makes two lottery results the same search but for the seed: their ``corpus_version``,
    ``prune_percent_per_level``, ``strategy`` and ``rewind`` (a result from before the last two were
    stamped pruned by global magnitude and rewound to theta_0: no run did otherwise)."""
    return {"corpus_version": result.get("conditions", {}).get("corpus_version"),
            "prune_percent_per_level": result.get("figures", {}).get("prune_percent_per_level"),
            "strategy": pruning_strategy(result), "rewind": rewind_point(result)}


def other_seeds(paths: Sequence[tuple[int, Path]], seed: int, search: dict[str, Any]) -> list[dict[str, Any]]:
    """:func:`seed_summary` of each ``--seed-result``. Errors naming the file: a result stamped with
    another seed than its argument's, one with this run's seed, and one of another search (``search``: this
    run's :func:`search_identity`)."""
    out = []
    for other, path in paths:
        result = read_json(path)
        stamped = result.get("conditions", {}).get("seed")
        if stamped is not None and stamped != other:
            raise ValueError(f"{path}: stamped with seed {stamped}, given as seed {other}")
        if other == seed:
            raise ValueError(f"{path}: seed {other} is this run's own seed")
        theirs = search_identity(result)
        if theirs != search:
            raise ValueError(f"{path}: another search ({theirs}) than this run's ({search})")
        margins = (result.get("data") or {}).get("bootstrap", {}).get("dev")
        out.append(seed_summary(other, path.name, levels_table(result["tables"], str(path)), margins))
    return out


# ----------------------------------------------------------------- dev margins with bootstrap intervals

BOOTSTRAP_HEADING = "WER above dense, with bootstrap intervals"


def level_errors(run: Path, cfg: Config, levels: Sequence[int], splits: Sequence[str]) -> dict[str, dict[int, Errors]]:
    """Each IMP level's per-utterance errors on each split: its best checkpoint, loaded once, decodes
    the splits again (greedy, as the training loop and the level's scoring did)."""
    records = {split: load_split(cfg, split) for split in splits}
    errors: dict[str, dict[int, Errors]] = {split: {} for split in splits}
    for lv in levels:
        rec = Recognizer.load(model_path(RunLayout(run).level(lv).dir))
        for split, recs in records.items():
            hyps = evaluate(rec, recs, progress=True, desc=f"{split}, level {lv}")["hyps"]
            errors[split][lv] = utterance_errors(recs, hyps, cased=getattr(rec.tokenizer, "cased", False))
    return errors


def split_margins(imp: dict[int, dict], errors: dict[int, Errors], draws: np.ndarray, split: str) -> list[dict[str, Any]]:
    """Each pruned level's WER above dense (level 0) on one split, with its 95 % paired bootstrap
    interval over the split's utterances (``draws``, the same for every level), and the WER the level
    recorded for that split."""
    out = []
    for lv in sorted(lv for lv in errors if lv > 0):
        diff, lo, hi = paired_difference(errors[lv], errors[0], draws)
        out.append({"level": lv, "remaining": imp[lv]["remaining"], "wer": corpus_wer(*errors[lv]),
                    "recorded_wer": imp[lv].get(f"{split}_wer"), "above_dense": diff, "lo": lo, "hi": hi,
                    "worse": lo > 0})
    return out


def bootstrap_section(imp: dict[int, dict], errors: dict[str, dict[int, Errors]], tolerance: float,
                      draws: dict[str, np.ndarray]) -> tuple[list[str], str, dict[str, list[dict[str, Any]]]]:
    """Each level's WER above dense with its 95 % paired bootstrap interval on dev (where the tickets are
    chosen, beside the match rule) and, when given, on test; the verdict compares the rule's extreme
    ticket with the sparsest level not significantly worse than dense on dev (its interval reaches 0)
    and counts the levels significantly worse on test."""
    data = {split: split_margins(imp, errs, draws[split], split) for split, errs in errors.items()}
    dense_dev = corpus_wer(*errors["dev"][0])
    for d in data["dev"]:
        d["matches"] = matches_dense(d["wer"], dense_dev, tolerance)
    splits = list(data)
    sizes = {s: (len(errors[s][0][0]), int(errors[s][0][1].sum())) for s in splits}

    def cells(d: dict[str, Any]) -> list[str]:
        return [f"{100 * d['wer']:.2f} %", f"{100 * d['above_dense']:+.2f}", f"[{100 * d['lo']:+.2f}, {100 * d['hi']:+.2f}]"]

    headers, rows = ["Level", "Remaining"], []
    for s in splits:
        headers += [f"{s.capitalize()} WER", f"{s.capitalize()} above dense (points)", f"{s.capitalize()} 95 % interval",
                    *(["Matches (rule)"] if s == "dev" else []), f"Worse on {s}"]
    for i, d in enumerate(data["dev"]):
        row = [str(d["level"]), _remaining_text(d)]
        for s in splits:
            e = data[s][i]
            row += [*cells(e), *(["yes" if e["matches"] else "no"] if s == "dev" else []), "yes" if e["worse"] else "no"]
        rows.append(row)
    dev = data["dev"]
    chosen = select_tickets([{"level": 0, "remaining": 1.0, "dev_wer": dense_dev},
                             *({**d, "dev_wer": d["wer"]} for d in dev)], tolerance)["extreme"]
    extreme = next((d for d in dev if chosen and d["level"] == chosen["level"]), None)
    kept = sparsest_not_worse(dev)
    widths = [100 * (d["hi"] - d["lo"]) for d in dev] or [0.0]

    def where(d: dict | None) -> str:
        return "no level" if d is None else f"level {d['level']} ({_remaining_text(d)})"

    verdict = (f"Result: on dev ({sizes['dev'][0]} utterances, {sizes['dev'][1]} words) the match rule (at most "
               f"{100 * tolerance:+.2f} points above dense) picks {where(extreme)}; the sparsest level whose 95 % "
               f"paired interval reaches 0 (not significantly worse than dense) is {where(kept)}; the intervals "
               f"are {min(widths):.2f} to {max(widths):.2f} points wide")
    if "test" in data:
        worse = [d for d in data["test"] if d["worse"]]
        verdict += (f"; on test ({sizes['test'][0]} utterances, {sizes['test'][1]} words) {len(worse)} of "
                    f"{len(data['test'])} levels are significantly worse than dense"
                    + (f" ({', '.join(where(d) for d in worse)})" if worse else ""))
    verdict += "."
    lines = [f"## {BOOTSTRAP_HEADING}", "",
             f"Every level's best checkpoint decodes {' and '.join(splits)} again (greedy); its WER minus the dense "
             f"model's on the same utterances, with a 95 % paired bootstrap interval ({draws['dev'].shape[0]:,} "
             "resamples of the split's utterances, the same for every level). 'Worse': the interval lies above 0. "
             "The tickets are chosen on dev; test is only reported.", "",
             md_table(headers, rows), ""]
    off = [f"{s} at level {d['level']}" for s in splits for d in data[s]
           if d["recorded_wer"] is not None and abs(d["wer"] - d["recorded_wer"]) > 1e-9]
    if off:
        lines += [f"Re-decoded WER differs from the level's recorded one: {', '.join(off)}.", ""]
    return lines + [f"**{verdict}**", ""], verdict, data


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("run")
    p.add_argument("--name", default="demo")
    p.add_argument("--previous", type=Path, nargs="*", default=[],
                   help="result JSON(s) of earlier runs of this search (old numbers beside new, one section each)")
    p.add_argument("--seed-result", type=seed_result_arg, action="append", default=[], metavar="SEED=RESULT.json",
                   help="the result JSON of the same search with another seed (repeatable): a table across seeds")
    p.add_argument("--bootstrap", action="store_true",
                   help="decode dev and test again with every level: WER above dense with paired bootstrap intervals")
    args = p.parse_args()
    run = Path(args.run)
    cfg = load_run_config(run)
    imp = level_results(run)
    branches, others = control_branches(run)
    jobs = branch_jobs(run)
    plots = ROOT / "docs" / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:  # the run's own report.md keeps every branch
        md_path, _ = write_report(run, cfg.lottery.match_tolerance, branches=is_control_branch, out_dir=Path(tmp))
        report = md_path.read_text().split("\n", 1)[1]  # drop the report's own title
        for png in sorted(RunLayout(Path(tmp)).plots.glob("*.png")):
            copy = f"{PLOT_PREFIX}_{args.name}_{png.name}"
            shutil.copyfile(png, plots / copy)
            report = report.replace(f"({png.parent.name}/{png.name})", f"(plots/{copy})")
    rate, rate_figures = pruning_rate(cfg.prune.fraction)
    lines = [f"# Lottery search: {args.name}", "",
             f"Run `{run.name}` (seed {cfg.train.seed}), {rate} by {describe_strategy(cfg.prune.strategy)}, "
             f"rewinding to {describe_rewind(cfg.prune.rewind)}; "
             f"match tolerance {cfg.lottery.match_tolerance} absolute dev WER. "
             f"Generated by `{command_line()}`.", report,
             "## Cost of the search", "",
             *cost_lines(imp, branches, jobs, threads_per_job(cfg.train.threads, jobs)), ""]
    if others:
        lines += [f"Other branches of this run, not in this page's tables or costs (only the controls "
                  f"{' and '.join(CONTROL_BRANCHES)} are): {', '.join(others)}.", ""]
    conditions = {**training_conditions(cfg), "seed": cfg.train.seed, "strategy": cfg.prune.strategy,
                  "rewind": cfg.prune.rewind}
    verdicts, data, boot = [], None, None
    if args.bootstrap:  # decoded first: the seeds section uses its dev margins
        torch.set_num_threads(cfg.train.threads)
        splits = ["dev", *(["test"] if cfg.data.test_manifest else [])]
        errors = level_errors(run, cfg, sorted(imp), splits)
        draws = {split: resamples(len(errors[split][0][0])) for split in splits}
        boot = bootstrap_section(imp, errors, cfg.lottery.match_tolerance, draws)
    if args.seed_result:
        here = seed_summary(cfg.train.seed, f"this run ({run.name})", levels_table(parse_tables("\n".join(lines)), run.name),
                            boot[2]["dev"] if boot else None)
        search = search_identity({"conditions": conditions, "figures": rate_figures})
        seeds = [here, *other_seeds(args.seed_result, cfg.train.seed, search)]
        section, verdict = seeds_section(seeds, cfg.lottery.match_tolerance)
        lines += section
        verdicts, data = [verdict], {"seeds": seeds}
    if boot is not None:
        section, verdict, margins = boot
        lines += section
        verdicts.append(verdict)
        data = {**(data or {}), "bootstrap": margins}
    markdown = "\n".join(lines)
    for path in args.previous:
        lines += previous_section(read_json(path), markdown, conditions.get("corpus_version"), path.name)
    write_page(ROOT / "docs" / f"bench_lottery_{args.name}.md", "\n".join(lines) + "\n", conditions=conditions,
               figures=rate_figures, verdicts=verdicts, data=data)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
