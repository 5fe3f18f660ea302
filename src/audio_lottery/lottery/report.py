"""Lottery run report: ``report.md`` and a self-contained ``report.html`` plus PNG plots.

Reads the run folder written by the lottery runner::

    run_dir/config.yaml
    run_dir/level_<L>/result.json            IMP levels (L = 0 is dense)
    run_dir/level_<L>/train/metrics.jsonl    optional training curves
    run_dir/level_<L>/mask.json              optional mask sparsity report
    run_dir/branch_<name>/level_<L>/...      control branches, same layout
    run_dir/[branch_<name>/]level_<L>/eval_noise.json   optional WER per SNR (report_extras.py)
    run_dir/level_<L>/eval_real.json         real-speech test scores, written here for the dense model and
                                             the tickets when a real-speech test exists (report_real.py)
    run_dir/overlap/*.json                   optional mask-overlap comparisons (report_extras.py)

Anything missing or unreadable is skipped and listed under "Notes". Tickets are
chosen on dev WER only (:func:`audio_lottery.lottery.tickets.select_tickets`).
"""

from __future__ import annotations

import base64
import html
import re
import math

from pathlib import Path
from typing import Any, Callable

from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from audio_lottery.config import LotteryConfig
from audio_lottery.faultpoints import faultpoint
from audio_lottery.files import atomic_write_bytes, atomic_write_text
from audio_lottery.layout import RunLayout
from audio_lottery.lottery.report_data import (IMP, LevelData, RunData, is_number, level_label, load_run, pct,
                                               png_bytes)
from audio_lottery.lottery.report_extras import EXTRA_PLOTS, extra_tables
from audio_lottery.lottery.tickets import select_tickets



# --------------------------------------------------------------------------- loading


def _tolerance(run: RunData, tolerance: float | None) -> float:
    if tolerance is not None:
        return float(tolerance)
    value = (run.config.get("lottery") or {}).get("match_tolerance")
    return float(value) if is_number(value) else LotteryConfig().match_tolerance


# --------------------------------------------------------------------------- tickets


def _ticket_rows(levels: dict[int, LevelData]) -> list[dict[str, Any]]:
    rows = []
    for data in levels.values():
        if data.result is None or data.remaining is None or not is_number(data.result.get("dev_wer")):
            continue
        rows.append({**data.result, "level": data.level, "remaining": data.remaining})
    return rows


def _tickets(run: RunData, tolerance: float) -> dict[str, dict[str, Any] | None] | None:
    rows = _ticket_rows(run.imp)
    if not any(r["level"] == 0 for r in rows):
        return None
    return select_tickets(rows, tolerance)


# --------------------------------------------------------------------------- formatting


def _count(value: Any) -> str:
    return f"{int(value):,}" if is_number(value) else "–"


def _si(value: Any) -> str:
    if isinstance(value, dict):  # a full effective_macs() result
        value = value.get("effective_macs")
    if not is_number(value):
        return "–"
    for scale, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {unit}"
    return f"{value:.0f}"


def _duration(seconds: Any) -> str:
    if not is_number(seconds):
        return "–"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _describe(ticket: dict[str, Any]) -> str:
    return (
        f"level {ticket['level']}, {pct(ticket['remaining'], 1)} of weights remaining, "
        f"dev WER {pct(ticket.get('dev_wer'))}, test WER {pct(ticket.get('test_wer'))}"
    )


