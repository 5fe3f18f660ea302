"""Report sections beyond the IMP table: the real-speech test (``report_real.py``), WER under noise and
mask overlap.

- Noise: every level folder (IMP or branch) with an ``eval_noise.json`` (written by
  ``audio-lottery eval --run RUN --levels all --snr ... --noise ...``) gives a row of test WER
  per SNR; plots show WER against SNR for the dense model and the tickets, and WER against
  remaining weight for each SNR.
- Overlap: IoU of kept weights between this run's IMP masks and (a) every comparison stored
  in ``<run>/overlap/*.json`` by ``audio-lottery overlap``, (b) branches with masks of their
  own (``transfer-finetune*``: the target's tickets; ``random-prune*``: the chance level).
"""

from __future__ import annotations

import json
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from audio_lottery.eval.noisy import CLEAN
from audio_lottery.layout import LevelLayout, RunLayout
from audio_lottery.lottery.report_data import IMP, RunData, Table, is_number, level_label, pct, png_bytes
from audio_lottery.lottery.report_real import real_speech_table
from audio_lottery.pruning.overlap import compare_runs, mask_levels

OWN_MASK_BRANCHES = ("transfer-finetune", "random-prune")



# --------------------------------------------------------------------------- noise


def _snr_sort(keys: list[str]) -> list[str]:
    """clean first, then SNRs from high to low."""
    return sorted(set(keys), key=lambda k: (k != CLEAN, -float(k) if k != CLEAN else 0.0))


def noise_results(run: RunData) -> dict[str, dict[int, dict[str, dict]]]:
    """series (``imp`` or branch name) -> level -> {snr: scores} from the levels' eval_noise.json."""
    out: dict[str, dict[int, dict[str, dict]]] = {}
    for series, levels in {IMP: run.imp, **run.branches}.items():
        for level, data in levels.items():
            path = LevelLayout(data.path).eval_noise
            if not path.is_file():
                continue
            try:
                results = json.loads(path.read_text()).get("results", {})
            except (OSError, ValueError) as exc:
                run.notes.append(f"{path}: unreadable ({exc})")
                continue
            if results:
                out.setdefault(series, {})[level] = results
    return out


def noise_table(run: RunData, tickets: dict | None, noise: dict) -> Table:
    snrs = _snr_sort([s for levels in noise.values() for res in levels.values() for s in res])
    headers = ["Series", "Level", "Remaining"] + [f"WER {s}" if s == CLEAN else f"WER {s} dB" for s in snrs]
    rows = []
    for series, levels in noise.items():
        folder = run.imp if series == IMP else run.branches[series]
        for level, res in sorted(levels.items()):
            rows.append([series, level_label(level, tickets), pct(folder[level].remaining, 1)]
                        + [pct(res.get(s, {}).get("wer")) for s in snrs])
    return headers, rows


def _ticket_levels(tickets: dict | None) -> dict[str, int]:
    if not tickets:
        return {"dense": 0}
    return {"dense": 0, **{k: tickets[k]["level"] for k in ("extreme", "best") if tickets.get(k)}}


def plot_wer_snr(run: RunData, tickets: dict | None) -> bytes | None:
    """Test WER against SNR for the dense model and the extreme/best tickets, per series."""
    noise = noise_results(run)
    snrs = _snr_sort([s for levels in noise.values() for res in levels.values() for s in res])
    if len(snrs) < 2:
        return None
    fig = Figure(figsize=(8, 5))
    ax = fig.add_subplot()
    styles = ["-", "--", ":", "-."]
    for i, (series, levels) in enumerate(noise.items()):
        for j, (name, level) in enumerate(_ticket_levels(tickets).items()):
            res = levels.get(level)
            if not res:
                continue
            pts = [(k, 100 * res[s]["wer"]) for k, s in enumerate(snrs) if is_number(res.get(s, {}).get("wer"))]
            if pts:
                ax.plot(*zip(*pts), styles[i % len(styles)], marker="o", color=f"C{j}",
                        label=f"{series} {name} (level {level})")
    if not ax.lines:
        return None
    ax.set_xticks(range(len(snrs)))
    ax.set_xticklabels([s if s == CLEAN else f"{s} dB" for s in snrs])
    ax.set(xlabel="test SNR (unseen test noise)", ylabel="test WER (%)", title="WER against SNR")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return png_bytes(fig)


