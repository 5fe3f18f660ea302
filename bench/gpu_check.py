"""GPU check: one training step and one lottery level of the paper presets.

    bench/gpu_check.sh                       # on a GPU machine (device auto -> cuda)
    bench/gpu_check.sh --device cpu          # dry run: tiny settings, a few minutes on CPU

For ``configs/ds2_paper.yaml`` and ``configs/conformer_paper.yaml``, on a small corpus the
script synthesises itself (``--hours``, into ``--work``; without TTS engines it falls back
to noise clips with random transcripts, which time the same):

* **step**: the real training step (:class:`audio_lottery.train.step.TrainStep`: autocast,
  clipping, fused Adam/AdamW) on the preset's largest batch, for every ``--amp`` setting:
  median step time, peak GPU memory (``torch.cuda.max_memory_allocated``; on CPU the
  process's peak resident memory), utterances and audio seconds per second;
* **level**: a lottery run with one pruned level (dense level 0, then level 1: prune 20 %,
  rewind, train, score on dev and test), each level capped at ``--level-steps`` steps:
  seconds per level and peak memory.

Prints a table, writes ``<work>/gpu_check.json`` and ``docs/bench_gpu_check.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audio_lottery.cli.common import add_set_arg
from audio_lottery.config import load_config
from audio_lottery.data.pipeline.dataset import collate
from audio_lottery.data.manifest import read_manifest, write_manifest
from audio_lottery.files import atomic_write_json, read_json
from audio_lottery.layout import RunLayout
from audio_lottery.lottery.runner import run_lottery
from audio_lottery.recognizer import Recognizer
from audio_lottery.train.components import prepare_tokenizer
from audio_lottery.train.distributed import resolve_device
from audio_lottery.train.loop import build_train_data, load_split, make_optimizer
from audio_lottery.train.step import TrainStep
from results_io import write_page

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("ds2_paper", "conformer_paper")
DOC = ROOT / "docs" / "bench_gpu_check.md"
# (hours, batch cap, warm-up, timed steps, steps per level, eval utterances) of a dry run on CPU
DRY_RUN = {"hours": 0.03, "max_batch_size": 2, "warmup": 1, "steps": 1, "level_steps": 1, "eval": 2}
LEVEL = {n: RunLayout(".").level(n).dir.name for n in (0, 1)}  # keys of the per-level results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="cuda, cuda:N, cpu (dry run) or auto")
    p.add_argument("--work", default="runs/gpu_check", help="corpus, runs and gpu_check.json go here")
    p.add_argument("--corpus", default="", help="use this folder's train/dev/test.jsonl instead of synthesising")
    p.add_argument("--hours", type=float, default=None, help="training audio to synthesise (default 0.2; dry run 0.03)")
    p.add_argument("--amp", default=None, help="comma list of off,bf16,fp16 for the step (default off,bf16; cpu: off);"
                                               " the level uses the last one")
    p.add_argument("--presets", default=",".join(PRESETS))
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3; dry run 1)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 10; dry run 1)")
    p.add_argument("--level-steps", type=int, default=None, help="training steps per level (default 20; dry run 1)")
    p.add_argument("--eval-utterances", type=int, default=None, help="dev/test utterances scored (default 32; dry run 2)")
    add_set_arg(p, "extra config override for every preset (repeatable)")
    p.add_argument("--doc", default=str(DOC), help="markdown report path ('' = none)")
    args = p.parse_args(argv)
    args.device = str(resolve_device(args.device))
    dry = args.device == "cpu"
    defaults = {"hours": 0.2, "warmup": 3, "steps": 10, "level_steps": 20, "eval_utterances": 32}
    if dry:
        defaults = {"hours": DRY_RUN["hours"], "warmup": DRY_RUN["warmup"], "steps": DRY_RUN["steps"],
                    "level_steps": DRY_RUN["level_steps"], "eval_utterances": DRY_RUN["eval"]}
        args.overrides = [f"data.max_batch_size={DRY_RUN['max_batch_size']}", *args.overrides]
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.amp = (args.amp or ("off" if dry else "off,bf16")).split(",")
    args.dry_run = dry
    return args


# --------------------------------------------------------------------------- corpus


def prepare_corpus(args: argparse.Namespace) -> Path:
    """Folder with train/dev/test.jsonl: given, synthesised, or (no TTS engine) noise clips."""
    if args.corpus:
        return Path(args.corpus)
    out = Path(args.work) / f"corpus_{args.hours:g}h"
    if not (out / "train.jsonl").is_file():
        try:
            from audio_lottery.data.corpora.synth import synthesize_corpus

            synthesize_corpus(out, hours=args.hours, seed=0, progress=False)
        except RuntimeError as exc:  # no speech engine on this machine
            print(f"gpu_check: {exc}; using noise clips with random transcripts instead", flush=True)
            noise_corpus(out, args.hours)
    return out


def noise_corpus(out: Path, hours: float, seed: int = 0) -> None:
    """Pink-ish noise clips of 2-12 s with random-word transcripts (timing only, nothing to learn)."""
    rng = random.Random(seed)
    words = "the of and to in is was that for it with as his on be at by this had not are but from".split()
    (out / "audio").mkdir(parents=True, exist_ok=True)
    for split, total in (("train", hours * 3600), ("dev", max(60.0, hours * 234)), ("test", max(60.0, hours * 234))):
        records, seconds, i = [], 0.0, 0
        while seconds < total:
            dur = round(rng.uniform(2.0, 12.0), 2)
            wave = np.cumsum(np.random.default_rng(rng.randrange(2**31)).normal(size=int(dur * 16000)))
            wave = (0.1 * (wave - wave.mean()) / (np.abs(wave).max() + 1e-9)).astype(np.float32)
            path = out / "audio" / f"{split}_{i:05d}.flac"
            sf.write(path, wave, 16000)
            text = " ".join(rng.choice(words) for _ in range(max(2, int(dur * 2.2))))
            records.append({"id": f"{split}_{i:05d}", "audio": str(path), "duration": dur, "text": text,
                            "speaker": "noise"})
            seconds += dur
            i += 1
        write_manifest(out / f"{split}.jsonl", records)


def trimmed_manifests(corpus: Path, work: Path, eval_utterances: int) -> list[str]:
    """Overrides pointing at the corpus, with dev and test cut to ``eval_utterances``."""
    sets = [f"data.train_manifest={corpus / 'train.jsonl'}"]
    for split in ("dev", "test"):
        path = work / "manifests" / f"{split}.jsonl"
        write_manifest(path, read_manifest(corpus / f"{split}.jsonl")[:eval_utterances])
        sets.append(f"data.{split}_manifest={path}")
    return sets


# --------------------------------------------------------------------------- measurements


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gb(device: torch.device) -> float:
    """Peak GPU memory allocated by tensors, or (CPU) the process's peak resident memory, in GiB."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def measure_step(cfg, work: Path, device: torch.device, warmup: int, steps: int) -> dict:
    """Time the training step on the preset's largest batch (longest padded audio)."""
    torch.manual_seed(cfg.train.seed)
    records = load_split(cfg, "train")
    tokenizer = prepare_tokenizer(cfg, [r["text"] for r in records], work / f"tokenizer_{cfg.model.name}")
    rec = Recognizer.build(cfg, tokenizer)
    rec.model.to(device)
    data = build_train_data(cfg, rec, records, device)
    durations = [r["duration"] for r in data.dataset.records]
    idx = max(data.sampler.batches, key=lambda b: len(b) * max(durations[i] for i in b))
    batch = collate([data.dataset[i] for i in idx])
    if device.type == "cuda":
        batch = batch.pin_memory()
    step = TrainStep(cfg, rec.model, make_optimizer(rec.model, cfg), None, device)
    rec.model.train()
    _reset_peak(device)
    for _ in range(warmup):
        step(batch)
    _sync(device)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        out = step(batch)
        _sync(device)
        times.append(time.perf_counter() - t0)
    sec = statistics.median(times)
    audio = sum(durations[i] for i in idx)
    return {"params": sum(p.numel() for p in rec.model.parameters()), "batch_utterances": len(idx),
            "batch_audio_seconds": round(audio, 2), "step_seconds": sec, "utterances_per_second": len(idx) / sec,
            "audio_seconds_per_second": audio / sec, "peak_memory_gb": _peak_gb(device),
            "last_loss": out.loss, "skipped": out.skipped}


