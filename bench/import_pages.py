"""One-time import of generated bench pages into result JSON (``"imported": true``).

    python bench/import_pages.py [--docs docs] [--only features,lm] [--force]

The runs behind today's pages are gone, so their figures are parsed back from the pages: every
table (bench/results_io.parse_tables, the same parser a bench run uses), the verdict sentences
and the named figures below (regular expressions on the page text), and the conditions the page
states, plus the git commit that last changed the page. A result a bench wrote itself
(``"imported": false``) is never overwritten; each bench replaces its import when it next runs.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

from results_io import DOCS, ROOT, build_result, result_key, result_path

from audio_lottery.io import atomic_write_json, read_json_or_none

# Per page: "verdicts" = regexes of whole lines (or bullets) that are the bench's conclusions;
# "figures" = name -> regex whose first group is a number stated outside the tables.
_TICKET = r"^- \*\*(Dense|Extreme ticket|Best ticket|Branch [\w-]+):?\*\*.*$"
_COST = {
    "dense_training_min": r"one dense training \(level 0[^)]*\): (\d+(?:\.\d+)?) min",
    "imp_levels": r"IMP search, (\d+) levels",
    "imp_search_min": r"IMP search, \d+ levels: (\d+(?:\.\d+)?) min",
    "imp_search_x_dense": r"IMP search, \d+ levels: \d+(?:\.\d+)? min = (\d+(?:\.\d+)?) x dense",
    "branch_trainings": r"control branches \((\d+) trainings\)",
    "branches_min": r"control branches \(\d+ trainings\): (\d+(?:\.\d+)?) min",
    "search_and_branches_min": r"search \+ branches: (\d+(?:\.\d+)?) min",
    "search_and_branches_x_dense": r"search \+ branches: \d+(?:\.\d+)? min = (\d+(?:\.\d+)?) x dense",
}
SPECS: dict[str, dict] = {
    "synth": {"verdicts": [r"^Estimated time for the default .*$"],
              "figures": {"wall_s": r"Synthesis wall time (\d+(?:\.\d+)?) s", "load_s": r"plus (\d+(?:\.\d+)?) s reading",
                          "workers": r"workers: (\d+)", "requested_hours": r"requested training audio: (\d+(?:\.\d+)?) h"}},
    "features": {"figures": {"max_abs_diff_vs_librosa": r"Max \|ours - librosa\| over \d+ utterances: (\d+(?:\.\d+)?(?:e[-+]\d+)?)",
                             "audio_s": r"utterances, (\d+(?:\.\d+)?) s in total", "librosa": r"librosa (\d[\w.]*);"}},
    "mask_overhead": {"figures": {"enforcer_ms": r"median per training step\): (\d+(?:\.\d+)?) ms",
                                  "enforcer_pct_of_dense_step": r"ms = (\d+(?:\.\d+)?) % of the fastest dense step",
                                  "mask_density": r"mask density (\d+(?:\.\d+)?)",
                                  "target_ratio": r"Target: enforced / dense <= (\d+(?:\.\d+)?)"}},
    "ds2_small": {"figures": {"train_minutes": r"--minutes (\d+)", "target_cer": r"test CER <= (\d+(?:\.\d+)?)",
                              "target_wer": r"and WER <= (\d+(?:\.\d+)?)", "stretch_wer": r"stretch WER <= (\d+(?:\.\d+)?)"}},
    "lottery_demo": {"verdicts": [_TICKET], "figures": _COST},
    "lottery_no_guard": {"verdicts": [_TICKET], "figures": _COST},
    "inference": {"verdicts": [r"^- (channel|csr|csr-lstm) .*(met|not met|settings)$", r"^- compact files within .*$"]},
    "inference_paper": {"verdicts": [r"^- (channel|csr|csr-lstm) .*(met|not met|settings)$"]},
    "lm": {"verdicts": [r"^\*\*Result: .*\*\*$", r"^The best LM weight and word score lie on the edge.*$"],
           "figures": {"acoustic_rtf": r"Acoustic model forward pass: (\d+(?:\.\d+)?)",
                       "test_oov_words_pct": r"(\d+(?:\.\d+)?)% of the test words are not in the training vocabulary",
                       "test_minutes": r"test: \d+ utterances \((\d+(?:\.\d+)?) min of audio\)"}},
    "transfer": {"figures": {"trainings": r": (\d+) trainings, \d+(?:\.\d+)? min of training and scoring",
                             "train_and_score_min": r"trainings, (\d+(?:\.\d+)?) min of training and scoring"}},
    "robustness": {"figures": {"reference_run_s": r"Reference run \(uninterrupted[^)]*\): (\d+) s wall",
                               "properties_wall_s": r"generated examples in all, (\d+(?:\.\d+)?) s wall"}},
}
_THREADS = [r"torch threads (\d+)", r"(\d+) torch threads?", r"\b(\d+) threads?\b", r"RTF (\d+)thr", r"\d+p x (\d+)t"]
_CONDITIONS = {"date": r"(\d{4}-\d{2}-\d{2})", "torch": r"torch (\d+\.\d+\.\d+[\w+.]*?)[.,;)]?\s",
               "cpu_cores": r"(\d+) (?:CPU )?cores", "machine": r"(x86_64|aarch64|arm64)", "gpu": r"(NVIDIA [A-Z]\d+)",
               "command": r"`(python bench/[^`]+|bench/gpu_check\.sh[^`]*)`"}


def _git(*args: str) -> str:
    out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def page_conditions(page: Path, text: str, tables: list[dict]) -> dict:
    """What the page says about its run, plus the commit that last wrote it."""
    cond: dict = {}
    for key, pattern in _CONDITIONS.items():
        m = re.search(pattern, text)
        cond[key] = m.group(1) if m else None
    threads = {int(t) for p in _THREADS for t in re.findall(p, text)}
    threads |= {int(r[0]) for t in tables if t["headers"][:1] == ["torch threads"] for r in t["rows"]}
    cond["torch_threads"] = ",".join(str(t) for t in sorted(threads)) or None
    rel = str(page.resolve().relative_to(ROOT)) if page.resolve().is_relative_to(ROOT) else str(page)
    cond["commit"] = _git("log", "-1", "--format=%H", "--", rel) or None
    cond["commit_note"] = "the commit that last changed the page (the run's own commit is unknown)"
    if cond["date"] is None:
        cond["date"] = _git("log", "-1", "--format=%ad", "--date=short", "--", rel) or None
        cond["date_note"] = "date of that commit (the page states none)"
    return cond


def import_page(page: Path) -> dict:
    """The result dict parsed from one bench page."""
    text = page.read_text()
    spec = SPECS.get(result_key(page), {})
    verdicts = [m.group(0) for p in spec.get("verdicts", []) for m in re.finditer(p, text, re.M)]
    verdicts = sorted(set(verdicts), key=text.index)
    figures = {}
    for name, pattern in spec.get("figures", {}).items():
        m = re.search(pattern, text)
        if m is None:
            raise ValueError(f"{page}: figure {name!r} not found ({pattern})")
        figures[name] = m.group(1)
    provisional = build_result(page, text, verdicts=verdicts, figures=figures, conditions={}, source={})
    conditions = page_conditions(page, text, provisional["tables"])
    command = conditions.pop("command")
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
