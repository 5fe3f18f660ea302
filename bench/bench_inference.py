"""CPU inference of pruned models: real-time factor, effective MACs and exported file sizes.

    python bench/bench_inference.py [--config configs/ds2_demo.yaml] [--run RUN] [--channel-run RUN2]
                                    [--levels 7,11] [--threads 1,2] [--batches 1,16] [--quick]

Variants at matched remaining weight (level L of the 0.8**L schedule):

* ``dense``        the unpruned model (level 0), the baseline of every ratio;
* ``masked``       the unstructured IMP ticket run as a dense model with zeros;
* ``csr``          the same ticket with the CSR execution path's default policy (``pruning/csr.py``:
                   Linear layers sparse, LSTMs only from 512 hidden units);
* ``csr-lstm``     CSR forced onto every LSTM too (sparse input projection of all frames + a
                   TorchScript recurrence with a sparse recurrent matmul);
* ``channel``      a channel-structured ticket shrunk into a smaller dense model;
* ``channel-onnx`` the shrunk model under onnxruntime (when installed; not in ``--quick``).

Weights: with ``--run`` the trained level checkpoints of a lottery run (dev/test WER from its
result.json files, and of its branches, e.g. ``structured-*``); the channel ticket comes from
``--channel-run`` (a lottery run with ``prune.strategy=channel``, its level at the same remaining weight,
whatever its pruning rate per level) or, without it, from converting
the IMP ticket (``convert_ticket(..., "channel")``). Without ``--run``: a randomly initialised
model of ``--config`` pruned by the strategies themselves (speed does not depend on training).

Timing: features are precomputed (``--seconds`` of audio per utterance, equal lengths); each
round times every variant once, in rotated order, and a variant's speed-up is the median over
rounds of dense time / its time in the same round. RTF = wall time / audio seconds. Writes
docs/bench_inference.md (``--quick`` writes nothing unless ``--out`` is given). A fallback (an export
that could not be shrunk, a recurrence TorchScript could not compile) stops the bench with an error.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from audio_lottery.config import load_config
from audio_lottery.data.pipeline.tokenizers import CharTokenizer
from audio_lottery.layout import ExportLayout, RunLayout
from audio_lottery.lottery.runner import load_run_config
from audio_lottery.lottery.tickets import level_results
from audio_lottery.pruning import Mask, get_strategy, macs_per_second
from audio_lottery.pruning.csr import CSRPolicy, to_csr
from audio_lottery.pruning.export import WEIGHTS, export_recognizer
from audio_lottery.pruning.shrink import shrink_model
from audio_lottery.pruning.structured import convert_ticket
from audio_lottery.recognizer import Recognizer
from audio_lottery.provenance import corpus_version
from results_io import command_line, write_page

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "bench_inference.md"
FORCED_LSTM = CSRPolicy(linear_max_density=0.2, lstm_max_density=1.0, lstm_min_hidden=0)


@dataclass
class Variant:
    name: str
    level: int
    remaining: float
    model: nn.Module
    macs: float  # effective multiply-accumulates per audio second
    onnx: Path | None = None
    times: dict = field(default_factory=dict)  # (threads, batch) -> [seconds per round]


# --------------------------------------------------------------------------- tickets


def _ticket_from_run(run: Path, level: int) -> tuple[Recognizer, Mask]:
    where = RunLayout(run).level(level)
    if not where.result.is_file():
        raise SystemExit(f"{run}: level {level} is not finished; extend the run (the lottery resumes): "
                         f"audio-lottery lottery --config <its config> --levels {level} --root {run.parent}")
    rec = Recognizer.load(where.trained)
    mask = Mask.load(where.mask)
    mask.apply_(rec.model)
    return rec, mask


def level_at(run: Path, remaining: float, tolerance: float = 0.02) -> int:
    """The finished level of ``run`` whose remaining weight is closest to ``remaining``, within
    ``tolerance`` relative (a channel run may prune at another rate per level than the IMP run)."""
    found = {level: float(r["remaining"]) for level, r in level_results(run).items()}
    close = [lv for lv, x in found.items() if abs(x - remaining) <= tolerance * remaining]
    if not close:
        have = ", ".join(f"{lv}: {100 * x:.1f} %" for lv, x in sorted(found.items())) or "none"
        raise SystemExit(f"{run}: no finished level with {100 * remaining:.1f} % remaining weight (levels {have})")
    return min(close, key=lambda lv: abs(found[lv] - remaining))


def _untrained(config: str) -> Recognizer:
    torch.manual_seed(0)
    rec = Recognizer.build(load_config(config), CharTokenizer())
    rec.model.train()
    with torch.no_grad():  # batch-norm statistics of a plausible scale
        rec.model(torch.randn(4, 300, rec.featurizer.dim), torch.tensor([300, 250, 200, 150]))
    return rec


def _pruned(rec: Recognizer, strategy: str, level: int, min_density: float) -> Mask:
    """One shot to the remaining weight of ``level`` (on fixed weights the same as ``level`` IMP steps up to
    rounding; one sort instead of ``level``)."""
    params = {n: p.detach() for n, p in rec.model.named_parameters()}
    mask = Mask.from_patterns(rec.model, rec.cfg.prune.include, rec.cfg.prune.exclude)
    opts = {"groups": rec.model.structure_groups()} if strategy == "channel" else {}
    fraction = 1.0 - (1.0 - rec.cfg.prune.fraction) ** level
    return get_strategy(strategy)(params, mask, fraction, None, min_density=min_density, **opts)


def _with_mask(rec: Recognizer, mask: Mask) -> Recognizer:
    out = Recognizer(rec.cfg, rec.featurizer, rec.tokenizer, copy.deepcopy(rec.model).eval())
    mask.apply_(out.model)
    return out


def tickets(args: argparse.Namespace, level: int, dense: Recognizer) -> dict[str, tuple[Recognizer, Mask]]:
    """``{"imp": (recognizer, mask), "channel": ...}`` at ``level`` (``dense``: the level-0 model)."""
    if args.run:
        imp = _ticket_from_run(Path(args.run), level)
        if args.channel_run:  # the channel run's level at the IMP ticket's remaining weight
            channel_run = Path(args.channel_run)
            channel = _ticket_from_run(channel_run, level_at(channel_run, imp[1].density()))
        else:  # untrained channel ticket: speed and size only (the dense weights under the converted mask)
            rec, mask = imp
            params = {n: p.detach() for n, p in rec.model.named_parameters()}
            converted = convert_ticket(params, mask, "channel", groups=rec.model.structure_groups(),
                                       min_density=rec.cfg.prune.min_tensor_density)
            channel = (_with_mask(dense, converted), converted)
        return {"imp": imp, "channel": channel}
    base = dense
    guard = base.cfg.prune.min_tensor_density
    out = {}
    for key, strategy in (("imp", "global_magnitude"), ("channel", "channel")):
        if key == "channel" and "channel" not in args.variants:
            continue
        mask = _pruned(base, strategy, level, guard)
        out[key] = (_with_mask(base, mask), mask)
    return out


def dense_model(args: argparse.Namespace) -> Recognizer:
    if args.run:
        return _ticket_from_run(Path(args.run), 0)[0]
    return _untrained(args.config)


# --------------------------------------------------------------------------- variants


def _macs(model: nn.Module, mask: Mask | None, dim: int) -> float:
    return float(macs_per_second(model, mask, dim)["effective_macs"])


def build_variants(args: argparse.Namespace, dense: Recognizer, sizes_dir: Path) -> tuple[list[Variant], list[dict]]:
    """Every timed variant, plus one file-size row per exported ticket."""
    dim = dense.featurizer.dim
    dense.model.eval()
    variants = [Variant("dense", 0, 1.0, dense.model, _macs(dense.model, None, dim))]
    size_rows = []
    if args.sizes:
        export_recognizer(dense, Mask.from_patterns(dense.model), "dense", sizes_dir / "dense")
        size_rows.append({"ticket": "dense", "level": 0, "format": "dense", "remaining": 1.0, "all_remaining": 1.0,
                          "bytes": (sizes_dir / "dense" / WEIGHTS).stat().st_size})
    for level in args.levels:
        t = tickets(args, level, dense)
        rec, mask = t["imp"]
        r = mask.density()
        macs = _macs(rec.model, mask, dim)
        if "masked" in args.variants:
            variants.append(Variant("masked", level, r, rec.model, macs))
        for name, policy in (("csr", None), ("csr-lstm", FORCED_LSTM)):
            if name in args.variants:
                model = copy.deepcopy(rec.model)
                to_csr(model, policy)
                variants.append(Variant(name, level, r, model, macs))
        exports = [("unstructured", rec, mask, ("compact", "csr"))]
        if "channel" in t:
            crec, cmask = t["channel"]
            shrunk = shrink_model(crec.model, cmask, crec.cfg)
            shrunk.model.eval()
            channel = Variant("channel", level, cmask.density(), shrunk.model, _macs(shrunk.model, shrunk.mask, dim))
            variants.append(channel)
            exports.append(("channel", crec, cmask, ("compact",)))
        for ticket, trec, tmask, formats in exports if args.sizes or args.onnx else []:
            params = list(trec.model.parameters())
            all_remaining = sum(int((p != 0).sum()) for p in params) / sum(p.numel() for p in params)
            for fmt in formats:
                out = sizes_dir / f"{ticket}_{level}_{fmt}"
                export_recognizer(trec, tmask, fmt, out)
                size_rows.append({"ticket": ticket, "level": level, "format": fmt, "remaining": tmask.density(),
                                  "all_remaining": all_remaining, "bytes": (out / WEIGHTS).stat().st_size})
                if ticket == "channel" and args.onnx:
                    try:
                        variants.append(_onnx_variant(out, level, cmask.density(), channel.macs))
                    except Exception as exc:  # noqa: BLE001 - a backbone the exporter cannot trace: skip it
                        print(f"onnx export failed, variant skipped: {exc!r:.300}", flush=True)
    if not args.sizes:
        size_rows = []
    for row in size_rows:
        row["vs_dense"] = row["bytes"] / size_rows[0]["bytes"]
    return variants, size_rows


def _onnx_variant(export_dir: Path, level: int, remaining: float, macs: float) -> Variant:
    from audio_lottery.lottery.export import add_onnx

    check = add_onnx(export_dir)
    print(f"onnx (level {level}): max |onnxruntime - torch| = {check['max_abs_difference']:.2e}", flush=True)
    return Variant("channel-onnx", level, remaining, None, macs, onnx=ExportLayout(export_dir).onnx)


# --------------------------------------------------------------------------- timing


def _runner(v: Variant, threads: int):
    if v.onnx is None:
        return lambda feats, lens: v.model(feats, lens)
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(v.onnx), sess_options=opts, providers=["CPUExecutionProvider"])
    return lambda feats, lens: session.run(None, {"feats": feats.numpy(), "feat_lens": lens.numpy()})


@torch.no_grad()
def time_variants(variants: list[Variant], dim: int, threads: int, batch: int, args: argparse.Namespace) -> None:
    """Warm up, then ``args.rounds`` rounds timing every variant once (rotated order)."""
    torch.set_num_threads(threads)
    frames = int(args.seconds * 100)
    feats = torch.randn(batch, frames, dim, generator=torch.Generator().manual_seed(0))
    lens = torch.full((batch,), frames, dtype=torch.long)
    runners = [_runner(v, threads) for v in variants]
    for run in runners:
        run(feats, lens)
    key = (threads, batch)
    for v in variants:
        v.times[key] = []
    for r in range(args.rounds):
        k = r % len(variants)
        for v, run in list(zip(variants, runners))[k:] + list(zip(variants, runners))[:k]:
            start = time.perf_counter()
            run(feats, lens)
            v.times[key].append(time.perf_counter() - start)
    print(f"threads {threads} batch {batch}: " + ", ".join(
        f"{v.name}@{v.level} {statistics.median(v.times[key]) * 1e3:.0f} ms" for v in variants), flush=True)


def speedup(v: Variant, dense: Variant, key: tuple[int, int]) -> float:
    """Median over rounds of dense time / variant time in the same round."""
    return statistics.median(d / t for d, t in zip(dense.times[key], v.times[key]))


# --------------------------------------------------------------------------- report


def _results(run: Path | None) -> list[dict]:
    if run is None:
        return []
    rows = []
    folders = {"imp": RunLayout(run), **RunLayout(run).branches()}
    for branch, folder in folders.items():
        rows += [{**r, "run": run.name, "branch": branch} for _, r in sorted(level_results(folder).items())]
    return rows


def wer_lines(args: argparse.Namespace) -> list[str]:
    rows = _results(Path(args.run) if args.run else None)
    rows += [dict(r, branch="channel-imp") for r in _results(Path(args.channel_run) if args.channel_run else None)
             if r["branch"] == "imp"]
    if not rows:
        return ["No trained run given (`--run`): speed only, on a randomly initialised model pruned by the "
                "strategies (speed does not depend on training). WER needs trained tickets: rerun with `--run` "
                "(and `--channel-run`), see docs/structured.md, section Reproducing."]
    dense = {b: next((r for r in rows if r["branch"] == b and r["level"] == 0), None) for b in ("imp", "channel-imp")}
    tol = load_run_config(Path(args.run)).lottery.match_tolerance
    against = "; ".join(f"{b} {d['dev_wer']:.4f}" for b, d in dense.items() if d)
    lines = [f"Dev/test WER of the tickets (greedy; match tolerance {tol} absolute dev WER against the dense model of "
             f"the ticket's own run: {against}; the run's branches against imp):" if dense["imp"] else
             "Dev/test WER of the tickets:", "",
             "| ticket | level | remaining % | dev WER | test WER | matches dense |", "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (-round(r["remaining"], 3), r["branch"])):  # runs' level numbers differ
        ref = dense.get(r["branch"]) or dense["imp"]
        match = "yes" if ref and r["dev_wer"] <= ref["dev_wer"] + tol + 1e-12 else "no"
        lines.append(f"| {r['branch']} | {r['level']} | {100 * r['remaining']:.1f} | {r['dev_wer']:.4f} | "
                     f"{r['test_wer']:.4f} | {match} |")
    return lines


def report(args: argparse.Namespace, variants: list[Variant], sizes: list[dict]) -> str:
    dense = variants[0]
    keys = sorted(dense.times)
    head = "| variant | level | remaining % | MMAC / audio s | " + " | ".join(
        f"RTF {t}thr b{b} | x dense" for t, b in keys) + " |"
    lines = [
        "# Inference on CPU: dense, masked, CSR and shrunk channel tickets", "",
        f"Model: `{dense_model_name(args)}`; {args.seconds:g} s utterances (features precomputed, equal lengths); "
        f"{args.rounds} interleaved rounds; torch {torch.__version__}, {platform.machine()}, "
        f"{torch.get_num_threads()} threads max. RTF = wall time / audio time; `x dense` = median over rounds of "
        "dense time / variant time in the same round (machine load hits both alike).", "",
        head, "|" + "---|" * (4 + 2 * len(keys)),
    ]
    for v in variants:
        cells = []
        for key in keys:
            rtf = statistics.median(v.times[key]) / (args.seconds * key[1])
            cells += [f"{rtf:.4f}", f"{speedup(v, dense, key):.2f}"]
        lines.append(f"| {v.name} | {v.level} | {100 * v.remaining:.1f} | {v.macs / 1e6:.1f} | " + " | ".join(cells)
                     + " |")
    lines += ["", "## Targets", ""] + target_lines(variants, sizes, keys)
    lines += ["", "## Exported file sizes (`audio-lottery export`)", ""]
    lines += [] if sizes else ["Not measured (`--no-sizes`)."]
    lines += [] if not sizes else [
              "`remaining` is the mask density of the prunable weights; `all %` counts every parameter "
              "(biases and norms always remain). Limit = 1.3 x remaining x dense file.", "",
              "| ticket | level | format | remaining % | all % | bytes | x dense | limit x dense | within |",
              "|---|---|---|---|---|---|---|---|---|"]
    for s in sizes:
        limit = 1.3 * s["remaining"]
        within = ("yes" if s["vs_dense"] <= limit else "no") if s["format"] == "compact" else "-"
        lines.append(f"| {s['ticket']} | {s['level']} | {s['format']} | {100 * s['remaining']:.1f} | "
                     f"{100 * s['all_remaining']:.1f} | {s['bytes']:,} | {s['vs_dense']:.3f} | {limit:.3f} | "
                     f"{within} |")
    lines += ["", "## Accuracy", ""] + wer_lines(args)
    lines += ["", "## Notes", ""] + NOTES + ["", "Command: `" + command_line() + "`", ""]
    return "\n".join(lines)


def dense_model_name(args: argparse.Namespace) -> str:
    return f"{args.run} (trained)" if args.run else f"{args.config} (random init)"


def target_lines(variants: list[Variant], sizes: list[dict], keys: list[tuple[int, int]]) -> list[str]:
    dense = variants[0]
    out = []
    for v in variants:
        if v.name == "channel" and 0.15 <= v.remaining <= 0.3:
            best = {k: speedup(v, dense, k) for k in keys}
            worst = min(best.values())
            out.append(f"- channel ticket at {100 * v.remaining:.1f} %: {worst:.2f}x to {max(best.values()):.2f}x "
                       f"faster than dense (target >= 3x; limits: 1/remaining = {1 / v.remaining:.1f}x, "
                       f"dense MACs / its MACs = {dense.macs / v.macs:.1f}x): "
                       f"{'met' if worst >= 3 else 'not met'} (>= 3x in {sum(b >= 3 for b in best.values())} of "
                       f"{len(best)} settings)")
        if v.name.startswith("csr") and v.remaining <= 0.1:
            big = {k: speedup(v, dense, k) for k in keys if k[1] >= 16}
            if big:
                out.append(f"- {v.name} at {100 * (1 - v.remaining):.1f} % sparsity, batch >= 16: "
                           + ", ".join(f"{s:.2f}x ({k[0]} thr)" for k, s in big.items())
                           + f" (target >= 1.5x): {'met' if min(big.values()) >= 1.5 else 'not met'}")
    within = [s for s in sizes if s["format"] == "compact"]
    ok = sum(s["vs_dense"] <= 1.3 * s["remaining"] for s in within)
    if within:
        out.append(f"- compact files within 1.3 x remaining x dense: {ok}/{len(within)}")
    return out


NOTES = [
    "- `masked` runs the dense kernels on a weight matrix full of zeros: no faster than dense.",
    "- `channel` is a smaller dense model (`pruning/shrink.py`): every kernel stays a dense BLAS/oneDNN call, "
    "so its speed follows its MACs. The conv front-end and the per-frame work that does not shrink "
    "(batch norm, activations, the output softmax) keep it below the 1/remaining limit.",
    "- CSR: torch's sparse matmul (MKL), fed 128 dense columns at a time, against the dense kernels. torch's "
    "LSTM runs the input projection and the recurrence in one fused oneDNN kernel; the CSR LSTM has to run the "
    "recurrence step by step in TorchScript (~10 small ops per step), which only pays when the recurrent "
    "matmul is large and sparse (hidden >= 512, the default policy). `csr-lstm` forces it on smaller LSTMs to "
    "show the cost.",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs" / "ds2_demo.yaml"), help="model preset (without --run)")
    p.add_argument("--run", help="a trained lottery run (unstructured IMP); its level checkpoints are timed")
    p.add_argument("--channel-run", help="a trained lottery run with prune.strategy=channel")
    p.add_argument("--levels", default="7,11", help="ticket levels (remaining 0.8**L): 7 = 21 %%, 11 = 8.6 %%")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--seconds", type=float, default=8.0, help="audio seconds per utterance")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--variants", default="masked,csr,csr-lstm,channel,channel-onnx",
                   help="timed variants besides dense (channel-onnx needs onnxruntime)")
    p.add_argument("--no-onnx", dest="onnx", action="store_false", help="skip the onnxruntime variant")
    p.add_argument("--no-sizes", dest="sizes", action="store_false", help="skip the exported file sizes")
    p.add_argument("--quick", action="store_true", help="smoke run (< 1 min): level 7, 1 thread, 2 s, batches 1,4")
    p.add_argument("--out", help="markdown output (default docs/bench_inference.md; --quick: none)")
    args = p.parse_args(argv)
    if args.quick:
        args.levels, args.threads, args.batches, args.seconds, args.rounds, args.onnx = "7", "1", "1,4", 2.0, 2, False
    args.levels = [int(x) for x in str(args.levels).split(",")]
    args.threads = [int(x) for x in str(args.threads).split(",")]
    args.batches = [int(x) for x in str(args.batches).split(",")]
    args.variants = [v.strip() for v in str(args.variants).split(",") if v.strip()]
    args.onnx = args.onnx and "channel-onnx" in args.variants and "channel" in args.variants
    if args.onnx:
        from audio_lottery.pruning.onnx_export import onnx_available

        args.onnx = onnx_available()
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(max(args.threads))
    dense = dense_model(args)
    with tempfile.TemporaryDirectory() as tmp:
        variants, sizes = build_variants(args, dense, Path(tmp))
        for threads in args.threads:
            for batch in args.batches:
                time_variants(variants, dense.featurizer.dim, threads, batch, args)
    md = report(args, variants, sizes)
    print(md)
    out = args.out or (None if args.quick else str(DOC))
    if out:  # a trained run's corpus is stamped into the result (speed alone depends on no corpus)
        corpus = corpus_version(Path(load_run_config(Path(args.run)).data.train_manifest).parent) if args.run else None
        write_page(Path(out), md, conditions=corpus)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