def _summary(run: RunData, tickets: dict | None, tolerance: float) -> list[str]:
    """Summary lines (markdown-free plain sentences with a bold lead word)."""
    if tickets is None:
        return ["**Dense:** no finished dense (level 0) result yet; tickets cannot be chosen."]
    dense, extreme, best = tickets["dense"], tickets["extreme"], tickets["best"]
    lines = [f"**Dense:** dev WER {pct(dense.get('dev_wer'))}, test WER {pct(dense.get('test_wer'))}."]
    rule = f"sparsest level with dev WER <= dense + {100 * tolerance:.2f} points"
    if extreme is None:
        lines.append(f"**Extreme ticket** ({rule}): none, no pruned level matches the dense model.")
    else:
        lines.append(f"**Extreme ticket** ({rule}): {_describe(extreme)}.")
    if best is None:
        lines.append("**Best ticket** (lowest dev WER): none, no pruned level finished.")
    else:
        lines.append(f"**Best ticket** (lowest dev WER): {_describe(best)}.")
    ref = extreme or best
    for name, levels in run.branches.items():
        data = levels.get(ref["level"]) if ref else None
        if data is not None and data.result is not None:
            lines.append(
                f"**Branch {name}** at level {ref['level']}: dev WER {pct(data.result.get('dev_wer'))}, "
                f"test WER {pct(data.result.get('test_wer'))}."
            )
    lines.append("Tickets are chosen on dev WER only; test WER is reported, never used for selection.")
    return lines


DENSITY_TABLE = "Density of each pruned tensor by level (%)"
_COLUMNS = ["Level", "Remaining", "Nonzero params", "MACs/s", "Dev WER", "Dev CER", "Test WER", "Test CER",
            "Train time", "Wall time"]


def _row(level: int, data: LevelData | None, tickets: dict | None) -> list[str]:
    r = (data.result if data else None) or {}
    return [level_label(level, tickets), pct(data.remaining if data else None, 1), _count(r.get("nonzero_params")),
            _si(r.get("macs_per_second")), pct(r.get("dev_wer")), pct(r.get("dev_cer")),
            pct(r.get("test_wer")), pct(r.get("test_cer")), _duration(r.get("train_seconds")),
            _duration(r.get("wall_seconds"))]


def _table(run: RunData, tickets: dict | None) -> tuple[list[str], list[list[str]]]:
    """One row per level: IMP columns, then dev/test WER of every branch at that level."""
    headers = list(_COLUMNS)
    for name in run.branches:
        headers += [f"{name} dev WER", f"{name} test WER"]
    levels = sorted(set(run.imp).union(*[set(b) for b in run.branches.values()]))
    rows = []
    for level in levels:
        row = _row(level, run.imp.get(level), tickets)
        for branch in run.branches.values():
            br = (branch[level].result if level in branch else None) or {}
            row += [pct(br.get("dev_wer")), pct(br.get("test_wer"))]
        rows.append(row)
    return headers, rows


def _tables(run: RunData, tickets: dict | None) -> list[tuple[str, tuple[list[str], list[list[str]]]]]:
    """The comparison table, then a full table per branch, then each pruned tensor's density by level."""
    out = [("Levels", _table(run, tickets))]
    for name, levels in run.branches.items():
        out.append((f"Branch {name}", (list(_COLUMNS), [_row(lv, levels[lv], None) for lv in sorted(levels)])))
    names, levels, grid = _density_grid(run)
    if names:
        headers = ["Tensor", *[f"L{lv} ({pct(run.imp[lv].remaining, 1)})" for lv in levels]]
        rows = [[name, *("–" if math.isnan(v) else f"{100 * v:.1f}" for v in row)] for name, row in zip(names, grid)]
        out.append((DENSITY_TABLE, (headers, rows)))
    return out


# --------------------------------------------------------------------------- plots


def _wer_series(levels: dict[int, LevelData], key: str) -> tuple[list[float], list[float]]:
    points = sorted(
        (100 * d.remaining, d.result[key])
        for d in levels.values()
        if d.result is not None and d.remaining and is_number(d.result.get(key))
    )[::-1]
    return [p[0] for p in points], [100 * p[1] for p in points]


