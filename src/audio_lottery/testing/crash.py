"""Kill-and-resume checks of a lottery run (used by tests/test_crash_safety.py and bench/bench_crash.py).

A check runs the ``audio-lottery lottery`` command with ``AUDIO_LOTTERY_KILL_AT`` and the test
switch ``AUDIO_LOTTERY_TESTING=1`` set so that it dies by SIGKILL at a chosen point
(:mod:`audio_lottery.faultpoints`), reruns the same command without them, and compares the result with an uninterrupted run of the same
configuration: masks must be identical, final weights identical (``weight_tol``), WER/CER
within ``wer_tol``, levels finished before the kill untouched, no temporary file left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from audio_lottery.faultpoints import ENV, TEST_SWITCH, armed_env
from audio_lottery.files import load_tensors
from audio_lottery.layout import (
    BEST,
    INIT,
    LAST_JSON,
    LAST_TENSORS,
    MASK,
    MASK_REPORT,
    RESULT,
    RUN_SUMMARY,
    LevelLayout,
    RunLayout,
    TrainLayout,
)
from audio_lottery.pruning.mask import Mask
from audio_lottery.train.checkpoint import model_tensors

WER_TOL = 1e-6  # absolute; resumed runs are bit-identical on CPU in practice (same thread count)
SCORES = ("dev_wer", "dev_cer", "test_wer", "test_cer")


@dataclass(frozen=True)
class KillPoint:
    """``spec`` for AUDIO_LOTTERY_KILL_AT and the moment it simulates."""

    spec: str
    moment: str


def kill_points(steps_per_epoch: int, epochs: int, levels: int) -> list[KillPoint]:
    """The kill points of a ``levels``-level run with ``epochs`` epochs of ``steps_per_epoch`` steps."""
    per_level = steps_per_epoch * epochs

    def mid(level: int, epoch: int) -> int:
        return level * per_level + epoch * steps_per_epoch + max(1, steps_per_epoch // 2)

    last = levels
    points = [
        KillPoint(f"write:{INIT}:1", "writing theta_0 (temp written, not renamed)"),
        KillPoint(f"train.step:{mid(0, 0)}", "mid-epoch, level 0 epoch 1"),
        KillPoint(f"write:{LAST_TENSORS}:1", "writing the first checkpoint's tensors"),
        KillPoint(f"write:{LAST_JSON}:1", "between a checkpoint's tensors and its JSON (first checkpoint)"),
        KillPoint(f"write:{LAST_JSON}:{epochs}", "between a checkpoint's tensors and its JSON (level 0, last epoch)"),
        KillPoint(f"write:{BEST}:1", "writing the best-dev model"),
        KillPoint(f"write:{RESULT}:1", "writing level 0's training result"),
        KillPoint(f"write:{RESULT}:2", "writing level 0's scored result"),
        KillPoint(f"write:{MASK_REPORT}:2", "writing level 1's mask report (before the mask itself)"),
        KillPoint(f"write:{MASK}:2", "writing level 1's mask"),
        KillPoint("runner.pruned:1", "between pruning and rewinding (level 1 mask saved, training not started)"),
        KillPoint(f"train.step:{mid(1, 0)}", "mid-epoch, level 1 epoch 1"),
        KillPoint(f"write:{LAST_TENSORS}:{epochs + 1}", "writing level 1's first checkpoint"),
        KillPoint(f"train.step:{mid(last, epochs - 1)}", f"mid-epoch, level {last} last epoch"),
        KillPoint("report.write:1", "during the report (the markdown written, the HTML not)"),
        KillPoint(f"write:{RUN_SUMMARY}:1", f"after the report, writing {RUN_SUMMARY}"),
    ]
    return points


def lottery_command(config: Path, root: Path, levels: int, overrides: list[str]) -> list[str]:
    """The CLI command line of a lottery run."""
    cmd = [sys.executable, "-m", "audio_lottery.cli", "-q", "lottery", "--config", str(config),
           "--levels", str(levels), "--root", str(root)]
    for o in overrides:
        cmd += ["--set", o]
    return cmd


def run(cmd: list[str], kill_at: str | None = None, timeout: float = 600, env: dict | None = None
        ) -> subprocess.CompletedProcess:
    """Run ``cmd``, armed with ``kill_at`` when given."""
    env = dict(os.environ if env is None else env)
    env.pop(ENV, None)
    env.pop(TEST_SWITCH, None)
    if kill_at:
        env.update(armed_env(kill_at))
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def was_killed(proc: subprocess.CompletedProcess) -> bool:
    return proc.returncode == -signal.SIGKILL


def _levels(run_dir: Path) -> list[Path]:
    return [lv.dir for lv in RunLayout(run_dir).levels()]


def start_events(train_dir: Path) -> int:
    path = TrainLayout(Path(train_dir)).metrics
    if not path.is_file():
        return 0
    return sum(1 for ln in path.read_text().splitlines() if '"event": "start"' in ln)


def finished_levels(run_dir: Path) -> dict[str, tuple[int, int, int]]:
    """Levels with a readable result.json: (result mtime, metrics mtime, training start events)."""
    out = {}
    for level in _levels(run_dir):
        res = LevelLayout(level).result
        try:
            json.loads(res.read_text())
        except (OSError, ValueError):
            continue
        metrics = LevelLayout(level).train.metrics
        out[level.name] = (res.stat().st_mtime_ns, metrics.stat().st_mtime_ns if metrics.is_file() else 0,
                           start_events(LevelLayout(level).train.dir))
    return out


def temp_files(run_dir: Path) -> list[Path]:
    return sorted(run_dir.rglob(".*.tmp"))


@dataclass
class Outcome:
    """What one kill-and-resume check found; ``ok`` when ``problems`` is empty."""

    point: KillPoint
    killed: bool = False
    finished_before: list[str] = field(default_factory=list)
    temps_after_kill: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.killed and not self.problems


def compare_runs(run_dir: Path, ref_dir: Path, wer_tol: float = WER_TOL, weight_tol: float = 0.0) -> list[str]:
    """Differences between a resumed run and an uninterrupted reference (empty list: the same)."""
    problems = []
    for ref_level in _levels(ref_dir):
        level, ref = LevelLayout(run_dir / ref_level.name), LevelLayout(ref_level)
        if not level.result.is_file():
            problems.append(f"{level.result}: missing")
            continue
        mask = Mask.load(level.mask)
        if mask != Mask.load(ref.mask):
            problems.append(f"{level.dir.name}: mask differs from the uninterrupted run")
        report = level.mask_report
        if not report.is_file() or json.loads(report.read_text())["global"]["remaining"] != mask.remaining():
            problems.append(f"{level.dir.name}: {report.name} missing or not the report of {level.mask.name}")
        a = model_tensors(load_tensors(level.train.last))
        b = model_tensors(load_tensors(ref.train.last))
        worst = max((float((a[k].double() - b[k].double()).abs().max()) for k in b if a[k].numel()), default=0.0)
        if set(a) != set(b) or worst > weight_tol:
            problems.append(f"{level.dir.name}: final weights differ by up to {worst:.3g} (tolerance {weight_tol})")
        ra, rb = json.loads(level.result.read_text()), json.loads(ref.result.read_text())
        for key in SCORES:
            if abs(ra[key] - rb[key]) > wer_tol:
                problems.append(f"{level.dir.name}: {key} {ra[key]} vs {rb[key]} uninterrupted")
        ta = json.loads(level.train.result.read_text())
        tb = json.loads(ref.train.result.read_text())
        if (ta["steps"], ta["epochs"]) != (tb["steps"], tb["epochs"]):
            problems.append(f"{level.dir.name}: {ta['steps']} steps / {ta['epochs']} epochs vs "
                            f"{tb['steps']} / {tb['epochs']} uninterrupted")
    run = RunLayout(run_dir)
    for path in (run.report_md, run.report_html, run.summary):
        if not path.is_file():
            problems.append(f"{path.name} missing")
    left = temp_files(run_dir)
    if left:
        problems.append(f"temporary files left: {[str(p.relative_to(run_dir)) for p in left]}")
    corrupt = sorted(run_dir.rglob("*.corrupt"))
    if corrupt:
        problems.append(f"files were found unreadable: {[str(p.relative_to(run_dir)) for p in corrupt]}")
    return problems


def kill_and_resume(cmd: list[str], root: Path, ref_dir: Path, point: KillPoint, timeout: float = 600,
                    env: dict | None = None, wer_tol: float = WER_TOL, weight_tol: float = 0.0) -> Outcome:
    """Kill ``cmd`` at ``point``, rerun it, compare with ``ref_dir`` (the same run, uninterrupted)."""
    out = Outcome(point)
    first = run(cmd, point.spec, timeout, env)
    out.killed = was_killed(first)
    if not out.killed:
        out.problems.append(f"the kill point was not reached (exit {first.returncode}): {first.stderr[-2000:]}")
        return out
    run_dir = root / ref_dir.name
    before = finished_levels(run_dir) if run_dir.is_dir() else {}
    out.finished_before = sorted(before)
    out.temps_after_kill = len(temp_files(run_dir)) if run_dir.is_dir() else 0
    second = run(cmd, None, timeout, env)
    if second.returncode != 0:
        out.problems.append(f"the rerun failed (exit {second.returncode}): {second.stderr[-2000:]}")
        return out
    if second.stdout.strip().splitlines()[-1:] != [str(run_dir)]:
        out.problems.append(f"the rerun printed {second.stdout.strip()[-200:]!r}, expected {run_dir}")
    after = finished_levels(run_dir)
    for name, stamp in before.items():
        if after.get(name) != stamp:
            out.problems.append(f"{name} was finished before the kill but was redone ({stamp} -> {after.get(name)})")
    out.problems += compare_runs(run_dir, ref_dir, wer_tol, weight_tol)
    return out
