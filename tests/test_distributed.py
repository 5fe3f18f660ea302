"""DDP under torchrun on CPU (gloo, 1 thread per process), the sharded sampler, devices and AMP.

Equivalence tolerance (docs/distributed.md): with synchronised batch norm, 2 processes with
half the global batch each reproduce 1 process with the whole batch up to float32 rounding:
per-step losses within 1e-4 relative, and at least 99.9 % of all weights and buffers within
1e-5 (+1e-4 relative) after 3 AdamW steps (lr 2e-3). The few others are elements whose true
gradient is zero or tiny, e.g. the bias of a convolution that feeds a batch norm: Adam's first
steps are about lr * sign(gradient), so float noise there becomes a step of up to +-lr. One
process with 1 vs 2 threads differs in the same elements the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from audio_lottery.config import ConfigError
from audio_lottery.data.pipeline.dataset import BucketBatchSampler, DistributedBucketBatchSampler
from audio_lottery.files import load_tensors
from audio_lottery.train.distributed import resolve_device, tensors_digest

import ddp_worker

TESTS = Path(__file__).resolve().parent
LOSS_RTOL = 1e-4
WEIGHT_ATOL, WEIGHT_RTOL, MAX_OFF_FRACTION = 1e-5, 1e-4, 1e-3

def torchrun(args: list[str], nproc: int = 2, timeout: int = 600) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=nproc ARGS`` with 1 thread per process."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def worker_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp_worker")
    res = torchrun([str(TESTS / "ddp_worker.py"), str(out)])
    assert res.returncode == 0, res.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def reference() -> dict:
    """The same steps in this one process, whole global batches, 1 thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return ddp_worker.run_steps([])
    finally:
        torch.set_num_threads(threads)


def test_two_processes_match_one_process(worker_out, reference):
    info = json.loads((worker_out / "sync.json").read_text())
    assert info["world_size"] == 2
    for a, b in zip(info["losses"], reference["losses"]):
        assert abs(a - b) <= LOSS_RTOL * abs(b), (info["losses"], reference["losses"])
    for a, b in zip(info["grad_norms"], reference["grad_norms"]):
        assert abs(a - b) <= 1e-3 * abs(b)
    state = load_tensors(worker_out / "sync.safetensors")
    off, total = _values_off(state, reference["state"])
    assert total > 10_000 and off <= MAX_OFF_FRACTION * total, f"{off} of {total} values differ"
    for name, keep in reference["mask"].items():  # pruned weights stayed exactly 0 under DDP
        assert int((state[name][~keep] != 0).sum()) == 0, name
        assert int((state[name][keep] == 0).sum()) < keep.sum() // 10, name


def test_without_synchronised_batch_norm_the_runs_differ(worker_out, reference):
    """Per-rank batch-norm statistics change the result: why train.sync_batchnorm defaults to true."""
    off, total = _values_off(load_tensors(worker_out / "nosync.safetensors"), reference["state"])
    assert off > 50 * MAX_OFF_FRACTION * total, f"only {off} of {total} values differ"


def _values_off(state: dict, ref_state: dict) -> tuple[int, int]:
    """(values of ``state`` outside the tolerance around ``ref_state``, values compared)."""
    off = total = 0
    for name, ref in ref_state.items():
        if ref.is_floating_point():
            off += int(((state[name] - ref).abs() > WEIGHT_ATOL + WEIGHT_RTOL * ref.abs()).sum())
            total += ref.numel()
    return off, total


def test_mask_checksums_are_compared_across_ranks(worker_out):
    checks = json.loads((worker_out / "sync.json").read_text())["checks"]
    assert checks["equal"] == "passed"
    assert "rank-dependent mask differs between ranks" in checks["different"]
    assert checks["max_over_ranks"] == 15.0  # the linear schedule's clock: the larger of 10 and 15, on both ranks


def test_tensors_digest_sees_every_bit():
    a = {"w": torch.zeros(4, 3), "m": torch.ones(5, dtype=torch.bool)}
    b = {"w": torch.zeros(4, 3), "m": torch.tensor([True, True, True, True, False])}
    c = {"w": torch.zeros(3, 4), "m": torch.ones(5, dtype=torch.bool)}
    assert tensors_digest(a) == tensors_digest({k: v.clone() for k, v in a.items()})
    assert len({tensors_digest(a), tensors_digest(b), tensors_digest(c)}) == 3


def test_distributed_sampler_shards_the_single_process_batches():
    durations = [1.0 + (i * 37 % 23) / 3 for i in range(60)] + [19.0]  # the 19 s utterance is alone
    single = BucketBatchSampler(durations, 30.0, 8, seed=3, sortagrad=True)
    ranks = [DistributedBucketBatchSampler(durations, 30.0, 8, rank=r, world_size=3, seed=3, sortagrad=True)
             for r in range(3)]
    assert [19.0] in [[durations[i] for i in b] for b in single.batches]
    assert len(ranks[0]) == sum(len(b) >= 3 for b in single.batches) < len(single)
    for epoch in (0, 1, 2):
        for s in (single, *ranks):
            s.set_epoch(epoch)
        whole = [b for b in single if len(b) >= 3]
        shards = [list(r) for r in ranks]
        assert all(len(s) == len(whole) for s in shards)
        for i, batch in enumerate(whole):
            parts = [s[i] for s in shards]
            assert sorted(sum(parts, [])) == sorted(batch) and all(parts)
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
        assert shards == [list(r) for r in ranks]  # deterministic per epoch
    with pytest.raises(ValueError, match="rank 3"):
        DistributedBucketBatchSampler(durations, 30.0, 8, rank=3, world_size=3)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="train.device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no GPU"):
            resolve_device("cuda")


