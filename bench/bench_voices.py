"""The English voices this machine can get: licence, whether the corpus uses them, speed, intelligibility.

Usage: python bench/bench_voices.py [--sentences 3] [--no-asr]
Writes docs/bench_voices.md and docs/bench_voices.json.

Every installed voice (flite, festival, each espeak-ng accent, and every espeak-ng variant on en-us)
says the same sentences (the first of the seed-0 sentence order). Speed: audio seconds per CPU second
of the engine process plus the corpus's post-processing (16 kHz, trim, normalise), i.e. CPU time, not
wall time. Intelligibility: WER of the pip-installed Whisper tiny.en (greedy) on those utterances,
both sides through Whisper's English normaliser. The held-out choice and the speaker kinds come from
the corpus code itself (seed 0 inventory).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from audio_lottery.data.corpora.sentences import load_sentence_records
from audio_lottery.data.corpora.synth import (
    ENGINE_WEIGHTS,
    ESPEAK_PITCH,
    ESPEAK_SPEED,
    FESTIVAL_STRETCH,
    FLITE_STRETCH,
    VERSION,
    Speaker,
    build_speakers,
    postprocess,
    run_engine,
)
from audio_lottery.data.corpora.voices import (
    CATALOGUE,
    ESPEAK_ACCENTS,
    ESPEAK_EXCLUDED,
    ESPEAK_VARIANT_SEX,
    LICENCE_ESPEAK,
    UNUSABLE,
    available_voices,
    choose_held_out,
    espeak_variants,
    voice_sex,
)
from audio_lottery.eval.normalize import WHISPER_EN, score_texts
from results_io import write_page

DOC = Path(__file__).resolve().parents[1] / "docs" / "bench_voices.md"
SEEDS = range(5)


def _cpu() -> float:
    child = resource.getrusage(resource.RUSAGE_CHILDREN)
    return child.ru_utime + child.ru_stime + time.process_time()


def measure(spk: Speaker, sentences: list, recognise) -> dict:
    """Audio seconds per CPU second and (with ``recognise``) Whisper tiny.en's WER for one speaker."""
    waves, audio_s, cpu = [], 0.0, 0.0
    for sent in sentences:
        t0 = _cpu()
        audio, sr = run_engine(spk, sent.raw)
        wave = postprocess(audio, sr, peak=0.9, margin_s=0.1)
        cpu += _cpu() - t0
        audio_s += len(wave) / 16000
        waves.append(wave)
    row = {"audio_s": round(audio_s, 2), "speed": round(audio_s / max(cpu, 1e-9), 1)}
    if recognise is not None:
        hyps = recognise(waves)
        row["wer"] = round(score_texts([s.raw for s in sentences], hyps, WHISPER_EN)["wer"], 3)
    return row


def whisper_recogniser():
    from audio_lottery.pretrained import load_recognizer

    torch.set_num_threads(1)
    rec = load_recognizer("pretrained:whisper-tiny.en")
    return lambda waves: rec.transcribe([np.asarray(w, dtype=np.float32) for w in waves])


def run(n_sentences: int, asr: bool) -> dict:
    sentences = load_sentence_records(0, limit=n_sentences)
    recognise = whisper_recogniser() if asr else None
    voices = available_voices()
    variants = espeak_variants()
    mid = lambda lo_hi: round(sum(lo_hi) / 2, 2)  # noqa: E731
    engine_rows = []
    for engine, catalogue in CATALOGUE.items():
        stretch = FLITE_STRETCH if engine == "flite" else FESTIVAL_STRETCH
        for v in catalogue:
            row = {"engine": engine, "voice": v.name, "sex": v.sex, "person": v.person, "licence": v.licence,
                   "package": v.package, "installed": v.name in voices.get(engine, ()), "note": v.note}
            if row["installed"]:
                row |= measure(Speaker(engine, v.name, "", mid(stretch), 0, v.sex), sentences, recognise)
            engine_rows.append(row)
    speed, pitch = int(mid(ESPEAK_SPEED)), int(mid(ESPEAK_PITCH))
    for accent in ESPEAK_ACCENTS:
        row = {"engine": "espeak", "voice": accent, "sex": "by variant", "person": "", "licence": LICENCE_ESPEAK,
               "package": "espeak-ng-data", "installed": "espeak" in voices, "note": "accent; the plain voice is male"}
        if row["installed"]:
            row |= measure(Speaker("espeak", accent, "", speed, pitch, "male"), sentences, recognise)
        engine_rows.append(row)
    variant_rows = []
    for variant in sorted(ESPEAK_VARIANT_SEX, key=str.lower):
        sex = voice_sex("espeak", "en-us", variant)
        row = {"variant": variant, "sex": sex, "installed": variant in variants or variant in ESPEAK_EXCLUDED,
               "used": variant in variants, "note": ESPEAK_EXCLUDED.get(variant, "")}
        row |= measure(Speaker("espeak", "en-us", variant, speed, pitch, sex), sentences, recognise)
        variant_rows.append(row)
    return {"sentences": n_sentences, "asr": asr, "voices": voices, "engines": engine_rows, "variants": variant_rows,
            "held_out": held_out_table(voices, variants), "kinds": kinds_table(voices, variants),
            "unusable": [vars(v) for v in UNUSABLE]}


