"""From manifest records to padded batches: dataset, duration-bucketed sampler, collate."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from audio_lottery.data.audio import AudioError, AudioFacts, audio_problem, inspect_many, load_audio, reading_ahead
from audio_lottery.data.pipeline.augmentation import Augmentation, front_end, utterance_rng
from audio_lottery.data.pipeline.feature_cache import FeatureCache, pack_wave, unpack_wave, utterance_key, wave_key

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """A padded batch. ``feats`` is [B, T, F]; ``targets`` is [B, U] padded with 0."""

    feats: torch.Tensor
    feat_lens: torch.Tensor
    targets: torch.Tensor
    target_lens: torch.Tensor
    ids: list[str]
    texts: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "Batch":
        return Batch(fn(self.feats), fn(self.feat_lens), fn(self.targets), fn(self.target_lens), self.ids, self.texts)

    def pin_memory(self) -> "Batch":
        """Page-locked copy (the DataLoader calls this with ``pin_memory=True``)."""
        return self._map(lambda t: t.pin_memory())

    def to(self, device: torch.device, non_blocking: bool = False) -> "Batch":
        """The batch's tensors on ``device`` (the same object when they already are)."""
        if self.feats.device == torch.device(device):
            return self
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))


def target_text(rec: dict, tokenizer) -> str:
    """The transcript a model learns: ``raw_text`` (case, punctuation) for a cased tokenizer (Whisper's)
    when the record has one, else the normalised ``text`` (every CTC tokenizer; corpora without raw_text)."""
    if getattr(tokenizer, "cased", False) and isinstance(rec.get("raw_text"), str):
        return rec["raw_text"]
    return rec["text"]


class SpeechDataset(Dataset):
    """Loads audio, augments it and computes its features (:class:`Augmentation`), and encodes text.

    Randomness depends only on (seed, epoch, index), so a resumed epoch sees the same data. With a
    ``cache`` and an augmentation that :attr:`~Augmentation.keeps_features`, each utterance is decoded
    and featurised once and only SpecAugment is drawn per epoch (the same features either way); with a
    ``cache`` and any other augmentation, each utterance is decoded once and augmented per epoch.
    """

    def __init__(
        self,
        records: Sequence[dict],
        featurizer: torch.nn.Module,
        tokenizer,
        sample_rate: int,
        augment: Augmentation | None = None,
        seed: int = 0,
        cache: FeatureCache | None = None,
    ) -> None:
        self.records = list(records)
        self.featurizer = featurizer
        self.tokenizer = tokenizer
        self.sample_rate = sample_rate
        self.augment = augment or Augmentation()
        self.seed = seed
        self.epoch = 0
        self.cache = cache

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def files_to_read(self, indices: Iterable[int]) -> list[str]:
        """The audio files that fetching ``indices`` will read: those whose features or audio the cache does
        not hold."""
        files = []
        for i in indices:
            rec = self.records[i]
            key = self._feature_key(rec)
            key = self._wave_key(rec) if key is None else key
            if key is None or key not in self.cache:
                files.append(rec["audio"])
        return files

    def __getitem__(self, idx: int) -> dict | None:
        rec = self.records[idx]
        key = self._feature_key(rec)
        try:  # only reading the utterance's own audio: an augmentation's error (e.g. a noise file) stops training
            if key is None:
                wave = self._wave(rec)
            else:
                clean = self.cache.get(key, lambda: front_end(self._read(rec), self.featurizer))
        except AudioError as exc:
            log.warning("skipping utterance %s: %s", rec["id"], exc)
            return None
        if key is None:
            feats = self.augment.features(wave, self.featurizer, self.seed, self.epoch, idx)
        else:
            feats = self.augment.masked(clean, self.seed, self.epoch, idx)
        text = target_text(rec, self.tokenizer)
        return {"feats": feats, "tokens": self.tokenizer.encode(text), "id": rec["id"], "text": text}

    def _feature_key(self, rec: dict) -> Hashable | None:
        """Where the cache keeps the utterance's features (they are the same in every epoch), else None."""
        if self.cache is None or not self.augment.keeps_features:
            return None
        return utterance_key(rec, self.featurizer, self.sample_rate)

    def _wave_key(self, rec: dict) -> Hashable | None:
        """Where the cache keeps the utterance's decoded audio, else None (no cache)."""
        return None if self.cache is None else wave_key(rec, self.sample_rate)

    def _wave(self, rec: dict) -> np.ndarray:
        """The utterance's decoded audio: with a cache, decoded once per process (used where its features
        change per epoch, so the cache keeps the audio instead)."""
        key = self._wave_key(rec)
        if key is None:
            return self._read(rec)
        return unpack_wave(self.cache.get(key, lambda: pack_wave(self._read(rec))))

    def _read(self, rec: dict) -> np.ndarray:
        return load_audio(rec["audio"], self.sample_rate, rec.get("offset", 0.0), rec["duration"])


