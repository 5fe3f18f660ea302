"""Noise robustness in the paper's form: dense, extreme and best tickets of a lottery run, each
trained clean (the run's own levels), with low and with high noise (``retrain`` branch, noise from
the bank's train split), tested on the clean test set and against SNR on unseen test noise.

    python bench/bench_noise.py --run runs/lottery_<hash> [--bank data/noise] [--snr clean,20,10,5,0]
                                [--jobs 2] [--previous OLD_RESULT.json ...]
    python bench/bench_noise.py --quick      # tiny corpus + configs/ds2_tiny.yaml, under 2 minutes

Resumable: the noise bank, each training and each evaluation are skipped when done. Trainings:
2 noise levels x |{dense, extreme, best}| (at most 6), the two noise levels side by side (``--jobs``).
Writes docs/bench_noise.md (``--quick``: runs/bench_quick/bench_noise.md) and
plots/bench_noise_wer_snr.png beside it. Every model is also
scored on the real-speech test (Asterisk) when it is prepared beside the run's corpus, and
``--previous`` puts earlier results' costs of noisy training beside this run's (paired by model).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from audio_lottery.config import load_config  # noqa: E402
from audio_lottery.data.noise.mix import NOISE_LEVELS, noise_overrides  # noqa: E402
from audio_lottery.data.noise.bank import BankSettings, build_noise_bank  # noqa: E402
from audio_lottery.eval.noisy import CLEAN, eval_level, parse_snrs  # noqa: E402
from audio_lottery.eval.real_speech import real_test_manifest, score_level  # noqa: E402
from audio_lottery.files import read_json  # noqa: E402
from audio_lottery.layout import RunLayout  # noqa: E402
from audio_lottery.lottery.branches import BranchJob, overrides_hash, run_branches, threads_per_job  # noqa: E402
from audio_lottery.lottery.runner import load_run_config, run_lottery  # noqa: E402
from audio_lottery.lottery.tickets import level_results, select_tickets  # noqa: E402

from quick import ROOT, TINY_CONFIG, manifests, md_table, pct, save_figure, threads_phrase, tiny_corpus  # noqa: E402
from results_io import (beside_previous, before_and_after_heading, command_line, previous_intro,  # noqa: E402
                        training_conditions, write_page)

CONDITIONS = ("clean", "low", "high")
QUICK = ROOT / "runs" / "bench_quick"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", help="a finished lottery run (its dev results choose the tickets)")
    p.add_argument("--bank", default=str(ROOT / "data" / "noise"), help="noise bank folder (built when missing)")
    p.add_argument("--snr", default="clean,20,10,5,0", help="test SNRs")
    p.add_argument("--doc", default=str(ROOT / "docs" / "bench_noise.md"))
    p.add_argument("--quick", action="store_true", help="tiny corpus and model: checks the pipeline in < 2 min")
    p.add_argument("--jobs", type=int, default=2, help="noisy trainings side by side (the run's threads split "
                   "between them; 1 = in turn at the run's threads)")
    p.add_argument("--previous", type=Path, nargs="*", default=[],
                   help="result JSON(s) of earlier runs of this bench (their costs of noisy training beside this run's)")
    return p.parse_args()


def quick_setup(args: argparse.Namespace) -> BankSettings:
    """Tiny corpus, a 2-level ds2_tiny lottery run and a small bank under runs/bench_quick/."""
    corpus = tiny_corpus(QUICK / "corpus")
    cfg = load_config(TINY_CONFIG, manifests(corpus))
    cfg.lottery.levels = 2
    args.run = str(run_lottery(cfg, QUICK / "runs", progress=False))
    args.bank = str(QUICK / "noise")
    args.doc = str(QUICK / "bench_noise.md")
    return BankSettings(sox_seconds=3.0, segment_seconds=4.0, babble_clips=6, babble_seconds=3.0, limit=6)


def ticket_levels(run: Path) -> dict[str, dict]:
    """dense / extreme / best results of the run's IMP levels (chosen on dev WER)."""
    cfg = load_run_config(run)
    tickets = select_tickets(list(level_results(run).values()), cfg.lottery.match_tolerance)
    return {k: v for k, v in tickets.items() if v is not None}


def level_dir(run: Path, condition: str, level: int, branches: dict[str, Path]) -> Path:
    folder = RunLayout(run) if condition == "clean" else RunLayout(branches[condition])
    return folder.level(level).dir


