"""The one owner of on-disk names: lottery run folders, their levels and branches, training
folders and export folders. No other module spells these names (tests/test_layout.py checks).

A lottery run::

    <runs>/lottery_<hash>/            RunLayout.under(runs, hash)
      config.yaml init.safetensors rewind.safetensors tokenizer/ run.json
      report.md report.html plots/ overlap/<other>.json demo_timings.json
      level_<L>/                      .level(L): LevelLayout
        mask.safetensors mask.json result.json eval_noise.json eval_real.json
        train/                        .train: TrainLayout
          best.safetensors config.yaml tokenizer/ last.safetensors last.json result.json
          metrics.jsonl rewind.safetensors
      branch_<name>[-<tag>]/          .branch(name, tag): a RunLayout of its own (same level layout)
        branch.json level_<L>/ ...

An export folder (``audio-lottery export``): ``model.safetensors config.json tokenizer/``.
A shipped ticket pack (``audio-lottery pretrained pack``): ``ticket.json mask_bits.safetensors deltas.safetensors``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

RUN_PREFIX = "lottery_"
LEVEL_PREFIX = "level_"
BRANCH_PREFIX = "branch_"

CONFIG = "config.yaml"
TOKENIZER = "tokenizer"
INIT = "init.safetensors"
REWIND = "rewind.safetensors"
RUN_SUMMARY = "run.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
PLOTS = "plots"
OVERLAP = "overlap"
BRANCH_INFO = "branch.json"
DEMO_TIMINGS = "demo_timings.json"

MASK = "mask.safetensors"
MASK_REPORT = "mask.json"
RESULT = "result.json"
EVAL_NOISE = "eval_noise.json"
EVAL_REAL = "eval_real.json"
TRAIN = "train"

BEST = "best.safetensors"
DATA_REPORT = "data_report.json"
TENSORBOARD = "tb"
LAST = "last"  # checkpoint stem: last.safetensors + last.json
LAST_TENSORS, LAST_JSON = f"{LAST}.safetensors", f"{LAST}.json"
METRICS = "metrics.jsonl"

EXPORT_WEIGHTS = "model.safetensors"
EXPORT_CONFIG = "config.json"
EXPORT_ONNX = "model.onnx"

TICKET_JSON = "ticket.json"
TICKET_MASK = "mask_bits.safetensors"
TICKET_DELTAS = "deltas.safetensors"

# Every name above is checked by tests/test_layout.py, which refuses it in any other module of src/
# or bench/. The rule by kind of name:
# - prefixes: at the start of a path part, before a number, placeholder, glob or further part;
# - file names (they carry an extension, so they are distinctive): anywhere in a string literal;
# - folder names (bare words such as "train" or "tokenizer" are also common words): only as a path
#   component, i.e. inside a literal next to a slash ("train/", "/train/", "x/train") or as a
#   literal operand of the path operator ``/`` (``out / "train"``).
LAYOUT_PREFIXES = (RUN_PREFIX, LEVEL_PREFIX, BRANCH_PREFIX)
LAYOUT_FILES = (CONFIG, INIT, REWIND, RUN_SUMMARY, REPORT_MD, REPORT_HTML, BRANCH_INFO, DEMO_TIMINGS, MASK,
                MASK_REPORT, RESULT, EVAL_NOISE, EVAL_REAL, BEST, DATA_REPORT, LAST_TENSORS, LAST_JSON, METRICS,
                EXPORT_WEIGHTS, EXPORT_CONFIG, EXPORT_ONNX, TICKET_JSON, TICKET_MASK, TICKET_DELTAS)
LAYOUT_FOLDERS = (TOKENIZER, PLOTS, OVERLAP, TRAIN, TENSORBOARD)

_LEVEL_RE = re.compile(rf"^{LEVEL_PREFIX}(\d+)$")


def level_number(path: Path) -> int | None:
    """``L`` of a ``level_L`` folder, else None."""
    m = _LEVEL_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


def checkpoint_files(folder: Path, stem: str) -> tuple[Path, Path]:
    """A checkpoint's (tensors, JSON) files: ``<stem>.safetensors`` and ``<stem>.json``."""
    folder = Path(folder)
    return folder / f"{stem}.safetensors", folder / f"{stem}.json"


@dataclass(frozen=True)
class ModelFolder:
    """A folder holding a model: its weights, its config and ``tokenizer/`` side by side."""

    dir: Path
    WEIGHTS: ClassVar[str] = BEST
    CONFIG_FILE: ClassVar[str] = CONFIG

    @property
    def weights(self) -> Path:
        return self.dir / self.WEIGHTS

    @property
    def config(self) -> Path:
        return self.dir / self.CONFIG_FILE

    @property
    def tokenizer(self) -> Path:
        return self.dir / TOKENIZER


@dataclass(frozen=True)
class TrainLayout(ModelFolder):
    """A training folder (``audio-lottery train --out`` or ``level_L/train``): the best-dev model
    (``best``, what eval/transcribe load) plus the training state, result and metrics."""

    @property
    def best(self) -> Path:
        return self.weights

    @property
    def last(self) -> Path:
        return checkpoint_files(self.dir, LAST)[0]

    @property
    def last_json(self) -> Path:
        return checkpoint_files(self.dir, LAST)[1]

    @property
    def result(self) -> Path:
        return self.dir / RESULT

    @property
    def metrics(self) -> Path:
        return self.dir / METRICS

    @property
    def rewind(self) -> Path:
        """Weights at the late-rewinding point (``prune.rewind`` > 0)."""
        return self.dir / REWIND

    @property
    def data_report(self) -> Path:
        """The training data check: kept/skipped utterances and conversions."""
        return self.dir / DATA_REPORT

    @property
    def tensorboard(self) -> Path:
        """TensorBoard event files."""
        return self.dir / TENSORBOARD


