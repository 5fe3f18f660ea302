"""The one-way layers of docs/architecture.md hold: import-linter's contracts (pyproject.toml)
pass, and no module or package imports itself through others (zero cycles)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _lint_imports(root: Path, src: Path, *extra: str) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([exe, "--config", str(root / "pyproject.toml"), *extra], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_import_linter_contracts_are_kept():
    res = _lint_imports(ROOT, SRC)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "0 broken" in res.stdout


def test_a_module_outside_the_layers_breaks_the_contracts(tmp_path):
    """The layers contracts are exhaustive: a new top-level module (or data room) must be given a layer."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(SRC / "audio_lottery", tmp_path / "src" / "audio_lottery",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "src" / "audio_lottery" / "newcomer.py").write_text("")
    (tmp_path / "src" / "audio_lottery" / "data" / "newroom.py").write_text("")
    res = _lint_imports(tmp_path, tmp_path / "src", "--no-cache")
    assert res.returncode != 0 and "2 broken" in res.stdout, res.stdout[-4000:]
    assert "audio_lottery.newcomer" in res.stdout and "audio_lottery.data.newroom" in res.stdout


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one node (the import cycles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _graphs() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    sys.path.insert(0, str(SRC))
    g = grimp.build_graph("audio_lottery", cache_dir=None)
    modules = {m: set(g.find_modules_directly_imported_by(m)) for m in g.modules}
    packages: dict[str, set[str]] = {}
    for m, deps in modules.items():
        for d in deps:
            # every pair of sibling packages/modules on the two paths (audio_lottery.a.x -> audio_lottery.b.y: a -> b)
            pa, pd = m.split("."), d.split(".")
            k = 0
            while k < min(len(pa), len(pd)) and pa[k] == pd[k]:
                k += 1
            if k < len(pa) and k < len(pd):
                packages.setdefault(".".join(pa[:k + 1]), set()).add(".".join(pd[:k + 1]))
    return modules, packages


def test_zero_import_cycles_at_module_and_package_level():
    modules, packages = _graphs()
    assert strongly_connected(modules) == []
    assert strongly_connected(packages) == []


def test_the_cycle_finder_finds_a_cycle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
