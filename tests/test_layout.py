"""RunLayout owns the run folder's names: no other module of src/ or bench/ spells them."""

from __future__ import annotations

import ast
from pathlib import Path

import re

from audio_lottery.layout import LAYOUT_FILES, LAYOUT_FOLDERS, LAYOUT_PREFIXES, ExportLayout, RunLayout

ROOT = Path(__file__).resolve().parents[1]
OWNER = ROOT / "src" / "audio_lottery" / "layout.py"
# a folder prefix at the start of a path part, before a number, a placeholder, a glob or a further
# path part (so a JSON key such as "branch_trainings" is no layout name), or a file name anywhere
PATTERN = re.compile("|".join(
    [rf"(^|/){re.escape(p)}(\d|\{{|\*|<|L\b|$)" for p in LAYOUT_PREFIXES]
    + [rf"(^|/){re.escape(p)}[\w.-]*/" for p in LAYOUT_PREFIXES]
    + [re.escape(f) for f in LAYOUT_FILES]
    # a folder name (often also a common word) only as a path component next to a slash
    # ("data/train.jsonl" is a file named after a split, not the folder: no "." or "-" may follow)
    + [rf"(^|/){re.escape(d)}/|/{re.escape(d)}(?=$|[^\w.-])" for d in LAYOUT_FOLDERS]))


# names that are someone else's file, not this project's layout: the pip-installed Whisper wheel's
# own config.json (read by data/whisper_assets.py, named in help and in the parity bench)
FOREIGN = {"src/audio_lottery/data/whisper_assets.py": {"config.json"},
           "src/audio_lottery/models/whisper/config.py": {"config.json"},
           "src/audio_lottery/models/whisper/ct2_export.py": {"config.json"},
           "bench/bench_whisper_parity.py": {"config.json"}}


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def layout_spellings(path: Path, operands: bool = True) -> list[str]:
    """``file:line: literal`` for every string literal (not a docstring) holding a layout name and,
    with ``operands``, every folder name used as a literal operand of ``/`` (``out / "tb"``)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _docstrings(tree)
    found = []
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    foreign = FOREIGN.get(str(where), set())
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            hits = [m.group(0) for m in PATTERN.finditer(node.value) if m.group(0) not in foreign]
            if hits:
                found.append(f"{where}:{node.lineno}: {node.value!r} spells {hits}")
        elif operands and isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):  # path / "train"
            for side in (node.left, node.right):
                if isinstance(side, ast.Constant) and side.value in LAYOUT_FOLDERS:
                    found.append(f"{where}:{node.lineno}: / {side.value!r} spells {[side.value]}")
    return found


def test_layout_names_are_spelled_only_in_layout_py():
    # bench/ writes the repository's figures to docs/plots/, so there `/ "plots"` is no run folder:
    # the operand rule covers src/ only (literals such as "RUN/plots/" are checked everywhere)
    found = [hit for p in sorted((ROOT / "src").rglob("*.py")) if p != OWNER for hit in layout_spellings(p)]
    found += [hit for p in sorted((ROOT / "bench").glob("*.py")) for hit in layout_spellings(p, operands=False)]
    assert not found, "use audio_lottery.layout instead of spelling run-folder names:\n" + "\n".join(found)


def test_the_check_catches_a_spelled_name(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text('"""A docstring may say level_L/result.json."""\nlevel_steps = "level_steps"\n'
                   'path = run / f"level_{L}" / "mask.safetensors"\n')
    hits = sorted(h.split(" spells ")[1] for h in layout_spellings(bad))
    assert hits == ["['level_']", "['mask.safetensors']"]


def test_the_check_catches_folder_names_only_as_path_components(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text('split = "train"\nhelp = "the tokenizer kind"\nlog = out / "tb"\nbest = "level_3/train/best"\n'
                   'tok = f"{run}/tokenizer of it"\nplots = "plots/wer.png"\ncfg = folder / "config.json"\n'
                   'onnx = "model.onnx"\nrep = "data_report.json"\nsplit_file = "data/synth/train.jsonl"\n')
    hits = sorted(h.split(" spells ")[1] for h in layout_spellings(bad))
    assert hits == ["['/tokenizer']", "['config.json']", "['data_report.json']", "['level_3', '/train/']",
                    "['model.onnx']", "['plots/']", "['tb']"]


def test_every_layout_name_is_checked():
    import audio_lottery.layout as layout

    names = {v for k, v in vars(layout).items() if k.isupper() and isinstance(v, str) and not k.endswith("_RE")}
    checked = set(LAYOUT_PREFIXES) | set(LAYOUT_FILES) | set(LAYOUT_FOLDERS)
    assert names - checked == {layout.LAST}  # the checkpoint stem: checked as last.safetensors / last.json


def test_run_layout_paths(tmp_path):
    run = RunLayout.under(tmp_path, "abc")
    assert run.dir == tmp_path / "lottery_abc"
    assert run.level(3).mask == run.dir / "level_3" / "mask.safetensors"
    assert run.level(3).trained == run.dir / "level_3" / "train" / "best.safetensors"
    assert run.level(3).train.last == run.dir / "level_3" / "train" / "last.safetensors"
    assert run.branch("retrain", "x1").level(2).result == run.dir / "branch_retrain-x1" / "level_2" / "result.json"
    for lv in (10, 2, 0):
        run.level(lv).dir.mkdir(parents=True)
    run.level(2).mask.touch()
    (run.dir / "level_x").mkdir()
    assert [lv.number for lv in run.levels()] == [0, 2, 10] and run.masked_levels() == [2]
    run.branch("random-prune").dir.mkdir()
    train = run.level(1).train
    assert (train.data_report, train.tensorboard) == (train.dir / "data_report.json", train.dir / "tb")
    assert (ExportLayout(tmp_path).config, ExportLayout(tmp_path).onnx) == (tmp_path / "config.json", tmp_path / "model.onnx")
    assert list(run.branches()) == ["random-prune"] and run.branches()["random-prune"].branch_name == "random-prune"
