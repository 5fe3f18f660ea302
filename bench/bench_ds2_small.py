"""ds2_small on the embedded corpus: test WER/CER (greedy), held-out voices, the old test set,
real speech, throughput, wall time and the learning curve.

    python bench/bench_ds2_small.py [--run runs/ds2_small_bench] [--minutes 60] [--data data/synth]
                                    [--train-hours 32 [--train-pitch-variants] | --train data/synth_32h/train.jsonl]
                                    [--old-test data/synth_v1/test.jsonl] [--asterisk data/asterisk/test.jsonl]
                                    [--set data.augment.speed_prob=1.0 ...]
    python bench/bench_ds2_small.py --refresh-table [--doc docs/bench_ds2_small.md] --previous PAGE.json ...

Trains the preset for at most ``--minutes`` of training time (resuming/reusing ``--run`` when it
exists), evaluates the best-dev checkpoint on the test set (overall, voices held out of training,
per engine), on an older corpus version's test set when ``--old-test`` names one (utterances whose
sentence the training set holds are left out and counted) and on the real-speech asterisk test
split when it is prepared (Whisper-normalised, as ``eval`` scores it); with ``train.ema_decay`` it also
scores the last checkpoint's moving average against that step's own weights. The corpus version is
stamped into the result. The model trains on the train split of a 32-hour synthesis of the same
corpus version (``--train-hours``, synthesised beside ``--data`` when missing; its sentences follow
the default corpus's test and dev sentences) and is evaluated on ``--data``'s dev and test sets;
``--train`` names another training manifest. Either is refused when it holds a test or dev
sentence, a voice held out of the test set, or another corpus version. ``--set KEY=VALUE`` measures a
variant of the recipe (the page names the overrides; write it with ``--doc`` under runs/ and keep
its JSON in docs/history/, so the preset's own page stays). Writes docs/bench_ds2_small.md (+ .json) and
docs/plots/ds2_small_curve.png (beside ``--doc``). ``--refresh-table`` only rebuilds a page's before/after table
from ``--previous`` (its measurements stay as stored), so a variant joins the preset's table on a machine
without the preset's run folder.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shlex
import time
from dataclasses import fields
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from audio_lottery.cli.common import add_set_arg  # noqa: E402
from audio_lottery.config import AugmentConfig, Config, TrainConfig, apply_overrides, load_config  # noqa: E402
from audio_lottery.data.corpora.synth import synthesize_corpus  # noqa: E402
from audio_lottery.data.manifest import read_manifest  # noqa: E402
from audio_lottery.eval.evaluate import evaluate  # noqa: E402
from audio_lottery.eval.real_speech import real_test_manifest  # noqa: E402
from audio_lottery.files import read_json  # noqa: E402
from audio_lottery.layout import LAST, TrainLayout  # noqa: E402
from audio_lottery.provenance import corpus_version  # noqa: E402
from audio_lottery.recognizer import Recognizer  # noqa: E402
from audio_lottery.train.checkpoint import model_tensors, read_training_state  # noqa: E402
from audio_lottery.train.loop import train_model  # noqa: E402
from audio_lottery.train.weight_average import average_tensors  # noqa: E402
from quick import md_table, subset_scores  # noqa: E402
from results_io import command_line, result_path, write_page  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# the targets after 60 min of training on 2 cores (test set of the current corpus version)
TARGETS = {"test_wer": 0.45, "held_out_wer": 0.55, "test_cer": 0.15}
STRETCH = {"test_wer": 0.35, "held_out_wer": 0.45, "test_cer": 0.12}
NAMES = {"test_wer": "test WER", "held_out_wer": "held-out WER", "test_cer": "test CER"}


def load_metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in TrainLayout(run).metrics.read_text().splitlines() if x.strip()]


def epoch_losses(metrics: list[dict]) -> dict[int, float]:
    """Mean logged training loss per epoch, numbered as the dev passes are (1 = the first epoch)."""
    per: dict[int, list[float]] = {}
    for m in metrics:
        if "loss" in m and "epoch" in m:  # step records count epochs from 0
            per.setdefault(m["epoch"] + 1, []).append(m["loss"])
    return {e: sum(v) / len(v) for e, v in per.items()}


def fmt_loss(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def curve_plot(dev: list[dict], out: Path) -> None:
    minutes = [d["train_seconds"] / 60 for d in dev]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot(minutes, [d["dev_wer"] for d in dev], "o-", ms=3, label="dev WER")
    ax.plot(minutes, [d["dev_cer"] for d in dev], "s-", ms=3, label="dev CER")
    ax.axhline(TARGETS["test_wer"], color="C0", ls=":", lw=1, label=f"test WER target {TARGETS['test_wer']}")
    ax.axhline(TARGETS["test_cer"], color="C1", ls=":", lw=1, label=f"test CER target {TARGETS['test_cer']}")
    ax.set_xlabel("training time (min, 2 cores)")
    ax.set_ylabel("error rate")
    ax.set_ylim(0, min(1.2, max(d["dev_wer"] for d in dev) + 0.05))
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("ds2_small on the embedded corpus")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def subsets(records: list[dict]) -> dict[str, list[dict]]:
    """The test set split by seen/unseen voice, by engine and by speaker sex (where recorded)."""
    groups: dict[str, list[dict]] = {"all": list(records)}
    for r in records:
        seen = "seen" if r.get("seen_voice", True) else "held-out"
        groups.setdefault(f"{seen} voices", []).append(r)
        groups.setdefault(f"{r.get('engine', '?')}, {seen}", []).append(r)
        if r.get("sex"):
            groups.setdefault(f"{r['sex']} voices", []).append(r)
    return groups


def old_test_records(old_test: Path, train_records: list[dict]) -> tuple[list[dict], int]:
    """The old test set without the utterances whose sentence the (new) training set holds."""
    train_texts = {r["text"] for r in train_records}
    old = read_manifest(old_test)
    kept = [r for r in old if r["text"] not in train_texts]
    return kept, len(old) - len(kept)


def training_manifest(data: Path, train: Path | None, hours: float, pitch_variants: bool = False) -> Path:
    """``train`` when given; else the train split of an ``hours``-hour synthesis of the corpus in ``data``
    (same seed, synthesised beside it unless finished; ``pitch_variants``: with training-only pitch variants,
    in ``<data>_<hours>h_pitch``), or ``data``'s own train split when ``hours`` is 0."""
    if train:
        return train
    if not hours:
        return data / "train.jsonl"
    larger = data.parent / (f"{data.name}_{hours:g}h" + ("_pitch" if pitch_variants else ""))
    synthesize_corpus(larger, hours=hours, seed=corpus_version(data).get("corpus_seed", 0),
                      train_pitch_variants=pitch_variants)
    return larger / "train.jsonl"


