"""RunLayout owns the run folder's names: no other module of src/ or bench/ spells them."""

from __future__ import annotations

import ast
from pathlib import Path

import re

from audio_lottery.layout import LAYOUT_FILES, LAYOUT_PREFIXES, RunLayout

ROOT = Path(__file__).resolve().parents[1]
OWNER = ROOT / "src" / "audio_lottery" / "layout.py"
# a folder prefix at the start of a path part, before a number, a placeholder, a glob or a further
# path part (so a JSON key such as "branch_trainings" is no layout name), or a file name anywhere
PATTERN = re.compile("|".join(
    [rf"(^|/){re.escape(p)}(\d|\{{|\*|<|L\b|$)" for p in LAYOUT_PREFIXES]
    + [rf"(^|/){re.escape(p)}[\w.-]*/" for p in LAYOUT_PREFIXES]
    + [re.escape(f) for f in LAYOUT_FILES]))


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def layout_spellings(path: Path) -> list[str]:
    """``file:line: literal`` for every string literal (not a docstring) holding a layout name."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            hits = [m.group(0) for m in PATTERN.finditer(node.value)]
            if hits:
                where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                found.append(f"{where}:{node.lineno}: {node.value!r} spells {hits}")
    return found


def test_layout_names_are_spelled_only_in_layout_py():
    files = [p for p in sorted((ROOT / "src").rglob("*.py")) if p != OWNER] + sorted((ROOT / "bench").glob("*.py"))
    found = [hit for p in files for hit in layout_spellings(p)]
    assert not found, "use audio_lottery.layout instead of spelling run-folder names:\n" + "\n".join(found)


def test_the_check_catches_a_spelled_name(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text('"""A docstring may say level_L/result.json."""\nlevel_steps = "level_steps"\n'
                   'path = run / f"level_{L}" / "mask.safetensors"\n')
    hits = sorted(h.split(" spells ")[1] for h in layout_spellings(bad))
    assert hits == ["['level_']", "['mask.safetensors']"]


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
    assert list(run.branches()) == ["random-prune"] and run.branches()["random-prune"].branch_name == "random-prune"
