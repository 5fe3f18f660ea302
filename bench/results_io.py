"""Machine-readable bench results: every bench page ``docs/bench_<name>.md`` gets a
``docs/bench_<name>.json`` beside it, which docs/results.md is generated from (bench/make_results.py).

A result holds the page's tables exactly as shown (cells as strings, bold markers removed), the
bench's verdict sentences in its own words, named figures that are not in a table, the
conditions of the run (date, machine, threads, torch, commit, corpus) and where it came from
(command, or ``"imported": true`` with the page it was parsed from; bench/import_pages.py).

New benches should pass ``data`` to :func:`write_page`: the run's summary typed (numbers as
numbers, targets and whether they were ``met`` as booleans), stored under ``"data"``, so readers
need not parse strings back out of the page's tables.

Every bench imports this module, so importing it from a script of bench/ also makes every
:class:`~audio_lottery.fallbacks.FallbackWarning` an error (a fallback changes what a measurement
means); a bench that reports a fallback on its page may allow that one explicitly. Importing it
elsewhere (tests, tools) changes no warning filter.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from audio_lottery.config import Config
from audio_lottery.fallbacks import fail_on_fallbacks
from audio_lottery.files import atomic_write_json, atomic_write_text, read_json
from audio_lottery.provenance import corpus_version, run_conditions

SCHEMA = 1
ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def is_bench_process(argv0: str) -> bool:
    """Whether the running script (``sys.argv[0]``) is one of bench/ (not a test importing this module)."""
    return bool(argv0) and Path(argv0).resolve().parent == Path(__file__).resolve().parent


if is_bench_process(sys.argv[0]):
    fail_on_fallbacks()  # every bench imports this module: a fallback stops it (see the module docstring)

_HEADING = re.compile(r"^#+\s+(.*)$")
_ROW = re.compile(r"^\|(.*)\|\s*$")
_RULE = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")
NUMBER = re.compile(r"\d{4}-\d{2}-\d{2}|\d+(?:[.,]\d+)*(?:e[-+]?\d+)?")


# Per page: "verdicts" = regexes of whole lines (or bullets) that are the bench's conclusions;
# "figures" = name -> regex whose first group is a number stated outside the tables ("optional_figures":
# the same, for numbers only some pages state).
_RESULT = r"^(\*\*)?Result: .*$"  # every page: a line starting "Result:" is a verdict
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
    "ds2_small": {"verdicts": [r"^Real speech .*$"],
                  "figures": {"train_minutes": r"--minutes (\d+)", "target_cer": r"test CER <= (\d+(?:\.\d+)?)",
                              "target_wer": r"test WER <= (\d+(?:\.\d+)?) overall",
                              "target_held_out_wer": r"<= (\d+(?:\.\d+)?) on the voices held out",
                              "stretch_wer": r"\(stretch (\d+(?:\.\d+)?) /"}},
    "lottery": {"verdicts": [_TICKET], "figures": _COST, "optional_figures": {
        "branches_side_by_side_min": r"trained side by side, \d+ processes at [^:]+: (\d+(?:\.\d+)?) min of wall time"}},  # bench_lottery_<name>.md
    "inference": {"verdicts": [r"^- (channel|csr|csr-lstm) .*(met|not met|settings)$", r"^- compact files within .*$"]},
    "inference_paper": {"verdicts": [r"^- (channel|csr|csr-lstm) .*(met|not met|settings)$"]},
    "lm": {"verdicts": [r"^The best LM weight and word score lie on the edge.*$"],
           "figures": {"acoustic_rtf": r"Acoustic model forward pass: (\d+(?:\.\d+)?)",
                       "test_oov_words_pct": r"(\d+(?:\.\d+)?)% of the test words are not in the training vocabulary",
                       "test_minutes": r"test: \d+ utterances \((\d+(?:\.\d+)?) min of audio\)"}},
    "transfer": {"figures": {"trainings": r": (\d+) trainings, \d+(?:\.\d+)? min of training and scoring",
                             "train_and_score_min": r"trainings, (\d+(?:\.\d+)?) min of training and scoring"}},
    "robustness": {"figures": {"reference_run_s": r"Reference run \(uninterrupted[^)]*\): (\d+) s wall",
                               "properties_wall_s": r"generated examples in all, (\d+(?:\.\d+)?) s wall"}},
}
_THREADS = [r"torch threads (\d+)", r"(\d+) torch threads?", r"\b(\d+) threads?\b", r"RTF (\d+)thr", r"\d+p x (\d+)t",
            r"\b(one) thread\b"]  # quick.threads_phrase writes 'one thread'
_NUMBER_WORDS = {"one": "1"}
_CONDITIONS = {"date": r"(\d{4}-\d{2}-\d{2})", "torch": r"torch (\d+\.\d+\.\d+[\w+.]*?)[.,;)]?\s",
               "cpu_cores": r"(\d+) (?:CPU )?cores", "machine": r"(x86_64|aarch64|arm64)", "gpu": r"(NVIDIA [A-Z]\d+)",
               "command": r"`(python bench/[^`]+|bench/gpu_check\.sh[^`]*)`"}


def plain(text: str) -> str:
    """``text`` without markdown bold/italic markers and with collapsed whitespace."""
    return " ".join(text.replace("**", "").split())


def result_path(page: Path) -> Path:
    """The result JSON beside a bench page."""
    return Path(page).with_suffix(".json")


def result_key(page: Path) -> str:
    """``docs/bench_lottery_demo.md`` -> ``lottery_demo``."""
    return Path(page).stem.removeprefix("bench_")


def spec_for(page: Path) -> dict:
    """The extraction spec of a page: its key's, or the longest spec key it starts with (``lm_quick`` -> ``lm``)."""
    key = result_key(page)
    names = [k for k in SPECS if key == k or key.startswith(k + "_")]
    return SPECS[max(names, key=lambda k: (k == key, len(k)))] if names else {}


