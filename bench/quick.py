"""Shared helpers of the benchmarks: a tiny corpus for ``--quick`` modes, subset scores and markdown tables."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "configs" / "ds2_tiny.yaml"


def tiny_corpus(folder: Path) -> Path:
    """A few dozen utterances of every TTS engine in ``folder`` (synthesised once, seconds)."""
    folder = Path(folder)
    if not all((folder / f"{s}.jsonl").is_file() for s in ("train", "dev", "test")):
        from audio_lottery.data.corpora.synth import synthesize_corpus

        synthesize_corpus(folder, hours=0.04, seed=0, workers=2, progress=False)
    return folder


def manifests(folder: Path) -> list[str]:
    """Overrides pointing data.{train,dev,test}_manifest at ``folder``."""
    return [f"data.{s}_manifest={Path(folder).resolve() / f'{s}.jsonl'}" for s in ("train", "dev", "test")]


def subset_scores(records: list[dict], hyps: dict[str, str]) -> dict | None:
    """WER/CER of ``records`` (hypotheses by id; references as ``eval`` scores them), None when there are none."""
    if not records:
        return None
    from audio_lottery.eval.normalize import score_records  # imported here, as in tiny_corpus: make_results imports quick

    s = score_records(records, [hyps[r["id"]] for r in records])
    return {"wer": s["wer"], "cer": s["cer"], "utterances": len(records)}


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def threads_phrase(n: int) -> str:
    """``n`` torch threads in a page's prose: 'one thread' or 'N threads'."""
    return "one thread" if n == 1 else f"{n} threads"


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def log_remaining_axis(ax, xs: list[float]) -> None:
    """Log-scaled 'remaining weights (%)' axis, 100 % at the left, ticks at the levels."""
    from matplotlib.ticker import FixedLocator, NullLocator

    ticks = sorted(set(xs), reverse=True)
    ax.set_xscale("log")
    ax.set_xlim(max(ticks) * 1.08, min(ticks) / 1.08)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([f"{x:.3g}" for x in ticks])


def save_figure(fig, out: Path) -> None:
    """Write ``fig`` to ``out`` (folders made), 100 dpi, tight."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")


def plot_against_remaining(series: dict[str, list[dict]], metrics: dict[str, str], out: Path, *,
                           title: str = "", reference: tuple[str, dict] | None = None,
                           styles: dict[str, str] | None = None, ticks: list[float] | None = None) -> None:
    """One panel per ``metrics`` key (-> y label): that value (%) of each series' level results
    against remaining weight (log axis, ticks at ``ticks`` or every level shown). ``reference``
    (label, result) adds a dashed line; ``styles`` overrides a series' ``"o-"`` format."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6 * len(metrics), 4.5))
    for k, (key, ylabel) in enumerate(metrics.items()):
        ax = fig.add_subplot(1, len(metrics), k + 1)
        for i, (name, results) in enumerate(series.items()):
            pts = sorted(((100 * r["remaining"], 100 * r[key]) for r in results), reverse=True)
            ax.plot(*zip(*pts), (styles or {}).get(name, "o-"), color=f"C{i}", label=name)
        if reference:
            ax.axhline(100 * reference[1][key], color="grey", ls="--", lw=1, label=reference[0])
        log_remaining_axis(ax, ticks or [100 * r["remaining"] for rs in series.values() for r in rs])
        ax.set(xlabel="remaining weights (%)", ylabel=ylabel, title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, out)