def main() -> None:
    args = parse_args()
    started = time.time()
    settings = quick_setup(args) if args.quick else BankSettings()
    if not args.run:
        raise SystemExit("give --run RUN (a finished lottery run) or --quick")
    run = Path(args.run)
    cfg = load_run_config(run)
    bank = build_noise_bank(Path(args.bank), cfg.data.train_manifest, settings=settings)
    noise = Path(bank["manifest"])
    snrs = parse_snrs(args.snr)
    tickets = ticket_levels(run)
    levels = sorted({t["level"] for t in tickets.values()})
    chosen = ", ".join(f"{k}: level {v['level']}" for k, v in tickets.items())
    print(f"run {run}: tickets {chosen}", flush=True)

    noisy = CONDITIONS[1:]
    trainings = []
    for condition in noisy:
        overrides = noise_overrides(condition, noise)
        trainings.append(BranchJob("retrain", tuple(overrides), f"noise-{condition}-{overrides_hash(overrides)}"))
        print(f"training {condition} noise ({overrides}) at levels {levels}", flush=True)
    branches = dict(zip(noisy, run_branches(trainings, run, levels=levels, jobs=args.jobs)))

    scores: dict[tuple[str, int], dict] = {}
    for condition in CONDITIONS:
        for level in levels:
            print(f"evaluating {condition}-trained level {level} at {snrs}", flush=True)
            scores[(condition, level)] = eval_level(level_dir(run, condition, level, branches), snrs, noise)
    manifest = real_test_manifest(asdict(cfg.data))
    real = {key: score_level(level_dir(run, key[0], key[1], branches), manifest) for key in scores} if manifest else {}
    doc = render(run, tickets, snrs, scores, bank, branches, args)
    if real:
        doc += "\n" + real_speech_section(tickets, real, manifest)
    conditions = training_conditions(cfg)
    for path in args.previous:
        doc += "\n" + previous_section(read_json(path), doc, conditions.get("corpus_version"), path.name)
    Path(args.doc).parent.mkdir(parents=True, exist_ok=True)
    write_page(Path(args.doc), doc, conditions=conditions)
    plot(tickets, snrs, scores, plot_path(args.doc))
    print(doc)
    print(f"wrote {args.doc} in {time.time() - started:.0f} s")


def trainings_line(run: Path, jobs: int) -> str:
    """How the noisy trainings shared the CPU (side by side they run at fewer threads each)."""
    threads, noisy = load_run_config(run).train.threads, len(CONDITIONS) - 1
    if min(jobs, noisy) == 1:
        return f"The noisy trainings ran in turn at {threads_phrase(threads)}, as the run's own."
    each = threads_per_job(threads, min(jobs, noisy))
    return (f"The {noisy} noisy trainings ran side by side at {threads_phrase(each)} each; the clean ones are the "
            f"run's own, at {threads_phrase(threads)}.")


def render(run: Path, tickets: dict, snrs: list[str], scores: dict, bank: dict, branches: dict,
           args: argparse.Namespace) -> str:
    clean_test = [s for s in snrs if s == CLEAN]
    rows = []
    for name, t in tickets.items():
        lv = t["level"]
        cells = [pct(scores[(c, lv)][CLEAN]["wer"]) if clean_test else "–" for c in CONDITIONS]
        rows.append([f"{name} (level {lv}, {100 * t['remaining']:.1f} %)", *cells])
    paper = md_table(["model", "clean training", "low noise", "high noise"], rows)
    cost = cost_of_noisy_training(tickets, scores) if clean_test else "(no clean test SNR asked for)"
    split_rows = [[sp, cat, str(v["sources"]), str(v["segments"]), f"{v['seconds']:.0f}"]
                  for sp, cats in bank["splits"].items() for cat, v in cats.items()]
    levels_txt = ", ".join(f"{c}: {json.dumps(NOISE_LEVELS[c])}" for c in CONDITIONS)
    return "\n".join([
        "# Noise robustness of tickets (the paper's noise table)", "",
        f"Lottery run `{run.name}` ({load_run_config(run).model.name}); generated by `{command_line()}`.",
        "Each model is the dense network or a ticket (mask + theta_0) of the run, trained on clean audio "
        "(the run's own level), or retrained with every training utterance mixed with noise from the bank's "
        f"**train** split at a uniformly drawn true SNR ({levels_txt}). Tickets are chosen on clean dev WER of "
        "the clean run; every model is selected on clean dev. " + trainings_line(run, args.jobs), "",
        "## Test WER (%) on the clean test set", "", paper, "",
        "### What noisy training costs each model on the clean test set", "",
        "Points added to clean-test WER and CER by training on noisy instead of clean audio (the paper's claim: "
        "much less for tickets than for the dense model).", "", cost, "",
        "## Test WER (%) against SNR on unseen test noise", "",
        "Test utterances mixed with the bank's **test** split (sources never heard in training), the same "
        "noise recording and offset per utterance for every model and SNR.", "",
        snr_table(tickets, snrs, scores, "wer"), "",
        "## Test CER (%) against SNR", "",
        "The same decodings scored per character: WER of these small models is close to saturation, CER "
        "separates them better.", "", snr_table(tickets, snrs, scores, "cer"), "",
        f"![WER against SNR]({plot_path(args.doc).relative_to(Path(args.doc).parent)})", "",
        "## Noise bank", "", f"`{bank['manifest']}`; missing sources: {bank['missing'] or 'none'}.", "",
        md_table(["split", "category", "sources", "segments", "seconds"], split_rows), "",
        "Branch folders: " + ", ".join(f"{c}: `{p.name}`" for c, p in branches.items()), "",
    ])


