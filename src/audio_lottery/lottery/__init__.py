"""The lottery engine: IMP levels (runner), control branches, transfer, scoring, tickets, the report.

Importing the package registers the built-in branches (transfer and one-shot magnitude live in their own modules)."""

from audio_lottery.lottery import oneshot, transfer  # noqa: F401  (register their branches)
