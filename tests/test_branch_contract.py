"""The one branch contract: parameters declared in the signature, bound to config keys or the branch's own,
shown by ``branch NAME --help``; both spellings name the same branch folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest

from audio_lottery.cli import build_parser, main
from audio_lottery.config import ConfigError, load_config, save_config
from audio_lottery.files import read_json
from audio_lottery.lottery import BRANCHES
from audio_lottery.lottery.branch_registry import Param, declared_params
from audio_lottery.lottery.branches import branch_dir, overrides_hash, run_branch

from conftest import TINY_CONFIG


@pytest.fixture
def bare_run(tmp_path: Path) -> Path:
    """A run folder with only its config: a branch gets as far as its first level's mask."""
    run = tmp_path / "lottery_bare"
    run.mkdir()
    save_config(load_config(TINY_CONFIG, ["train.device=cpu"]), run / "config.yaml")
    return run


def test_every_branch_declares_its_parameters():
    assert set(BRANCHES) >= {"random-reinit", "random-prune", "retrain", "structured", "transfer",
                             "transfer-finetune"}  # the built-ins (others may join)
    structured = BRANCHES["structured"].params
    assert {n: p.key for n, p in structured.items()} == {
        "structure": "prune.structure", "block_shape": "prune.block_shape", "nm": "prune.nm"}
    assert structured["structure"].choices == ("block", "nm", "channel")
    assert structured["block_shape"].type is list and structured["block_shape"].flag == "--block-shape"
    draw = BRANCHES["random-prune"].params["draw"]
    assert (draw.key, draw.type, draw.default) == ("", int, 0)
    for name in ("transfer", "transfer-finetune"):
        assert BRANCHES[name].params["train_manifest"].key == "data.train_manifest"
    assert BRANCHES["retrain"].params == {} and BRANCHES["transfer-finetune"].whole_run
    assert not BRANCHES["transfer"].whole_run


def test_bind_splits_config_overrides_from_own_values():
    overrides, own = BRANCHES["structured"].bind({"structure": "nm", "nm": "[1, 4]", "block_shape": None})
    assert overrides == ["prune.structure=nm", "prune.nm=[1, 4]"] and own == {}
    overrides, own = BRANCHES["random-prune"].bind({"draw": "3"})
    assert overrides == [] and own == {"draw": 3}
    assert BRANCHES["random-prune"].own_changes(own) == {"draw": 3}
    assert BRANCHES["random-prune"].own_changes(BRANCHES["random-prune"].bind({})[1]) == {}
    with pytest.raises(ValueError, match="--draw expects int"):
        BRANCHES["random-prune"].bind({"draw": "two"})
    with pytest.raises(ValueError, match="no parameter structure"):
        BRANCHES["random-prune"].bind({"structure": "block"})
    cfg = load_config(TINY_CONFIG, ["prune.structure=channel"])
    assert BRANCHES["structured"].arguments(cfg, {}) == {"structure": "channel", "block_shape": [1, 4], "nm": [2, 4]}


def test_declarations_are_checked_at_registration():
    def no_hint(cfg, run_dir, level, *, x=1):
        return None

    def no_default(cfg, run_dir, level, *, x: Annotated[int, Param("x")]):
        return None

    def unknown_key(cfg, run_dir, level, *, x: Annotated[str, Param(key="prune.nope")]):
        return None

    def wrong_type(cfg, run_dir, level, *, x: Annotated[int, Param(key="prune.structure")]):
        return None

    def reserved(cfg, run_dir, level, *, tag: Annotated[str, Param("t")] = ""):
        return None

    for fn, error, match in [(no_hint, TypeError, "Annotated"), (no_default, TypeError, "a default"),
                             (unknown_key, ConfigError, "prune.nope"), (wrong_type, TypeError, "of type str"),
                             (reserved, TypeError, "taken")]:
        with pytest.raises(error, match=match):
            declared_params(fn, fn.__name__)


def test_parameters_and_old_set_spelling_share_the_branch_folder(bare_run: Path):
    new = BRANCHES["structured"].bind({"structure": "nm", "nm": "[1, 4]"})[0]
    old = ["prune.nm=[1, 4]", "prune.structure=nm"]
    assert branch_dir(bare_run, "structured", "", new) == branch_dir(bare_run, "structured", "", old)
    # the old spelling still works, with a warning; the same key both ways is refused
    with pytest.warns(FutureWarning, match="use --structure"), pytest.raises(FileNotFoundError, match="no mask"):
        run_branch("structured", bare_run, levels=[1], overrides=["prune.structure=nm"], progress=False)
    with pytest.raises(ValueError, match="given twice"):
        run_branch("structured", bare_run, levels=[1], overrides=["prune.structure=nm"],
                   params={"structure": "block"}, progress=False)
    with pytest.raises(FileNotFoundError, match="no mask"):
        run_branch("structured", bare_run, levels=[1], params={"structure": "nm"}, progress=False)
    folder = bare_run / f"branch_structured-{overrides_hash(['prune.structure=nm'])}"
    assert read_json(folder / "branch.json")["overrides"] == ["prune.structure=nm"]


def test_own_parameters_name_the_folder_only_off_their_default(bare_run: Path):
    for draw in (0, 1):
        with pytest.raises(FileNotFoundError):  # the bare run has no level-0 mask
            run_branch("random-prune", bare_run, levels=[1], params={"draw": draw}, progress=False)
    assert "params" not in read_json(bare_run / "branch_random-prune" / "branch.json")
    other = bare_run / f"branch_random-prune-{overrides_hash(['random-prune.draw=1'])}"
    assert read_json(other / "branch.json")["params"] == {"draw": 1}


def test_branch_help_lists_the_declared_parameters(capsys):
    with pytest.raises(SystemExit) as done:
        main(["branch", "structured", "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    assert all(flag in out for flag in ("--structure {block,nm,channel}", "--block-shape", "--nm", "prune.block_shape"))
    args = build_parser().parse_args(["branch", "random-prune", "--run", "r", "--draw", "2"])
    assert (args.name, args.draw, args.branch_params) == ("random-prune", 2, ("draw",))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["branch", "retrain", "--run", "r", "--draw", "2"])  # not retrain's parameter
