"""Shared helpers of the benchmarks' ``--quick`` modes: a tiny corpus and markdown tables."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = ROOT / "configs" / "ds2_tiny.yaml"


def tiny_corpus(folder: Path) -> Path:
    """A few dozen utterances of every TTS engine in ``folder`` (synthesised once, seconds)."""
    folder = Path(folder)
    if not all((folder / f"{s}.jsonl").is_file() for s in ("train", "dev", "test")):
        from audio_lottery.data.synth import synthesize_corpus

        synthesize_corpus(folder, hours=0.04, seed=0, workers=2, progress=False)
    return folder


def manifests(folder: Path) -> list[str]:
    """Overrides pointing data.{train,dev,test}_manifest at ``folder``."""
    return [f"data.{s}_manifest={Path(folder).resolve() / f'{s}.jsonl'}" for s in ("train", "dev", "test")]


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
                     + ["| " + " | ".join(r) + " |" for r in rows])


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
