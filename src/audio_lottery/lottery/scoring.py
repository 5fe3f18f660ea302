"""Scoring a trained level: sparsity, effective compute, dev and test WER/CER."""

from __future__ import annotations

from pathlib import Path

from audio_lottery.config import Config
from audio_lottery.eval.evaluate import evaluate
from audio_lottery.files import read_json
from audio_lottery.layout import LevelLayout
from audio_lottery.pruning.macs import macs_per_second
from audio_lottery.pruning.mask import Mask
from audio_lottery.recognizer import Recognizer
from audio_lottery.train.distributed import resolve_device
from audio_lottery.train.loop import load_split


def score_level(cfg: Config, level_dir: Path, mask: Mask, level: int, branch: str, progress: bool = False) -> dict:
    """Result of ``level_dir/train``: the best-dev checkpoint scored on dev and test.

    Model selection happened on dev during training; test is only reported.
    """
    where = LevelLayout(Path(level_dir)).train
    train = read_json(where.result)
    rec = Recognizer.load(where.best)
    params = dict(rec.model.named_parameters())
    revived = sum(int((params[name].detach()[~keep] != 0).sum()) for name, keep in mask.items())
    if revived:
        raise RuntimeError(f"{level_dir}: {revived} pruned weights are nonzero after training")
    result = {
        "level": level, "branch": branch,
        "remaining": mask.density(),
        "prunable_params": mask.numel(), "total_params": sum(p.numel() for p in params.values()),
        "nonzero_params": sum(int((p.detach() != 0).sum()) for p in params.values()),
        "macs_per_second": macs_per_second(rec.model, mask, rec.featurizer.dim,
                                           frames_per_second=round(1000.0 / cfg.data.features.hop_ms))["effective_macs"],
        "train_seconds": train["train_seconds"], "epochs": train["epochs"], "best_epoch": train["best_epoch"],
    }
    rec.model.to(resolve_device(cfg.train.device))
    for split in ("dev", "test"):
        scores = evaluate(rec, load_split(cfg, split), progress=progress, desc=split)
        result[f"{split}_wer"], result[f"{split}_cer"] = scores["wer"], scores["cer"]
    return result
