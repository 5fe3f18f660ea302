"""Decoded training input kept in memory, shared by every training of a process.

Decoding a FLAC file and computing its log-mel features is a visible part of a DS2 demo epoch on
2 cores (docs/bench_train_speed.md measures what caching them saves), and a lottery search trains
the same utterances for many epochs in every one of its trainings. When a run's augmentation
leaves the front-end's input untouched (no speed, reverb, noise, telephone or VTLP: only
SpecAugment, which masks a copy), the features of an utterance are the same in every epoch and
every training, so :class:`FeatureCache` computes them once. A cached tensor is exactly the one
the front-end returned, so a run computes the same numbers with or without the cache.

When the augmentation does change the front-end's input (VTLP warps the filterbank, speed and
reverb change the waveform), the features differ per epoch, but the decoded audio does not: the
cache then keeps the waveform (:func:`pack_wave`), as 16-bit integers where that round-trips
exactly (audio read from 16-bit files) and as float32 otherwise. That saves the decoding and, on a
machine whose page cache does not hold a large corpus, the disk reads of every epoch
(docs/bench_audio_read.md).

Entries are keyed by the audio file's path, size and modification time, the segment and, for
features, the front-end's configuration; the cache stops growing at its byte budget
(``data.feature_cache_mb``).
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Hashable

import numpy as np
import torch
from torch import Tensor


class FeatureCache:
    """Features by key, filled until ``budget_bytes`` (later misses are computed, not kept)."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = int(budget_bytes)
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: dict[Hashable, Tensor] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def __getstate__(self) -> dict:
        """Pickled (a DataLoader worker started by spawn): the budget only, the copy starts empty."""
        return {"budget_bytes": self.budget_bytes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["budget_bytes"])

    def get(self, key: Hashable, compute: Callable[[], Tensor]) -> Tensor:
        """The cached tensor for ``key``, else ``compute()`` (kept while the budget allows).

        Callers must not modify the returned tensor in place: it is the cached one.
        """
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self.hits += 1
                return cached
            self.misses += 1
        value = compute()
        size = value.element_size() * value.nelement()
        with self._lock:
            if key not in self._entries and self.bytes + size <= self.budget_bytes:
                self._entries[key] = value
                self.bytes += size
        return value

    def resize(self, budget_bytes: int) -> None:
        """A new budget; entries beyond it are dropped, newest first."""
        with self._lock:
            self.budget_bytes = int(budget_bytes)
            while self._entries and self.bytes > self.budget_bytes:
                _, value = self._entries.popitem()
                self.bytes -= value.element_size() * value.nelement()


_SHARED = FeatureCache(0)


def shared_cache(budget_mb: int) -> FeatureCache | None:
    """The process's cache with a budget of ``budget_mb`` MiB, or None when it is 0 (off)."""
    _SHARED.resize(int(budget_mb) << 20)
    return _SHARED if budget_mb > 0 else None


def audio_key(rec: dict, sample_rate: int) -> tuple | None:
    """The cache key of record ``rec``'s audio read at ``sample_rate``, or None when its file cannot be
    stat-ed (then nothing is cached)."""
    try:
        st = os.stat(rec["audio"])
    except (OSError, KeyError, TypeError):
        return None
    return (os.path.abspath(rec["audio"]), st.st_size, st.st_mtime_ns, float(rec.get("offset", 0.0)),
            float(rec["duration"]), int(sample_rate))


def utterance_key(rec: dict, front_end: torch.nn.Module, sample_rate: int) -> Hashable | None:
    """The cache key of record ``rec``'s features under ``front_end`` with its audio read at ``sample_rate``,
    or None when either cannot be named (a front-end without a ``cfg``, a file that cannot be stat-ed: then
    nothing is cached)."""
    cfg = getattr(front_end, "cfg", None)
    audio = audio_key(rec, sample_rate) if cfg is not None else None
    return None if audio is None else (*audio, type(front_end).__qualname__, repr(cfg))


def wave_key(rec: dict, sample_rate: int) -> Hashable | None:
    """The cache key of record ``rec``'s decoded waveform (:func:`pack_wave`), distinct from any feature key."""
    audio = audio_key(rec, sample_rate)
    return None if audio is None else ("wave", *audio)


_INT16_SCALE = 32768.0


def pack_wave(wave: np.ndarray) -> Tensor:
    """float32 audio -> the tensor the cache keeps: int16 when ``wave`` is exactly ``int16 / 32768`` (what
    soundfile reads from a 16-bit file), else a float32 copy. :func:`unpack_wave` gives ``wave`` back exactly."""
    ints = np.round(wave * _INT16_SCALE)
    if ints.size and ints.min() >= -_INT16_SCALE and ints.max() < _INT16_SCALE:
        as_int16 = ints.astype(np.int16)
        if np.array_equal(as_int16.astype(np.float32) / np.float32(_INT16_SCALE), wave):
            return torch.from_numpy(as_int16)
    return torch.from_numpy(np.array(wave, dtype=np.float32, copy=True))


def unpack_wave(packed: Tensor) -> np.ndarray:
    """A fresh float32 array of the waveform :func:`pack_wave` kept (the caller may change it)."""
    if packed.dtype == torch.int16:
        return packed.numpy().astype(np.float32) / np.float32(_INT16_SCALE)
    return packed.numpy().copy()
