"""N-gram LM beam search against greedy decoding for a trained CTC checkpoint (nothing is trained).

    python bench/bench_lm.py --run runs/ds2_small_bench --data data/synth [--quick]

Builds a char LM (lexicon-free decoding) and a word LM (lexicon decoding) from the transcripts of
the model's own TRAIN manifest only (``--lm-text`` names another), tunes the LM weight and word
score of each on dev, and reports test WER/CER of greedy, beam search without LM, and beam search
with each LM, with decoding real-time factors on one core (``torch.set_num_threads(1)``). Writes
docs/bench_lm.md (``--quick``: a smoke check in well under a minute, 20 dev / 20 test utterances,
a small grid and beam; its report goes to the work folder, not docs/).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from audio_lottery.data.manifest import read_manifest
from audio_lottery.fallbacks import DiscountFallbackWarning
from audio_lottery.lm.beam import BeamSearchOptions, CTCBeamDecoder
from audio_lottery.layout import BEST, TrainLayout
from audio_lottery.eval.metrics import error_rates
from audio_lottery.lm.build import build_lm
from audio_lottery.lm.ngram import read_arpa
from audio_lottery.lm.tune import collect_log_probs, greedy_texts, grid_search
from audio_lottery.lm.units import text_units
from audio_lottery.provenance import corpus_version
from audio_lottery.recognizer import Recognizer
from results_io import write_page

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, *args, **kw):
    """``fn``'s result and the CPU seconds this process spent on it (one thread: robust to other load)."""
    t0 = time.process_time()
    out = fn(*args, **kw)
    return out, time.process_time() - t0


def lm_stats(path: Path, unit: str, dev: list[str], test: list[str]) -> dict:
    lm = read_arpa(path)
    return {"ngrams": lm.counts(),
            "dev": lm.perplexity([text_units(t, unit) for t in dev]),
            "test": lm.perplexity([text_units(t, unit) for t in test])}