def test_amp_setting(tmp_path):
    from audio_lottery.config import load_config

    assert load_config(None, ["train.amp=off"]).train.amp == "off"  # YAML 1.1 reads a bare off as false
    (tmp_path / "c.yaml").write_text("train: {amp: off}\n")
    assert load_config(tmp_path / "c.yaml", ["train.amp=bf16"]).train.amp == "bf16"
    assert load_config(tmp_path / "c.yaml").train.amp == "off"
    with pytest.raises(ConfigError, match="train.amp"):
        load_config(None, ["train.amp=fp8"])


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_keeps_pruned_weights_zero(amp):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res = ddp_worker.run_steps([f"train.amp={amp}"])
    finally:
        torch.set_num_threads(threads)
    finite = [x for x in res["losses"] if x is not None]
    assert finite and all(0 < x < 100 for x in finite)
    params = res["state"]
    for name, keep in res["mask"].items():
        assert int((params[name][~keep] != 0).sum()) == 0, name
    assert any(not torch.equal(params[n], res["init"][n]) for n in res["mask"].keys())


# --------------------------------------------------------------------------- end to end through the CLI

def _cli_args(corpus: Path, *extra: str) -> list[str]:
    from conftest import TINY_CONFIG, tiny_overrides

    sets = tiny_overrides(corpus, "train.threads=1", "train.log_every_steps=1", *extra)
    return ["--config", str(TINY_CONFIG)] + sum((["--set", s] for s in sets), [])


def _losses(metrics: Path) -> list[float]:
    return [json.loads(ln)["loss"] for ln in metrics.read_text().splitlines() if '"loss"' in ln]


def _start_events(metrics: Path) -> list[dict]:
    return [e for e in map(json.loads, metrics.read_text().splitlines()) if e.get("event") == "start"]


@pytest.mark.slow
def test_torchrun_train_matches_single_process(tiny_corpus, tmp_path):
    from conftest import TINY_CONFIG, tiny_overrides

    from audio_lottery.config import load_config
    from audio_lottery.train.loop import train_model

    extra = ("train.epochs=2",)
    res = torchrun(["-m", "audio_lottery.cli", "-q", "train", *_cli_args(tiny_corpus, *extra),
                    "--out", str(tmp_path / "ddp")])
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(res.stdout.strip().splitlines()) == 1  # only rank 0 prints
    ddp = json.loads(res.stdout.strip())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = load_config(TINY_CONFIG, tiny_overrides(tiny_corpus, "train.threads=1", "train.log_every_steps=1", *extra))
        single = train_model(cfg, tmp_path / "single", progress=False)
    finally:
        torch.set_num_threads(threads)
    assert ddp["world_size"] == 2 and ddp["steps"] == single["steps"] and ddp["utterances"] == single["utterances"]
    assert ddp["config_hash"] == single["config_hash"]
    a, b = _losses(tmp_path / "ddp" / "metrics.jsonl"), _losses(tmp_path / "single" / "metrics.jsonl")
    assert len(a) == len(b) == single["steps"]
    for x, y in zip(a[:3], b[:3]):  # later steps drift with Adam's sign-like updates of near-zero gradients
        assert abs(x - y) <= LOSS_RTOL * abs(y), (a, b)
    assert len(_start_events(tmp_path / "ddp" / "metrics.jsonl")) == 1  # written by rank 0 alone


@pytest.mark.slow
def test_torchrun_lottery_and_branch_share_masks_with_single_process(tiny_corpus, tmp_path):
    from conftest import TINY_CONFIG, tiny_overrides

    from audio_lottery.config import load_config
    from audio_lottery.lottery.branches import run_branch
    from audio_lottery.lottery.runner import run_dir_for, run_lottery
    from audio_lottery.pruning.mask import Mask

    extra = ("train.max_steps=3",)
    res = torchrun(["-m", "audio_lottery.cli", "-q", "lottery", *_cli_args(tiny_corpus, *extra), "--levels", "1",
                    "--root", str(tmp_path / "ddp")])
    assert res.returncode == 0, res.stderr[-3000:]
    ddp_run = Path(res.stdout.strip().splitlines()[-1])
    # --run-dir: torchrun's own parser takes "--run" for an abbreviation of its --run-path
    res = torchrun(["-m", "audio_lottery.cli", "-q", "branch", "random-prune", "--run-dir", str(ddp_run),
                    "--levels", "1"])
    assert res.returncode == 0, res.stderr[-3000:]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = load_config(TINY_CONFIG, tiny_overrides(tiny_corpus, "train.threads=1", "train.log_every_steps=1",
                                                      *extra, "lottery.levels=1"))
        single_run = run_lottery(cfg, tmp_path / "single", progress=False)
        run_branch("random-prune", single_run, levels=[1], progress=False)
    finally:
        torch.set_num_threads(threads)
    assert ddp_run.name == single_run.name == run_dir_for(cfg, tmp_path / "single").name
    for level in ("level_1", "branch_random-prune/level_1"):
        mask = Mask.load(ddp_run / level / "mask.safetensors")
        assert mask == Mask.load(single_run / level / "mask.safetensors") and mask.density() < 0.85
        (start,) = _start_events(ddp_run / level / "train" / "metrics.jsonl")
        assert start["world_size"] == 2 and start["mask_sha256"] == tensors_digest(mask.tensors())
        a = _losses(ddp_run / level / "train" / "metrics.jsonl")
        b = _losses(single_run / level / "train" / "metrics.jsonl")
        assert len(a) == len(b) == 3 and abs(a[0] - b[0]) <= LOSS_RTOL * abs(b[0])
        assert json.loads((ddp_run / level / "result.json").read_text())["remaining"] == mask.density()
    assert (ddp_run / "report.md").is_file() and (ddp_run / "run.json").is_file()