def check_same_version(version: dict, train_version: dict, train: Path) -> None:
    """Refuse a training manifest from another version of the embedded corpus (unversioned manifests pass)."""
    ours, theirs = version.get("corpus_version"), train_version.get("corpus_version")
    if ours is not None and theirs is not None and ours != theirs:
        raise SystemExit(f"{train}: corpus version {theirs}, but the test set's corpus is version {ours}")


def check_training_set(train_records: list[dict], test_records: list[dict], train: Path) -> None:
    """Refuse a training manifest that holds a sentence of ``test_records`` (the test and dev sets)
    or a voice the test set marks as held out."""
    shared = {r["text"] for r in train_records} & {r["text"] for r in test_records}
    if shared:
        raise SystemExit(f"{train}: {len(shared)} sentences of the test or dev set are in this training manifest, "
                         f"e.g. {sorted(shared)[0]!r}")
    held_out = {(r.get("engine"), r.get("voice")) for r in test_records if r.get("seen_voice") is False}
    heard = held_out & {(r.get("engine"), r.get("voice")) for r in train_records}
    if heard:
        raise SystemExit(f"{train}: voices held out of the test set are in this training manifest: {sorted(heard)}")


# Rows of the overview that describe the recipe: the before/after table names those that differ.
RECIPE_ROWS = ("front-end", "training augmentation", "learning rate", "precision, weight average", "recurrent dropout")
#: the override that sets the recurrent dropout; pages older than its row state it only through ``--set``
DROPOUT_KEY = "model.ds2.rnn_dropout"