def _mark_tickets(ax: Any, tickets: dict | None) -> None:
    if not tickets:
        return
    dense = tickets["dense"]
    ax.axhline(100 * dense["dev_wer"], color="grey", linestyle="--", linewidth=1, label="dense dev WER")
    if is_number(dense.get("test_wer")):
        ax.axhline(100 * dense["test_wer"], color="grey", linestyle=":", linewidth=1, label="dense test WER")
    for key, marker in (("extreme", "*"), ("best", "D")):
        t = tickets.get(key)
        if t:
            ax.plot([100 * t["remaining"]], [100 * t["dev_wer"]], marker=marker, markersize=13 if marker == "*" else 8,
                    color="crimson", linestyle="none", label=f"{key} ticket ({100 * t['remaining']:.1f} %)")


def plot_wer(run: RunData, tickets: dict | None) -> bytes | None:
    """Dev (solid) and test (dashed) WER against remaining weights, IMP and branches."""
    series = {IMP: run.imp, **run.branches}
    fig = Figure(figsize=(8, 5))
    ax = fig.add_subplot()
    xs_all: set[float] = set()
    for i, (name, levels) in enumerate(series.items()):
        color = f"C{i}"
        for key, style in (("dev_wer", "-"), ("test_wer", "--")):
            xs, ys = _wer_series(levels, key)
            if xs:
                ax.plot(xs, ys, style, marker="o", markersize=4, color=color, label=f"{name} {key[:-4]}")
                xs_all.update(xs)
    if not xs_all:
        return None
    _mark_tickets(ax, tickets)
    ax.set_xscale("log")
    ax.set_xlim(max(xs_all) * 1.08, min(xs_all) / 1.08)  # 100 % at the left
    ticks = sorted(xs_all, reverse=True)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{x:.3g}" for x in ticks], rotation=45 if len(ticks) > 8 else 0)
    ax.set_xlabel("remaining weights (%)")
    ax.set_ylabel("WER (%)")
    ax.set_title("WER against sparsity")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return png_bytes(fig)


def _density_grid(run: RunData) -> tuple[list[str], list[int], list[list[float]]]:
    levels = [lv for lv, d in run.imp.items() if d.mask_report and isinstance(d.mask_report.get("tensors"), dict)]
    names: list[str] = []
    for lv in levels:
        names += [n for n in run.imp[lv].mask_report["tensors"] if n not in names]
    grid = []
    for name in names:
        row = []
        for lv in levels:
            value = run.imp[lv].mask_report["tensors"].get(name, {}).get("density")
            row.append(float(value) if is_number(value) else math.nan)
        grid.append(row)
    return names, levels, grid


def plot_density(run: RunData) -> bytes | None:
    """Heatmap of per-tensor mask density (rows: tensors, columns: IMP levels)."""
    names, levels, grid = _density_grid(run)
    if not names:
        return None
    fig = Figure(figsize=(max(5.0, 0.7 * len(levels) + 3), max(3.0, 0.3 * len(names) + 1.5)))
    ax = fig.add_subplot()
    image = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="density")
    ax.set_xticks(range(len(levels)))
    ax.set_xticklabels([f"L{lv}\n{pct(run.imp[lv].remaining, 1)}" for lv in levels], fontsize=7)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=7)
    if len(names) * len(levels) <= 400:
        for i, row in enumerate(grid):
            for j, value in enumerate(row):
                if not math.isnan(value):
                    ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if value < 0.5 else "black")
    ax.set_title("per-tensor density by level")
    return png_bytes(fig)


def plot_training(run: RunData) -> bytes | None:
    """Training loss per step and dev WER per epoch, one line per IMP level."""
    levels = {lv: d.metrics for lv, d in run.imp.items() if d.metrics}
    if not levels:
        return None
    fig = Figure(figsize=(11, 4))
    ax_loss, ax_wer = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    cmap = _colormap(len(levels))
    for i, (lv, rows) in enumerate(levels.items()):
        loss = [(r.get("step", k), r["loss"]) for k, r in enumerate(rows) if is_number(r.get("loss"))]
        wer = [(r["epoch"], 100 * r["dev_wer"]) for r in rows
               if is_number(r.get("dev_wer")) and is_number(r.get("epoch"))]
        if loss:
            ax_loss.plot(*zip(*loss), color=cmap(i), linewidth=1, label=f"level {lv}")
        if wer:
            ax_wer.plot(*zip(*wer), marker="o", markersize=3, color=cmap(i), label=f"level {lv}")
    ax_loss.set(xlabel="step", ylabel="training loss", title="training loss")
    ax_wer.set(xlabel="epoch", ylabel="dev WER (%)", title="dev WER")
    for ax in (ax_loss, ax_wer):
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, ncol=2)
    return png_bytes(fig)


