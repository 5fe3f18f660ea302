"""Every backbone through the lottery engine (issue 4): dense small presets and one IMP run each.

    python bench/bench_backbones.py lottery [--root runs/backbones]   # IMP + random-reinit per *_demo preset
    python bench/bench_backbones.py dense --minutes 8                  # each *_small preset, fixed time budget
    python bench/bench_backbones.py report --ds2-run runs/lottery_<hash> [--previous OLD_RESULT.json ...]

Stages are resumable (the lottery runner and the training loop skip finished work) and
independent, so they can run on different days. ``lottery`` runs IMP on each backbone's demo
preset down to 16.8 % remaining weights (4 rounds of 36 % = 8 of the paper's 20 % rounds, same
remaining-weight grid) and the random-reinit control at the extreme ticket (or at the sparsest
level when no level matches dense). ``dense`` trains each small preset for ``--minutes`` and scores
it on the whole test set. ``report`` writes docs/bench_backbones.md and one WER chart with every
backbone's curve, beside the paper's LibriSpeech numbers, and the real-speech test (asterisk,
when prepared beside the corpus) of each dense model and ticket, and the dense Transformer's dev WER under
each CTC prefix weight of its joint decoding (cached beside the model). DS2's curve comes from the
``make demo`` run (``--ds2-run``; its pruning rate is read from the run). ``--previous`` puts
earlier results of this bench (e.g. on another corpus version) beside the new tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from audio_lottery.config import Config, load_config  # noqa: E402
from audio_lottery.data.manifest import read_manifest  # noqa: E402
from audio_lottery.eval.evaluate import evaluate  # noqa: E402
from audio_lottery.eval.noisy import model_stamp  # noqa: E402
from audio_lottery.eval.real_speech import real_test_manifest, score_model  # noqa: E402
from audio_lottery.layout import EVAL_REAL, RunLayout, TrainLayout  # noqa: E402
from audio_lottery.files import atomic_write_json, file_fingerprint, read_json, read_json_or_none  # noqa: E402
from audio_lottery.lottery.branches import run_branch  # noqa: E402
from audio_lottery.lottery.report_data import pct  # noqa: E402
from audio_lottery.lottery.report_real import run_real_speech  # noqa: E402
from audio_lottery.lottery.runner import load_run_config, run_dir_for, run_lottery  # noqa: E402
from audio_lottery.lottery.tickets import control_level, level_results, select_tickets  # noqa: E402
from audio_lottery.provenance import corpus_version  # noqa: E402
from audio_lottery.recognizer import Recognizer  # noqa: E402
from audio_lottery.train.loop import load_split, train_model  # noqa: E402
from quick import md_table  # noqa: E402
from results_io import beside_previous, before_and_after_heading, previous_intro, write_page  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "data" / "synth"
BACKBONES = ("rnnt", "conformer", "transformer")
# LibriSpeech test-clean WER % of the paper (dense -> extreme ticket at remaining %), see DESIGN.md.
PAPER = {"ds2": (8.02, 7.98, 21.0), "rnnt": (5.90, 5.71, 10.7), "conformer": (2.55, 2.49, 16.8)}
LABEL = {"ds2": "CNN-LSTM (DS2)", "rnnt": "RNN-Transducer", "conformer": "Conformer-CTC", "transformer": "Transformer"}
CTC_PREFIX_WEIGHTS = (0.0, 0.3, 0.6, 0.9, 1.0)  # the Transformer's decoding weights the report compares on dev


def preset(name: str, size: str, overrides: list[str] | None = None) -> Config:
    return load_config(ROOT / "configs" / f"{name}_{size}.yaml", overrides or [])


def stage_lottery(root: Path, names: list[str]) -> None:
    """IMP on each demo preset, then the random-reinit control at its extreme ticket."""
    for name in names:
        cfg = preset(name, "demo")
        t0 = time.time()
        run_dir = run_lottery(cfg, root)
        results = level_results(run_dir)
        level = control_level(select_tickets(list(results.values()), cfg.lottery.match_tolerance), max(results))
        run_branch("random-reinit", run_dir, levels=[level])
        print(f"{name}: {run_dir} ({(time.time() - t0) / 60:.1f} min this call), random-reinit at level {level}")


def stage_dense(root: Path, names: list[str], minutes: float) -> None:
    """Each small preset trained for ``minutes`` (wall clock), then scored on the whole test set."""
    for name in names:
        cfg = preset(name, "small", [f"train.max_minutes={minutes}", "train.epochs=100"])
        out = root / f"small_{name}"
        result = train_model(cfg, out)
        if (out / "test.json").is_file():
            continue
        rec = Recognizer.load(TrainLayout(out).best)
        records = load_split(cfg, "test")
        t0 = time.perf_counter()
        scores = evaluate(rec, records)
        decode_s = time.perf_counter() - t0
        atomic_write_json(out / "test.json", {
            "wer": scores["wer"], "cer": scores["cer"], "decode_seconds": decode_s,
            "test_audio_seconds": sum(r["duration"] for r in records), "minutes": minutes,
            "params": sum(p.numel() for p in rec.model.parameters()), "train": result,
        })
        print(f"{name}_small: test WER {scores['wer']:.3f} CER {scores['cer']:.3f}")


def decode_weight_section(out: Path, weights: Sequence[float] = CTC_PREFIX_WEIGHTS) -> list[str]:
    """Dev WER / CER of the dense ``transformer_small`` model (``out``) decoded with each CTC prefix
    weight of its joint CTC/attention beam search (0: attention only, 1: CTC prefix scores only), kept in
    ``out/decode_weights.json`` while the checkpoint, the dev set and the beam are unchanged; [] when the model is
    not trained."""
    best = TrainLayout(out).best
    if not best.is_file():
        return []
    cfg = preset("transformer", "small")
    records, rec = load_split(cfg, "dev"), Recognizer.load(best)
    own_w, beam = rec.model.cfg.ctc_prefix_weight, rec.model.cfg.beam_size  # what the checkpoint decodes with
    cache = out / "decode_weights.json"
    identity = {"model_stamp": model_stamp(best), "dev_manifest": file_fingerprint(cfg.data.dev_manifest), "beam": beam}
    old = read_json_or_none(cache)
    scores = old["scores"] if old and all(old.get(k) == v for k, v in identity.items()) else {}
    for w in weights:
        if str(w) in scores:
            continue
        rec.model.cfg.ctc_prefix_weight = w
        s = evaluate(rec, records)
        scores[str(w)] = {k: s[k] for k in ("wer", "cer", "substitutions", "deletions", "insertions", "ref_words")}
        atomic_write_json(cache, {**identity, "scores": scores})
    rows = [[f"{w:.1f}" + (" (preset)" if w == own_w else ""), f"{scores[str(w)]['wer']:.3f}",
             f"{scores[str(w)]['cer']:.3f}", *(str(scores[str(w)][k]) for k in ("substitutions", "deletions", "insertions"))]
            for w in weights]
    lowest = min(weights, key=lambda w: scores[str(w)]["wer"])
    low, own = scores[str(lowest)], scores.get(str(own_w))
    moved = f" ({own['wer'] - low['wer']:.3f} below the preset's weight)" if own and lowest != own_w else ""
    conclusion = ("no decoding weight brings this model's dev WER below 1: the errors are the model's, not the "
                  "decoding weight's" if low["wer"] >= 1 else f"decoding with w = {lowest:.1f} brings its dev WER below 1")
    verdict = (f"Transformer decoding: lowest dev WER at w = {lowest:.1f}, {low['wer']:.3f}{moved}, with dev CER "
               f"{low['cer']:.3f} and {low['substitutions']} of {low['ref_words']} words substituted: {conclusion}.")
    return ["## Transformer: dev WER by CTC prefix weight", "",
            f"The dense `transformer_small` model above on the dev set ({len(records)} utterances, "
            f"{low['ref_words']} words), beam {beam}, with each weight w "
            "of its decoding score (1 - w) x attention + w x CTC prefix score.", "",
            md_table(["w", "dev WER", "dev CER", "substitutions", "deletions", "insertions"], rows), "",
            f"- {verdict}", ""]


def _curve_rows(runs: dict[str, Path]) -> list[str]:
    rows = []
    for name, run_dir in runs.items():
        for level, r in sorted(level_results(run_dir).items()):
            rows.append(f"| {LABEL[name]} | {level} | {100 * r['remaining']:.1f} | {r['dev_wer']:.3f} | "
                        f"{r['test_wer']:.3f} | {r['test_cer']:.3f} | {r['wall_seconds'] / 60:.1f} |")
    return rows


def _ticket_row(name: str, run_dir: Path, tolerance: float) -> str:
    imp = level_results(run_dir)
    reinit = level_results(RunLayout(run_dir).branch("random-reinit"))
    tickets = select_tickets(list(imp.values()), tolerance)
    dense, extreme = tickets["dense"], tickets["extreme"]
    ctl = control_level(tickets, max(imp))
    ctl_r = reinit.get(ctl)
    paper = PAPER.get(name)
    paper_txt = f"{paper[0]:.2f} -> {paper[1]:.2f} at {paper[2]:.1f} %" if paper else "not reported"
    ext_txt = (f"{100 * extreme['remaining']:.1f} %: dev {extreme['dev_wer']:.3f}, test {extreme['test_wer']:.3f}"
               if extreme else f"none matches (sparsest {100 * imp[ctl]['remaining']:.1f} %: "
                               f"dev {imp[ctl]['dev_wer']:.3f}, test {imp[ctl]['test_wer']:.3f})")
    ctl_txt = f"{ctl_r['test_wer']:.3f} (dev {ctl_r['dev_wer']:.3f})" if ctl_r else "not run"
    best = tickets["best"]
    best_txt = f"{100 * best['remaining']:.1f} %: test {best['test_wer']:.3f}" if best else "-"
    return (f"| {LABEL[name]} | {dense['total_params'] / 1e6:.2f} M | dev {dense['dev_wer']:.3f}, test {dense['test_wer']:.3f} | "
            f"{ext_txt} | {ctl_txt} | {best_txt} | {paper_txt} |")


def _dense_row(name: str, out: Path) -> str | None:
    if not (out / "test.json").is_file():
        return None
    t = read_json(out / "test.json")
    tr = t["train"]
    return (f"| {name}_small | {t['params'] / 1e6:.2f} M | {tr['epochs']} | {tr['train_seconds'] / 60:.1f} | "
            f"{tr['audio_seconds_per_second']:.1f} | dev {tr['best_dev_wer']:.3f} / {tr['best_dev_cer']:.3f} | "
            f"**{t['wer']:.3f}** / **{t['cer']:.3f}** | {t['decode_seconds'] / t['test_audio_seconds']:.4f} |")


def corpus_sentence(corpus: Path) -> str:
    """What the embedded corpus holds, from its corpus.json: training hours, test utterances and how
    many of them come from voices held out of training."""
    splits = (read_json_or_none(corpus / "corpus.json") or {}).get("splits", {})
    train, test = splits.get("train", {}), splits.get("test", {})
    shown = corpus.relative_to(ROOT) if corpus.is_relative_to(ROOT) else corpus
    if not train or not test:
        return f"Embedded corpus (`{shown}`)"
    return (f"Embedded corpus (`{shown}`, {train['hours']:.1f} h of training speech); test WER/CER "
            f"greedy on the whole test set ({test['utterances']} utterances, {test.get('unseen_voice_utterances', 0)} "
            "of them by voices held out of training)")


def real_speech_section(runs: dict[str, Path], root: Path, tolerance: float) -> list[str]:
    """WER/CER on the real-speech test (asterisk) of each dense small preset and of each backbone's
    dense model, extreme and best ticket (the lottery report's table, one block per backbone); [] when
    the test is not prepared beside the corpus. A model that cannot be scored becomes a note."""
    manifest = real_test_manifest({"test_manifest": str(CORPUS / "test.jsonl")})
    if manifest is None:
        return []
    rows, notes = [], []
    for name in BACKBONES:
        out = root / f"small_{name}"
        if not (out / "test.json").is_file():
            continue
        try:
            s = score_model(TrainLayout(out).best, manifest, out / EVAL_REAL)
        except (FileNotFoundError, ValueError) as exc:
            notes.append(f"{name}_small: {exc}")
            continue
        t = read_json(out / "test.json")
        rows.append([f"{name}_small", "Dense", "–", pct(1.0, 1), pct(t["wer"]), pct(t["cer"]), pct(s["wer"]),
                     pct(s["cer"])])
    for name, run_dir in runs.items():
        made, run_notes = run_real_speech(run_dir, tolerance)
        notes += [f"{name}_demo: {n}" for n in run_notes]
        if made:
            rows += [[f"{name}_demo", *r] for r in made[1][1]]
    if not rows:
        return [f"- {n}" for n in notes]
    shown = manifest.resolve().relative_to(ROOT) if manifest.resolve().is_relative_to(ROOT) else manifest
    return ["## Real-speech test", "",
            f"`{shown}` ({len(read_manifest(manifest))} utterances of real speech, raw_text scored "
            "through Whisper's normaliser), greedy decoding; no model here was trained or selected on it.", "",
            md_table(["preset", "model", "level", "remaining", "test WER", "test CER", "real-speech WER",
                      "real-speech CER"], rows), "", *[f"- {n}" for n in notes]]


def previous_sections(previous: Sequence[Path], markdown: str, version: int | None) -> list[str]:
    """Earlier results of this bench beside the new tables: the dense presets paired by preset, the
    tickets by backbone."""
    lines = []
    for path in previous:
        old = read_json(path)
        lines += [before_and_after_heading(path.name), "",
                  previous_intro(old, "The dense small presets and the tickets", version, "preset by preset and "
                                 "backbone by backbone"), "",
                  beside_previous(old, markdown, "preset", ["best dev WER / CER", "test WER / CER"]), "",
                  beside_previous(old, markdown, "backbone", ["dense WER", "extreme ticket (remaining: WER)",
                                                               "random reinit there, test WER"],
                                  section="Extreme tickets"), ""]
    return lines


def plot_curves(runs: dict[str, Path], out: Path) -> None:
    """Test WER against remaining weight: IMP (lines) and random reinit (crosses) per backbone."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for i, (name, run_dir) in enumerate(runs.items()):
        color = f"C{i}"
        imp = sorted(level_results(run_dir).items())
        ax.plot([100 * r["remaining"] for _, r in imp], [r["test_wer"] for _, r in imp], "o-", color=color,
                label=f"{LABEL[name]} IMP")
        reinit = sorted(level_results(RunLayout(run_dir).branch("random-reinit")).items())
        if reinit:
            ax.plot([100 * r["remaining"] for _, r in reinit], [r["test_wer"] for _, r in reinit], "x",
                    color=color, markersize=9, mew=2, label=f"{LABEL[name]} random reinit")
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xticks([100, 64, 41, 26.2, 16.8, 10.7])
    ax.set_xticklabels(["100", "64", "41", "26.2", "16.8", "10.7"])
    ax.set_xlabel("remaining weights (%)")
    ax.set_ylabel("test WER (greedy)")
    ax.set_title("Winning tickets per backbone, embedded corpus")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def stage_report(root: Path, ds2_run: Path | None, previous: Sequence[Path] = ()) -> str:
    """Write docs/bench_backbones.md (and its result JSON and WER chart) from the dense presets in
    ``root``, each backbone's demo-preset lottery run there and the DS2 run ``ds2_run``; returns the page."""
    runs: dict[str, Path] = {}
    if ds2_run and RunLayout(ds2_run).level(0).result.is_file():
        runs["ds2"] = ds2_run
    for name in BACKBONES:
        run_dir = run_dir_for(preset(name, "demo"), root)
        if RunLayout(run_dir).level(0).result.is_file():
            runs[name] = run_dir
    tolerance = 0.01
    ds2_rate = f"{100 * load_run_config(runs['ds2']).prune.fraction:.0f} % per round" if "ds2" in runs else "not run"
    plot = ROOT / "docs" / "plots" / "backbones_wer.png"
    plot_curves(runs, plot)
    dense_rows = [row for name in BACKBONES if (row := _dense_row(name, root / f"small_{name}"))]
    lines = [
        "# Backbones: dense small presets and one lottery search each", "",
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores ({platform.machine()}), no GPU, "
        f"by `python bench/bench_backbones.py dense|lottery|report`. {corpus_sentence(CORPUS)}. Matching "
        f"tolerance for the extreme ticket: {tolerance} absolute dev WER.", "",
        "## Dense small presets", "",
        "Each `*_small` preset trained for a fixed wall-clock budget (`train.max_minutes`), best dev checkpoint.", "",
        "| preset | params | epochs | train min | audio s / s | best dev WER / CER | test WER / CER | decode RTF |",
        "|---|---|---|---|---|---|---|---|", *dense_rows, "",
        *decode_weight_section(root / "small_transformer"),
        "## Extreme tickets per backbone", "",
        f"IMP with rewinding to theta_0 on each `*_demo` preset (DS2: `ds2_demo`, the `make demo` run, {ds2_rate}; "
        "the others 36 % per round = two paper rounds, so the remaining weights land on the paper's grid "
        "64 / 41 / 26.2 / 16.8 %). Random reinit = the IMP mask with freshly drawn weights, at the extreme "
        "ticket's level (or the sparsest level when none matches).", "",
        "| backbone | params | dense WER | extreme ticket (remaining: WER) | random reinit there, test WER | "
        "best ticket | paper, LibriSpeech test-clean WER % |",
        "|---|---|---|---|---|---|---|",
        *[_ticket_row(name, run_dir, tolerance) for name, run_dir in runs.items()], "",
        f"![WER against remaining weight per backbone](plots/{plot.name})", "",
        "## Every level", "",
        "| backbone | level | remaining % | dev WER | test WER | test CER | wall min |", "|---|---|---|---|---|---|---|",
        *_curve_rows(runs), "",
        *real_speech_section(runs, root, tolerance),
    ]
    text = "\n".join(lines)
    conditions = corpus_version(CORPUS)
    if previous:
        text += "\n" + "\n".join(previous_sections(previous, text, conditions.get("corpus_version")))
    verdicts = [line for line in lines if line.startswith("- Transformer decoding:")]
    write_page(ROOT / "docs" / "bench_backbones.md", text, conditions=conditions, verdicts=verdicts)
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("lottery", "dense", "report"))
    p.add_argument("--root", default=str(ROOT / "runs" / "backbones"))
    p.add_argument("--backbones", default=",".join(BACKBONES))
    p.add_argument("--minutes", type=float, default=8.0, help="training budget per small preset (dense stage)")
    p.add_argument("--ds2-run", help="the ds2_demo lottery run (make demo) for DS2's row and curve")
    p.add_argument("--previous", type=Path, nargs="*",
                   default=sorted((ROOT / "docs" / "history").glob("bench_backbones_*.json")),
                   help="earlier result JSONs of this bench (report stage) to put beside the new tables "
                        "(default: docs/history/bench_backbones_*.json)")
    args = p.parse_args()
    os.chdir(ROOT)  # presets name the corpus relative to the repository
    root, names = Path(args.root), args.backbones.split(",")
    if args.stage == "lottery":
        stage_lottery(root, names)
    elif args.stage == "dense":
        stage_dense(root, names, args.minutes)
    else:
        print(stage_report(root, Path(args.ds2_run) if args.ds2_run else None, args.previous))


if __name__ == "__main__":
    main()