def measure_level(cfg, work: Path, preset: str, device: torch.device) -> dict:
    """A fresh lottery run with levels 0 and 1; seconds and peak memory of each level."""
    root = work / "runs" / preset
    shutil.rmtree(root, ignore_errors=True)
    _reset_peak(device)
    t0 = time.perf_counter()
    run_dir = run_lottery(cfg, root, progress=False)
    total = time.perf_counter() - t0
    out = {"total_seconds": total, "peak_memory_gb": _peak_gb(device)}
    for level in (0, 1):
        where = RunLayout(run_dir).level(level)
        res = read_json(where.result)
        out[where.dir.name] = {k: res[k] for k in ("wall_seconds", "train_seconds", "remaining", "dev_wer")}
        train = read_json(where.train.result)
        out[where.dir.name].update(steps=train["steps"], skipped=train.get("skipped_steps", 0))
    return out


# --------------------------------------------------------------------------- report


def report(results: dict, args: argparse.Namespace) -> str:
    dev = results["device"]
    mem = "peak GPU memory (GiB)" if dev.startswith("cuda") else "peak process RSS so far (GiB)"
    lines = [
        "# GPU check: one training step and one lottery level of the paper presets",
        "",
        f"Written by `bench/gpu_check.sh {' '.join(sys.argv[1:])}` on {results['machine']} "
        f"(load average {results['load_average']:.1f} at the start).",
        "",
    ]
    if args.dry_run:
        lines += ["**Dry run on CPU** (no GPU was available): tiny settings (batch of "
                  f"{DRY_RUN['max_batch_size']} utterances, {args.steps} timed step, {args.level_steps}-step levels, "
                  f"{args.eval_utterances} dev/test utterances). It shows that the script and both paper models "
                  "run end to end; its times say nothing about GPU speed. Run `bench/gpu_check.sh` on a GPU "
                  "machine to replace this page with real figures.", ""]
    lines += [f"Corpus: `{results['corpus']}`. Batches are each preset's largest (its own `batch_seconds` / "
              "`max_batch_size`) over this corpus's utterances; LibriSpeech's are longer, so real steps cost more.", "",
              "## Training step", "",
              f"| preset | params | amp | batch (utt / audio s) | step time (s) | utterances/s | audio s/s | {mem} |",
              "|---|---|---|---|---|---|---|---|"]
    for name, res in results["presets"].items():
        for amp, s in res["step"].items():
            lines.append(f"| {name} | {s['params'] / 1e6:.2f} M | {amp} | {s['batch_utterances']} / "
                         f"{s['batch_audio_seconds']:.0f} | {s['step_seconds']:.3f} | {s['utterances_per_second']:.1f} | "
                         f"{s['audio_seconds_per_second']:.1f} | {s['peak_memory_gb']:.2f} |")
    lines += ["", "## One lottery level (level 0 dense, then level 1: prune 20 %, rewind, train, score)", "",
              f"| preset | amp | steps per level (skipped) | level 0 (s) | level 1 (s) | level 1 remaining | {mem} |",
              "|---|---|---|---|---|---|---|"]
    for name, res in results["presets"].items():
        lv = res["level"]
        lines.append(f"| {name} | {res['level_amp']} | {lv[LEVEL[1]]['steps']} ({lv[LEVEL[1]]['skipped']}) | {lv[LEVEL[0]]['wall_seconds']:.1f} | "
                     f"{lv[LEVEL[1]]['wall_seconds']:.1f} | {100 * lv[LEVEL[1]]['remaining']:.1f} % | "
                     f"{lv['peak_memory_gb']:.2f} |")
    lines += ["", f"Each level trains at most {args.level_steps} steps (epochs end early on this small corpus; "
              "dev is scored after every epoch). Level seconds include scoring on the dev and test manifests (cut to "
              f"{args.eval_utterances} utterances each). fp16 steps skipped while the gradient scaler lowers its "
              "scale are counted in brackets.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1 if args.dry_run else max(1, torch.get_num_threads()))
    corpus = prepare_corpus(args)
    sets = trimmed_manifests(corpus, work, args.eval_utterances)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    results = {"device": str(device), "machine": f"{gpu}, torch {torch.__version__}", "corpus": str(corpus),
               "load_average": os.getloadavg()[0], "presets": {}}
    for preset in args.presets.split(","):
        common = sets + [f"train.device={device}", f"data.max_eval_utterances={args.eval_utterances}",
                         f"train.threads={torch.get_num_threads()}", *args.overrides]
        res: dict = {"step": {}}
        for amp in args.amp:
            cfg = load_config(ROOT / "configs" / f"{preset}.yaml", [*common, f"train.amp={amp}"])
            res["step"][amp] = s = measure_step(cfg, work, device, args.warmup, args.steps)
            print(f"{preset:16s} step amp={amp:4s} {s['batch_utterances']:3d} utt  {s['step_seconds']:.3f} s  "
                  f"{s['utterances_per_second']:.1f} utt/s  peak {s['peak_memory_gb']:.2f} GiB", flush=True)
        res["level_amp"] = args.amp[-1]
        cfg = load_config(ROOT / "configs" / f"{preset}.yaml",
                          [*common, f"train.amp={args.amp[-1]}", "lottery.levels=1", f"train.epochs={args.level_steps}",
                           f"train.max_steps={args.level_steps}", "train.log_every_steps=1"])
        res["level"] = lv = measure_level(cfg, work, preset, device)
        print(f"{preset:16s} level 0 {lv[LEVEL[0]]['wall_seconds']:.1f} s, level 1 {lv[LEVEL[1]]['wall_seconds']:.1f} s "
              f"({100 * lv[LEVEL[1]]['remaining']:.1f} % remaining)  peak {lv['peak_memory_gb']:.2f} GiB", flush=True)
        results["presets"][preset] = res
    atomic_write_json(work / "gpu_check.json", results)
    if args.doc:
        write_page(Path(args.doc), report(results, args))
        print(f"wrote {args.doc}")
    return results


if __name__ == "__main__":
    main()