def plot_wer_remaining_snr(run: RunData, tickets: dict | None) -> bytes | None:
    """Test WER against remaining weight, one line per SNR, one panel per series."""
    noise = {s: lv for s, lv in noise_results(run).items() if len(lv) >= 2}
    if not noise:
        return None
    fig = Figure(figsize=(6 * len(noise), 4.5))
    for i, (series, levels) in enumerate(noise.items()):
        ax = fig.add_subplot(1, len(noise), i + 1)
        folder = run.imp if series == IMP else run.branches[series]
        snrs = _snr_sort([s for res in levels.values() for s in res])
        for k, snr in enumerate(snrs):
            pts = sorted(((100 * folder[lv].remaining, 100 * res[snr]["wer"]) for lv, res in levels.items()
                          if folder[lv].remaining and is_number(res.get(snr, {}).get("wer"))), reverse=True)
            if pts:
                ax.plot(*zip(*pts), marker="o", markersize=4, color=f"C{k}", label=snr if snr == CLEAN else f"{snr} dB")
        xs = sorted({100 * folder[lv].remaining for lv in levels if folder[lv].remaining}, reverse=True)
        ax.set_xscale("log")
        ax.set_xlim(xs[0] * 1.08, xs[-1] / 1.08)  # 100 % at the left
        ax.xaxis.set_major_locator(FixedLocator(xs))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{x:.3g}" for x in xs])
        ax.set(xlabel="remaining weights (%)", ylabel="test WER (%)", title=f"{series}: WER per SNR")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return png_bytes(fig)


# --------------------------------------------------------------------------- overlap


def _overlaps(run: RunData) -> dict[str, dict[int, dict]]:
    """label -> level -> mask_iou result, from stored comparisons and own-mask branches."""
    out: dict[str, dict[int, dict]] = {}
    for path in sorted(RunLayout(run.run_dir).overlap.glob("*.json")):
        try:
            data = json.loads(path.read_text())
            out[data.get("label", path.stem)] = {int(k): v for k, v in data["levels"].items()}
        except (OSError, ValueError, KeyError) as exc:
            run.notes.append(f"{path}: unreadable ({exc})")
    for name in run.branches:
        folder = RunLayout(run.run_dir).branch(name).dir
        if not name.startswith(OWN_MASK_BRANCHES):
            continue
        common = [lv for lv in set(mask_levels(run.run_dir)) & set(mask_levels(folder)) if lv > 0]
        if not common:
            continue
        try:
            out[f"branch {name}"] = compare_runs(run.run_dir, folder, sorted(common))
        except (FileNotFoundError, ValueError) as exc:
            run.notes.append(f"overlap with branch {name}: {exc}")
    return out


def overlap_tables(run: RunData) -> list[tuple[str, Table]]:
    """Per comparison: global IoU per level, then IoU per tensor (rows) and level (columns)."""
    tables = []
    for label, levels in _overlaps(run).items():
        rows = [[str(lv), pct(r["global"]["density_a"], 1), pct(r["global"]["density_b"], 1),
                 f"{r['global']['iou']:.3f}", f"{r['global']['chance_iou']:.3f}"] for lv, r in sorted(levels.items())]
        tables.append((f"Mask overlap with {label}",
                       (["Level", "Density (this run)", f"Density ({label})", "IoU", "Chance IoU"], rows)))
        lvs = sorted(levels)
        names = list(levels[lvs[0]]["tensors"]) if lvs else []
        per = [[name] + [f"{levels[lv]['tensors'][name]['iou']:.3f}" if name in levels[lv]["tensors"] else "–"
                         for lv in lvs] for name in names]
        tables.append((f"Mask overlap with {label}, per tensor (IoU)", (["Tensor"] + [f"L{lv}" for lv in lvs], per)))
    return tables


# --------------------------------------------------------------------------- hooks for write_report


def extra_tables(run: RunData, tickets: dict | None) -> list[tuple[str, Table]]:
    real = real_speech_table(run, tickets)
    noise = noise_results(run)
    tables = [real] if real else []
    tables += [("Test WER under noise (unseen test noise)", noise_table(run, tickets, noise))] if noise else []
    return tables + overlap_tables(run)


EXTRA_PLOTS: tuple[tuple[str, str, Any], ...] = (
    ("wer_snr.png", "WER against SNR (dense and tickets)", plot_wer_snr),
    ("wer_remaining_snr.png", "WER against remaining weights per SNR", plot_wer_remaining_snr),
)
