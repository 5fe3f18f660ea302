"""Machine-readable bench results: every bench page ``docs/bench_<name>.md`` gets a
``docs/bench_<name>.json`` beside it, which docs/results.md is generated from (bench/make_results.py).

A result holds the page's tables exactly as shown (cells as strings, bold markers removed), the
bench's verdict sentences in its own words, named figures that are not in a table, the
conditions of the run (date, machine, threads, torch, commit, corpus) and where it came from
(command, or ``"imported": true`` with the page it was parsed from; bench/import_pages.py).
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any

from audio_lottery.io import atomic_write_json, atomic_write_text, read_json
from audio_lottery.provenance import run_conditions

SCHEMA = 1
ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

_HEADING = re.compile(r"^#+\s+(.*)$")
_ROW = re.compile(r"^\|(.*)\|\s*$")
_RULE = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")
NUMBER = re.compile(r"\d{4}-\d{2}-\d{2}|\d+(?:[.,]\d+)*(?:e[-+]?\d+)?")


def plain(text: str) -> str:
    """``text`` without markdown bold/italic markers and with collapsed whitespace."""
    return " ".join(text.replace("**", "").split())


def result_path(page: Path) -> Path:
    """The result JSON beside a bench page."""
    return Path(page).with_suffix(".json")


def result_key(page: Path) -> str:
    """``docs/bench_lottery_demo.md`` -> ``lottery_demo``."""
    return Path(page).stem.removeprefix("bench_")


def _cells(line: str) -> list[str]:
    return [plain(c) for c in _ROW.match(line).group(1).split("|")]


def parse_tables(markdown: str) -> list[dict]:
    """Every pipe table of ``markdown``: ``{"section", "headers", "rows"}`` (section = the heading above it)."""
    tables: list[dict] = []
    section, lines, i = "", markdown.splitlines(), 0
    while i < len(lines):
        if m := _HEADING.match(lines[i]):
            section = plain(m.group(1))
        elif _ROW.match(lines[i].strip()) and i + 1 < len(lines) and _RULE.match(lines[i + 1].strip()):
            headers, rows, i = _cells(lines[i].strip()), [], i + 2
            while i < len(lines) and _ROW.match(lines[i].strip()):
                rows.append(_cells(lines[i].strip()))
                i += 1
            tables.append({"section": section, "headers": headers, "rows": rows})
            continue
        i += 1
    return tables


def command_line() -> str:
    """This process's command, with the script relative to the repository."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    return shlex.join(["python", str(shown), *sys.argv[1:]])


def build_result(page: Path, markdown: str, *, verdicts: list[str], figures: dict[str, Any],
                 conditions: dict[str, Any], source: dict[str, Any]) -> dict:
    """The result dict of a page (both for a bench run and for an import)."""
    missing = [v for v in verdicts if plain(v) not in plain(markdown)]
    if missing:
        raise ValueError(f"{page}: verdict(s) not on the page: {missing}")
    return {"schema": SCHEMA, "key": result_key(page), "page": Path(page).name, **source,
            "conditions": conditions, "verdicts": [plain(v).removeprefix("- ") for v in verdicts], "figures": figures,
            "tables": parse_tables(markdown)}


def write_page(page: Path, markdown: str, *, verdicts: list[str] = (), figures: dict[str, Any] | None = None,
               conditions: dict[str, Any] | None = None, command: str | None = None) -> Path:
    """Write a bench page and its result JSON beside it (both atomically); returns the JSON path.

    ``verdicts`` are the page's own conclusion sentences (each must occur on the page);
    ``figures`` named numbers the page states outside its tables; ``conditions`` extra or
    overriding conditions (e.g. ``torch_threads="1,2"``, the corpus).
    """
    page = Path(page)
    result = build_result(page, markdown, verdicts=list(verdicts), figures=dict(figures or {}),
                          conditions=run_conditions(**(conditions or {})),
                          source={"imported": False, "command": command or command_line()})
    atomic_write_text(page, markdown)
    atomic_write_json(result_path(page), result)
    return result_path(page)


def load_results(docs: Path = DOCS) -> dict[str, dict]:
    """Every ``bench_*.json`` of ``docs`` by key (``lottery_demo``, ``inference_paper``, ...)."""
    out = {}
    for path in sorted(Path(docs).glob("bench_*.json")):
        result = read_json(path)
        if not isinstance(result, dict) or result.get("schema") != SCHEMA:
            raise ValueError(f"{path}: not a bench result of schema {SCHEMA}")
        out[result["key"]] = result
    return out


def numbers_in(obj: Any) -> set[str]:
    """Every number token in a JSON value (strings tokenised, numbers as written and rounded)."""
    if isinstance(obj, dict):
        return set().union(*(numbers_in(k) | numbers_in(v) for k, v in obj.items())) if obj else set()
    if isinstance(obj, (list, tuple)):
        return set().union(*(numbers_in(v) for v in obj)) if obj else set()
    if isinstance(obj, bool) or obj is None:
        return set()
    return set(NUMBER.findall(str(obj)))


_CODE = re.compile(r"`[^`]*`")
_LINK_TARGET = re.compile(r"\]\([^)]*\)")


def untraced_numbers(markdown: str, sources: dict[str, Any]) -> list[str]:
    """Numbers of ``markdown`` (outside code spans and link targets) that the sources of their
    section do not hold. A section (from one ``## `` heading to the next) may use the sources
    whose name (``bench_lm.md``, ``demo_timings.json``) it mentions; text before the first
    section may use none."""
    missing: set[str] = set()
    for part in re.split(r"(?m)^(?=## )", markdown):
        used = [obj for name, obj in sources.items() if name in part]
        known = set().union(*(numbers_in(obj) for obj in used)) if used else set()
        text = _LINK_TARGET.sub("]", _CODE.sub("", part))
        missing |= {n for n in NUMBER.findall(text) if n not in known}
    return sorted(missing)