def lm_text_manifest(given: str, run_train_manifest: str) -> Path:
    """The manifest whose transcripts build the LMs: ``given``, else the model's own training set."""
    path = Path(given or run_train_manifest)
    if not path.is_file():
        source = "--lm-text" if given else "the run's data.train_manifest"
        raise SystemExit(f"{path}: no such manifest ({source}); the LMs are built from the model's training "
                         "transcripts, so pass --lm-text TRAIN.jsonl")
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=str(ROOT / "runs" / "ds2_small_bench"), help=f"training run ({BEST})")
    p.add_argument("--data", default=str(ROOT / "data" / "synth"), help="folder with train/dev/test.jsonl")
    p.add_argument("--lm-text", default="", help="manifest whose transcripts build the LMs (default: the run's own "
                   "training manifest, data.train_manifest of its config)")
    p.add_argument("--char-order", type=int, default=6)
    p.add_argument("--word-order", type=int, default=3)
    p.add_argument("--beam", type=int, default=50)
    p.add_argument("--lm-weights", default="0.5,1,1.5,2,2.5,3,4")
    p.add_argument("--word-scores", default="-3,-2,-1,0,1", help="write --word-scores=-1,0 (with =) for negatives")
    p.add_argument("--quick", action="store_true", help="20 dev / 20 test utterances, small grid, beam 16")
    p.add_argument("--work", default=None, help="folder for the LMs (default: a temporary one)")
    p.add_argument("--out", default=None, help="markdown report (default docs/bench_lm.md; --quick: in --work)")
    args = p.parse_args()
    torch.set_num_threads(1)
    lm_weights = [float(x) for x in args.lm_weights.split(",")]
    word_scores = [float(x) for x in args.word_scores.split(",")]
    if args.quick:
        args.beam, lm_weights, word_scores = 16, [0.5, 1.0], [0.0, 2.0]
    data = Path(args.data)
    rec = Recognizer.load(TrainLayout(Path(args.run)).best)
    lm_text = lm_text_manifest(args.lm_text, rec.cfg.data.train_manifest)
    train = read_manifest(lm_text, resolve_audio=False)
    dev, test = read_manifest(data / "dev.jsonl"), read_manifest(data / "test.jsonl")
    if args.quick:
        dev, test = dev[:20], test[:20]
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_lm_"))
    train_texts = [r["text"] for r in train]
    dev_refs, test_refs = [r["text"] for r in dev], [r["text"] for r in test]

    # language models from the training transcripts only
    built = {}
    for name, unit, order in (("char", "char", args.char_order), ("word", "word", args.word_order)):
        path = work / f"{name}{order}.arpa"
        with warnings.catch_warnings():  # the page reports the fallback orders (table column "fallback discounts")
            warnings.simplefilter("default", DiscountFallbackWarning)
            summary, seconds = timed(build_lm, train_texts, order, path, unit)
        built[name] = {"path": path, "order": order, "seconds": seconds, "fallback": summary["fallback_orders"],
                       **lm_stats(path, unit, dev_refs, test_refs)}
    train_vocab = {w for t in train_texts for w in t.split()}
    test_words = [w for t in test_refs for w in t.split()]
    oov = sum(w not in train_vocab for w in test_words) / len(test_words)
    seen_sentences = sum(t in set(train_texts) for t in test_refs) / len(test_refs)

    dev_em, _ = timed(collect_log_probs, rec, dev)
    test_em, acoustic_s = timed(collect_log_probs, rec, test)
    test_audio = sum(r["duration"] for r in test)
    greedy, greedy_s = timed(greedy_texts, rec, test_em)
    rows = [("greedy", "", error_rates(dev_refs, greedy_texts(rec, dev_em))["wer"], error_rates(test_refs, greedy),
             greedy_s)]
    grids = {}
    base = BeamSearchOptions(beam=args.beam)
    tok = rec.tokenizer
    decoders = {
        "beam, no LM": CTCBeamDecoder(tok, replace(base, lm_weight=0.0)),
        f"beam + char {args.char_order}-gram (lexicon-free)": CTCBeamDecoder(tok, base, lm=built["char"]["path"]),
        f"beam + word {args.word_order}-gram (lexicon)": CTCBeamDecoder(tok, base, lm=built["word"]["path"],
                                                                        mode="lexicon"),
    }
    for name, dec in decoders.items():
        if dec.lm_path is None:
            tuned = {"best": {"lm_weight": 0.0, "word_score": 0.0,
                              "wer": error_rates(dev_refs, dec.decode_batch(dev_em))["wer"]}}
        else:
            tuned = grid_search(dec, dev_em, dev_refs, lm_weights, word_scores)
            grids[name] = tuned
        best = dec.with_options(lm_weight=tuned["best"]["lm_weight"], word_score=tuned["best"]["word_score"])
        hyps, seconds = timed(best.decode_batch, test_em)
        rows.append((name, f"{best.options.lm_weight:g} / {best.options.word_score:g}", tuned["best"]["wer"],
                     error_rates(test_refs, hyps), seconds))

    lines = [
        "# N-gram LM beam search (flashlight-text) against greedy decoding", "",
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores ({platform.machine()}), 1 torch thread, "
        f"by `python bench/bench_lm.py --run {args.run} --data {args.data}"
        f"{f' --lm-text {args.lm_text}' if args.lm_text else ''}"
        f"{' --quick' if args.quick else f' --lm-weights {args.lm_weights} --word-scores={args.word_scores}'}`"
        f"{' (QUICK MODE: 20 dev / 20 test utterances, small grid: not the benchmark figures)' if args.quick else ''}.",
        "",
        f"Model: `{args.run}` ({rec.cfg.model.name}, {rec.tokenizer.kind} tokens). LMs from the {len(train_texts)} "
        f"TRAIN transcripts only (`{lm_text.parent.name}/{lm_text.name}`, the model's training set); "
        f"LM weight and word score tuned on {len(dev)} dev utterances; "
        f"test: {len(test)} utterances ({test_audio / 60:.1f} min of audio). Beam {args.beam}, beam threshold "
        f"{base.beam_threshold:g}, all tokens tried per frame.", "",
        "| decoder | LM weight / word score (dev-tuned) | dev WER | test WER | test CER | search RTF (1 core) |",
        "|---|---|---|---|---|---|",
    ]
    for name, setting, dev_wer, er, seconds in rows:
        lines.append(f"| {name} | {setting} | {dev_wer:.3f} | {er['wer']:.3f} | {er['cer']:.3f} | "
                     f"{seconds / test_audio:.2g} |")
    greedy_wer = rows[0][3]["wer"]
    best_lm = min(rows[2:], key=lambda r: r[3]["wer"])
    verdict = ("lowers" if best_lm[3]["wer"] < greedy_wer else "does not lower")
    lines += [
        "", f"Real-time factors are CPU seconds of this process (1 thread) per second of test audio. Acoustic "
        f"model forward pass: {acoustic_s / test_audio:.4f} (batched); the search RTF above comes on top of it.", "",
        f"**Result: the best LM decoder ({best_lm[0]}) {verdict} test WER: {greedy_wer:.3f} greedy -> "
        f"{best_lm[3]['wer']:.3f} ({best_lm[3]['wer'] - greedy_wer:+.3f}).**", "",
        "## How much the training text can tell about the test text", "",
        f"The embedded corpus draws its sentences from fortunes, WordNet glosses and the KJV; the test sentences are "
        f"other sentences of the same sources. {seen_sentences:.1%} of the test sentences occur verbatim in the "
        f"training transcripts; {oov:.1%} of the test words are not in the training vocabulary (lexicon decoding "
        f"cannot output them).", "",
        "| LM | n-grams per order | build CPU s | dev perplexity | test perplexity | test OOV | fallback discounts |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, b in built.items():
        lines.append(f"| {name} {b['order']}-gram | {', '.join(map(str, b['ngrams']))} | {b['seconds']:.1f} | "
                     f"{b['dev']['perplexity']:.2f} | {b['test']['perplexity']:.2f} | {b['test']['oov_rate']:.1%} | "
                     f"orders {b['fallback'] or 'none'} |")
    lines += ["", "Perplexity per token (characters incl. word boundaries, or words), end of sentence included.", ""]
    for name, tuned in grids.items():
        ws = sorted({r["word_score"] for r in tuned["grid"]})
        lw = sorted({r["lm_weight"] for r in tuned["grid"]})
        cell = {(r["lm_weight"], r["word_score"]): r["wer"] for r in tuned["grid"]}
        lines += [f"### Dev WER grid: {name}", "",
                  "| LM weight \\ word score | " + " | ".join(f"{w:g}" for w in ws) + " |", "|---|" + "---|" * len(ws)]
        lines += [f"| {a:g} | " + " | ".join(f"{cell[(a, w)]:.3f}" for w in ws) + " |" for a in lw]
        edge = [k for k, v, grid in (("LM weight", tuned["best"]["lm_weight"], lw),
                                     ("word score", tuned["best"]["word_score"], ws))
                if len(grid) > 1 and v in (grid[0], grid[-1])]
        if edge:
            verb = "lie" if len(edge) > 1 else "lies"
            lines += ["", f"The best {' and '.join(edge)} {verb} on the edge of this grid: a wider grid may do better."]
        lines.append("")
    out = Path(args.out) if args.out else (work / "bench_lm_quick.md" if args.quick else ROOT / "docs" / "bench_lm.md")
    write_page(out, "\n".join(lines) + "\n", conditions=corpus_version(data))
    print("\n".join(lines))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
