"""Run by tests/test_distributed.py under torchrun (not a test module itself).

A few masked AdamW steps of the tiny DeepSpeech2 on fixed synthetic global batches. Each
rank trains on its shard ``batch[rank::world]`` (padding trimmed to the shard, so shards
differ in size and padding); ``run_steps`` in one process with the whole batches is the
reference. Rank 0 writes the results: ``<out>/<name>.safetensors`` + ``<out>/<name>.json``.

    torchrun --nproc_per_node=2 tests/ddp_worker.py OUT
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from audio_lottery.config import load_config
from audio_lottery.data.pipeline.dataset import Batch
from audio_lottery.data.pipeline.tokenizers import CharTokenizer
from audio_lottery.files import atomic_write_json, save_tensors
from audio_lottery.pruning.mask import Mask, MaskEnforcer
from audio_lottery.pruning.strategies import get_strategy
from audio_lottery.recognizer import Recognizer
from audio_lottery.train import distributed as dist
from audio_lottery.train.loop import make_optimizer
from audio_lottery.train.step import TrainStep

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ds2_tiny.yaml"
STEPS = 3
GLOBAL_BATCH = 5  # 2 ranks get 3 and 2 utterances: the loss normalisation must weigh them


def synthetic_batch(dim: int, step: int) -> Batch:
    """A fixed global batch: utterances of different lengths, zero-padded features, char targets."""
    g = torch.Generator().manual_seed(100 + step)
    lens = torch.tensor([210, 190, 170, 140, 120])[:GLOBAL_BATCH]
    t = int(lens.max())
    feats = torch.randn(GLOBAL_BATCH, t, dim, generator=g) * (torch.arange(t)[None, :, None] < lens[:, None, None])
    target_lens = torch.tensor([12, 10, 9, 8, 6])[:GLOBAL_BATCH]
    targets = torch.randint(1, 28, (GLOBAL_BATCH, 12), generator=g) * (torch.arange(12)[None] < target_lens[:, None])
    ids = [f"utt{i}" for i in range(GLOBAL_BATCH)]
    return Batch(feats, lens, targets, target_lens, ids, [""] * GLOBAL_BATCH)


def shard(batch: Batch, rank: int, world: int) -> Batch:
    """``batch[rank::world]`` with padding trimmed to the shard's longest utterance."""
    idx = list(range(len(batch)))[rank::world]
    t, u = int(batch.feat_lens[idx].max()), int(batch.target_lens[idx].max())
    return Batch(batch.feats[idx, :t], batch.feat_lens[idx], batch.targets[idx, :u], batch.target_lens[idx],
                 [batch.ids[i] for i in idx], [batch.texts[i] for i in idx])


def run_steps(overrides: list[str]) -> dict:
    """Train STEPS masked steps (whole batches in one process, shards under DDP)."""
    cfg = load_config(CONFIG, ["train.threads=1", *overrides])
    torch.manual_seed(0)
    rec = Recognizer.build(cfg, CharTokenizer())
    dense = Mask.from_patterns(rec.model)
    mask = get_strategy("random")({n: torch.zeros(t.shape) for n, t in dense.items()}, dense, 0.5,
                                  torch.Generator().manual_seed(0))
    enforcer = MaskEnforcer(rec.model, mask)
    enforcer.apply()
    init = {k: v.clone() for k, v in rec.model.state_dict().items()}
    step = TrainStep(cfg, rec.model, make_optimizer(rec.model, cfg), enforcer, torch.device("cpu"))
    losses, norms = [], []
    for i in range(STEPS):
        out = step(shard(synthetic_batch(rec.featurizer.dim, i), dist.rank(), dist.world_size()))
        losses.append(out.loss)
        norms.append(out.grad_norm)
    return {"losses": losses, "grad_norms": norms, "state": rec.model.state_dict(), "init": init, "mask": mask}


def checksum_agreement() -> dict:
    """check_same_on_all_ranks: passes on equal checksums, raises on every rank otherwise."""
    same = dist.tensors_digest({"m": torch.ones(3, dtype=torch.bool)})
    dist.check_same_on_all_ranks(same, "equal mask")
    other = dist.tensors_digest({"m": torch.tensor([True, dist.rank() == 0, True])})
    try:
        dist.check_same_on_all_ranks(other, "rank-dependent mask")
    except RuntimeError as exc:
        return {"equal": "passed", "different": str(exc), "max_over_ranks": _max_of_rank_clocks()}
    return {"equal": "passed", "different": "", "max_over_ranks": _max_of_rank_clocks()}


def _max_of_rank_clocks() -> float:
    """max_over_ranks of a per-rank value (rank r: 10 + 5 r), as every rank received it: it must agree."""
    got = dist.max_over_ranks(10.0 + 5.0 * dist.rank())
    dist.check_same_on_all_ranks(dist.tensors_digest({"v": torch.tensor([got])}), "max_over_ranks")
    return got


def main(out: Path) -> None:
    dist.setup("cpu")
    torch.set_num_threads(1)
    results = {"sync": run_steps([]), "nosync": run_steps(["train.sync_batchnorm=false"])}
    checks = checksum_agreement()
    mine = results["sync"]["mask"]
    dist.check_same_on_all_ranks(dist.tensors_digest(mine.tensors()), "the worker's mask")
    if dist.is_main():
        for name, res in results.items():
            save_tensors(out / f"{name}.safetensors", res["state"])
            atomic_write_json(out / f"{name}.json", {"losses": res["losses"], "grad_norms": res["grad_norms"],
                                                     "world_size": dist.world_size(), "checks": checks})
    dist.barrier()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
