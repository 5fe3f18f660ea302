"""Where a measurement came from: the processor model read from /proc/cpuinfo, the corpus stamp."""

from __future__ import annotations

import json
import platform

from audio_lottery.provenance import corpus_version, cpu_model, run_conditions


def test_cpu_model_reads_the_first_model_name(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7763 64-Core Processor\n\n"
                    "processor\t: 1\nmodel name\t: something else\n")
    assert cpu_model(info) == "AMD EPYC 7763 64-Core Processor"


def test_cpu_model_falls_back_to_the_platform(tmp_path):
    assert cpu_model(tmp_path / "missing") == (platform.processor() or None)
    empty = tmp_path / "cpuinfo"
    empty.write_text("processor\t: 0\nmodel name\t:   \n")
    assert cpu_model(empty) == (platform.processor() or None)


def test_run_conditions_state_the_processor():
    assert run_conditions()["cpu"] == cpu_model()


def test_corpus_version_stamps_pitch_variants_only_when_present(tmp_path):
    settings = {"version": 2, "hours": 32.0, "seed": 0, "sample_rate": 16000}
    (tmp_path / "corpus.json").write_text(json.dumps({"settings": settings}))
    assert corpus_version(tmp_path) == {"corpus": str(tmp_path), "corpus_version": 2, "corpus_hours": 32.0,
                                        "corpus_seed": 0}
    (tmp_path / "corpus.json").write_text(json.dumps({"settings": {**settings, "train_pitch_variants": {}}}))
    assert corpus_version(tmp_path)["corpus_train_pitch_variants"] is True
    assert corpus_version(tmp_path / "missing") == {}
