"""Domains from manifest fields, ticket transfer between corpora, and mask overlap (IoU)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from audio_lottery.cli import main
from audio_lottery.config import load_config
from audio_lottery.data.corpora.domains import filter_records, write_domain
from audio_lottery.data.manifest import ManifestError, read_manifest
from audio_lottery.files import load_tensors, read_json
from audio_lottery.lottery import BRANCHES
from audio_lottery.lottery.branches import run_branch
from audio_lottery.lottery.runner import run_lottery
from audio_lottery.lottery.transfer import transfer
from audio_lottery.pruning.mask import Mask
from audio_lottery.pruning.overlap import chance_iou, compare_runs, mask_iou

from conftest import CLI, ONE, TINY_CONFIG, assert_starts_from, recorded_starts, run_cli

pytestmark = pytest.mark.usefixtures("one_thread")

SPLITS = ("train", "dev", "test")


# ----------------------------------------------------------------- mask overlap


def test_iou_on_constructed_masks():
    a = Mask({"w": torch.tensor([1, 1, 1, 1, 0, 0, 0, 0], dtype=torch.bool),
              "v": torch.tensor([[1, 0], [0, 0]], dtype=torch.bool)})
    b = Mask({"w": torch.tensor([1, 1, 0, 0, 1, 1, 0, 0], dtype=torch.bool),
              "v": torch.tensor([[1, 0], [0, 0]], dtype=torch.bool)})
    r = mask_iou(a, b)
    assert r["tensors"]["w"]["iou"] == pytest.approx(2 / 6)
    assert r["tensors"]["v"]["iou"] == 1.0
    assert r["global"]["iou"] == pytest.approx(3 / 7)
    assert (r["global"]["intersection"], r["global"]["union"], r["global"]["numel"]) == (3, 7, 12)
    assert r["tensors"]["w"]["chance_iou"] == pytest.approx(0.25 / 0.75)
    assert mask_iou(a, a)["global"]["iou"] == 1.0
    empty = Mask({"w": torch.zeros(4, dtype=torch.bool)})
    assert mask_iou(empty, empty)["global"]["iou"] == 1.0  # nothing kept on either side: identical
    assert chance_iou(0.5, 0.5) == pytest.approx(1 / 3) and chance_iou(1.0, 0.2) == pytest.approx(0.2)
    with pytest.raises(ValueError, match="different tensors"):
        mask_iou(a, Mask({"w": a["w"]}))
    with pytest.raises(ValueError, match="shapes differ"):
        mask_iou(Mask({"w": torch.ones(3, dtype=torch.bool)}), Mask({"w": torch.ones(4, dtype=torch.bool)}))


def test_random_masks_overlap_at_chance():
    gen = torch.Generator().manual_seed(0)
    a = Mask({"w": torch.rand(200_000, generator=gen) < 0.3})
    b = Mask({"w": torch.rand(200_000, generator=gen) < 0.3})
    g = mask_iou(a, b)["global"]
    assert g["iou"] == pytest.approx(g["chance_iou"], abs=0.005)


# ----------------------------------------------------------------- domains


def test_filter_records_and_errors(tmp_path, tiny_corpus):
    recs = [{"engine": "espeak"}, {"engine": "flite"}, {"engine": "festival"}, {}]
    assert filter_records(recs, "engine", ["espeak"]) == [recs[0]]
    assert filter_records(recs, "engine", ["espeak"], exclude=True) == recs[1:]
    with pytest.raises(ManifestError, match="train.jsonl.*'nope'"):
        write_domain([tiny_corpus / "train.jsonl"], "nope", ["x"], tmp_path)
    with pytest.raises(ManifestError, match="values present"):
        write_domain([tiny_corpus / "train.jsonl"], "engine", ["klatt"], tmp_path)


@pytest.fixture(scope="module")
def domains(tiny_corpus, tmp_path_factory) -> dict[str, Path]:
    """espeak (source) and flite + festival (target) corpora, made through the CLI."""
    out = tmp_path_factory.mktemp("domains")
    manifests = sum((["--manifest", str(tiny_corpus / f"{s}.jsonl")] for s in SPLITS), [])
    for name, extra in (("espeak", []), ("other", ["--exclude"])):
        assert main(["-q", "data", "split-domain", *manifests, "--field", "engine", "--values", "espeak",
                     "--out", str(out / name), *extra]) == 0
    return {"source": out / "espeak", "target": out / "other"}


def _overrides(folder: Path) -> list[str]:
    return [f"data.{s}_manifest={folder / f'{s}.jsonl'}" for s in SPLITS]


def test_domains_partition_the_corpus(domains, tiny_corpus):
    for split in SPLITS:
        src, tgt = read_manifest(domains["source"] / f"{split}.jsonl"), read_manifest(domains["target"] / f"{split}.jsonl")
        assert {r["engine"] for r in src} == {"espeak"} and {r["engine"] for r in tgt} == {"flite", "festival"}
        assert len(src) + len(tgt) == len(read_manifest(tiny_corpus / f"{split}.jsonl"))
        assert all(Path(r["audio"]).is_file() for r in src[:3])


# ----------------------------------------------------------------- transfer


@pytest.fixture(scope="module")
def source_run(domains, tmp_path_factory) -> Path:
    cfg = load_config(TINY_CONFIG, _overrides(domains["source"]) + [ONE])
    cfg.lottery.levels = 1
    return run_lottery(cfg, tmp_path_factory.mktemp("runs"), progress=False)


def test_transfer_trains_the_source_ticket_from_theta0_on_the_target(source_run, domains):
    cfg = load_config(source_run / "config.yaml", _overrides(domains["target"]))
    mask, init = transfer(cfg, source_run, 1, **BRANCHES["transfer"].arguments(cfg, {}))
    theta0 = load_tensors(source_run / "init.safetensors")
    assert mask == Mask.load(source_run / "level_1" / "mask.safetensors")
    assert all(torch.equal(init[k], theta0[k]) for k in theta0)
    with recorded_starts() as starts:
        out = run_branch("transfer", source_run, levels=[1], overrides=_overrides(domains["target"]) + [ONE],
                         progress=False)
    level = out / "level_1"
    trained_cfg = load_config(level / "train" / "config.yaml")
    assert trained_cfg.data.train_manifest == str(domains["target"] / "train.jsonl")
    assert Mask.load(level / "mask.safetensors") == mask
    assert_starts_from(starts[(level / "train").resolve()], theta0, mask)  # theta_0 * mask, element by element
    weights = load_tensors(level / "train" / "best.safetensors")
    assert all((weights[k][~m] == 0).all() for k, m in mask.items())
    assert read_json(level / "result.json")["remaining"] == pytest.approx(0.8, abs=1e-3)
    with pytest.raises(ValueError, match="target corpus"):
        run_branch("transfer", source_run, levels=[1], overrides=["train.epochs=1"], progress=False)


def test_transfer_finetune_runs_imp_from_source_trained_weights(source_run, domains, env, capsys):
    # the target corpus through the branch's declared parameters (--set data.train_manifest=... works too)
    sets = [*(a for s in SPLITS for a in (f"--{s}-manifest", str(domains["target"] / f"{s}.jsonl"))), "--set", ONE]
    with recorded_starts() as starts:
        code, out, err = run_cli(capsys, "branch", "transfer-finetune", "--run", str(source_run), "--levels", "1",
                                 *sets)
    assert code == 0, err
    out = Path(out.strip().splitlines()[-1])
    assert out.name.startswith("branch_transfer-finetune-")
    pretrained = load_tensors(source_run / "level_0" / "train" / "best.safetensors")
    init = load_tensors(out / "init.safetensors")
    assert all(torch.equal(init[k], pretrained[k]) for k in pretrained)
    assert_starts_from(starts[(out / "level_0" / "train").resolve()], pretrained, {})
    own = Mask.load(out / "level_1" / "mask.safetensors")
    assert own.density() == pytest.approx(0.8, abs=1e-3)
    assert_starts_from(starts[(out / "level_1" / "train").resolve()], pretrained, own)
    # overlap: the real CLI entry point once, the stored result, and the report section
    res = subprocess.run(CLI + ["overlap", str(source_run), str(out)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    direct = compare_runs(source_run, out)[1]["global"]
    assert summary["1"]["iou"] == pytest.approx(direct["iou"]) and direct["chance_iou"] < direct["iou"] <= 1.0
    assert list((source_run / "overlap").glob("*.json"))
    assert run_cli(capsys, "report", str(source_run))[0] == 0
    md = (source_run / "report.md").read_text()
    assert "Mask overlap with" in md and "per tensor (IoU)" in md
    code, _, err = run_cli(capsys, "overlap", str(source_run), str(out), "--levels", "7")
    assert code == 2 and "lack a mask" in err
