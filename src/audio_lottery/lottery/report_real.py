"""Report section: the dense model and the tickets on the real-speech test (the asterisk prompts, or
the run's ``data.real_test_manifest``), scored once per level and kept beside it
(:mod:`audio_lottery.eval.real_speech`)."""

from __future__ import annotations

from pathlib import Path

from audio_lottery.eval.real_speech import real_test_manifest, score_level
from audio_lottery.lottery.report_data import RunData, Table, load_run, pct
from audio_lottery.lottery.tickets import select_tickets

KINDS = (("dense", "Dense"), ("extreme", "Extreme ticket"), ("best", "Best ticket"))


def real_speech_table(run: RunData, tickets: dict | None) -> tuple[str, Table] | None:
    """``(heading, table)`` of synthetic and real-speech test WER/CER for the dense model and the tickets;
    None without a real-speech test or a dense result. A level that cannot be scored becomes a note."""
    try:
        manifest = real_test_manifest(run.config.get("data"))
    except FileNotFoundError as exc:
        run.notes.append(str(exc))
        return None
    if manifest is None or not tickets:
        return None
    rows, utterances = [], None
    for kind, label in KINDS:
        t = tickets.get(kind)
        if not t or t["level"] not in run.imp:
            continue
        try:
            s = score_level(run.imp[t["level"]].path, manifest)
        except (FileNotFoundError, ValueError) as exc:  # a missing checkpoint, a bad manifest
            run.notes.append(f"real-speech test of level {t['level']}: {exc}")
            continue
        utterances = s["utterances"]
        rows.append([label, str(t["level"]), pct(t.get("remaining"), 1), pct(t.get("test_wer")), pct(t.get("test_cer")),
                     pct(s["wer"]), pct(s["cer"])])
    if not rows:
        return None
    heading = f"Real-speech test ({manifest}, {utterances} utterances; raw_text scored through Whisper's normaliser)"
    headers = ["Model", "Level", "Remaining", "Test WER", "Test CER", "Real-speech WER", "Real-speech CER"]
    return heading, (headers, rows)


def run_real_speech(run_dir: Path, tolerance: float) -> tuple[tuple[str, Table] | None, list[str]]:
    """:func:`real_speech_table` of a run folder's IMP levels, with the tickets chosen on dev WER within
    ``tolerance`` (as the lottery report chooses them), and the notes of what could not be read or scored."""
    run = load_run(run_dir, branches=lambda _: False)
    results = [level.result for level in run.imp.values() if level.result]
    try:
        tickets = select_tickets(results, tolerance)
    except ValueError as exc:  # no finished dense level: nothing to compare tickets with
        return None, [*run.notes, f"{run_dir}: {exc}"]
    return real_speech_table(run, tickets), run.notes