def _colormap(n: int) -> Any:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return lambda i: cmap(i / max(n - 1, 1) * 0.9)


# --------------------------------------------------------------------------- rendering

_PLOTS = (
    ("wer.png", "WER against remaining weights", plot_wer),
    ("density.png", "Per-layer density by level", plot_density),
    ("training.png", "Training curves", plot_training),
)

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f0f0f0; } td:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; } .notes { color: #777; font-size: 0.85em; }
"""


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _render_md(title: str, summary: list[str], tables: list, plots: list, notes: list[str]) -> str:
    parts = [f"# {title}", "", *[f"- {line}" for line in summary]]
    for heading, table in tables:
        parts += ["", f"## {heading}", "", _md_table(*table) if table[1] else "No level results yet."]
    for name, caption, _ in plots:
        parts += ["", f"## {caption}", "", f"![{caption}](plots/{name})"]
    if notes:
        parts += ["", "## Notes", "", *[f"- {n}" for n in notes]]
    return "\n".join(parts) + "\n"


def _html_inline(text: str) -> str:
    """Escape text and turn markdown ``**bold**`` into <b>."""
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(text))


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "<p>No level results yet.</p>"
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _render_html(title: str, summary: list[str], tables: list, plots: list, notes: list[str]) -> str:
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1><ul>"]
    parts += [f"<li>{_html_inline(line)}</li>" for line in summary]
    parts.append("</ul>")
    for heading, table in tables:
        parts.append(f"<h2>{html.escape(heading)}</h2>{_html_table(*table)}")
    for _, caption, png in plots:
        data = base64.b64encode(png).decode("ascii")
        parts.append(f"<h2>{html.escape(caption)}</h2><img alt='{html.escape(caption)}' "
                     f"src='data:image/png;base64,{data}'>")
    if notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
        parts.append(f"<h2>Notes</h2><ul class='notes'>{items}</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(run_dir: Path, tolerance: float | None = None, *, branches: Callable[[str], bool] | None = None,
                 out_dir: Path | None = None) -> tuple[Path, Path]:
    """Write ``report.md``, ``report.html`` and ``plots/*.png`` into ``out_dir`` (default: ``run_dir``).

    ``tolerance`` (absolute dev-WER slack for the extreme ticket) defaults to
    ``lottery.match_tolerance`` from ``run_dir/config.yaml``; ``branches`` picks the branch folders
    (name with tag) the report shows, all by default. Returns (md path, html path).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: run folder not found")
    run = load_run(run_dir, branches)
    out = RunLayout(Path(out_dir) if out_dir is not None else run_dir)
    tol = _tolerance(run, tolerance)
    tickets = _tickets(run, tol)
    plots = []
    makers = [(n, c, (lambda r, t, m=m: m(r, t) if m is plot_wer else m(r))) for n, c, m in _PLOTS]
    for name, caption, make in makers + list(EXTRA_PLOTS):
        png = make(run, tickets)
        if png is not None:
            atomic_write_bytes(out.plots / name, png)
            plots.append((name, caption, png))
    title = f"Lottery report: {'/'.join(run_dir.resolve().parts[-2:])}"
    summary = _summary(run, tickets, tol)
    tables = _tables(run, tickets) + extra_tables(run, tickets)
    md_path, html_path = out.report_md, out.report_html
    atomic_write_text(md_path, _render_md(title, summary, tables, plots, run.notes))
    faultpoint("report.write")
    atomic_write_text(html_path, _render_html(title, summary, tables, plots, run.notes))
    return md_path, html_path