@dataclass(frozen=True)
class LevelLayout:
    """``level_L``: the mask, its report, the training folder and the scored result."""

    dir: Path

    @property
    def number(self) -> int:
        n = level_number(self.dir)
        if n is None:
            raise ValueError(f"{self.dir}: not a {LEVEL_PREFIX}<L> folder")
        return n

    @property
    def mask(self) -> Path:
        return self.dir / MASK

    @property
    def mask_report(self) -> Path:
        return self.dir / MASK_REPORT

    @property
    def result(self) -> Path:
        return self.dir / RESULT

    @property
    def eval_noise(self) -> Path:
        return self.dir / EVAL_NOISE

    @property
    def eval_real(self) -> Path:
        """The level's scores on the real-speech test (:mod:`audio_lottery.eval.real_speech`)."""
        return self.dir / EVAL_REAL

    @property
    def train(self) -> TrainLayout:
        return TrainLayout(self.dir / TRAIN)

    @property
    def trained(self) -> Path:
        """The level's best-dev model (what scoring, export and noisy evaluation load)."""
        return self.train.best


@dataclass(frozen=True)
class RunLayout:
    """A lottery run folder, or a branch folder inside one (same level layout)."""

    dir: Path

    def __init__(self, dir: str | Path) -> None:
        object.__setattr__(self, "dir", Path(dir))

    @classmethod
    def under(cls, runs_root: str | Path, run_hash: str) -> "RunLayout":
        """``<runs_root>/lottery_<run_hash>``."""
        return cls(Path(runs_root) / f"{RUN_PREFIX}{run_hash}")

    @staticmethod
    def is_branch_dir(path: Path) -> bool:
        return Path(path).name.startswith(BRANCH_PREFIX)

    @staticmethod
    def is_run_dir(path: Path) -> bool:
        return Path(path).name.startswith(RUN_PREFIX)

    @property
    def config(self) -> Path:
        return self.dir / CONFIG

    @property
    def tokenizer(self) -> Path:
        return self.dir / TOKENIZER

    @property
    def init(self) -> Path:
        """theta_0 (or, in a transfer-finetune branch, the source's trained dense weights)."""
        return self.dir / INIT

    @property
    def rewind(self) -> Path:
        return self.dir / REWIND

    @property
    def summary(self) -> Path:
        return self.dir / RUN_SUMMARY

    @property
    def report_md(self) -> Path:
        return self.dir / REPORT_MD

    @property
    def report_html(self) -> Path:
        return self.dir / REPORT_HTML

    @property
    def plots(self) -> Path:
        return self.dir / PLOTS

    @property
    def overlap(self) -> Path:
        return self.dir / OVERLAP

    @property
    def demo_timings(self) -> Path:
        """What ``make demo`` measured (its phases, machine and threads)."""
        return self.dir / DEMO_TIMINGS

    @property
    def branch_info(self) -> Path:
        return self.dir / BRANCH_INFO

    def level(self, level: int) -> LevelLayout:
        return LevelLayout(self.dir / f"{LEVEL_PREFIX}{int(level)}")

    def levels(self) -> list[LevelLayout]:
        """Existing ``level_L`` folders, by L."""
        found = [(level_number(p), p) for p in self.dir.glob(f"{LEVEL_PREFIX}*") if p.is_dir()]
        return [LevelLayout(p) for n, p in sorted((n, p) for n, p in found if n is not None)]

    def level_results(self) -> list[Path]:
        """``level_L/result.json`` of every finished level, by L."""
        return [lv.result for lv in self.levels() if lv.result.is_file()]

    def masked_levels(self) -> list[int]:
        """Levels whose mask exists."""
        return [lv.number for lv in self.levels() if lv.mask.is_file()]

    def branch(self, name: str, tag: str = "") -> "RunLayout":
        """``branch_<name>[-<tag>]`` (``name`` may already carry its tag)."""
        return RunLayout(self.dir / (f"{BRANCH_PREFIX}{name}-{tag}" if tag else f"{BRANCH_PREFIX}{name}"))

    def branches(self) -> dict[str, "RunLayout"]:
        """Existing branch folders: name (with tag) -> layout."""
        return {p.name[len(BRANCH_PREFIX):]: RunLayout(p) for p in sorted(self.dir.glob(f"{BRANCH_PREFIX}*"))
                if p.is_dir()}

    @property
    def branch_name(self) -> str:
        """The name (with tag) of a branch folder."""
        if not self.is_branch_dir(self.dir):
            raise ValueError(f"{self.dir}: not a {BRANCH_PREFIX}<name> folder")
        return self.dir.name[len(BRANCH_PREFIX):]


@dataclass(frozen=True)
class ExportLayout(ModelFolder):
    """An export folder: ``model.safetensors``, ``config.json``, ``tokenizer/`` (and, with
    ``export --onnx``, ``model.onnx``)."""

    WEIGHTS: ClassVar[str] = EXPORT_WEIGHTS
    CONFIG_FILE: ClassVar[str] = EXPORT_CONFIG

    @property
    def onnx(self) -> Path:
        return self.dir / EXPORT_ONNX


@dataclass(frozen=True)
class PackLayout:
    """A shipped ticket pack (:mod:`audio_lottery.pretrained`): the description (written last, so its
    presence means the pack is complete), the bit-packed masks and the weight deltas on the base."""

    dir: Path

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def description(self) -> Path:
        return self.dir / TICKET_JSON

    @property
    def mask(self) -> Path:
        return self.dir / TICKET_MASK

    @property
    def deltas(self) -> Path:
        return self.dir / TICKET_DELTAS

    def files(self) -> tuple[Path, Path, Path]:
        return self.description, self.mask, self.deltas
