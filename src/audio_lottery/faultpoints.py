"""Deterministic crash points for the crash-safety tests.

``faultpoint(name)`` does nothing unless the environment variable
``AUDIO_LOTTERY_KILL_AT`` is set together with the test switch ``AUDIO_LOTTERY_TESTING=1``
(then one dict lookup). Set to ``<point>:<count>`` (several comma-separated), the
``count``-th call of ``faultpoint(point)`` in this process kills it with SIGKILL: no
``finally`` blocks, no flushing, no atexit -- what a power cut, the OOM killer or a
pre-empted cloud machine does. ``AUDIO_LOTTERY_KILL_AT`` without the switch (a variable
left over in a shell, say) is ignored with a :class:`FaultpointIgnoredWarning`, so it can
never kill a real run.

Points placed in the code (see docs/robustness.md):

- ``write:<file name>``  in :mod:`audio_lottery.files`, after a temporary file is fully
  written and synced, before it is renamed over ``<file name>``
- ``train.step``         after every optimizer step (mid-epoch)
- ``runner.pruned``      after a level's mask is written, before rewinding and training
- ``report.write``       after ``report.md`` is written, before ``report.html``
"""

from __future__ import annotations

import os
import signal
import warnings

ENV = "AUDIO_LOTTERY_KILL_AT"
TEST_SWITCH = "AUDIO_LOTTERY_TESTING"  # must be "1" for ENV to arm anything


class FaultpointIgnoredWarning(RuntimeWarning):
    """``AUDIO_LOTTERY_KILL_AT`` is set but the test switch is not: no kill point is armed."""


def parse_spec(spec: str | None) -> dict[str, int]:
    """``"a:2,write:last.json:1"`` -> ``{"a": 2, "write:last.json": 1}`` (count >= 1)."""
    armed: dict[str, int] = {}
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, count = part.rpartition(":")
        if not sep or not name or not count.isdigit() or int(count) < 1:
            raise ValueError(f"{ENV}: {part!r} must look like <point>:<count> with count >= 1")
        armed[name] = int(count)
    return armed


def spec_from_env(environ=os.environ) -> str | None:
    """The kill spec to arm from ``environ``: ``AUDIO_LOTTERY_KILL_AT`` when ``AUDIO_LOTTERY_TESTING=1``
    is set too, else None (warning when the kill variable alone is set)."""
    spec = environ.get(ENV)
    if spec and environ.get(TEST_SWITCH) != "1":
        warnings.warn(f"{ENV}={spec!r} ignored: fault injection needs {TEST_SWITCH}=1 as well (test runs only)",
                      FaultpointIgnoredWarning, stacklevel=2)
        return None
    return spec


def armed_env(spec: str) -> dict[str, str]:
    """The environment variables that arm ``spec`` in a child process (crash tests)."""
    return {ENV: spec, TEST_SWITCH: "1"}


_ARMED: dict[str, int] = parse_spec(spec_from_env())
_SEEN: dict[str, int] = {}


def faultpoint(name: str) -> None:
    """Kill this process (SIGKILL) on the armed call of point ``name``; otherwise a no-op."""
    if not _ARMED or name not in _ARMED:
        return
    _SEEN[name] = _SEEN.get(name, 0) + 1
    if _SEEN[name] == _ARMED[name]:
        os.kill(os.getpid(), signal.SIGKILL)


def arm(spec: str | None) -> None:
    """Re-arm from ``spec`` (tests of this module; subprocesses use the environment variable)."""
    _ARMED.clear()
    _ARMED.update(parse_spec(spec))
    _SEEN.clear()
