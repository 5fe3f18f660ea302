"""Every registered backbone through every model sub-command and every registered branch.

Runs the CLI's ``main`` in-process (the same code path as the ``audio-lottery`` command, without
a torch import per call) on each backbone's tiny preset with two optimizer steps per training and
three dev/test utterances per evaluation: info, train, lottery, ``branch`` with every name in the
branch registries, report, eval, transcribe, export (every format) and overlap.

Sub-commands that do not depend on the backbone (corpus, noise and domain building, manifest
checks, language models) are run through the CLI in the modules named in ``OTHER_COMMANDS``;
``test_every_cli_command_is_covered`` fails when the parser gains a sub-command listed nowhere.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from audio_lottery.cli import build_parser, main
from audio_lottery.data.audio import load_audio
from audio_lottery.data.manifest import read_manifest, write_manifest
from audio_lottery.eval.normalize import score_records
from audio_lottery.files import read_json
from audio_lottery.lottery import BRANCHES
from audio_lottery.models import MODEL_NAMES
from audio_lottery.pruning.mask import Mask
from audio_lottery.recognizer import Recognizer

from conftest import ROOT

BACKBONES = tuple(sorted(MODEL_NAMES))
MODEL_COMMANDS = {"info", "train", "lottery", "report", "eval", "transcribe", "export", "overlap",
                  *(f"branch {name}" for name in BRANCHES)}  # one sub-command per registered branch
# backbone-independent sub-command -> the test module that runs it through the CLI
OTHER_COMMANDS = {
    "data synth": "test_synth.py", "data prepare": "test_corpora.py", "data check": "test_bad_inputs.py",
    "data noise": "test_train_e2e.py", "data split-domain": "test_transfer.py",
    "lm build": "test_lm_decoding.py", "lm tune": "test_lm_decoding.py", "data combine": "test_whisper_lottery.py",
    "pretrained list": "test_shipped_tickets.py", "pretrained pack": "test_shipped_tickets.py",
}
EXPORT_FORMATS = ("dense", "compact", "csr")


def leaf_commands(parser: argparse.ArgumentParser, prefix: str = "") -> set[str]:
    """Every runnable sub-command path of ``parser`` ('eval', 'data synth', ...)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {prefix.strip()}
    return {cmd for sub in subs for name, p in sub.choices.items() for cmd in leaf_commands(p, f"{prefix} {name}")}


def test_every_cli_command_is_covered():
    assert leaf_commands(build_parser()) == MODEL_COMMANDS | OTHER_COMMANDS.keys()
    for command, module in OTHER_COMMANDS.items():
        invocation = ", ".join(f'"{word}"' for word in command.split())  # e.g. "data", "synth"
        assert invocation in (ROOT / "tests" / module).read_text(), f"{module} does not run `{command}`"


