"""Where a measurement came from: the processor model read from /proc/cpuinfo."""

from __future__ import annotations

import platform

from audio_lottery.provenance import cpu_model, run_conditions


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