def real_speech_section(tickets: dict, real: dict, manifest: Path) -> str:
    """Every model (ticket x training condition) on the real-speech test: does noisy training bring a
    recogniser of synthetic voices closer to a real, telephone-band voice?"""
    rows = [[name, c, pct(real[(c, t["level"])]["wer"]), pct(real[(c, t["level"])]["cer"])]
            for name, t in tickets.items() for c in CONDITIONS]
    count = next(iter(real.values()))["utterances"]
    return "\n".join(["## Real-speech test", "",
                      f"`{manifest}` ({count} utterances of one real speaker, telephone prompts; raw_text scored "
                      "through Whisper's English normaliser), clean: no noise added.", "",
                      md_table(["model", "training", "real-speech WER", "real-speech CER"], rows), ""])


def previous_section(previous: dict, markdown: str, version: int | None, label: str) -> str:
    """An earlier result's costs of noisy training beside this run's, paired by model (dense,
    extreme, best; their levels differ between runs); ``version``: this run's corpus version."""
    columns = ["WER low", "WER high", "CER low", "CER high"]
    return "\n".join([before_and_after_heading(label), "",
                      previous_intro(previous, "The costs of noisy training", version, "model by model"), "",
                      beside_previous(previous, markdown, "model", columns, section="What noisy training costs"), ""])


def cost_of_noisy_training(tickets: dict, scores: dict) -> str:
    """Clean-test WER/CER of low- and high-noise training minus that of clean training, per model."""
    rows = []
    for name, t in tickets.items():
        base = scores[(CONDITIONS[0], t["level"])][CLEAN]
        cells = [f"{100 * (scores[(c, t['level'])][CLEAN][m] - base[m]):+.2f}"
                 for m in ("wer", "cer") for c in CONDITIONS[1:]]
        rows.append([name, *cells])
    return md_table(["model", *[f"{m} {c}" for m in ("WER", "CER") for c in CONDITIONS[1:]]], rows)


def snr_table(tickets: dict, snrs: list[str], scores: dict, metric: str) -> str:
    """Rows model x training condition, columns test SNR and the mean over noisy SNRs (``metric`` in %)."""
    rows = []
    for name, t in tickets.items():
        for c in CONDITIONS:
            res = scores[(c, t["level"])]
            noisy = [res[s][metric] for s in snrs if s != CLEAN]
            rows.append([name, c, *[pct(res[s][metric]) for s in snrs], pct(sum(noisy) / len(noisy)) if noisy else "–"])
    return md_table(["model", "training", *[s if s == CLEAN else f"{s} dB" for s in snrs], "mean noisy"], rows)


def plot_path(doc: str) -> Path:
    return Path(doc).parent / "plots" / f"{Path(doc).stem}_wer_snr.png"


def plot(tickets: dict, snrs: list[str], scores: dict, out: Path) -> None:
    fig = Figure(figsize=(13, 4))
    for i, c in enumerate(CONDITIONS):
        ax = fig.add_subplot(1, len(CONDITIONS), i + 1)
        for j, (name, t) in enumerate(tickets.items()):
            res = scores[(c, t["level"])]
            ax.plot(range(len(snrs)), [100 * res[s]["wer"] for s in snrs], "o-", color=f"C{j}",
                    label=f"{name} ({100 * t['remaining']:.1f} %)")
        ax.set_xticks(range(len(snrs)))
        ax.set_xticklabels([s if s == CLEAN else f"{s} dB" for s in snrs])
        ax.set(title=f"trained: {c}", xlabel="test SNR", ylabel="test WER (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, out)


if __name__ == "__main__":
    main()
