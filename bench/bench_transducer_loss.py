"""Transducer loss: forward+backward time of the vectorised loss against the references.

Variants, all on the same logits ``[B, T, U+1, V]`` (the joint network is not timed):

* vectorised     ``rnnt_loss`` on the padded batch (loop over T, logcumsumexp along U);
* per-utterance  ``rnnt_loss`` called on each utterance alone (trimmed to its T and U), summed;
* naive          ``rnnt_loss_naive``: plain Python float64 DP over every (t, u) per utterance
                 (alpha for the loss, alpha-beta for the analytic gradients).

Cases: the synthetic B=8, T=100, U=30, V=30 batch, and a realistic batch: the median-cost
``rnnt_small`` training batch of the embedded corpus (durations -> encoder frames after the
4x front-end, transcripts -> character counts; random logits of that shape). Without a corpus
(``data/synth/train.jsonl``) a batch of the same statistics is drawn instead, and the report
says so.

Rounds interleave the variants (order rotated every round) so drifting machine load hits them
alike; the report gives medians and the median per-round ratio to ``vectorised``.
Run: ``.venv/bin/python bench/bench_transducer_loss.py`` (writes docs/bench_transducer_loss.md);
``--quick`` is a seconds-long smoke run with tiny shapes that writes nothing unless ``--out``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from audio_lottery.models.transducer_loss import rnnt_loss, rnnt_loss_naive
from results_io import write_page

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "bench_transducer_loss.md"

Case = dict  # name, logits, targets, t_lens, u_lens, note


def _case(name: str, t_lens: list[int], u_lens: list[int], vocab: int, seed: int, note: str) -> Case:
    g = torch.Generator().manual_seed(seed)
    b, t, u = len(t_lens), max(t_lens), max(u_lens)
    targets = torch.randint(1, vocab, (b, max(u, 1)), generator=g)
    for i, n in enumerate(u_lens):
        targets[i, n:] = 0
    return {"name": name, "logits": torch.randn(b, t, u + 1, vocab, generator=g), "targets": targets,
            "t_lens": torch.tensor(t_lens), "u_lens": torch.tensor(u_lens), "note": note}


def _realistic(manifest: Path, config: Path, seed: int) -> Case:
    """The median-cost batch that ``config``'s bucketing makes from ``manifest`` (shapes only)."""
    from audio_lottery.config import load_config
    from audio_lottery.data.pipeline.dataset import make_buckets
    from audio_lottery.data.pipeline.features import FeatureExtractor
    from audio_lottery.data.pipeline.tokenizers import CharTokenizer
    from audio_lottery.models import build_model

    cfg = load_config(config)
    feats = FeatureExtractor(cfg.data.features)
    tok = CharTokenizer()
    with torch.device("meta"):
        model = build_model(cfg.model, tok.vocab_size, feats.dim)
    sr = cfg.data.features.sample_rate

    def frames(duration: float) -> int:
        return int(model.output_lengths(torch.tensor([feats.num_frames(int(duration * sr))]))[0])

    if manifest.is_file():
        from audio_lottery.data.manifest import read_manifest

        recs = [r for r in read_manifest(manifest, resolve_audio=False)
                if cfg.data.min_duration <= r["duration"] <= cfg.data.max_duration]
        source = f"`{manifest.relative_to(ROOT) if manifest.is_relative_to(ROOT) else manifest}`"
    else:  # same statistics as the embedded corpus: 1-12 s, ~14 characters per second
        g = torch.Generator().manual_seed(seed)
        durs = (1 + 11 * torch.rand(2000, generator=g)).tolist()
        recs = [{"duration": d, "text": "x" * max(1, int(d * 14))} for d in durs]
        source = "a drawn stand-in (no corpus found: 1-12 s, 14 characters/s)"
    batches = make_buckets([r["duration"] for r in recs], cfg.data.batch_seconds, cfg.data.max_batch_size)
    lens = [([frames(recs[i]["duration"]) for i in b], [len(tok.encode(recs[i]["text"])) for i in b]) for b in batches]
    cost = [len(t) * max(t) * (max(u) + 1) for t, u in lens]
    pick = sorted(range(len(batches)), key=lambda i: cost[i])[len(batches) // 2]
    t_lens, u_lens = lens[pick]
    note = (f"median-cost `{config.name}` batch (batch_seconds {cfg.data.batch_seconds:g}, max {cfg.data.max_batch_size}) "
            f"of {source}")
    return _case("realistic", t_lens, u_lens, tok.vocab_size, seed, note)


def _vectorised(c: Case):
    return lambda x: rnnt_loss(x, c["targets"], c["t_lens"], c["u_lens"], reduction="sum")


def _per_utterance(c: Case):
    def run(x):
        total = x.new_zeros(())
        for b in range(x.shape[0]):
            t, u = int(c["t_lens"][b]), int(c["u_lens"][b])
            total = total + rnnt_loss(x[b : b + 1, :t, : u + 1], c["targets"][b : b + 1, : max(u, 1)],
                                      c["t_lens"][b : b + 1], c["u_lens"][b : b + 1], reduction="sum")
        return total

    return run


def _naive(c: Case):
    return lambda x: rnnt_loss_naive(x, c["targets"], c["t_lens"], c["u_lens"], reduction="sum")


VARIANTS = {"vectorised": _vectorised, "per-utterance": _per_utterance, "naive": _naive}


def _time(fn, logits: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    x = logits.clone().requires_grad_(True)
    t0 = time.perf_counter()
    loss = fn(x)
    loss.backward()
    return time.perf_counter() - t0, float(loss), x.grad


def bench_case(c: Case, rounds: int, naive_rounds: int) -> dict:
    fns = {name: make(c) for name, make in VARIANTS.items()}
    for name in ("vectorised", "per-utterance"):  # warm-up
        _time(fns[name], c["logits"])
    times: dict[str, list[float]] = {n: [] for n in fns}
    ratios: dict[str, list[float]] = {n: [] for n in fns}
    check: dict[str, tuple[float, float]] = {}
    ref_loss, ref_grad = None, None
    for r in range(rounds):
        names = [n for n in fns if n != "naive" or r < naive_rounds]
        k = r % len(names)
        round_t = {}
        for name in names[k:] + names[:k]:
            dt, loss, grad = _time(fns[name], c["logits"])
            round_t[name] = dt
            times[name].append(dt)
            if name == "naive" and ref_loss is None:
                ref_loss, ref_grad = loss, grad
            if name not in check:
                check[name] = (loss, grad)
        for name, dt in round_t.items():
            ratios[name].append(dt / round_t["vectorised"])
    agree = {}
    if ref_loss is not None:
        for name, (loss, grad) in check.items():
            agree[name] = (abs(loss - ref_loss) / max(1.0, abs(ref_loss)), float((grad.double() - ref_grad).abs().max()))
    t_lens, u_lens = c["t_lens"].tolist(), c["u_lens"].tolist()
    return {
        "name": c["name"], "note": c["note"], "shape": tuple(c["logits"].shape),
        "cells": sum(t * (u + 1) for t, u in zip(t_lens, u_lens)), "t_range": (min(t_lens), max(t_lens)),
        "u_range": (min(u_lens), max(u_lens)),
        "rows": {n: {"median_ms": 1e3 * statistics.median(v), "min_ms": 1e3 * min(v), "n": len(v),
                     "ratio": statistics.median(ratios[n])} for n, v in times.items() if v},
        "agree": agree,
    }


def report(results: list[dict], args: argparse.Namespace) -> str:
    lines = ["# Transducer loss: vectorised vs references (bench/bench_transducer_loss.py)", "",
             f"CPU, torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}; "
             f"forward + backward of the summed loss over random float32 logits (the joint network is not timed); "
             f"{args.rounds} interleaved rounds (naive: the first {args.naive_rounds}), order rotated per round.", ""]
    for res in results:
        b, t, u1, v = res["shape"]
        lines += [f"## {res['name']}: B={b}, T={t}, U={u1 - 1}, V={v}", "",
                  f"{res['note']}; T per utterance {res['t_range'][0]}-{res['t_range'][1]}, U {res['u_range'][0]}-"
                  f"{res['u_range'][1]}, {res['cells']:,} valid lattice nodes.", "",
                  "| Variant | Median (ms) | Fastest (ms) | Rounds | Time / vectorised (median per round) | "
                  "Loss rel. diff vs naive | Max grad diff vs naive |", "|---|---|---|---|---|---|---|"]
        for name, row in res["rows"].items():
            ag = res["agree"].get(name)
            diffs = f"{ag[0]:.1e} | {ag[1]:.1e}" if ag else "– | –"
            lines.append(f"| {name} | {row['median_ms']:.1f} | {row['min_ms']:.1f} | {row['n']} | {row['ratio']:.2f} | {diffs} |")
        lines.append("")
    lines += ["- `vectorised` = `rnnt_loss` on the padded batch; `per-utterance` = `rnnt_loss` on each utterance "
              "alone, summed; `naive` = `rnnt_loss_naive` (Python float64 DP, analytic gradients).",
              "- Ratios come from one run on a shared machine: compare them, not the absolute times."]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--naive-rounds", type=int, default=3, help="rounds that also time the (slow) naive reference")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--manifest", type=Path, default=ROOT / "data" / "synth" / "train.jsonl")
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "rnnt_small.yaml")
    p.add_argument("--quick", action="store_true", help="tiny shapes and 2 rounds: checks that the script works")
    p.add_argument("--out", type=Path, default=None, help=f"report path (default {DOC.relative_to(ROOT)}; --quick: none)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.rounds, args.naive_rounds = 2, 1
        cases = [_case("synthetic", [10, 7], [4, 0], 8, 0, "quick smoke shapes"),
                 _case("realistic", [12, 5, 9], [6, 2, 3], 29, 1, "quick smoke shapes")]
    else:
        cases = [_case("synthetic", [100] * 8, [30] * 8, 30, 0, "all utterances full length"),
                 _realistic(args.manifest, args.config, 1)]
    results = []
    for c in cases:
        res = bench_case(c, args.rounds, args.naive_rounds)
        results.append(res)
        for name, row in res["rows"].items():
            print(f"{res['name']:10s} {name:14s} {row['median_ms']:9.1f} ms  x{row['ratio']:.2f}", flush=True)
    text = report(results, args)
    out = args.out if args.out is not None else (None if args.quick else DOC)
    if out is not None:
        write_page(out, text)
        print(f"wrote {out}")
    else:
        print(text)


if __name__ == "__main__":
    main()