def extract(page: Path, text: str) -> tuple[list[str], dict[str, str]]:
    """The verdict lines and named figures of a page's text (SPECS); a missing figure is an error."""
    spec = spec_for(page)
    found = [m.group(0) for p in [_RESULT, *spec.get("verdicts", [])] for m in re.finditer(p, text, re.M)]
    verdicts = sorted(set(found), key=text.index)
    figures = {}
    for name, pattern in spec.get("figures", {}).items():
        m = re.search(pattern, text)
        if m is None:
            raise ValueError(f"{page}: figure {name!r} not found on the page ({pattern})")
        figures[name] = m.group(1)
    for name, pattern in spec.get("optional_figures", {}).items():  # stated on some runs' pages only
        if m := re.search(pattern, text):
            figures[name] = m.group(1)
    return verdicts, figures


def stated_conditions(text: str, tables: list[dict]) -> dict:
    """The conditions a page states (date, torch, cores, machine, GPU, command, thread counts)."""
    cond: dict = {}
    for key, pattern in _CONDITIONS.items():
        m = re.search(pattern, text)
        cond[key] = m.group(1) if m else None
    threads = {int(_NUMBER_WORDS.get(t, t)) for p in _THREADS for t in re.findall(p, text)}
    threads |= {int(r[0]) for t in tables if t["headers"][:1] == ["torch threads"] for r in t["rows"]}
    cond["torch_threads"] = ",".join(str(t) for t in sorted(threads)) or None
    return cond


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


def beside_previous(previous: dict, markdown: str, first: str, columns: list[str], match: str | None = None,
                    section: str = "") -> str:
    """A markdown table putting ``columns`` of a previous result (its JSON, e.g. before a new corpus
    version) beside the same columns of the new page ``markdown``: the rows of the new table whose
    first header is ``first`` (and whose section starts with ``section``, for pages with several such
    tables), matched to the previous rows by their ``match`` cell (default: the first cell; e.g.
    'Remaining' pairs lottery levels of searches with other pruning rates), which labels the rows
    ('–' where a side lacks the row or column)."""
    def find(tables: list[dict]) -> dict:
        for t in tables:
            if t["headers"][0] == first and t["section"].startswith(section):
                return t
        raise KeyError(f"no table whose first header is {first!r}" + (f" in a section {section!r}" if section else ""))

    def cell(table: dict, row: list[str], column: str) -> str:
        return row[table["headers"].index(column)] if row and column in table["headers"] else "–"

    new, old = find(parse_tables(markdown)), find(previous["tables"])
    match = match or first
    old_rows = {cell(old, r, match): r for r in old["rows"]}
    headers = [match]
    for c in columns:
        headers += [f"{c} (before)", f"{c} (now)"]
    rows = []
    for r in new["rows"]:
        key = cell(new, r, match)
        o = old_rows.get(key)
        row = [key]
        for c in columns:
            row += [cell(old, o, c), cell(new, r, c)]
        rows.append(row)
    return "\n".join(["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
                      *["| " + " | ".join(r) + " |" for r in rows]])


BEFORE_AND_AFTER = "Before and after"


