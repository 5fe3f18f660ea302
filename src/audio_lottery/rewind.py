"""Rewind points: '0' (theta_0, the paper's default), '<k>it' (after k steps), '<k>ep' (after k epochs)."""

from __future__ import annotations

import re

_PATTERN = re.compile(r"^\s*(\d+)\s*(it|ep)?\s*$")


def parse_rewind(text: str) -> tuple[int, str]:
    """'500it' -> (500, 'it'); '1ep' -> (1, 'ep'); '0' -> (0, 'it')."""
    m = _PATTERN.match(str(text))
    if not m:
        raise ValueError(f"prune.rewind: {text!r} is not '0', '<k>it' or '<k>ep'")
    count, unit = int(m.group(1)), m.group(2) or "it"
    if count > 0 and m.group(2) is None:
        raise ValueError(f"prune.rewind: {text!r} needs a unit, e.g. '{count}it' or '{count}ep'")
    return count, unit


def rewind_to_steps(text: str, steps_per_epoch: int) -> int:
    """Optimizer steps at which the rewind point is taken."""
    count, unit = parse_rewind(text)
    return count * steps_per_epoch if unit == "ep" else count


def describe_rewind(text: str) -> str:
    """The rewind point in words: '0' -> 'theta_0 (the paper's)', '1ep' -> 'the weights after 1 epoch
    (late rewinding)', '500it' -> 'the weights after 500 steps (late rewinding)'."""
    count, unit = parse_rewind(text)
    if count == 0:
        return "theta_0 (the paper's)"
    noun = {"ep": "epoch", "it": "step"}[unit] + ("" if count == 1 else "s")
    return f"the weights after {count} {noun} (late rewinding)"
