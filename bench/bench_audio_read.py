"""Reading a large training corpus: the data check's read-ahead and the in-memory audio cache.

    python bench/bench_audio_read.py [--manifest data/synth_16h/train.jsonl] [--threads 8]

Where the page cache does not hold a corpus (a 16-hour synthesis is 1.2 GB of FLAC; this machine's
page cache keeps about 2 GB and a disk read that misses it takes tens of milliseconds), every pass
over the audio waits on the disk. This bench splits the manifest into three interleaved thirds, alike
in length and in how cold their files are, and times:

* the data check of training (decode every file once: :func:`audio_lottery.data.audio.inspect_many`)
  one file after another on the first third and with ``--threads`` threads reading ahead on the second;
* an epoch's audio without the cache (``load_audio`` of every file of the third third, which nothing
  has read before), and the same audio from the in-memory cache that training keeps when VTLP or waveform augmentation is on
  (:func:`~audio_lottery.data.pipeline.feature_cache.pack_wave` once, then ``unpack_wave``), which
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

from audio_lottery.data.audio import inspect_many, load_audio
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


def thirds(records: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    """Interleaved thirds (every third line): alike in length, in voices and in where they lie on disk."""
    return records[0::3], records[1::3], records[2::3]


def read_all(records: list[dict]) -> list[np.ndarray]:
    return [load_audio(r["audio"], SAMPLE_RATE, r.get("offset", 0.0), r["duration"]) for r in records]


def measure(records: list[dict], threads: int, cold: bool = False) -> dict:
    one, other, epoch = thirds(records)
    rows = {}
    rows["check, one by one"] = timed(lambda: inspect_many(one, threads=1), cold)
    rows[f"check, {threads} threads reading ahead"] = timed(lambda: inspect_many(other, threads=threads), cold)
    waves: list[np.ndarray] = []
    rows["epoch audio, decoded from disk"] = timed(lambda: waves.extend(read_all(epoch)), cold)
    packed = [pack_wave(w) for w in waves]
    back: list[np.ndarray] = []
    rows["epoch audio, from the in-memory cache"] = timed(lambda: back.extend(unpack_wave(p) for p in packed))
    exact = all(np.array_equal(a, b) for a, b in zip(waves, back))
    return {"cold": cold, "parts": [len(one), len(other), len(epoch)],
            "hours": [sum(r["duration"] for r in h) / 3600 for h in (one, other, epoch)],
            "rows": {k: {"seconds": round(s, 2), "disk_mib": None if mib is None else round(mib, 1)}
                     for k, (s, mib) in rows.items()},
            "cache_mib": round(sum(p.element_size() * p.nelement() for p in packed) / 2**20, 1),
            "int16": sum(str(p.dtype) == "torch.int16" for p in packed), "exact": exact}


def markdown(args: argparse.Namespace, m: dict) -> tuple[str, list[str]]:
    rows, (n_one, n_other, n_epoch), (h_one, h_other, h_epoch) = m["rows"], m["parts"], m["hours"]
    check_seq, check_par = rows["check, one by one"], rows[f"check, {args.threads} threads reading ahead"]
    disk, cached = rows["epoch audio, decoded from disk"], rows["epoch audio, from the in-memory cache"]
    # the thirds differ a little in length: compare seconds per hour of audio
    check_speedup = (check_seq["seconds"] / h_one) / max(check_par["seconds"] / h_other, 1e-9)
    epoch_speedup = disk["seconds"] / max(cached["seconds"], 1e-9)
    verdicts = [
        f"Result: reading ahead in {args.threads} threads makes the data check {check_speedup:.1f}x as fast per hour "
        f"of audio as one file after another; an epoch's audio comes from the in-memory cache "
        f"{epoch_speedup:.0f}x as fast as decoded from the disk, "
        + ("the very same samples." if m["exact"] else "but NOT the same samples (a fault)."),
    ]
    table = md_table(["step", "files", "hours of audio", "wall s", "s per hour of audio", "MiB read from the disk"],
                     [[name, str(n), f"{h:.2f}", f"{r['seconds']:.1f}", f"{r['seconds'] / h:.1f}",
                       "–" if r["disk_mib"] is None else f"{r['disk_mib']:.0f}"]
                      for (name, r), n, h in zip(rows.items(), (n_one, n_other, n_epoch, n_epoch),
                                                 (h_one, h_other, h_epoch, h_epoch))])
    lines = [
        "# Reading a large training corpus (bench/bench_audio_read.py)", "",
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, by `{command_line()}`: "
        f"`{args.manifest}` split into three interleaved thirds of {n_one}, {n_other} and {n_epoch} files, each read "
        "by one step only; "
        + ("the page cache dropped before every step (`--cold`), so every step reads from the disk. " if m["cold"] else
           "the page cache left as earlier work left it (no `--cold`). ")
        + "The data check decodes each file once before training; an epoch without the cache "
        "decodes every file again; with the cache (on by default, `data.feature_cache_mb`) training keeps the "
        f"decoded audio: {m['cache_mib']:.0f} MiB for this third, {m['int16']} of {n_epoch} files as 16-bit integers "
        "(exact), the rest as float32.", "",
        table, "",
        *verdicts, "",
        "The disk figures depend on the machine: where the page cache holds the whole corpus, the check and the "
        "epoch decode from memory and the gains shrink to the decoding itself.",
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
    if len(records) < 2:
        raise SystemExit(f"{args.manifest}: needs at least 2 utterances, has {len(records)}")
    m = measure(records, args.threads, args.cold)
    text, verdicts = markdown(args, m)
    # the page's "N threads" are reading threads (1 and --threads), which its conditions name as such
    write_page(args.out, text, verdicts=verdicts, data=m, conditions={"torch_threads": f"1,{args.threads}"})
    print(text)


if __name__ == "__main__":
    main()
