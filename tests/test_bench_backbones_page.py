"""bench/bench_backbones.py's page text: the corpus it states, and an earlier page beside the new tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import bench_backbones  # noqa: E402
from quick import md_table  # noqa: E402
from results_io import parse_tables  # noqa: E402

DENSE = ["preset", "params", "best dev WER / CER", "test WER / CER"]
TICKETS = ["backbone", "params", "dense WER", "extreme ticket (remaining: WER)", "random reinit there, test WER"]


def _page(dense_rows: list[list[str]], ticket_rows: list[list[str]]) -> str:
    every = md_table(["backbone", "level", "remaining %"], [["RNN-Transducer", "0", "100.0"]])
    return "\n\n".join(["# page", "## Dense small presets", md_table(DENSE, dense_rows),
                        "## Extreme tickets per backbone", md_table(TICKETS, ticket_rows), "## Every level", every, ""])


def test_the_page_states_the_corpus_it_was_measured_on(tmp_path):
    (tmp_path / "corpus.json").write_text(json.dumps({"splits": {
        "train": {"hours": 3.5012, "utterances": 2428},
        "test": {"hours": 0.23, "utterances": 156, "unseen_voice_utterances": 80}}}))
    text = bench_backbones.corpus_sentence(tmp_path)
    assert "3.5 h of training speech" in text and "(156 utterances, 80 of them by voices held out" in text
    assert bench_backbones.corpus_sentence(tmp_path / "missing") == f"Embedded corpus (`{tmp_path / 'missing'}`)"


def test_an_earlier_page_is_put_beside_the_new_tables_preset_by_preset_and_backbone_by_backbone(tmp_path):
    old = {"date": "2026-11-27", "command": "python bench/bench_backbones.py report", "conditions": {},
           "tables": parse_tables(_page([["conformer_small", "4.78 M", "dev 1.000 / 1.000", "1.000 / 1.000"]],
                                        [["RNN-Transducer", "2.12 M", "dev 0.703, test 0.820", "16.8 %", "0.904"]]))}
    path = tmp_path / "bench_backbones_corpus1.json"
    path.write_text(json.dumps(old))
    new = _page([["conformer_small", "4.78 M", "dev 0.930 / 0.410", "0.950 / 0.430"],
                 ["rnnt_small", "5.73 M", "dev 0.700 / 0.350", "0.800 / 0.420"]],
                [["RNN-Transducer", "2.12 M", "dev 0.650, test 0.790", "10.7 %", "0.880"]])
    text = "\n".join(bench_backbones.previous_sections([path], new, 2))
    assert "## Before and after: bench_backbones_corpus1.json" in text and "Corpus versions 1 and 2" in text
    tables = parse_tables(text)
    dense, tickets = tables[0], tables[1]
    assert dense["rows"][0] == ["conformer_small", "dev 1.000 / 1.000", "dev 0.930 / 0.410", "1.000 / 1.000",
                                "0.950 / 0.430"]
    assert dense["rows"][1][1] == "–"  # no earlier row for that preset
    assert tickets["rows"][0][:5] == ["RNN-Transducer", "dev 0.703, test 0.820", "dev 0.650, test 0.790", "16.8 %",
                                      "10.7 %"]


def test_the_real_speech_section_scores_each_dense_preset_and_takes_each_run_s_ticket_rows(tmp_path, monkeypatch):
    real = tmp_path / "asterisk" / "test.jsonl"
    real.parent.mkdir()
    real.write_text("".join(json.dumps({"audio": f"{i}.wav", "text": "one", "duration": 1.0, "speaker": "s"}) + "\n"
                            for i in range(2)))
    small = tmp_path / "small_conformer"
    small.mkdir()
    (small / "test.json").write_text(json.dumps({"wer": 0.9512, "cer": 0.43}))
    scored = []
    monkeypatch.setattr(bench_backbones, "real_test_manifest", lambda data: real)
    monkeypatch.setattr(bench_backbones, "score_model",
                        lambda weights, manifest, cache: scored.append((weights, cache)) or {"wer": 0.99, "cer": 0.61})
    ticket_row = ["Extreme ticket", "4", "16.8 %", "80.20 %", "40.50 %", "98.97 %", "58.00 %"]
    monkeypatch.setattr(bench_backbones, "run_real_speech",
                        lambda run_dir, tol: (("heading", (["Model"], [ticket_row])), ["level 3: no result"]))
    lines = bench_backbones.real_speech_section({"rnnt": tmp_path / "run"}, tmp_path, 0.01)
    tables = parse_tables("\n".join(lines))
    assert tables[0]["rows"] == [["conformer_small", "Dense", "–", "100.0 %", "95.12 %", "43.00 %", "99.00 %", "61.00 %"],
                                 ["rnnt_demo", *ticket_row]]
    assert scored == [(small / "best.safetensors", small / "eval_real.json")]
    assert f"`{real}` (2 utterances" in "\n".join(lines) and "- rnnt_demo: level 3: no result" in lines
    monkeypatch.setattr(bench_backbones, "real_test_manifest", lambda data: None)
    assert bench_backbones.real_speech_section({"rnnt": tmp_path / "run"}, tmp_path, 0.01) == []


def test_the_transformer_is_scored_on_dev_under_each_ctc_prefix_weight_once_per_checkpoint(tmp_path, monkeypatch):
    import os

    from audio_lottery.config import load_config
    from audio_lottery.data.pipeline.tokenizers import CharTokenizer
    from audio_lottery.recognizer import Recognizer

    out = tmp_path / "small_transformer"
    cfg = load_config(ROOT / "configs" / "transformer_tiny.yaml")
    Recognizer.build(cfg, CharTokenizer()).save(out)
    dev = tmp_path / "dev.jsonl"
    dev.write_text("{}\n")
    monkeypatch.setattr(bench_backbones, "preset", lambda name, size, overrides=None: load_config(
        ROOT / "configs" / "transformer_small.yaml", [f"data.dev_manifest={dev}"]))
    monkeypatch.setattr(bench_backbones, "load_split", lambda cfg, split: [{"id": split}] * 3)
    seen, base = [], [1.2]

    def fake_evaluate(rec, records):
        w = rec.model.cfg.ctc_prefix_weight
        seen.append(w)
        return {"wer": base[0] - w / 4, "cer": 0.5, "substitutions": 10, "deletions": int(10 * w), "insertions": 5,
                "ref_words": 40}

    monkeypatch.setattr(bench_backbones, "evaluate", fake_evaluate)
    lines = bench_backbones.decode_weight_section(out, (0.0, 0.3, 1.0))
    assert seen == [0.0, 0.3, 1.0]
    (table,) = parse_tables("\n".join(lines))
    assert table["rows"] == [["0.0", "1.200", "0.500", "10", "0", "5"], ["0.3 (preset)", "1.125", "0.500", "10", "3", "5"],
                             ["1.0", "0.950", "0.500", "10", "10", "5"]]
    assert "(3 utterances, 40 words), beam 2" in lines[2]  # the checkpoint's own beam (transformer_tiny)
    assert lines[-2] == ("- Transformer decoding: lowest dev WER at w = 1.0, 0.950 (0.175 below the preset's weight), "
                         "with dev CER 0.500 and 10 of 40 words substituted: decoding with w = 1.0 brings its dev WER "
                         "below 1.")
    assert bench_backbones.decode_weight_section(out, (0.0, 0.3, 1.0)) == lines and len(seen) == 3  # cached
    best = out / "best.safetensors"
    os.utime(best, ns=(best.stat().st_atime_ns, best.stat().st_mtime_ns + 10**9))  # a retrained checkpoint
    base[0] = 1.4
    again = bench_backbones.decode_weight_section(out, (0.3, 1.0))
    assert seen[3:] == [0.3, 1.0]
    assert again[-2].endswith("at w = 1.0, 1.150 (0.175 below the preset's weight), with dev CER 0.500 and 10 of 40 "
                              "words substituted: no decoding weight brings this model's dev WER below 1: the errors "
                              "are the model's, not the decoding weight's.")
    dev.write_text("{}\n{}\n")  # another dev set: scored again
    bench_backbones.decode_weight_section(out, (0.3,))
    assert seen[5:] == [0.3]
    only_preset = bench_backbones.decode_weight_section(out, (0.3,))
    assert "at w = 0.3, 1.325, with dev CER" in only_preset[-2]  # no '0.000 below the preset's weight'
    assert bench_backbones.decode_weight_section(tmp_path / "none", (0.3,)) == []