def collate(items: list[dict | None]) -> Batch | None:
    """Pad features and targets of ``items`` into a :class:`Batch` (unreadable items dropped)."""
    items = [it for it in items if it is not None]
    if not items:
        return None
    feats, feat_lens = pad_features([it["feats"] for it in items])
    target_lens = torch.tensor([len(it["tokens"]) for it in items], dtype=torch.long)
    targets = torch.zeros(len(items), max(1, int(target_lens.max())), dtype=torch.long)
    for i, it in enumerate(items):
        targets[i, : len(it["tokens"])] = torch.as_tensor(it["tokens"], dtype=torch.long)
    return Batch(feats, feat_lens, targets, target_lens, [it["id"] for it in items], [it["text"] for it in items])


def pad_features(feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad ``[T_i, F]`` feature matrices into ``[B, T_max, F]`` plus their lengths."""
    lens = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
    out = torch.zeros(len(feats), int(lens.max()), feats[0].shape[1])
    for i, f in enumerate(feats):
        out[i, : f.shape[0]] = f
    return out, lens


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar duration, at most ``batch_seconds`` of audio and ``max_batch_size`` items.

    Batches are formed once from the duration order; each epoch shuffles the batch order
    (seeded by seed and epoch). With ``sortagrad`` the first epoch goes shortest first.
    """

    def __init__(
        self,
        durations: Sequence[float],
        batch_seconds: float,
        max_batch_size: int,
        seed: int = 0,
        sortagrad: bool = False,
        shuffle: bool = True,
    ) -> None:
        self.batches = make_buckets(durations, batch_seconds, max_batch_size)
        self.seed = seed
        self.sortagrad = sortagrad
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        if not self.shuffle or (self.sortagrad and self.epoch == 0):
            yield from self.batches
            return
        order = utterance_rng(self.seed, self.epoch, 7).permutation(len(self.batches))
        for i in order:
            yield self.batches[i]


class DistributedBucketBatchSampler(BucketBatchSampler):
    """:class:`BucketBatchSampler` for one of ``world_size`` processes (DDP).

    Every rank forms the same global batches in the same per-epoch order and yields its
    own disjoint shard ``batch[rank::world_size]``, so all ranks run the same number of
    steps and together see exactly the batches of a single process. Global batches with
    fewer utterances than ranks cannot be split and are dropped (logged).
    """

    def __init__(
        self,
        durations: Sequence[float],
        batch_seconds: float,
        max_batch_size: int,
        rank: int,
        world_size: int,
        seed: int = 0,
        sortagrad: bool = False,
        shuffle: bool = True,
    ) -> None:
        super().__init__(durations, batch_seconds, max_batch_size, seed=seed, sortagrad=sortagrad, shuffle=shuffle)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        small = [b for b in self.batches if len(b) < world_size]
        if small:
            log.warning("skipping %d batches (%d utterances) smaller than the %d ranks", len(small),
                        sum(map(len, small)), world_size)
        self.rank, self.world_size = rank, world_size
        self.usable = len(self.batches) - len(small)

    def __len__(self) -> int:
        return self.usable

    def __iter__(self) -> Iterator[list[int]]:
        for batch in super().__iter__():  # the single-process order, so skipping keeps the rest in place
            if len(batch) >= self.world_size:
                yield batch[self.rank :: self.world_size]


class ReadAheadBatches(Sampler[list[int]]):
    """The batches of ``batches``, unchanged, with the audio files of the next one read ahead
    (:func:`~audio_lottery.data.audio.read_ahead`) while the current one trains.

    ``files_of(batch)`` names the files a batch will read (:meth:`SpeechDataset.files_to_read`: none that
    the in-memory cache holds). ``set_epoch`` and ``len`` are those of ``batches``.
    """

    def __init__(self, batches: BucketBatchSampler, files_of: Callable[[list[int]], Iterable[str]]) -> None:
        self.batches = batches
        self.files_of = files_of

    def set_epoch(self, epoch: int) -> None:
        self.batches.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        return reading_ahead(self.batches, self.files_of)


def make_buckets(durations: Sequence[float], batch_seconds: float, max_batch_size: int) -> list[list[int]]:
    """Greedy batches over the duration-sorted indices; the padded cost (len x longest) is bounded."""
    order = sorted(range(len(durations)), key=lambda i: (durations[i], i))
    batches: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        longest = durations[i]  # sorted ascending: the newest item is the longest
        if cur and ((len(cur) + 1) * longest > batch_seconds or len(cur) >= max_batch_size):
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches


@dataclass
class FilterReport:
    """Utterances dropped before training, with a reason per problem kind."""

    kept: int = 0
    dropped: dict | None = None
    problems: list = field(default_factory=list)  # {"id", "audio", "reason", "detail"} per dropped utterance
    quiet: bool = False  # do not log each dropped utterance (the caller reports them)
    sample_rates: dict = field(default_factory=dict)  # sample rate -> kept utterances (audio checked)
    multichannel: int = 0  # kept utterances with several channels (mixed down when loaded)

    def add(self, reason: str, rec: dict, detail: str = "") -> None:
        self.dropped = self.dropped or {}
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        self.problems.append({"id": rec.get("id"), "audio": rec.get("audio"), "reason": reason, "detail": detail})
        if not self.quiet:
            log.warning("skipping %s (%s): %s %s", rec.get("audio"), rec.get("id"), reason, detail)

    def total_dropped(self) -> int:
        return sum((self.dropped or {}).values())

    def summary(self) -> str:
        """One line: kept, skipped and why."""
        total = self.kept + self.total_dropped()
        why = ", ".join(f"{reason}: {n}" for reason, n in sorted((self.dropped or {}).items()))
        return f"{self.kept} of {total} utterances usable" + (f"; skipped {self.total_dropped()} ({why})" if why else "")


def ctc_min_frames_of(tokens: list[int]) -> int:
    """CTC needs one frame per token plus one between adjacent repeats."""
    return len(tokens) + sum(1 for a, b in zip(tokens, tokens[1:]) if a == b)


def filter_records(
    records: Sequence[dict],
    tokenizer,
    frames_for: Callable[[float], int],
    min_duration: float,
    max_duration: float,
    check_audio: bool = True,
    min_frames: Callable[[list[int]], int] = ctc_min_frames_of,
    quiet: bool = False,
) -> tuple[list[dict], FilterReport]:
    """Drop utterances training cannot use, naming each file and its problem.

    Reasons: empty transcript, duration outside the range, characters outside the
    vocabulary, too few output frames for the transcript (``frames_for(duration)`` output
    frames < ``min_frames(tokens)``, by default the CTC rule), and with ``check_audio`` the
    audio problems of :func:`~audio_lottery.data.audio.audio_problem` (missing, unreadable,
    empty, truncated, non-finite or silent audio, segment beyond the end). Each audio file
    is decoded once per process (cached, read ahead in threads), see :mod:`audio_lottery.train.data_check`.
    """
    report = FilterReport(quiet=quiet)
    kept: list[dict] = []
    if check_audio:  # read ahead in threads; the loop below then finds every file's facts cached
        inspect_many(r for r in records if min_duration <= r["duration"] <= max_duration)
    for rec in records:
        reason, facts = _problem(rec, tokenizer, frames_for, min_frames, min_duration, max_duration, check_audio)
        if reason:
            report.add(reason[0], rec, reason[1])
            continue
        kept.append(rec)
        if facts is not None:
            report.sample_rates[facts.sample_rate] = report.sample_rates.get(facts.sample_rate, 0) + 1
            report.multichannel += facts.channels > 1
    report.kept = len(kept)
    return kept, report


def _problem(rec, tokenizer, frames_for, min_frames, min_duration, max_duration, check_audio
             ) -> tuple[tuple[str, str] | None, AudioFacts | None]:
    dur = rec["duration"]
    text = target_text(rec, tokenizer)
    if not text.strip():
        return ("empty transcript", ""), None
    if not (min_duration <= dur <= max_duration):
        return ("duration out of range", f"{dur:.2f}s not in [{min_duration}, {max_duration}]"), None
    try:
        tokens = tokenizer.encode(text)
    except ValueError as exc:
        return ("text outside the vocabulary", str(exc)), None
    need = min_frames(tokens)
    have = frames_for(dur)
    if have < need:
        return ("audio too short for its transcript", f"{have} output frames < {need} needed"), None
    return audio_problem(rec) if check_audio else (None, None)


def frames_counter(featurizer, model, sample_rate: int) -> Callable[[float], int]:
    """duration (s) -> number of model output frames."""

    def frames_for(duration: float) -> int:
        n = featurizer.num_frames(int(math.floor(duration * sample_rate)))
        return int(model.output_lengths(torch.tensor([n]))[0])

    return frames_for