def before_and_after_heading(label: str = "") -> str:
    """The heading of an earlier run's section on a bench page; ``label`` (e.g. the earlier result's
    file name) tells several earlier runs apart (:func:`earlier_runs` reads it back)."""
    return f"## {BEFORE_AND_AFTER}" + (f": {label}" if label else "")


def earlier_runs(result: dict) -> list[tuple[str, dict]]:
    """``(label, table)`` of every earlier-run section of a bench result (label '' when unnamed)."""
    return [(t["section"].partition(": ")[2], t) for t in result["tables"] if t["section"].startswith(BEFORE_AND_AFTER)]


def previous_intro(previous: dict, what: str, version: int | None, pairing: str) -> str:
    """The sentence that introduces an earlier result beside a new one: its date, corpus version and
    command, how rows are paired, and, when ``version`` (the new run's corpus version) differs, that
    the test sets differ too."""
    cond = previous.get("conditions", {})
    before = cond.get("corpus_version", 1)
    other_test = (f" Corpus versions {before} and {version} have different test sets (other sentences and "
                  "held-out voices): compare each run with its own dense model and baselines, not absolute "
                  "WERs across runs." if version is not None and version != before else "")
    return (f"{what} measured earlier ({cond.get('date', 'date unknown')}, corpus version {before}, "
            f"`{previous.get('command', '?')}`) beside this run, {pairing} ('–': that run has no row there)."
            f"{other_test}")


def rewind_point(result: dict) -> str:
    """A lottery result's stamped rewind point (``prune.rewind``); '0' (theta_0) for a page from before
    the stamp, when no run rewound otherwise."""
    return result.get("conditions", {}).get("rewind", "0")


# A lottery page's pruning strategy in words; others are named by their `prune.strategy` key.
STRATEGY_WORDS = {"global_magnitude": "global magnitude (the paper's)",
                  "lamp": "LAMP (layer-adaptive magnitude pruning of Lee et al.)"}


def pruning_strategy(result: dict) -> str:
    """A lottery result's stamped pruning strategy (``prune.strategy``); 'global_magnitude' for a page
    from before the stamp, when no lottery page used another."""
    return result.get("conditions", {}).get("strategy", "global_magnitude")


def describe_strategy(name: str) -> str:
    """A pruning strategy in words: 'lamp' -> 'LAMP (layer-adaptive magnitude pruning of Lee et al.)'."""
    return STRATEGY_WORDS.get(name, f"the `{name}` strategy")


def training_conditions(cfg: Config) -> dict:
    """What a run was measured under, from its own config: the corpus stamp of its training data
    (:func:`audio_lottery.provenance.corpus_version`) and the torch threads it trained with (not the
    bench's, which only reads the results)."""
    return {**corpus_version(Path(cfg.data.train_manifest).parent), "torch_threads": cfg.train.threads}