def recurrent_dropout(rate: float) -> str:
    """The dropout on the LSTM layers' outputs in words (``model.ds2.rnn_dropout``)."""
    return f"{rate:g} on every LSTM layer's output, in training only" if rate else "none"


def stated_dropout(page: dict) -> str:
    """The recurrent dropout of a page older than its row: the rate its ``--set`` overrides gave, else none (the
    preset had none before the row came)."""
    dropout = [o for o in page.get("data", {}).get("overrides", []) if o.startswith(f"{DROPOUT_KEY}=")]
    return recurrent_dropout(apply_overrides(Config(), dropout).model.ds2.rnn_dropout)  # the config's own parser


def previous_rows(previous: dict) -> dict[str, str]:
    """Headline numbers of an earlier page of this bench (its tables: the overview and the subsets)."""
    def cell(first: str, keys: tuple[str, ...], column: int) -> str:
        for t in previous["tables"]:
            if t["headers"][0] == first:
                for r in t["rows"]:
                    if r[0].strip("*").startswith(keys) and len(r) > column:
                        return r[column].strip("*")
        return "–"

    def recipe_cell(key: str) -> str:
        value = cell("", (key,), 1)
        return stated_dropout(previous) if value == "–" and key == "recurrent dropout" else value

    # corpus version 1 pages call the held-out voices "unseen voices"
    time_cell = cell("", ("training time",), 1)
    best_dev = cell("", ("best dev epoch",), 1)
    return {"parameters": cell("", ("parameters",), 1), "training time": time_cell.split(",")[0],
            "epochs": time_cell.split(",")[1].split()[0] if "," in time_cell else "–",
            "throughput": cell("", ("training throughput",), 1).split()[0],
            "best_dev_wer": best_dev.split("dev WER ")[1].split(",")[0] if "dev WER " in best_dev else "–",
            "test_wer": cell("", ("test WER",), 1), "held_out_wer": cell("subset", ("held-out voices", "unseen voices"), 2),
            "test_cer": cell("", ("test CER",), 1), "old_test_wer": cell("subset", ("all",), 5),
            "recipe": {key: value for key in RECIPE_ROWS for value in [recipe_cell(key)] if value != "–"}}


def recipe_difference(previous: dict[str, str], now: dict[str, str]) -> str:
    """The recipe rows of an earlier page that differ from this run's, and those its page lacks ("same" when
    every row is on it and none differs)."""
    diff = [f"{key}: {value}" for key, value in previous.items() if now[key] != value]
    missing = [key for key in RECIPE_ROWS if key not in previous]
    return "; ".join(diff + ([f"{', '.join(missing)}: not on its page"] if missing else [])) or "same"


def variant_label(page: dict) -> str:
    """How an earlier run departed from its preset, read from its page: its ``--set`` overrides (pages older
    than ``--set`` have none) and a training corpus with pitch variants ("" for the preset's own run)."""
    pitch = ["training-only pitch variants"] if page.get("conditions", {}).get("train_corpus_train_pitch_variants") else []
    return "; ".join(pitch + [f"--set {kv}" for kv in page.get("data", {}).get("overrides", [])])


BEFORE_AFTER = "Before and after: earlier pages of this bench beside this run (each on its own corpus and test set):"
# the before/after table's measured columns, in order (keys of :func:`previous_rows`)
COLUMNS = ("parameters", "training time", "epochs", "throughput", "best_dev_wer", "test_wer", "held_out_wer", "test_cer",
           "old_test_wer")