@pytest.fixture(scope="module")
def data(tiny_corpus, tmp_path_factory) -> dict[str, Path]:
    """Manifests: the tiny corpus's train split, 3 dev and 3 test utterances, and a target corpus."""
    out = tmp_path_factory.mktemp("backbone_data")
    for split in ("dev", "test"):
        write_manifest(out / f"{split}.jsonl", read_manifest(tiny_corpus / f"{split}.jsonl")[:3])
    train = read_manifest(tiny_corpus / "train.jsonl")
    write_manifest(out / "target_train.jsonl", train[len(train) // 2:])
    return {"train": tiny_corpus / "train.jsonl", "dev": out / "dev.jsonl", "test": out / "test.jsonl",
            "target_train": out / "target_train.jsonl"}


def sets(*pairs: str) -> list[str]:
    return [arg for pair in pairs for arg in ("--set", pair)]


class Cli:
    """``main`` in-process; remembers which sub-commands ran and returns their stdout."""

    def __init__(self, capsys) -> None:
        self.capsys, self.called = capsys, set()

    def __call__(self, *argv: str) -> str:
        self.capsys.readouterr()
        assert main(["-q", *argv]) == 0, argv
        self.called.add(" ".join(argv[:2]) if argv[0] == "branch" else argv[0])  # branch NAME is its own command
        return self.capsys.readouterr().out


def _outputs(rec: Recognizer, feats: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out, out_lens = rec.model(feats, lens)
    return torch.cat([out[i, : int(n)] for i, n in enumerate(out_lens)])


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_model_command_and_branch_works(backbone, data, tmp_path, capsys, one_thread):
    cli = Cli(capsys)
    config = str(ROOT / "configs" / f"{backbone}_tiny.yaml")
    overrides = sets(*(f"data.{s}_manifest={data[s]}" for s in ("train", "dev", "test")), "train.max_steps=2",
                     "train.threads=1")

    info = json.loads(cli("info", "--config", config))
    assert info["params"] > info["prunable_params"] > 0
    trained = json.loads(cli("train", "--config", config, "--out", str(tmp_path / "train"), *overrides)
                         .strip().splitlines()[-1])
    assert trained["steps"] == 2 and trained["epochs"] == 1

    cli("lottery", "--config", config, "--levels", "1", "--root", str(tmp_path), *overrides)
    (run,) = tmp_path.glob("lottery_*")
    level = read_json(run / "level_1" / "result.json")
    assert level["remaining"] == pytest.approx(0.8, abs=1e-3)
    imp = Mask.load(run / "level_1" / "mask.safetensors")

    for name, branch in sorted(BRANCHES.items()):
        # the transfer branches declare the target corpus as a parameter (they need one)
        extra = ["--train-manifest", str(data["target_train"])] if "train_manifest" in branch.params else []
        out = Path(cli("branch", name, "--run", str(run), "--levels", "1", *extra).strip().splitlines()[-1])
        assert out.name.startswith(f"branch_{name}"), out
        result = read_json(out / "level_1" / "result.json")
        assert result["remaining"] == pytest.approx(level["remaining"], abs=1e-3), name
        mask = Mask.load(out / "level_1" / "mask.safetensors")
        assert abs(mask.remaining() - imp.remaining()) <= 2, name
        if name in ("random-reinit", "retrain", "transfer"):
            assert mask == imp, f"{name} must train the IMP ticket's mask"
        if name == "transfer-finetune":  # IMP of its own on the target: compare its masks with the source's
            overlap = json.loads(cli("overlap", str(run), str(out), "--no-save").strip().splitlines()[-1])
            both = sum(int((imp[k] & mask[k]).sum()) for k in imp.keys())
            either = sum(int((imp[k] | mask[k]).sum()) for k in imp.keys())
            assert overlap["1"]["iou"] == pytest.approx(both / either)

    cli("report", str(run))
    md = (run / "report.md").read_text()
    assert (run / "report.html").is_file() and "random-reinit" in md and "random-prune" in md

    # eval's scores are the error rates of transcribe's texts (one file at a time) against the references
    model = run / "level_1" / "train" / "best.safetensors"
    records = read_manifest(data["test"])
    scores = json.loads(cli("eval", "--model", str(model), "--manifest", str(data["test"]), "--hyps",
                            str(tmp_path / "hyps.jsonl")).strip().splitlines()[-1])
    lines = cli("transcribe", "--model", str(model), *[str(r["audio"]) for r in records]).splitlines()
    paths, texts = zip(*(ln.split("\t", 1) for ln in lines))
    assert list(paths) == [str(r["audio"]) for r in records]
    hyps = {row["id"]: row["hyp"] for row in map(json.loads, (tmp_path / "hyps.jsonl").read_text().splitlines())}
    assert [hyps[r["id"]] for r in records] == list(texts)
    # a cased recogniser (Whisper) is scored through Whisper's normaliser on both sides, as eval does
    expected = score_records(records, list(texts), cased=getattr(Recognizer.load(model).tokenizer, "cased", False))
    assert scores["cer"] == pytest.approx(expected["cer"]) and scores["wer"] == pytest.approx(expected["wer"])
    assert scores["char_errors"] == expected["char_errors"] and scores["utterances"] == len(records) == 3

    # every export format reproduces the level's model
    rec = Recognizer.load(model)
    feats, lens = rec.features([load_audio(records[0]["audio"], rec.cfg.data.features.sample_rate)])
    ref = _outputs(rec, feats, lens)
    for fmt in EXPORT_FORMATS:
        exported = json.loads(cli("export", "--run", str(run), "--level", "1", "--format", fmt, "--out",
                                  str(tmp_path / f"export_{fmt}")))
        assert exported["remaining"] == pytest.approx(imp.density()), fmt
        loaded = Recognizer.load(tmp_path / f"export_{fmt}")
        assert torch.allclose(_outputs(loaded, feats, lens), ref, atol=1e-4, rtol=1e-4), fmt

    assert cli.called == MODEL_COMMANDS
