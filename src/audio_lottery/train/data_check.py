"""Manifest validation before training: every problem is named with its file and manifest line.

Three outcomes per problem:

- **refused** -- the manifest itself is malformed (not found, not UTF-8, invalid JSON,
  missing or invalid fields, duplicate ids): training does not start;
- **skipped and counted** -- a training utterance is unusable (missing, corrupt, empty,
  silent or NaN audio; empty transcript or one outside the vocabulary; too long, too short
  or too short for its transcript): it is left out, logged, and counted in
  ``data_report.json`` of the training run;
- **refused for evaluation** -- a dev/test utterance that evaluation could not read
  (missing, corrupt, empty or NaN audio; transcript outside the vocabulary) stops the run
  before its first step, since scores must cover the whole set.

Harmless conversions (other sample rates are resampled, several channels mixed down) are
counted as notes. ``audio-lottery data check --manifest FILE`` prints the full report.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from audio_lottery.config import Config
from audio_lottery.data.audio import audio_problem, conversion_notes, inspect_many
from audio_lottery.data.pipeline.dataset import FilterReport, filter_records, frames_counter
from audio_lottery.data.manifest import ManifestError, iter_manifest
from audio_lottery.data.text import out_of_vocabulary
from audio_lottery.files import atomic_write_json
from audio_lottery.layout import TrainLayout

log = logging.getLogger(__name__)

ROLES = ("train", "eval")


@dataclass
class ManifestCheck:
    """The validation report of one manifest (see the module doc for the three outcomes)."""

    path: str
    role: str = "train"
    records: int = 0
    usable: int = 0
    refused: list = field(default_factory=list)   # "file:line: problem" of malformed lines
    skipped: list = field(default_factory=list)   # {"line", "id", "audio", "reason", "detail"}
    notes: dict = field(default_factory=dict)     # conversion -> count (usable utterances)

    @property
    def ok(self) -> bool:
        """True when training could start on this manifest (as training or as dev/test data)."""
        return not self.refused and self.usable > 0 and (self.role == "train" or not self.skipped)

    def counts(self) -> dict[str, int]:
        """Skipped utterances per reason."""
        return dict(Counter(s["reason"] for s in self.skipped))

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok, "skipped_by_reason": self.counts()}

    def render(self, limit: int = 20) -> str:
        """The human-readable report (at most ``limit`` examples per reason)."""
        out = [f"{self.path}: {self.records} records ({self.role} manifest)"]
        if self.refused:
            out.append(f"REFUSED: {len(self.refused)} malformed line(s); fix them before training:")
            out += [f"  {msg}" for msg in self.refused[:limit]]
            if len(self.refused) > limit:
                out.append(f"  ... and {len(self.refused) - limit} more")
        out.append(f"usable: {self.usable} of {self.records} utterances")
        verb = "would refuse evaluation" if self.role == "eval" else "skipped"
        for reason, n in sorted(self.counts().items()):
            out.append(f"{verb}: {reason}: {n}")
            rows = [s for s in self.skipped if s["reason"] == reason]
            for s in rows[:limit]:
                where = "" if s["audio"] in s["detail"] else f" [{s['audio']}]"
                out.append(f"  line {s['line']} ({s['id']}): {s['detail'] or s['reason']}{where}")
            if len(rows) > limit:
                out.append(f"  ... and {len(rows) - limit} more")
        for note, n in sorted(self.notes.items()):
            out.append(f"note: {n} usable utterance(s) {note}")
        out.append("verdict: " + ("OK" if self.ok else "NOTHING USABLE" if not self.usable and not self.refused
                                  else "REFUSED"))
        return "\n".join(out)


def check_manifest(path: str | Path, cfg: Config | None = None, role: str = "train") -> ManifestCheck:
    """Validate every line of a manifest as training (``role="train"``) or evaluation data.

    ``cfg`` supplies the duration range, sample rate and (character tokenizer only) the
    model whose output frames must fit each transcript; without it the defaults apply and
    the frames check is left out. A missing manifest raises :class:`ManifestError`.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    cfg = cfg or Config()
    report = ManifestCheck(str(path), role)
    records, lines = [], {}
    for lineno, item in iter_manifest(path):
        if isinstance(item, ManifestError):
            report.refused.append(str(item))
        else:
            records.append(item)
            lines[item["id"]] = lineno
    report.records = len(records)
    if role == "train":
        kept, filtered = _filter_for_training(records, cfg)
        problems, rates, multi = filtered.problems, filtered.sample_rates, filtered.multichannel
    else:
        problems = eval_problems(records)
        bad = {p["id"] for p in problems}
        kept = [r for r in records if r["id"] not in bad]
        facts = [f for f in (audio_problem(r)[1] for r in kept) if f is not None]
        rates, multi = dict(Counter(f.sample_rate for f in facts)), sum(f.channels > 1 for f in facts)
    report.skipped = [{"line": lines.get(p["id"]), **p} for p in problems]
    report.usable = len(kept)
    report.notes = conversion_notes(rates, multi, cfg.data.features.sample_rate)
    return report