def read_previous(paths: list[Path]) -> list[tuple[str, dict, dict, str]]:
    """Name, headline numbers, conditions and variant label of each earlier page that exists."""
    return [(path.name, previous_rows(page), page["conditions"], variant_label(page))
            for path in paths if path.is_file() for page in [read_json(path)]]


def before_after_table(previous: list[tuple[str, dict, dict, str]], now: dict[str, str], recipe_now: dict[str, str]) -> str:
    """Earlier pages (:func:`read_previous`) beside this run (``now``: the cells of :data:`COLUMNS`), each
    with the recipe rows in which it differs from this run's overview (``recipe_now``)."""
    return md_table(["run", "parameters", "training time", "epochs", "audio s per wall s", "best dev WER", "test WER",
                     "held-out WER", "test CER", "old test WER", "recipe rows that differ from this run's"],
                    [*[[f"{name} ({cond.get('date', '?')}, corpus version {cond.get('corpus_version', 1)}"
                        + (f", {hours} h of training audio requested" if hours else "")
                        + (f"; {variant}" if variant else "") + ")",
                        *[row[k] for k in COLUMNS], recipe_difference(row["recipe"], recipe_now)]
                       for name, row, cond, variant in previous
                       for hours in [cond.get("train_corpus_hours", cond.get("corpus_hours"))]],
                     ["now", *[now[k] for k in COLUMNS], ""]])


def with_previous(command: str, previous: list[Path]) -> str:
    """``command`` (a bench command line) with its ``--previous`` paths replaced by ``previous``."""
    words, kept, skipping = shlex.split(command), [], False
    for word in words:
        skipping = word == "--previous" or (skipping and not word.startswith("--"))
        if not skipping:
            kept.append(word)
    return shlex.join(kept + (["--previous", *map(str, previous)] if previous else []))


def refresh_before_after(doc: Path, previous: list[Path]) -> Path:
    """Rebuild the before/after table of the page ``doc`` from the earlier pages ``previous`` and its own
    stored tables, without its run: a variant measured elsewhere joins the preset's table. The page's
    command line names the new ``--previous`` list; its measurements, conditions and data stay as stored.
    Returns the page's result JSON."""
    result, markdown = read_json(result_path(doc)), Path(doc).read_text()
    if f"`{result['command']}`" not in markdown:
        raise SystemExit(f"{doc}: its page does not show the command its result JSON stores")
    command = with_previous(result["command"], previous)
    lines = markdown.replace(f"`{result['command']}`", f"`{command}`").splitlines()
    if BEFORE_AFTER not in lines:
        raise SystemExit(f"{doc}: no before/after table to refresh (measure the run with --previous first)")
    start = lines.index(BEFORE_AFTER) + 2
    end = next(i for i in range(start, len(lines) + 1) if i == len(lines) or not lines[i].startswith("|"))
    overview = next(t for t in result["tables"] if t["headers"] == ["", ""])
    table = before_after_table(read_previous(previous), previous_rows(result), {r[0]: r[1] for r in overview["rows"]})
    lines[start:end] = table.splitlines()
    return write_page(doc, "\n".join(lines) + "\n", conditions=result["conditions"], command=command,
                      data=result.get("data"))


def last_step_weights(run: Path) -> dict[str, dict]:
    """The model's weights at the run's last step from its ``last`` checkpoint: the step's own
    (``model.*``) and their moving average (``train.ema_decay``); {} when the run keeps no average."""
    state = read_training_state(run, LAST)
    if state is None:
        return {}
    average = average_tensors(state[1])
    return {"moving average": average, "last step's own": model_tensors(state[1])} if average else {}


