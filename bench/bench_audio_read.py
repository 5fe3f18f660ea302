"""Reading a large training corpus: reading ahead (data check, epoch) and the in-memory audio cache.

    python bench/bench_audio_read.py [--manifest data/synth_16h/train.jsonl] [--threads 8]

Where the page cache does not hold a corpus (a 16-hour synthesis is 1.2 GB of FLAC; this machine's
page cache keeps about 2 GB and a disk read that misses it takes tens of milliseconds), every pass
over the audio waits on the disk. This bench splits the manifest into five interleaved fifths, alike
in length and in how cold their files are, each read by one step only, and times:

* the data check of training (decode every file once: :func:`audio_lottery.data.audio.inspect_many`)
  one file after another, in ``--threads`` threads, and in those threads with the files of the next
  chunk read ahead by the kernel (:func:`~audio_lottery.data.audio.read_ahead`, as training does);
* an epoch's audio without the cache (``load_audio`` of every file, in training's batches), one file
  after another and with the next batch's files read ahead
  (:class:`~audio_lottery.data.pipeline.dataset.ReadAheadBatches`, as training's first epoch does), and
  the first of these from the in-memory cache that training keeps when VTLP or waveform augmentation is
  on (:func:`~audio_lottery.data.pipeline.feature_cache.pack_wave` once, then ``unpack_wave``), which
  must give back the very same samples.

With ``--cold`` (root on Linux) the page cache is dropped before every step, so each step reads its
files from the disk, as a training does once the page cache has let its corpus go; without it, what
the page cache holds from earlier work decides the disk figures. Megabytes read from the disk come
from ``/proc/self/io``. Writes docs/bench_audio_read.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from audio_lottery.data.audio import INSPECT_CHUNK, inspect_many, load_audio
from audio_lottery.data.pipeline.dataset import BucketBatchSampler, ReadAheadBatches
from audio_lottery.data.manifest import read_manifest
from audio_lottery.data.pipeline.feature_cache import pack_wave, unpack_wave
from quick import md_table
from results_io import command_line, write_page

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "bench_audio_read.md"
SAMPLE_RATE = 16000


def disk_read_bytes() -> int | None:
    """Bytes this process has read from block devices so far (``/proc/self/io``), None where unknown."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("read_bytes:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def drop_page_cache() -> None:
    """Write dirty pages and drop the page cache (Linux, root), so the next reads come from the disk."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError as exc:
        raise SystemExit(f"/proc/sys/vm/drop_caches: cannot drop the page cache ({exc}); run without --cold") from None


def timed(fn, cold: bool = False) -> tuple[float, float | None]:
    """(wall seconds, MiB read from the disk) of ``fn()``; with ``cold``, after dropping the page cache."""
    if cold:
        drop_page_cache()
    before, t0 = disk_read_bytes(), time.perf_counter()
    fn()
    seconds, after = time.perf_counter() - t0, disk_read_bytes()
    return seconds, (after - before) / 2**20 if before is not None and after is not None else None


PARTS = 5
CHECK_ONE, CHECK_THREADS, CHECK_AHEAD = "check, one by one", "check, {threads} threads", "check, {threads} threads reading ahead"
EPOCH_ONE, EPOCH_AHEAD = "epoch audio, decoded from disk", "epoch audio, decoded from disk, next batch read ahead"
EPOCH_CACHE = "epoch audio, from the in-memory cache"
#: training's batches (ds2_small): at most this much audio and this many utterances
BATCH_SECONDS, BATCH_SIZE = 200.0, 32


def parts(records: list[dict], n: int = PARTS) -> list[list[dict]]:
    """Interleaved parts (every n-th line): alike in length, in voices and in where they lie on disk."""
    return [records[i::n] for i in range(n)]


def read_epoch(records: list[dict], ahead: bool) -> list[np.ndarray]:
    """Every utterance's audio in training's batches, with (``ahead``) or without the next batch's files read ahead."""
    batches = BucketBatchSampler([r["duration"] for r in records], BATCH_SECONDS, BATCH_SIZE, shuffle=False)
    order = ReadAheadBatches(batches, lambda b: [records[i]["audio"] for i in b]) if ahead else batches
    return [load_audio(records[i]["audio"], SAMPLE_RATE, records[i].get("offset", 0.0), records[i]["duration"])
            for batch in order for i in batch]