def _filter_for_training(records: list[dict], cfg: Config) -> tuple[list[dict], FilterReport]:
    from audio_lottery.data.pipeline.tokenizers import CharTokenizer

    tokenizer = CharTokenizer()  # BPE accepts exactly the same characters
    frames_for, min_frames = (lambda duration: 1 << 30), (lambda tokens: 0)
    if cfg.data.tokenizer == "char":  # BPE token counts are unknown before training its model
        from audio_lottery.recognizer import Recognizer

        rec = Recognizer.build(cfg, tokenizer)
        frames_for = frames_counter(rec.featurizer, rec.model, cfg.data.features.sample_rate)
        min_frames = rec.model.min_output_frames
    return filter_records(records, tokenizer, frames_for, cfg.data.min_duration, cfg.data.max_duration,
                          min_frames=min_frames, quiet=True)


def eval_problems(records: Sequence[dict]) -> list[dict]:
    """Records evaluation could not score: unreadable audio or a transcript outside the vocabulary.

    Silent audio and empty transcripts are allowed (they are scored like any other)."""
    problems = []
    inspect_many(records)
    for rec in records:
        problem, _ = audio_problem(rec)
        if problem and problem[0] != "silent audio":
            problems.append({"id": rec["id"], "audio": rec["audio"], "reason": problem[0], "detail": problem[1]})
            continue
        bad = out_of_vocabulary(rec["text"])
        if bad:
            problems.append({"id": rec["id"], "audio": rec["audio"], "reason": "text outside the vocabulary",
                             "detail": f"characters {sorted(bad)} in {rec['text'][:60]!r}"})
    return problems


def check_eval_records(records: Sequence[dict], path: str | Path, split: str, limit: int = 20) -> None:
    """Refuse (ValueError naming manifest lines and files) dev/test records evaluation could not score."""
    if not records:
        raise ValueError(f"{path}: the {split} manifest has no utterances")
    problems = eval_problems(records)
    if not problems:
        return
    lines = manifest_lines(path)
    rows = [f"  {path}:{lines.get(p['id'], '?')} ({p['id']}): {p['reason']}: {p['detail']}" for p in problems[:limit]]
    more = [f"  ... and {len(problems) - limit} more"] if len(problems) > limit else []
    raise ValueError("\n".join([f"{path}: {len(problems)} of {len(records)} {split} utterances cannot be evaluated; "
                                f"fix or remove them (nothing was trained):", *rows, *more]))


def manifest_lines(path: str | Path) -> dict[str, int]:
    """Utterance id -> line number in the manifest (malformed lines are left out)."""
    return {item["id"]: lineno for lineno, item in iter_manifest(path) if not isinstance(item, ManifestError)}


def write_data_report(out_dir: Path, report: FilterReport, cfg: Config) -> Path:
    """Log the training data summary and write ``data_report.json`` (skipped utterances with
    their manifest lines, conversions) into the training run folder."""
    manifest = cfg.data.train_manifest
    lines = manifest_lines(manifest) if report.problems else {}
    notes = conversion_notes(report.sample_rates, report.multichannel, cfg.data.features.sample_rate)
    log.info("training data %s: %s%s", manifest, report.summary(),
             "".join(f"; {n} {note}" for note, n in notes.items()))
    path = TrainLayout(Path(out_dir)).data_report
    atomic_write_json(path, {
        "manifest": str(manifest), "kept": report.kept, "skipped": report.total_dropped(),
        "skipped_by_reason": report.dropped or {}, "summary": report.summary(), "notes": notes,
        "problems": [{"line": lines.get(p["id"]), **p} for p in report.problems],
    })
    return path
