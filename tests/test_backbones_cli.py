"""Every backbone through every sub-command: lottery, branches, report, eval and transcribe.

Runs the CLI's ``main`` in-process (the same code path as the ``audio-lottery`` command, without
a torch import per call) on each backbone's tiny preset with two optimizer steps per training.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audio_lottery.cli import main
from audio_lottery.data.manifest import read_manifest
from audio_lottery.files import read_json
from audio_lottery.lottery.branches import BRANCHES

from conftest import ROOT, tiny_overrides

BACKBONES = ("ds2", "conformer", "rnnt", "transformer")


def cli(*argv: str) -> None:
    assert main(["-q", *argv]) == 0, argv


def sets(*pairs: str) -> list[str]:
    return [arg for pair in pairs for arg in ("--set", pair)]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_every_subcommand_and_branch_works(backbone, tiny_corpus, tmp_path, capsys):
    overrides = tiny_overrides(tiny_corpus, "train.max_steps=2", "train.threads=1")
    cli("lottery", "--config", str(ROOT / "configs" / f"{backbone}_tiny.yaml"), "--levels", "1",
        "--root", str(tmp_path), *sets(*overrides))
    (run,) = tmp_path.glob("lottery_*")
    level = read_json(run / "level_1" / "result.json")
    assert level["remaining"] == pytest.approx(0.8, abs=1e-3)

    for name in sorted(BRANCHES):
        if name in ("retrain", "random-reinit", "random-prune"):
            cli("branch", name, "--run", str(run), "--levels", "1")
            result = read_json(run / f"branch_{name}" / "level_1" / "result.json")
            assert result["branch"] == name
            assert result["remaining"] == pytest.approx(level["remaining"], abs=1e-3)

    cli("report", str(run))
    assert (run / "report.md").is_file() and (run / "report.html").is_file()

    capsys.readouterr()
    model = run / "level_1" / "train" / "best.safetensors"
    cli("eval", "--model", str(model), "--manifest", str(tiny_corpus / "test.jsonl"), "--limit", "3")
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= scores["cer"] and 0.0 <= scores["wer"]

    wav = read_manifest(tiny_corpus / "test.jsonl")[0]["audio"]
    cli("transcribe", "--model", str(model), str(wav))
    out = capsys.readouterr().out
    assert Path(wav).name in out or str(wav) in out