def weight_average_scores(rec: Recognizer, run: Path, test_records: list[dict], dev_records: list[dict]) -> dict:
    """Dev, test, held-out-voice WER and test CER of the last step's own weights and of their moving average.
    Training never uses the average (it is only evaluated and kept), so the two rows are the whole effect of
    averaging at that step."""
    out, groups = {}, subsets(test_records)
    for name, weights in last_step_weights(run).items():
        model = copy.deepcopy(rec)
        model.model.load_state_dict(weights)
        hyps = evaluate(model, test_records)["hyps"]
        test, held_out = (subset_scores(groups[k], hyps) for k in ("all", "held-out voices"))
        out[name] = {"dev_wer": evaluate(model, dev_records)["wer"], "test_wer": test["wer"],
                     "held_out_wer": held_out["wer"], "test_cer": test["cer"]}
    return out


def train_sample(train_records: list[dict], n: int) -> list[dict]:
    """``n`` training utterances spread evenly over the training manifest (no augmentation when decoded)."""
    step = max(1, len(train_records) // max(1, n))
    return train_records[::step][:n]


def fmt(s: dict | None, key: str) -> str:
    return "–" if s is None else f"{s[key]:.3f}"


def front_end_name(features) -> str:
    """The feature front-end in words, e.g. '40 log-mel bands (25 ms window, 10 ms hop)'."""
    bands = f"{features.n_mels} log-mel bands" if features.kind == "logmel" else f"{features.kind} features"
    return f"{bands} ({features.win_ms:g} ms window, {features.hop_ms:g} ms hop)"


def output_units(tokenizer) -> str:
    """The tokenizer in words: its kind and its number of CTC classes."""
    kind = {"char": "characters", "bpe": "sentencepiece BPE pieces"}.get(tokenizer.kind, tokenizer.kind)
    return f"{kind} ({tokenizer.vocab_size} CTC classes incl. the blank)"


def learning_rate_schedule(t: TrainConfig) -> str:
    """The run's learning-rate schedule in words (recipes change it, so the page states it)."""
    warm = f", linear warm-up over {t.warmup_steps} steps" if t.warmup_steps else ""
    if t.schedule == "noam":
        return f"peak {t.lr:g}{warm}, then peak * sqrt(warm-up / step)"
    if t.schedule == "linear_decay":
        return f"peak {t.lr:g}{warm}, times a linear decay to 0 at the end of the training budget"
    return f"peak {t.lr:g}{warm}, divided by {t.lr_anneal:g} after every epoch"


def training_numerics(t: TrainConfig) -> str:
    """The run's autocast and weight average in words (the recipe's other levers besides the schedule)."""
    precision = {"off": "float32", "bf16": "bfloat16 autocast (CTC loss in float32)"}.get(t.amp, f"{t.amp} autocast")
    average = (f"moving average of the weights (decay {t.ema_decay:g}) evaluated and kept" if t.ema_decay
               else "no weight average")
    return f"{precision}; {average}"


def bench_config(config: str, data: Path, train: Path, minutes: float, epochs: int | None,
                 overrides: list[str]) -> Config:
    """The preset with the bench's manifests, time budget and epoch cap, then the caller's ``overrides``."""
    return load_config(config, [f"data.train_manifest={train}"]
                       + [f"data.{s}_manifest={data / f'{s}.jsonl'}" for s in ("dev", "test")]
                       + [f"train.max_minutes={minutes}", *([f"train.epochs={epochs}"] if epochs else [])]
                       + list(overrides))


def preset_name(config: str, overrides: list[str]) -> str:
    """The preset in words for the page's first line,
    e.g. 'preset `ds2_small.yaml` with `data.augment.speed_prob=1.0`'."""
    changed = f" with {', '.join(f'`{o}`' for o in overrides)}" if overrides else ""
    return f"preset `{Path(config).name}`{changed}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=str(ROOT / "runs" / "ds2_small_bench"))
    p.add_argument("--config", default=str(ROOT / "configs" / "ds2_small.yaml"))
    p.add_argument("--data", default=str(ROOT / "data" / "synth"))
    p.add_argument("--train-hours", type=float, default=32.0, help="train on the train split of a synthesis of this "
                   "many hours (<data>_<hours>h/, made when missing; 0 = <data>/train.jsonl)")
    p.add_argument("--train-pitch-variants", action="store_true", help="the --train-hours synthesis has training-only "
                   "pitch variants of the flite and festival voices (<data>_<hours>h_pitch/)")
    p.add_argument("--train", type=Path, help="training manifest (instead of --train-hours)")
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--epochs", type=int, help="epoch cap (default: the preset's; --minutes may end the run first)")
    p.add_argument("--doc", type=Path, default=ROOT / "docs" / "bench_ds2_small.md", help="page to write (+ .json)")
    p.add_argument("--old-test", default="", help="test manifest of an older corpus version (second column)")
    p.add_argument("--previous", type=Path, nargs="*",
                   default=[ROOT / "docs" / "history" / f"bench_ds2_small_{v}.json" for v in ("corpus1", "corpus2_3.5h")],
                   help="result JSONs of earlier runs of this bench (their headline numbers go beside the new ones)")
    add_set_arg(p, "override a preset key for a variant of the recipe (e.g. data.augment.speed_prob=1.0); "
                   "the page names it")
    p.add_argument("--asterisk", help="real-speech test manifest (default: asterisk/test.jsonl beside the corpus; "
                   "'' = none)")
    p.add_argument("--refresh-table", action="store_true",
                   help="only rebuild the before/after table of --doc (and its command line) from --previous: no "
                        "training, no evaluation, the run folder need not exist")
    args = p.parse_args()
    if args.refresh_table:
        print(f"wrote {refresh_before_after(args.doc, args.previous)}")
        return
    data = Path(args.data)
    train = training_manifest(data, args.train, args.train_hours, args.train_pitch_variants)
    version, train_version = corpus_version(data), corpus_version(Path(train).parent)
    check_same_version(version, train_version, train)
    cfg = bench_config(args.config, data, train, args.minutes, args.epochs, args.overrides)
    asterisk = (real_test_manifest({"test_manifest": cfg.data.test_manifest}) if args.asterisk is None
                else Path(args.asterisk) if args.asterisk else None)
    run = Path(args.run)
    train_records, test_records = read_manifest(train), read_manifest(cfg.data.test_manifest)
    check_training_set(train_records, test_records + read_manifest(cfg.data.dev_manifest), train)
    result = train_model(cfg, run)
    metrics = load_metrics(run)
    dev = [m for m in metrics if "dev_wer" in m]
    losses = epoch_losses(metrics)
    wall = metrics[-1]["time"] - metrics[0]["time"]
    rec = Recognizer.load(TrainLayout(run).best)
    t0 = time.perf_counter()
    hyps = evaluate(rec, test_records)["hyps"]
    decode_s = time.perf_counter() - t0
    test_audio = sum(r["duration"] for r in test_records)
    new = {name: subset_scores(recs, hyps) for name, recs in subsets(test_records).items()}
    seen_sample = train_sample(train_records, len(test_records))  # how well it fits what it trained on
    fit = subset_scores(seen_sample, evaluate(rec, seen_sample)["hyps"])
    old, old_dropped, old_version = None, 0, {}
    if args.old_test:
        old_recs, old_dropped = old_test_records(Path(args.old_test), train_records)
        old_hyps = evaluate(rec, old_recs)["hyps"]
        old = {name: subset_scores(recs, old_hyps) for name, recs in subsets(old_recs).items()}
        old_version = corpus_version(Path(args.old_test).parent)
    real = evaluate(rec, read_manifest(asterisk)) if asterisk else None
    averaging = weight_average_scores(rec, run, test_records, read_manifest(cfg.data.dev_manifest))
    train_hours = sum(r["duration"] for r in train_records
                      if cfg.data.min_duration <= r["duration"] <= cfg.data.max_duration) / 3600
    curve_plot(dev, args.doc.parent / "plots" / "ds2_small_curve.png")
    previous = read_previous(args.previous)
    measured = {"test_wer": new["all"]["wer"], "held_out_wer": new["held-out voices"]["wer"],
                "test_cer": new["all"]["cer"]}
    met = {k: measured[k] <= TARGETS[k] for k in TARGETS}
    params = rec.model.num_params()
    now = {"parameters": f"{params:,}", "training time": f"{result['train_seconds'] / 60:.1f} min",
           "epochs": str(result["epochs"]), "throughput": f"{result['audio_seconds_per_second']:.1f}",
           "best_dev_wer": f"{result['best_dev_wer']:.3f}", **{k: f"{measured[k]:.3f}" for k in measured},
           "old_test_wer": fmt(old.get("all") if old else None, "wer")}
    stretch_met = {k: measured[k] <= STRETCH[k] for k in STRETCH}
    aug = {f.name: getattr(cfg.data.augment, f.name) for f in fields(cfg.data.augment)
           if getattr(cfg.data.augment, f.name) != getattr(AugmentConfig(), f.name)}  # the preset's own settings
    rows = [
        ("corpus", f"version {version.get('corpus_version', '?')}, {version.get('corpus_hours', '?')} h requested, "
                   f"seed {version.get('corpus_seed', '?')}"),
        ("parameters", f"{params:,}"),
        ("front-end", front_end_name(cfg.data.features)),
        ("output units", output_units(rec.tokenizer)),
        ("training audio", f"{result['kept']} utterances ({train_hours:.2f} h)"
                           + (f" from {Path(train).parent.name}/ ({train_version.get('corpus_hours', '?')} h requested, "
                              f"corpus version {train_version.get('corpus_version', '?')}"
                              + (", with training-only pitch variants" if train_version.get("corpus_train_pitch_variants")
                                 else "") + f"): the test and dev sets are "
                              f"{data.name}/'s" if train_version != version else "")),
        ("training augmentation", ", ".join(f"{k}={v}" for k, v in aug.items()) or "none"),
        ("learning rate", learning_rate_schedule(cfg.train)),
        ("precision, weight average", training_numerics(cfg.train)),
        ("recurrent dropout", recurrent_dropout(cfg.model.ds2.rnn_dropout)),
        ("training time (excl. dev evaluation)", f"{result['train_seconds'] / 60:.1f} min, {result['epochs']} epochs"),
        ("wall time incl. dev evaluation", f"{wall / 60:.1f} min"),
        ("training throughput", f"{result['audio_seconds_per_second']:.1f} audio s per wall s"),
        ("best dev epoch", f"{result['best_epoch']} (dev WER {result['best_dev_wer']:.3f}, CER {result['best_dev_cer']:.3f})"),
        ("**test WER (greedy)**", f"**{measured['test_wer']:.3f}**"),
        ("**held-out voices WER (greedy)**", f"**{measured['held_out_wer']:.3f}**"),
        ("**test CER (greedy)**", f"**{measured['test_cer']:.3f}**"),
        ("training-set sample WER / CER (greedy)", f"{fit['wer']:.3f} / {fit['cer']:.3f} ({fit['utterances']} "
                                                    "training utterances: the gap to test is what the model memorised)"),
        ("test decoding real-time factor", f"{decode_s / test_audio:.4f} (batched, {cfg.train.threads} threads; "
                                           "includes reading the audio files from the disk)"),
    ]
    old_name = f"old test set (corpus version {old_version.get('corpus_version', '?')})"
    subset_rows = [[name, str(s["utterances"]), f"{s['wer']:.3f}", f"{s['cer']:.3f}",
                    str(old[name]["utterances"]) if old and name in old else "–",
                    fmt(old.get(name) if old else None, "wer"), fmt(old.get(name) if old else None, "cer")]
                   for name, s in sorted(new.items(), key=lambda kv: (kv[0] != "all", "," in kv[0], kv[0]))]
    verdict = "; ".join(f"{NAMES[k]} {measured[k]:.3f} (target <= {TARGETS[k]}): {'met' if met[k] else 'not met'}"
                        for k in TARGETS)
    stretch = ", ".join(f"{NAMES[k]} <= {STRETCH[k]} {'met' if stretch_met[k] else 'not met'}" for k in STRETCH)
    lines = [
        "# ds2_small on the embedded corpus", "",
        f"Measured {time.strftime('%Y-%m-%d')} on {os.cpu_count()} CPU cores ({platform.machine()}), torch threads "
        f"{cfg.train.threads}, by `{command_line()}` ({preset_name(args.config, args.overrides)}, "
        f"--minutes {args.minutes:g}).", "",
        md_table(["", ""], [[k, v] for k, v in rows]), "",
        f"Targets (issue 15): after at most 60 min of training on 2 cores, test WER <= {TARGETS['test_wer']} overall and "
        f"<= {TARGETS['held_out_wer']} on the voices held out of training, test CER <= {TARGETS['test_cer']} "
        f"(stretch {STRETCH['test_wer']} / {STRETCH['held_out_wer']} / {STRETCH['test_cer']}).", "",
        f"Result: {verdict}. Stretch: {stretch}.", "",
        *([BEFORE_AFTER, "", before_after_table(previous, now, dict(rows)), ""] if previous else []),
        "Test set by subset. The held-out voices change with the corpus version, so the old test set is the second "
        "column: " + (f"{old_name}, scored without the {old_dropped} utterances whose sentence the current training "
                      "set holds; its 'held-out' labels are the old corpus's (some of those voices are in training now)."
                      if old else "not given (--old-test)."), "",
        md_table(["subset", "utterances", "WER", "CER", "old-set utterances", "old-set WER", "old-set CER"],
                 subset_rows), "",
        (f"Real speech (asterisk test split, {real['utterances']} telephone prompts, Whisper-normalised): WER "
         f"{real['wer']:.3f}, CER {real['cer']:.3f}. A recogniser trained only on synthetic voices."
         if real else "Real speech: the asterisk test split is not prepared."), "",
        *([f"The moving average of the weights (`train.ema_decay: {cfg.train.ema_decay}`) against the last step's own "
           "weights, both from the run's last checkpoint (epoch "
           f"{result['epochs']}). Training never uses the average, it is only evaluated and kept, so this is the whole "
           "effect of averaging at that step:", "",
           md_table(["weights", "dev WER", "test WER", "held-out WER", "test CER"],
                    [[name, *[f"{s[k]:.3f}" for k in ("dev_wer", "test_wer", "held_out_wer", "test_cer")]]
                     for name, s in averaging.items()]), ""] if averaging else []),
        "![learning curve](plots/ds2_small_curve.png)", "",
        "Training loss (CTC per target token, mean of the losses logged in the epoch) beside the dev error rates:", "",
        md_table(["epoch", "train min", "train loss", "dev WER", "dev CER"],
                 [[str(d["epoch"]), f"{d['train_seconds'] / 60:.1f}", fmt_loss(losses.get(d["epoch"])),
                   f"{d['dev_wer']:.3f}", f"{d['dev_cer']:.3f}"] for d in dev]),
    ]
    data_out = {"minutes": args.minutes, "overrides": args.overrides, "corpus": version, "measured": measured,
                "targets": TARGETS, "stretch": STRETCH, "met": met, "stretch_met": stretch_met,
                "subsets": new, "train_sample": fit, "old_test": {"corpus": old_version, "dropped_in_training": old_dropped,
                                             "subsets": old} if old else None,
                "asterisk": {k: real[k] for k in ("wer", "cer", "utterances")} if real else None,
                "weight_average": averaging or None,
                "best_epoch": result["best_epoch"], "epochs": result["epochs"],
                "curve": [{**{k: d[k] for k in ("epoch", "train_seconds", "dev_wer", "dev_cer")},
                           "train_loss": losses.get(d["epoch"])} for d in dev]}
    write_page(args.doc, "\n".join(lines) + "\n",
               conditions={**version, "train_manifest": str(train), **{f"train_{k}": v for k, v in train_version.items()},
                           "asterisk_test": str(asterisk) if asterisk else None}, data=data_out)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
