"""The lottery engine: IMP levels (runner), control branches, transfer, scoring, tickets, the report.

Importing the package registers the built-in branches (transfer lives in its own module)."""

from audio_lottery.lottery import transfer  # noqa: F401  (registers the transfer branches)
