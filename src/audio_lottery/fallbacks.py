"""Warnings for the places where the toolkit takes a fallback instead of the path that was asked for.

A fallback keeps a user's command working (an export at full size, an LSTM recurrence in eager
Python) but changes what a measurement means, so it is never silent: it warns with a subclass of
:class:`FallbackWarning`, and benchmarks turn these warnings into errors (:func:`fail_on_fallbacks`).
"""

from __future__ import annotations

import warnings


class FallbackWarning(RuntimeWarning):
    """A slower or larger path was taken than the one asked for."""


class UnshrunkExportWarning(FallbackWarning):
    """A ``compact``/``csr`` export kept the model at full size (the backbone cannot be shrunk)."""


class EagerRecurrenceWarning(FallbackWarning):
    """The CSR LSTM's recurrence could not be compiled by TorchScript and runs as eager Python."""


class DiscountFallbackWarning(FallbackWarning):
    """A Kneser-Ney order got the fixed fallback discounts (its count-of-counts estimate none)."""


def fail_on_fallbacks() -> None:
    """Make every :class:`FallbackWarning` raised from here on an error (benchmarks call this first)."""
    warnings.simplefilter("error", FallbackWarning)
