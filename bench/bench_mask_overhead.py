"""Training-step overhead of keeping a mask enforced, against dense training.

Compares, on the same 2-layer BiLSTM + Linear model and fixed batch:

* dense          plain AdamW steps;
* enforced       a 79 %-density mask kept by ``MaskEnforcer`` (mask grads after
                 backward, zero weights after every step);
* prune-reparam  ``torch.nn.utils.prune.custom_from_mask`` re-parametrisation of the
                 same weights (the approach this project avoids).

Measurements are interleaved in rounds (rotating the order) so drifting machine load
hits every variant alike; the report gives median per-round ratios to dense.
Run: ``.venv/bin/python bench/bench_mask_overhead.py`` (writes docs/bench_mask_overhead.md).
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.utils.prune as prune
from torch import nn

from audio_lottery.io import atomic_write_text
from audio_lottery.pruning import Mask, MaskEnforcer, random_prune

DOC = Path(__file__).resolve().parents[1] / "docs" / "bench_mask_overhead.md"


class BiLSTMCTC(nn.Module):
    """2-layer BiLSTM + Linear to 29 symbols with a CTC loss."""

    def __init__(self, feat: int, hidden: int, vocab: int = 29) -> None:
        super().__init__()
        self.rnn = nn.LSTM(feat, hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(2 * hidden, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.rnn(x)[0])

    def prunable(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if "weight" in n}


@dataclass
class Variant:
    name: str
    model: nn.Module
    opt: torch.optim.Optimizer
    after_backward: Callable[[], None]
    after_step: Callable[[], None]


def _noop() -> None:
    return None


def _make_batch(args: argparse.Namespace) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, args.frames, args.feat, generator=g)
    targets = torch.randint(1, 29, (args.batch, args.frames // 4), generator=g)
    in_lens = torch.full((args.batch,), args.frames, dtype=torch.long)
    tgt_lens = torch.full((args.batch,), args.frames // 4, dtype=torch.long)
    return x, targets, in_lens, tgt_lens


def _step(v: Variant, batch: tuple[torch.Tensor, ...]) -> None:
    x, targets, in_lens, tgt_lens = batch
    v.opt.zero_grad(set_to_none=True)
    logp = v.model(x).log_softmax(-1).transpose(0, 1)
    loss = nn.functional.ctc_loss(logp, targets, in_lens, tgt_lens, zero_infinity=True)
    loss.backward()
    v.after_backward()
    v.opt.step()
    v.after_step()


def _variants(args: argparse.Namespace) -> tuple[list[Variant], Mask]:
    torch.manual_seed(0)
    base = BiLSTMCTC(args.feat, args.hidden)
    weights = base.prunable()
    mask = random_prune(weights, Mask.ones_like(weights), 1 - args.density, torch.Generator().manual_seed(1))

    def adamw(m: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.1)

    dense = copy.deepcopy(base)
    enforced = copy.deepcopy(base)
    mask.apply_(enforced)
    enforcer = MaskEnforcer(enforced, mask)
    reparam = copy.deepcopy(base)
    for name, m in mask.items():
        module_name, _, pname = name.rpartition(".")
        prune.custom_from_mask(reparam.get_submodule(module_name), pname, m)
    variants = [
        Variant("dense", dense, adamw(dense), _noop, _noop),
        Variant("enforced", enforced, adamw(enforced), enforcer.mask_grads, enforcer.apply),
        Variant("prune-reparam", reparam, adamw(reparam), _noop, _noop),
    ]
    return variants, mask


def _time(v: Variant, batch: tuple[torch.Tensor, ...], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        _step(v, batch)
    return (time.perf_counter() - start) / steps


def _check_pruned(variants: list[Variant], mask: Mask) -> dict[str, bool]:
    """True when every pruned weight is still exactly zero."""
    out = {}
    for v in variants[1:]:
        ok = True
        for name, m in mask.items():
            module_name, _, pname = name.rpartition(".")
            w = getattr(v.model.get_submodule(module_name), pname)
            ok &= bool(torch.all(w.detach()[~m] == 0))
        out[v.name] = ok
    return out


def run(args: argparse.Namespace) -> dict:
    """Warm up, then time every variant in rotated order for ``args.rounds`` rounds."""
    torch.set_num_threads(args.threads)
    batch = _make_batch(args)
    variants, mask = _variants(args)
    for v in variants:
        _time(v, batch, args.warmup)
    per_step: dict[str, list[float]] = {v.name: [] for v in variants}
    for r in range(args.rounds):
        order = variants[r % len(variants):] + variants[: r % len(variants)]
        for v in order:
            per_step[v.name].append(_time(v, batch, args.steps))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {t[-1] * 1e3:.1f} ms" for k, t in per_step.items()),
              flush=True)
    ratios = {
        name: statistics.median(t / d for t, d in zip(times, per_step["dense"]))
        for name, times in per_step.items() if name != "dense"
    }
    best = {name: min(times) / min(per_step["dense"]) for name, times in per_step.items() if name != "dense"}
    return {"per_step": per_step, "ratios": ratios, "min_ratios": best, "density": mask.density(),
            "zeros_kept": _check_pruned(variants, mask)}


def _markdown(args: argparse.Namespace, res: dict) -> str:
    med = {k: statistics.median(v) * 1e3 for k, v in res["per_step"].items()}
    fast = {k: min(v) * 1e3 for k, v in res["per_step"].items()}
    lines = [
        "# Mask-enforcement overhead (bench/bench_mask_overhead.py)",
        "",
        f"Model: 2-layer BiLSTM (input {args.feat}, hidden {args.hidden}) + Linear(->29), CTC loss, AdamW "
        f"(weight decay 0.1); fixed batch B={args.batch}, T={args.frames}; mask density {res['density']:.4f} "
        f"on every LSTM weight and the Linear weight.",
        f"CPU, torch {torch.__version__}, {args.threads} threads, {platform.processor() or platform.machine()}; "
        f"{args.rounds} interleaved rounds x {args.steps} steps after {args.warmup} warm-up steps.",
        "",
        "| Variant | Median step (ms) | Fastest step (ms) | Median ratio to dense | Ratio of fastest | Pruned weights still 0 |",
        "|---|---|---|---|---|---|",
        f"| dense | {med['dense']:.1f} | {fast['dense']:.1f} | 1.000 | 1.000 | – |",
    ]
    for name, ratio in res["ratios"].items():
        lines.append(f"| {name} | {med[name]:.1f} | {fast[name]:.1f} | {ratio:.3f} | {res['min_ratios'][name]:.3f} "
                     f"| {res['zeros_kept'][name]} |")
    lines += [
        "",
        "`enforced` = `MaskEnforcer.mask_grads()` after backward and `MaskEnforcer.apply()` after every "
        "optimizer step (two `torch._foreach_mul_` calls). Target: enforced / dense <= 1.01.",
        "`prune-reparam` = `torch.nn.utils.prune.custom_from_mask` on the same weights (weight = orig * mask "
        "recomputed in a forward pre-hook; the project does not use it).",
        "Median ratio = median over rounds of (variant time / dense time in the same round); ratio of fastest ="
        " fastest round of the variant / fastest dense round (least disturbed by other load on the machine).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--feat", type=int, default=320)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--density", type=float, default=0.79)
    p.add_argument("--steps", type=int, default=5, help="timed steps per variant per round")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=DOC, help="markdown report path ('' to skip)")
    args = p.parse_args(argv)
    res = run(args)
    for name, ratio in res["ratios"].items():
        print(f"{name} / dense = {ratio:.3f} median, {res['min_ratios'][name]:.3f} fastest-round"
              f"  (pruned weights still zero: {res['zeros_kept'][name]})")
    if str(args.out):
        atomic_write_text(args.out, _markdown(args, res))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
