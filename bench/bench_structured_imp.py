"""Structured IMP against unstructured IMP at the same sparsity.

Does a ticket pruned in blocks or whole channels *at every level* (``prune.strategy=block|channel``)
keep the accuracy of the unstructured ticket, where a one-shot conversion of the unstructured
ticket (the ``structured`` branch) did not?

    audio-lottery lottery --config runs/lottery_<u>/config.yaml --set prune.strategy=channel \\
        --set prune.fraction=0.36 --levels 4 --root runs/structured_imp          # and strategy=block
    python bench/bench_structured_imp.py --run runs/lottery_<u> --structured runs/structured_imp/lottery_<c> \\
        --structured runs/structured_imp/lottery_<b>

Levels are matched by remaining weight (within 2 % relative). Writes docs/bench_structured_imp.md
and docs/plots/bench_structured_imp.png. ``--previous`` names the result JSONs of earlier pages (e.g.
docs/history/bench_structured_imp_corpus1.json): their cells stand beside the new ones, at the same
remaining weight, for every series both pages have. The corpus version is stamped into the result.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from audio_lottery.config import load_config
from audio_lottery.files import read_json
from audio_lottery.layout import RunLayout
from audio_lottery.lottery.report_real import run_real_speech
from audio_lottery.lottery.runner import load_run_config
from audio_lottery.lottery.tickets import level_results

from quick import ROOT, md_table, plot_against_remaining
from results_io import (beside_previous, before_and_after_heading, command_line, parse_tables, previous_intro,
                        training_conditions, write_page)


def densest_first(folder: Path) -> list[dict]:
    """``result.json`` of every finished level of a run or branch folder, densest first."""
    return sorted(level_results(folder).values(), key=lambda r: -r["remaining"])


def imp_runs(run: Path, structured: list[Path]) -> dict[str, Path]:
    """Series name -> folder of the unstructured IMP run and of each structured IMP run."""
    out = {"unstructured IMP": run}
    for s in structured:
        cfg = load_config(RunLayout(s).config)
        strategy = cfg.prune.strategy
        if strategy == "block":
            strategy = f"block {'x'.join(map(str, cfg.prune.block_shape))}"
        kept_dense = f" (not pruned: {', '.join(cfg.prune.exclude)})" if cfg.prune.exclude else ""
        out[f"{strategy} IMP{kept_dense}"] = s
    return out


def series(run: Path, structured: list[Path]) -> dict[str, list[dict]]:
    """Name -> level results: the unstructured IMP run, each structured IMP run, and the run's
    one-shot ``structured-*`` conversion branches."""
    out = {name: densest_first(folder) for name, folder in imp_runs(run, structured).items()}
    for name, branch in RunLayout(run).branches().items():
        if name.startswith("structured-"):
            out[f"{name.removeprefix('structured-')} one-shot"] = densest_first(branch.dir)
    return out


def same_sparsity(a: float, b: float, tolerance: float = 0.02) -> bool:
    """Remaining weights ``a`` and ``b`` agree within ``tolerance`` (relative to ``b``)."""
    return abs(a - b) <= tolerance * b


def matching(results: list[dict], remaining: float) -> dict | None:
    """The result whose remaining weight is closest to ``remaining``, if it is the same sparsity."""
    close = [r for r in results if same_sparsity(r["remaining"], remaining)]
    return min(close, key=lambda r: abs(r["remaining"] - remaining)) if close else None


def cell(r: dict | None) -> str:
    return "–" if r is None else f"{r['dev_wer']:.3f} / {r['test_wer']:.3f} / {r['test_cer']:.3f}"


def render(runs: dict[str, list[dict]], args: argparse.Namespace, plot_file: Path) -> tuple[str, list[str]]:
    """The page's comparison table and plot, and its verdicts: each structured series' gap at each level."""
    points = [1.0]
    for x in sorted((r["remaining"] for rs in runs.values() for r in rs if r["level"] > 0), reverse=True):
        if not same_sparsity(x, points[-1]):
            points.append(x)
    rows = [[f"{100 * p:.1f}", *[cell(matching(rs, p)) for rs in runs.values()]] for p in points]
    rows = [r for r in rows if sum(c != "–" for c in r[1:]) > 1]
    gap_lines = []
    for name, rs in runs.items():
        if name == "unstructured IMP":
            continue
        dense = matching(rs, 1.0) or runs["unstructured IMP"][0]  # the run's own level 0 where it has one
        for r in rs:
            if r["level"] == 0:
                continue
            u = matching(runs["unstructured IMP"], r["remaining"])
            vs_u = f"{r['dev_wer'] - u['dev_wer']:+.3f} dev WER against unstructured" if u else "no unstructured level there"
            gap_lines.append(f"- {name} at {100 * r['remaining']:.1f} %: {r['dev_wer'] - dense['dev_wer']:+.3f} dev WER "
                             f"against its dense model, {vs_u}.")
    return "\n".join([
        "# Structured IMP against unstructured IMP", "",
        f"Generated by `{command_line()}`. Each cell: dev WER / test WER / test CER. *IMP*: a lottery search with that "
        "prune strategy at every level (mask, rewind to theta_0, retrain). *one-shot*: the unstructured ticket "
        "converted once to the structure and retrained (the `structured` branch). Dense (level 0) of each run is "
        "retrained by that run, so the dense rows differ by float-order effects (thread counts).", "",
        md_table(["remaining %", *runs.keys()], rows), "",
        *gap_lines, "",
        f"![test WER against remaining weight]({plot_file.relative_to(Path(args.doc).parent)})", "",
    ]), gap_lines


def real_speech_section(runs: dict[str, Path]) -> list[str]:
    """The dense model and the tickets (chosen on dev WER, as in each run's report) of every IMP series
    on the real-speech test; [] when no run has one (the asterisk test is not prepared beside the corpus)."""
    headings, rows, notes = [], [], []
    for name, folder in runs.items():
        made, run_notes = run_real_speech(folder, load_run_config(folder).lottery.match_tolerance)
        notes += [f"{name}: {n}" for n in run_notes]
        if made:
            headings.append(made[0])
            headers, table = made[1]
            rows += [[name, *r] for r in table]
    if not rows:
        return []
    heading = headings[0] if len(set(headings)) == 1 else "Real-speech test (the runs name different test sets)"
    return [f"## {heading}", "", "Greedy decoding; no model here was trained or selected on it.", "",
            md_table(["Series", *headers], rows), "", *[f"- {n}" for n in notes]]


def previous_section(previous: dict, doc: str, names: list[str], version: int | None = None,
                     label: str = "") -> list[str]:
    """The earlier page's cells beside this page's for the series both have, rows paired by
    remaining weight within :func:`same_sparsity` (levels of two runs differ in the last digit)."""
    old = next((t for t in previous["tables"] if t["headers"][0] == "remaining %"), None)
    shared = [n for n in names if old and n in old["headers"]]
    if not shared:
        return [before_and_after_heading(label), "", "The earlier page has none of this page's series.", ""]
    labels = [r[0] for t in parse_tables(doc) if t["headers"][0] == "remaining %" for r in t["rows"]]

    def relabel(cell: str) -> str:
        return next((x for x in labels if same_sparsity(float(cell), float(x))), cell)

    paired = {**previous, "tables": [{**old, "rows": [[relabel(r[0]), *r[1:]] for r in old["rows"]]}]}
    return [before_and_after_heading(label), "",
            previous_intro(previous, "The same comparison", version,
                           "cell by cell at the same remaining weight (dev WER / test WER / test CER)"), "",
            beside_previous(paired, doc, "remaining %", shared), ""]


def plot(runs: dict[str, list[dict]], out: Path) -> None:
    plot_against_remaining(runs, {"dev_wer": "dev wer (%)", "test_cer": "test cer (%)"}, out,
                           styles={name: "s" for name in runs if "IMP" not in name})

def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, type=Path, help="the unstructured lottery run")
    p.add_argument("--structured", action="append", default=[], type=Path, help="a structured IMP run (repeatable)")
    p.add_argument("--doc", default=str(ROOT / "docs" / "bench_structured_imp.md"))
    p.add_argument("--previous", type=Path, nargs="*", default=[],
                   help="result JSONs of earlier pages (their cells beside the new ones)")
    args = p.parse_args()
    for folder in [args.run, *args.structured]:
        if not RunLayout(folder).config.is_file():
            raise SystemExit(f"{folder}: not a lottery run (no {RunLayout(folder).config.name})")
    runs = series(args.run, args.structured)
    plot_file = Path(args.doc).parent / "plots" / f"{Path(args.doc).stem}.png"
    plot(runs, plot_file)
    comparison, gaps = render(runs, args, plot_file)
    doc = "\n".join([comparison, *real_speech_section(imp_runs(args.run, args.structured))])
    conditions = training_conditions(load_run_config(args.run))
    for path in args.previous:
        doc += "\n".join(["", *previous_section(read_json(path), doc, list(runs), conditions.get("corpus_version"),
                                                 path.name)])
    write_page(Path(args.doc), doc, conditions=conditions, verdicts=gaps)
    print(doc)


if __name__ == "__main__":
    main()
