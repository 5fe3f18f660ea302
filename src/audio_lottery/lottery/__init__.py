"""The lottery engine: IMP levels (runner), control branches, transfer, scoring, tickets, the report.

Importing the package registers every built-in branch (``branches``, ``transfer`` and ``oneshot``) in
:data:`BRANCHES`, the one branch registry."""

from audio_lottery.lottery import branches, oneshot, transfer  # noqa: F401  (they register the built-in branches)
from audio_lottery.lottery.branch_registry import BRANCHES

__all__ = ["BRANCHES"]
