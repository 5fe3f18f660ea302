"""Reproducible installs: constraints.txt pins every dependency, and matches what is installed and tested."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from importlib import metadata

import pytest

from conftest import ROOT

CONSTRAINTS = ROOT / "constraints.txt"
LOCK = ROOT / "tools" / "lock.py"


def _pins() -> dict[str, str]:
    lines = [ln for ln in CONSTRAINTS.read_text().splitlines() if ln and not ln.startswith("#")]
    bad = [ln for ln in lines if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[0-9][A-Za-z0-9.!]*", ln)]
    assert not bad, f"constraints.txt: lines that are not exact public-version pins: {bad}"
    return dict(ln.split("==") for ln in lines)


def test_constraints_pin_torch_and_every_declared_dependency():
    pins = {k.lower().replace("_", "-"): v for k, v in _pins().items()}
    assert pins["torch"] == "2.13.0"
    assert "audio-lottery" not in pins
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = [re.match(r"[A-Za-z0-9._-]+", d).group(0) for d in [*project["dependencies"], *extras["test"],
                                                                  *extras["onnx"]]]
    assert len(declared) >= 18 and "flashlight-text" in declared
    assert not [d for d in declared if d.lower().replace("_", "-") not in pins]


def test_constraints_match_the_installed_environment():
    """Fails when a dependency was added or moved without `make lock` (or installed by hand)."""
    try:
        metadata.distribution("audio-lottery")
    except metadata.PackageNotFoundError:
        pytest.skip("the project is not installed in this interpreter (make setup)")
    if importlib.util.find_spec("packaging") is None:
        pytest.skip("packaging is not installed")
    res = subprocess.run([sys.executable, str(LOCK), "--out", "-"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == CONSTRAINTS.read_text(), "constraints.txt is out of date: run `make lock`"
