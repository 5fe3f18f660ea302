"""Log-mel throughput: audio_lottery FeatureExtractor vs librosa, measured in one run.

200 utterances of ~4 s speech-like audio (harmonic tones with a wandering pitch, syllable
envelope and a little noise). Both compute 80 log-mel bins with the same parameters
(16 kHz, 400-sample hann window, n_fft 512, hop 160, center with zero padding, power 2,
log(x + 1e-6)). Throughput is audio seconds per wall second; the ratio ours/librosa is
what matters, because other load on the machine slows both alike.

Usage: python bench/bench_features.py [--utterances 200] [--out docs/bench_features.md]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import librosa
import numpy as np
import torch

from audio_lottery.config import FeatureConfig
from audio_lottery.data.pipeline.features import FeatureExtractor
from quick import threads_phrase
from results_io import write_page

SR = 16000
PARAMS = dict(sr=SR, n_fft=512, win_length=400, hop_length=160, window="hann",
              center=True, pad_mode="constant", power=2.0, n_mels=80)


def speech_like(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A pitched, amplitude-modulated harmonic signal plus noise."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = 120 + 40 * np.sin(2 * np.pi * rng.uniform(0.2, 1.0) * t) + rng.uniform(-20, 20)
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t), 0, None) ** 2
    wave = 0.3 * envelope * voiced + 0.01 * rng.standard_normal(n)
    return wave.astype(np.float32)


def make_corpus(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [speech_like(rng, rng.uniform(3.5, 4.5)) for _ in range(count)]


def run_librosa(waves: list[np.ndarray]) -> list[np.ndarray]:
    return [np.log(librosa.feature.melspectrogram(y=w, **PARAMS) + 1e-6) for w in waves]


def run_ours(fe: FeatureExtractor, waves: list[torch.Tensor]) -> list[torch.Tensor]:
    with torch.inference_mode():
        return [fe(w) for w in waves]


def run_ours_batched(fe: FeatureExtractor, waves: list[torch.Tensor], batch: int = 16) -> None:
    """Zero-padded batches with lengths (how a collate function would call it)."""
    with torch.inference_mode():
        for i in range(0, len(waves), batch):
            chunk = waves[i : i + batch]
            lens = torch.tensor([len(w) for w in chunk])
            padded = torch.nn.utils.rnn.pad_sequence(chunk, batch_first=True)
            fe(padded, lens)


def timed(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` runs (after one warm-up)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def max_abs_diff(fe: FeatureExtractor, waves: list[np.ndarray]) -> float:
    ours = run_ours(fe, [torch.from_numpy(w) for w in waves[:5]])
    ref = run_librosa(waves[:5])
    return max(float(np.abs(o.numpy() - r.T).max()) for o, r in zip(ours, ref))


def bench(count: int, repeats: int) -> tuple[float, list[dict]]:
    waves = make_corpus(count)
    tensors = [torch.from_numpy(w) for w in waves]
    audio_s = sum(len(w) for w in waves) / SR
    fe = FeatureExtractor(FeatureConfig(kind="logmel", n_mels=80, normalize=False))
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        t_lib = timed(lambda: run_librosa(waves), repeats)
        t_ours = timed(lambda: run_ours(fe, tensors), repeats)
        t_batch = timed(lambda: run_ours_batched(fe, tensors), repeats)
        rows.append({"threads": threads, "librosa": audio_s / t_lib, "ours": audio_s / t_ours,
                     "ours_batched": audio_s / t_batch})
    return audio_s, rows, max_abs_diff(fe, waves)


def report(count: int, audio_s: float, rows: list[dict], diff: float) -> str:
    lines = [
        "# Feature extraction benchmark",
        "",
        "Written by `bench/bench_features.py` (all numbers from one run; compare ratios, not absolutes).",
        "",
        f"- Audio: {count} speech-like utterances, {audio_s:.1f} s in total (~4 s each), 16 kHz.",
        "- Features: 80 log-mel, 25 ms hann window, n_fft 512, hop 10 ms, centred with zero padding,",
        "  power spectrum, log(x + 1e-6); no normalisation.",
        "- librosa: `librosa.feature.melspectrogram` + `np.log`, one utterance at a time (its",
        "  FFT runs on one thread whatever `torch.set_num_threads` says).",
        "- ours: `FeatureExtractor` one utterance at a time; 'batched' = zero-padded batches of 16 with lengths.",
        f"- Machine: {platform.machine()}, torch {torch.__version__}, librosa {librosa.__version__}; best of several runs.",
        f"- Max |ours - librosa| over 5 utterances: {diff:.2e} (log units).",
        "",
        "| torch threads | librosa (audio s / s) | ours (audio s / s) | ours batched | ratio ours/librosa | ratio batched/librosa |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['threads']} | {r['librosa']:.0f} | {r['ours']:.0f} | {r['ours_batched']:.0f} "
            f"| {r['ours'] / r['librosa']:.2f} | {r['ours_batched'] / r['librosa']:.2f} |"
        )
    one = min(rows, key=lambda r: r["threads"])
    ratio = one["ours"] / one["librosa"]
    lines += ["", f"Result: ours / librosa at {threads_phrase(one['threads'])} {ratio:.2f}x (target >= 1): "
              f"{'met' if ratio >= 1 else 'not met'}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "bench_features.md")
    args = parser.parse_args()
    audio_s, rows, diff = bench(args.utterances, args.repeats)
    for r in rows:
        print(f"threads={r['threads']}: librosa {r['librosa']:.0f} audio-s/s, ours {r['ours']:.0f} audio-s/s "
              f"(batched {r['ours_batched']:.0f}); ratio ours/librosa {r['ours'] / r['librosa']:.2f}")
    print(f"max |ours - librosa| = {diff:.2e}")
    text = report(args.utterances, audio_s, rows, diff)
    write_page(args.out, text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