def command_line() -> str:
    """This process's command, with the script relative to the repository."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    return shlex.join(["python", str(shown), *sys.argv[1:]])


def build_result(page: Path, markdown: str, *, verdicts: list[str], figures: dict[str, Any],
                 conditions: dict[str, Any], source: dict[str, Any], data: dict[str, Any] | None = None) -> dict:
    """The result dict of a page (both for a bench run and for an import)."""
    missing = [v for v in verdicts if plain(v) not in plain(markdown)]
    if missing:
        raise ValueError(f"{page}: verdict(s) not on the page: {missing}")
    return {"schema": SCHEMA, "key": result_key(page), "page": Path(page).name, **source,
            "conditions": conditions, "verdicts": list(dict.fromkeys(plain(v).removeprefix("- ") for v in verdicts)),
            "figures": figures,
            "tables": parse_tables(markdown), **({"data": data} if data is not None else {})}


def write_page(page: Path, markdown: str, *, verdicts: list[str] = (), figures: dict[str, Any] | None = None,
               conditions: dict[str, Any] | None = None, command: str | None = None,
               data: dict[str, Any] | None = None) -> Path:
    """Write a bench page, then its result JSON beside it (both atomically); returns the JSON path.

    The page is written first, so a long run's page survives an extraction error (which then
    raises, leaving the old JSON, which tests/test_results_page.py reports as out of date).
    The tables, the verdict lines and the named figures of SPECS are taken from ``markdown``
    itself, the way bench/import_pages.py reads an old page, so a result always holds exactly
    what its page shows. Paths inside the repository are written relative to its root
    (:func:`repo_relative`). ``verdicts`` adds conclusion sentences (each must occur on the page);
    ``figures`` adds named numbers; ``conditions`` adds or overrides conditions (e.g. the corpus,
    :func:`audio_lottery.provenance.corpus_version`, or a run's own thread count); otherwise thread
    counts the page states win over torch's current setting. ``data`` is the run's typed summary
    (numbers as numbers, targets and ``met`` as booleans), stored as given under ``"data"``; new
    benches should pass it.
    """
    page = Path(page)
    markdown, verdicts = repo_relative(markdown), [repo_relative(v) for v in verdicts]
    atomic_write_text(page, markdown)
    found, named = extract(page, markdown)
    tables = parse_tables(markdown)
    threads = stated_conditions(markdown, tables)["torch_threads"]
    result = build_result(page, markdown, verdicts=[*found, *verdicts],  # each sentence once, bold or not
                          figures={**named, **(figures or {})},
                          conditions=run_conditions(**{**({"torch_threads": threads} if threads else {}),
                                                       **(conditions or {})}),
                          source={"imported": False, "command": command or command_line()}, data=data)
    atomic_write_json(result_path(page), result)
    return result_path(page)


def repo_relative(text: str) -> str:
    """``text`` with every path inside this repository written relative to its root (a page names
    ``data/asterisk/test.jsonl``, not the checkout it was measured in)."""
    return re.sub(rf"(?<![\w/.-]){re.escape(str(ROOT))}/", "", text)


def load_results(docs: Path = DOCS) -> dict[str, dict]:
    """Every ``bench_*.json`` of ``docs`` by key (``lottery_demo``, ``inference_paper``, ...)."""
    out = {}
    for path in sorted(Path(docs).glob("bench_*.json")):
        result = read_json(path)
        if not isinstance(result, dict) or result.get("schema") != SCHEMA:
            raise ValueError(f"{path}: not a bench result of schema {SCHEMA}")
        out[result["key"]] = result
    return out


# keys whose values are no measurement: a commit hash and a command line hold digits (dates, seeds,
# hash fragments) that would otherwise vouch for any small number on a page
UNTRACED_KEYS = frozenset({"commit", "command"})


def numbers_in(obj: Any) -> set[str]:
    """Every number token in a JSON value (strings tokenised, numbers as written and rounded),
    except under the keys of :data:`UNTRACED_KEYS`."""
    if isinstance(obj, dict):
        items = [(k, v) for k, v in obj.items() if k not in UNTRACED_KEYS]
        return set().union(*(numbers_in(k) | numbers_in(v) for k, v in items)) if items else set()
    if isinstance(obj, (list, tuple)):
        return set().union(*(numbers_in(v) for v in obj)) if obj else set()
    if isinstance(obj, bool) or obj is None:
        return set()
    return set(NUMBER.findall(str(obj)))


_FENCE = re.compile(r"(?ms)^```.*?^```[^\n]*$")
_CODE = re.compile(r"`[^`]*`")
_LINK_TARGET = re.compile(r"\]\([^)]*\)")
_ORDINAL = re.compile(r"(?m)^\s*\d+\.\s")
# a number in prose: not part of a word or a dotted/hyphenated name (float64, 1x4's 4, G.722, SHA-256)
_PROSE_NUMBER = re.compile(r"(?<![\w.])(?<![A-Za-z]-)(?:" + NUMBER.pattern + ")")


def prose(markdown: str, allowed: Iterable[str] = ()) -> str:
    """``markdown`` without what is literal rather than stated: fenced code, code spans, link
    targets, list numbers, and the ``allowed`` phrases (configuration facts a caller vouches for)."""
    for phrase in allowed:
        markdown = markdown.replace(phrase, "")
    for pattern in (_FENCE, _CODE, _ORDINAL):
        markdown = pattern.sub("", markdown)
    return _LINK_TARGET.sub("]", markdown)


def untraced_numbers(markdown: str, sources: dict[str, Any], allowed: Iterable[str] = ()) -> list[str]:
    """Numbers of ``markdown``'s prose (:func:`prose`) that the sources of their section do not
    hold. A section (from one ``## `` heading to the next, and the text before the first) may use
    the sources whose name (``bench_lm.md``, ``demo_timings.json``) it mentions."""
    missing: set[str] = set()
    for part in re.split(r"(?m)^(?=## )", markdown):
        used = [obj for name, obj in sources.items() if name in part]
        known = set().union(*(numbers_in(obj) for obj in used)) if used else set()
        missing |= {n for n in _PROSE_NUMBER.findall(prose(part, allowed)) if n not in known}
    return sorted(missing)