def measure(records: list[dict], threads: int, cold: bool = False) -> dict:
    one, many, many_ahead, epoch, epoch_ahead = parts(records)
    rows = {}
    rows[CHECK_ONE] = timed(lambda: inspect_many(one, threads=1, ahead=False), cold)
    rows[CHECK_THREADS.format(threads=threads)] = timed(lambda: inspect_many(many, threads=threads, ahead=False), cold)
    rows[CHECK_AHEAD.format(threads=threads)] = timed(lambda: inspect_many(many_ahead, threads=threads), cold)
    waves: list[np.ndarray] = []
    rows[EPOCH_ONE] = timed(lambda: waves.extend(read_epoch(epoch, ahead=False)), cold)
    rows[EPOCH_AHEAD] = timed(lambda: read_epoch(epoch_ahead, ahead=True), cold)
    packed = [pack_wave(w) for w in waves]
    back: list[np.ndarray] = []
    rows[EPOCH_CACHE] = timed(lambda: back.extend(unpack_wave(p) for p in packed))
    exact = all(np.array_equal(a, b) for a, b in zip(waves, back))
    files = [one, many, many_ahead, epoch, epoch_ahead, epoch]
    return {"cold": cold,
            "rows": {k: {"files": len(f), "hours": sum(r["duration"] for r in f) / 3600, "seconds": round(s, 3),
                         "disk_mib": None if mib is None else round(mib, 1)}
                     for (k, (s, mib)), f in zip(rows.items(), files)},
            "cache_mib": round(sum(p.element_size() * p.nelement() for p in packed) / 2**20, 1),
            "int16": sum(str(p.dtype) == "torch.int16" for p in packed), "exact": exact}


def markdown(args: argparse.Namespace, m: dict) -> tuple[str, list[str]]:
    rows = m["rows"]

    def per_hour(name: str) -> float:  # the parts differ a little in length: compare seconds per hour of audio
        return rows[name]["seconds"] / max(rows[name]["hours"], 1e-9)

    def speedup(slow: str, fast: str) -> float:
        return per_hour(slow) / max(per_hour(fast), 1e-9)

    threads, ahead = CHECK_THREADS.format(threads=args.threads), CHECK_AHEAD.format(threads=args.threads)
    verdicts = [
        f"Result: the data check is {speedup(CHECK_ONE, threads):.1f}x as fast per hour of audio in {args.threads} "
        f"threads as one file after another, {speedup(CHECK_ONE, ahead):.1f}x with the next chunk's files read ahead "
        f"as well; an epoch's audio decodes {speedup(EPOCH_ONE, EPOCH_AHEAD):.1f}x as fast with the next batch's files "
        f"read ahead, and comes from the in-memory cache {speedup(EPOCH_ONE, EPOCH_CACHE):.0f}x as fast as decoded "
        "from the disk one file after another, "
        + ("the very same samples." if m["exact"] else "but NOT the same samples (a fault)."),
    ]
    table = md_table(["step", "files", "hours of audio", "wall s", "s per hour of audio", "MiB read from the disk"],
                     [[name, str(r["files"]), f"{r['hours']:.2f}", f"{r['seconds']:.1f}", f"{per_hour(name):.1f}",
                       "–" if r["disk_mib"] is None else f"{r['disk_mib']:.0f}"] for name, r in rows.items()])
    lines = [
        "# Reading a large training corpus (bench/bench_audio_read.py)", "",
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, by `{command_line()}`: "
        f"`{args.manifest}` split into {PARTS} interleaved parts, each read by one step only (the cache row reuses "
        "the audio the step above it decoded); "
        + ("the page cache dropped before every step (`--cold`), so every step reads from the disk. " if m["cold"] else
           "the page cache left as earlier work left it (no `--cold`). ")
        + "The data check decodes each file once before training, its threads reading "
        f"{INSPECT_CHUNK} records at a time; an epoch without the cache decodes every file again, in batches of at "
        f"most {BATCH_SECONDS:.0f} s and {BATCH_SIZE} utterances (ds2_small's); reading ahead asks the kernel for the "
        "files of the next chunk or batch (`posix_fadvise(WILLNEED)`) while the current one is decoded, as training "
        "and evaluation do. With the cache (on by default, `data.feature_cache_mb`) training keeps the "
        f"decoded audio: {m['cache_mib']:.0f} MiB for that part, {m['int16']} of {rows[EPOCH_CACHE]['files']} files as "
        "16-bit integers (exact), the rest as float32.", "",
        table, "",
        *verdicts, "",
        "The disk figures depend on the machine and the moment (this disk's latency varies): where the page cache "
        "holds the whole corpus, the check and the epoch decode from memory and the gains shrink to the decoding "
        "itself.",
    ]
    return "\n".join(lines) + "\n", verdicts


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", default="data/synth_16h/train.jsonl")
    p.add_argument("--threads", type=int, default=8, help="read-ahead threads of the data check")
    p.add_argument("--cold", action="store_true", help="drop the page cache before every step (Linux, root)")
    p.add_argument("--out", type=Path, default=DOC)
    args = p.parse_args(argv)
    records = read_manifest(args.manifest)
    if len(records) < PARTS:
        raise SystemExit(f"{args.manifest}: needs at least {PARTS} utterances, has {len(records)}")
    m = measure(records, args.threads, args.cold)
    text, verdicts = markdown(args, m)
    # the page's "N threads" are reading threads (1 and --threads), which its conditions name as such
    write_page(args.out, text, verdicts=verdicts, data=m, conditions={"torch_threads": f"1,{args.threads}"})
    print(text)


if __name__ == "__main__":
    main()
