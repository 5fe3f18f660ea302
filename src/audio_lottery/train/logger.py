"""Training metrics to a JSONL file and TensorBoard."""

from __future__ import annotations

import json
import time
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from audio_lottery.files import atomic_write_text
from audio_lottery.layout import TrainLayout


class MetricsLogger:
    """Appends one JSON object per line to ``metrics.jsonl`` and scalars to TensorBoard.

    On resume, lines logged after ``resume_step`` (from an epoch that was interrupted and
    will be redone) are dropped so the curve has no duplicates.
    """

    def __init__(self, out_dir: Path, resume_step: int = 0) -> None:
        layout = TrainLayout(Path(out_dir))
        self.path = layout.metrics
        if self.path.is_file():
            kept = [ln for ln in self.path.read_text().splitlines() if _keep(ln, resume_step)]
            atomic_write_text(self.path, "".join(ln + "\n" for ln in kept))
        self.fh = self.path.open("a", encoding="utf-8")
        self.tb = SummaryWriter(str(layout.tensorboard), purge_step=resume_step or None)

    def log(self, entry: dict) -> None:
        entry = {"time": round(time.time(), 3), **entry}
        self.fh.write(json.dumps(entry) + "\n")
        self.fh.flush()
        step = entry.get("step", 0)
        for key, value in entry.items():
            if key not in ("time", "step", "epoch") and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.tb.add_scalar(key, value, step)

    def close(self) -> None:
        self.fh.close()
        self.tb.close()


class NullLogger:
    """What ranks other than 0 log to under DDP: nothing."""

    def log(self, entry: dict) -> None:
        pass

    def close(self) -> None:
        pass


def _keep(line: str, resume_step: int) -> bool:
    try:
        return json.loads(line).get("step", 0) <= resume_step
    except json.JSONDecodeError:
        return False
