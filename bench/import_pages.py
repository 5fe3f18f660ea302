"""One-time import of generated bench pages into result JSON (``"imported": true``).

    python bench/import_pages.py [--docs docs] [--only features,lm] [--force]

The runs behind today's pages are gone, so their figures are parsed back from the pages: every
table (bench/results_io.parse_tables, the same parser a bench run uses), the verdict sentences
and the named figures below (regular expressions on the page text), and the conditions the page
states (bench/results_io.py: the same extraction a bench run uses), plus the git commit that
last changed the page. A result a bench wrote itself
(``"imported": false``) is never overwritten; each bench replaces its import when it next runs.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from results_io import DOCS, ROOT, build_result, extract, result_key, result_path, stated_conditions

from audio_lottery.files import atomic_write_json, read_json_or_none

def _git(*args: str) -> str:
    out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def page_conditions(page: Path, text: str, tables: list[dict]) -> dict:
    """What the page says about its run, plus the commit that last wrote it."""
    cond = stated_conditions(text, tables)
    rel = str(page.resolve().relative_to(ROOT)) if page.resolve().is_relative_to(ROOT) else str(page)
    cond["commit"] = _git("log", "-1", "--format=%H", "--", rel) or None
    cond["commit_note"] = "the commit that last changed the page (the run's own commit is unknown)"
    if cond.get("date") is None:
        cond["date"] = _git("log", "-1", "--format=%ad", "--date=short", "--", rel) or None
        cond["date_note"] = "date of that commit (the page states none)"
    return cond


def import_page(page: Path) -> dict:
    """The result dict parsed from one bench page."""
    text = page.read_text()
    verdicts, figures = extract(page, text)
    provisional = build_result(page, text, verdicts=verdicts, figures=figures, conditions={}, source={})
    conditions = page_conditions(page, text, provisional["tables"])
    command = conditions.pop("command", None)
    return build_result(page, text, verdicts=verdicts, figures=figures, conditions=conditions,
                        source={"imported": True, "imported_from": page.name, "command": command})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=Path, default=DOCS)
    p.add_argument("--only", default="", help="comma-separated keys (default: every bench page)")
    p.add_argument("--force", action="store_true", help="also replace results a bench wrote itself")
    args = p.parse_args()
    only = {k for k in args.only.split(",") if k}
    for page in sorted(args.docs.glob("bench_*.md")):
        if only and result_key(page) not in only:
            continue
        old = read_json_or_none(result_path(page))
        if old is not None and not old.get("imported", False) and not args.force:
            print(f"kept {result_path(page).name}: written by the bench itself")
            continue
        result = import_page(page)
        atomic_write_json(result_path(page), result)
        print(f"imported {page.name}: {len(result['tables'])} tables, {len(result['verdicts'])} verdicts, "
              f"{len(result['figures'])} figures")


if __name__ == "__main__":
    main()