def held_out_table(voices: dict, variants: tuple) -> list[dict]:
    """The held-out voice per engine for a few seeds."""
    return [{"seed": s, **choose_held_out(s, build_speakers(s, voices, variants))} for s in SEEDS]


def kinds_table(voices: dict, variants: tuple) -> list[dict]:
    """Speakers per kind in the seed-0 inventory: in training and dev, and held out (test only)."""
    speakers = build_speakers(0, voices, variants)
    held = choose_held_out(0, speakers)
    train = Counter(s.kind for s in speakers if held.get(s.engine) != s.voice)
    test = Counter(s.kind for s in speakers if held.get(s.engine) == s.voice)
    return [{"kind": k, "train_speakers": train[k], "held_out_speakers": test[k]} for k in sorted(train | test)]


def _cell(row: dict, key: str, fmt: str = "{}") -> str:
    return fmt.format(row[key]) if key in row else "-"


def markdown(res: dict) -> str:
    """The page."""
    wer_head = "Whisper tiny.en WER" if res["asr"] else "WER (not measured)"
    lines = [
        "# English voices for the embedded corpus",
        "",
        f"`python bench/bench_voices.py --sentences {res['sentences']}{'' if res['asr'] else ' --no-asr'}`; corpus "
        f"version {VERSION}. Each installed voice says the same {res['sentences']} sentences. Speed: audio seconds "
        "per CPU second (engine process + resampling/trimming): CPU time, not wall time, so roughly comparable "
        "whatever else the machine runs, yet only a guide. WER: Whisper tiny.en (greedy) "
        "through Whisper's English normaliser, a rough intelligibility check on a few sentences.",
        "",
        "## Voices of Debian main and PyPI",
        "",
        f"| engine | voice | sex | person | licence | package | installed | audio s per CPU s | {wer_head} | note |",
        "|---|---|---|---|---|---|---|---:|---:|---|",
    ]
    for r in res["engines"]:
        lines.append(f"| {r['engine']} | {r['voice']} | {r['sex']} | {r['person'] or '-'} | {r['licence']} | "
                     f"{r['package']} | {'yes' if r['installed'] else 'no'} | {_cell(r, 'speed')} | "
                     f"{_cell(r, 'wer', '{:.3f}')} | {r['note']} |")
    lines += ["", "Found but not usable here:", "", "| engine | voice | sex | licence | package | why not |",
              "|---|---|---|---|---|---|"]
    for v in res["unusable"]:
        lines.append(f"| {v['engine']} | {v['name']} | {v['sex'] or '-'} | {v['licence']} | {v['package']} | {v['note']} |")
    used = [r for r in res["variants"] if r["used"]]
    by_sex = Counter(r["sex"] for r in used)
    lines += [
        "", "## espeak-ng variants (on en-us)", "",
        f"{len(used)} of {len(res['variants'])} variant files are used ({', '.join(f'{n} {s}' for s, n in sorted(by_sex.items()))}); "
        "sex from the file's `gender` line, else female above a 150 Hz pitch midpoint (zac: child). The corpus "
        "gives each accent 5 male and 5 female-or-child variants, drawn by the seed.",
        "",
        f"| variant | sex | used | audio s per CPU s | {wer_head} | note |",
        "|---|---|---|---:|---:|---|",
    ]
    for r in res["variants"]:
        lines.append(f"| {r['variant']} | {r['sex']} | {'yes' if r['used'] else 'no'} | {r['speed']} | "
                     f"{_cell(r, 'wer', '{:.3f}')} | {r['note']} |")
    engines = sorted({k for row in res["held_out"] for k in row if k != "seed"})
    lines += ["", "## Held-out voices and speaker kinds", "",
              "A kind is sex x engine family. The held-out (test-only) voice of each engine is one whose removal "
              "keeps every kind of the engine in training, preferring a person whom no training voice copies "
              f"(engine weights per block of 10 utterances: {ENGINE_WEIGHTS}).", "",
              "| seed | " + " | ".join(engines) + " |", "|---|" + "---|" * len(engines)]
    for row in res["held_out"]:
        lines.append(f"| {row['seed']} | " + " | ".join(row.get(e, "-") for e in engines) + " |")
    lines += ["", "| kind | speakers in training (seed 0) | held-out speakers (seed 0) |", "|---|---:|---:|"]
    for row in res["kinds"]:
        lines.append(f"| {row['kind']} | {row['train_speakers']} | {row['held_out_speakers']} |")
    only_test = [r["kind"] for r in res["kinds"] if not r["train_speakers"]]
    lines += ["", f"Result: {len(used) + sum(r['installed'] and r['engine'] != 'espeak' for r in res['engines'])} "
              f"voices and variants used over {len(ESPEAK_ACCENTS)} espeak-ng accents; kinds only in test: "
              f"{', '.join(only_test) or 'none'}.", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sentences", type=int, default=3, help="sentences each voice says")
    p.add_argument("--no-asr", action="store_true", help="skip the Whisper tiny.en intelligibility check")
    args = p.parse_args(argv)
    res = run(args.sentences, not args.no_asr)
    text = markdown(res)
    write_page(DOC, text, data=res)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
