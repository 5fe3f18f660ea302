"""The real-speech test (asterisk) in the report: found by config key or at data/asterisk/test.jsonl,
scored for the dense model and the tickets through Whisper's normaliser, cached per level."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audio_lottery.config import config_hash, load_config, save_config
from audio_lottery.data.manifest import read_manifest
from audio_lottery.data.pipeline.tokenizers import CharTokenizer
from audio_lottery.eval import real_speech
from audio_lottery.eval.evaluate import evaluate
from audio_lottery.lottery.report import write_report
from audio_lottery.recognizer import Recognizer

from conftest import TINY_CONFIG

DEV = [0.50, 0.49, 0.52]  # level 1 is both the extreme and the best ticket (tolerance 0.01)


def _real_manifest(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        wav = folder / f"r{i}.wav"
        sf.write(wav, (np.random.default_rng(i).standard_normal(8000 + 2000 * i) * 0.1).astype(np.float32), 16000)
        rows.append({"id": f"r{i}", "audio": str(wav), "duration": (8000 + 2000 * i) / 16000, "offset": 0.0,
                     "speaker": "allison", "text": "call forward on busy", "raw_text": "Call-Forward on Busy."})
    path = folder / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(root: Path, real: Path | None) -> Path:
    run = root / "lottery_x"
    corpus = [f"data.{s}_manifest={root / 'synth' / s}.jsonl" for s in ("train", "dev", "test")]  # no asterisk beside
    cfg = load_config(TINY_CONFIG, corpus + ([f"data.real_test_manifest={real}"] if real else []))
    run.mkdir(parents=True)
    save_config(cfg, run / "config.yaml")
    for level, dev in enumerate(DEV):
        folder = run / f"level_{level}"
        torch.manual_seed(level)
        Recognizer.build(cfg, CharTokenizer()).save(folder / "train")
        (folder / "result.json").write_text(json.dumps({"level": level, "remaining": 0.8**level, "dev_wer": dev,
                                                        "test_wer": dev + 0.1, "test_cer": dev / 2}))
    return run


def _table_rows(md: str) -> dict[str, list[str]]:
    part = md.split("## Real-speech test", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in part.splitlines() if line.startswith("| ")]
    return {r[0]: r for r in rows[1:]}


def test_report_scores_dense_and_tickets_on_the_real_speech_test(tmp_path, monkeypatch):
    real = _real_manifest(tmp_path / "asterisk")
    run = _run(tmp_path / "runs", real)
    md = write_report(run)[0].read_text()
    rows = _table_rows(md)
    assert list(rows) == ["Dense", "Extreme ticket", "Best ticket"]
    assert [r[1] for r in rows.values()] == ["0", "1", "1"]
    records = read_manifest(real)
    for label, level in (("Dense", 0), ("Extreme ticket", 1)):
        want = evaluate(Recognizer.load(run / f"level_{level}" / "train" / "best.safetensors"), records)
        assert rows[label][5:] == [f"{100 * want['wer']:.2f} %", f"{100 * want['cer']:.2f} %"]
        assert json.loads((run / f"level_{level}" / "eval_real.json").read_text())["cer"] == want["cer"]
    assert rows["Dense"][3] == "60.00 %" and not (run / "level_2" / "eval_real.json").exists()
    assert f"{real}, 3 utterances" in md and "Real-speech test" in write_report(run)[1].read_text()
    # scores are reused while model and manifest are unchanged; a changed manifest is scored again
    stored = json.loads((run / "level_0" / "eval_real.json").read_text())
    monkeypatch.setattr(real_speech, "evaluate", lambda *a, **k: pytest.fail("scored again"))
    assert real_speech.score_level(run / "level_0", real) == stored
    calls = []
    monkeypatch.setattr(real_speech, "evaluate", lambda rec, recs: calls.append(len(recs)) or {"wer": 1.0, "cer": 0.5})
    _real_manifest(tmp_path / "asterisk", n=2)
    again = real_speech.score_level(run / "level_0", real)
    assert (again["wer"], again["cer"], again["utterances"], calls) == (1.0, 0.5, 2, [2])


def test_the_real_speech_test_is_found_by_key_or_beside_the_corpus_and_never_changes_the_run_hash(tmp_path):
    synth_test = tmp_path / "data" / "synth" / "test.jsonl"
    assert real_speech.real_test_manifest({"test_manifest": str(synth_test)}) is None
    beside = _real_manifest(tmp_path / "data" / "asterisk", n=1)
    assert real_speech.real_test_manifest({"test_manifest": str(synth_test)}) == beside
    assert real_speech.real_test_manifest(None) is None
    other = _real_manifest(tmp_path / "other", n=1)
    assert real_speech.real_test_manifest({"real_test_manifest": str(other), "test_manifest": str(synth_test)}) == other
    with pytest.raises(FileNotFoundError, match="data.real_test_manifest"):
        real_speech.real_test_manifest({"real_test_manifest": str(tmp_path / "missing.jsonl")})
    plain, named = load_config(TINY_CONFIG), load_config(TINY_CONFIG, [f"data.real_test_manifest={other}"])
    assert named.data.real_test_manifest == str(other) and config_hash(named) == config_hash(plain)


def test_report_without_a_real_speech_test_or_with_a_missing_one(tmp_path):
    run = _run(tmp_path / "runs", None)
    assert "Real-speech test" not in write_report(run)[0].read_text()
    run2 = _run(tmp_path / "runs2", tmp_path / "gone.jsonl")
    md = write_report(run2)[0].read_text()
    assert "Real-speech test" not in md and "data.real_test_manifest" in md.split("## Notes", 1)[1]


def test_demo_prints_the_real_speech_scores_of_dense_and_tickets(tmp_path, capsys):
    from audio_lottery.demo import show_real_speech
    from audio_lottery.lottery.tickets import select_tickets

    real = _real_manifest(tmp_path / "asterisk", n=2)
    run = _run(tmp_path / "runs", real)
    cfg = load_config(run / "config.yaml")
    results = [json.loads((run / f"level_{lv}" / "result.json").read_text()) for lv in range(len(DEV))]
    tickets = select_tickets(results, 0.01)
    show_real_speech(run, cfg, tickets)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"real speech ({real}):" and [line.split()[0] for line in out[1:]] == ["dense", "extreme", "best"]
    dense = json.loads((run / "level_0" / "eval_real.json").read_text())
    assert f"WER {dense['wer']:.3f}  CER {dense['cer']:.3f}  (2 utterances)" in out[1]
    cfg.data.real_test_manifest = ""
    show_real_speech(run, cfg, tickets)
    assert "no test set" in capsys.readouterr().out


def test_a_run_folder_gives_the_reports_real_speech_rows_with_its_tickets(tmp_path):
    from audio_lottery.lottery.report_real import run_real_speech

    real = _real_manifest(tmp_path / "asterisk", n=2)
    run = _run(tmp_path / "runs", real)
    report_rows = _table_rows(write_report(run)[0].read_text())
    (heading, (headers, rows)), notes = run_real_speech(run, 0.01)
    assert heading.startswith(f"Real-speech test ({real}, 2 utterances") and notes == []
    assert headers[0] == "Model" and {r[0]: r for r in rows} == report_rows
    (run / "level_2" / "result.json").unlink()  # an unfinished level is a note, not an error
    assert any("level_2" in n for n in run_real_speech(run, 0.01)[1])
    (run / "level_0" / "result.json").unlink()  # no dense result: no table, and a note says why
    made, notes = run_real_speech(run, 0.01)
    assert made is None and any("no dense result" in n for n in notes)


def test_structured_imp_page_puts_each_series_real_speech_rows_under_one_table(tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import bench_structured_imp

    real = _real_manifest(tmp_path / "asterisk", n=2)
    runs = {"unstructured IMP": _run(tmp_path / "a", real), "channel IMP": _run(tmp_path / "b", None)}
    from results_io import parse_tables

    lines = bench_structured_imp.real_speech_section(runs)
    (table,) = parse_tables("\n".join(lines))
    assert lines[0].startswith("## Real-speech test") and table["headers"][:3] == ["Series", "Model", "Level"]
    assert [r[:2] for r in table["rows"]] == [["unstructured IMP", m] for m in ("Dense", "Extreme ticket", "Best ticket")]
    assert bench_structured_imp.real_speech_section({"channel IMP": runs["channel IMP"]}) == []
