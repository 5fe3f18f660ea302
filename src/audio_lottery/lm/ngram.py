"""Interpolated modified Kneser-Ney n-gram models (Chen & Goodman 1998), written as ARPA files.

Estimation (the same model KenLM's ``lmplz`` builds):

- Every sentence is ``<s> w1 ... wk </s>``; ``<s>`` is only ever a context.
- Adjusted counts ``a``: the raw count for the highest order and for n-grams starting with
  ``<s>``; otherwise the continuation count, the number of distinct words seen before it.
- Per order, three discounts from the count-of-counts ``t1..t4`` of the adjusted counts:
  ``Y = t1 / (t1 + 2 t2)``, ``D_k = k - (k + 1) Y t_{k+1} / t_k`` for ``k = 1, 2, 3`` (``D3`` is
  used for every count >= 3). Tiny corpora give degenerate count-of-counts; then the order
  falls back to ``(0.5, 1.0, 1.5)`` (lmplz's ``--discount_fallback``) and says so with a
  :class:`~audio_lottery.fallbacks.DiscountFallbackWarning` (benchmarks fail on it unless they report it).
- ``p(w | h) = (a(hw) - D(a(hw))) / A(h) + gamma(h) p(w | h')`` with ``A(h) = sum_w a(hw)``,
  ``gamma(h) = (D1 N1(h) + D2 N2(h) + D3 N3+(h)) / A(h)``, ``N_k(h)`` the number of words with
  ``a(hw) = k`` and ``h'`` the context without its first word. Unigrams interpolate with the
  uniform distribution over the predicted vocabulary (every word, ``</s>`` and ``<unk>``).
- The ARPA file holds ``log10 p`` of every seen n-gram and ``log10 gamma(h)`` as the backoff
  of every context, so an ARPA reader's backoff rule reproduces the interpolated model exactly
  and the probabilities of every context sum to 1.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from audio_lottery.fallbacks import DiscountFallbackWarning
from audio_lottery.files import atomic_write_text
from audio_lottery.lm.units import BOS, EOS, SPECIAL, UNK

Ngram = tuple[str, ...]
LOG10_ZERO = -99.0  # the ARPA convention for log10 p(<s>)
SPECIAL_SET = frozenset(SPECIAL)


class ArpaError(ValueError):
    """An ARPA file is malformed; the message names the file and the line."""


@dataclass(frozen=True)
class Discounts:
    """Modified Kneser-Ney discounts of one order: ``d1`` for count 1, ``d2`` for 2, ``d3`` for 3+."""

    d1: float
    d2: float
    d3: float

    def of(self, count: int) -> float:
        """The discount subtracted from an adjusted count."""
        return (0.0, self.d1, self.d2)[count] if count < 3 else self.d3


FALLBACK_DISCOUNTS = Discounts(0.5, 1.0, 1.5)


def estimate_discounts(count_of_counts: Sequence[int]) -> Discounts | None:
    """Chen & Goodman's discounts from ``t1..t4`` (numbers of n-grams with adjusted count 1..4).

    Returns None when they cannot be estimated (a zero ``t_k``, or a discount outside ``[0, k]``).
    """
    t = list(count_of_counts)[:4]
    if len(t) < 4 or min(t) <= 0:
        return None
    y = t[0] / (t[0] + 2 * t[1])
    d = [k - (k + 1) * y * t[k] / t[k - 1] for k in (1, 2, 3)]
    if any(not 0.0 <= dk <= k for k, dk in zip((1, 2, 3), d)):
        return None
    return Discounts(*d)


def count_ngrams(sentences: Iterable[Sequence[str]], order: int) -> list[Counter]:
    """Raw counts of every n-gram, n = 1..order (list index n - 1), over ``<s> ... </s>``.

    Empty sentences are skipped; a sentence holding ``<s>``, ``</s>`` or ``<unk>`` is refused.
    """
    counts = [Counter() for _ in range(order)]
    for tokens in sentences:
        if not tokens:
            continue
        reserved = SPECIAL_SET.intersection(tokens)
        if reserved:
            raise ValueError(f"the text holds the reserved token(s) {sorted(reserved)}: {' '.join(tokens)[:80]!r}")
        seq = (BOS, *tokens, EOS)
        for n in range(1, order + 1):
            c = counts[n - 1]
            for i in range(len(seq) - n + 1):
                c[seq[i : i + n]] += 1
    return counts


def adjusted_counts(raw: list[Counter]) -> list[dict[Ngram, int]]:
    """Kneser-Ney adjusted counts: raw counts for the highest order and n-grams starting with
    ``<s>``, otherwise the number of distinct left extensions."""
    adj: list[dict[Ngram, int]] = [dict() for _ in raw]
    adj[-1] = dict(raw[-1])
    for n in range(len(raw) - 1, 0, -1):  # fill order n from the raw counts of order n + 1
        left = Counter(g[1:] for g in raw[n])
        adj[n - 1] = {g: (c if g[0] == BOS else left[g]) for g, c in raw[n - 1].items()}
    return adj


def count_of_counts(adj: dict[Ngram, int], k_max: int = 4) -> list[int]:
    """``t1..t_kmax``: how many n-grams (``<s>`` alone excluded) have adjusted count k."""
    t = [0] * k_max
    for g, a in adj.items():
        if g != (BOS,) and 1 <= a <= k_max:
            t[a - 1] += 1
    return t


@dataclass
class NgramLM:
    """A backoff n-gram model: ``logprob[n-1][ngram]`` and ``backoff[n-1][context]`` in log10."""

    order: int
    logprob: list[dict[Ngram, float]]
    backoff: list[dict[Ngram, float]]
    discounts: list[Discounts] = field(default_factory=list)
    fallback_orders: list[int] = field(default_factory=list)

    @property
    def vocabulary(self) -> list[str]:
        """Every unigram, ``<s>``, ``</s>`` and ``<unk>`` included (sorted)."""
        return sorted(g[0] for g in self.logprob[0])

    def counts(self) -> list[int]:
        """Number of n-grams per order (the ARPA header)."""
        return [len(p) for p in self.logprob]

    def log10_prob(self, word: str, context: Sequence[str] = ()) -> float:
        """``log10 p(word | context)`` by the ARPA backoff rule; unknown words are ``<unk>``.

        ``context`` is the history, oldest first (start a sentence with ``<s>``).
        """
        known = self.logprob[0]
        word = word if (word,) in known else UNK
        ctx = tuple(w if (w,) in known else UNK for w in context)
        ctx = ctx[max(0, len(ctx) - self.order + 1) :] if self.order > 1 else ()
        penalty = 0.0
        for start in range(len(ctx) + 1):
            hist = ctx[start:]
            p = self.logprob[len(hist)].get(hist + (word,))
            if p is not None:
                return penalty + p
            penalty += self.backoff[len(hist) - 1].get(hist, 0.0)
        raise AssertionError("unreachable: every word has a unigram")

    def sentence_log10_prob(self, tokens: Sequence[str]) -> float:
        """``log10 p(tokens </s> | <s>)``."""
        hist = [BOS]
        total = 0.0
        for w in [*tokens, EOS]:
            total += self.log10_prob(w, hist)
            hist.append(w)
        return total

    def perplexity(self, sentences: Iterable[Sequence[str]]) -> dict:
        """Per-token perplexity (``</s>`` counted), token count and out-of-vocabulary rate."""
        known = self.logprob[0]
        total, tokens, oov = 0.0, 0, 0
        for s in sentences:
            if not s:
                continue
            total += self.sentence_log10_prob(s)
            tokens += len(s) + 1
            oov += sum((w,) not in known for w in s)
        if tokens == 0:
            raise ValueError("perplexity of no text")
        return {"perplexity": 10 ** (-total / tokens), "tokens": tokens, "oov_rate": oov / tokens}

    # ------------------------------------------------------------------ ARPA

    def to_arpa(self) -> str:
        """The model as ARPA text (n-grams sorted; log10 values with 7 decimals)."""
        lines = ["", "\\data\\"] + [f"ngram {n}={c}" for n, c in enumerate(self.counts(), 1)]
        for n in range(1, self.order + 1):
            lines += ["", f"\\{n}-grams:"]
            bo = self.backoff[n - 1] if n < self.order else {}
            for g in sorted(self.logprob[n - 1]):
                row = f"{self.logprob[n - 1][g]:.7f}\t{' '.join(g)}"
                if g in bo:
                    row += f"\t{bo[g]:.7f}"
                lines.append(row)
        lines += ["", "\\end\\", ""]
        return "\n".join(lines)

    def write_arpa(self, path: str | Path) -> Path:
        """Atomically write the ARPA file; returns its path."""
        path = Path(path)
        atomic_write_text(path, self.to_arpa())
        return path


def build_kneser_ney(
    sentences: Iterable[Sequence[str]],
    order: int,
    discounts: Sequence[Discounts] | None = None,
) -> NgramLM:
    """Estimate an interpolated modified Kneser-Ney model of ``order`` from token sentences.

    ``discounts`` (one per order, unigrams first) overrides the estimates from count-of-counts.
    """
    if order < 1:
        raise ValueError(f"n-gram order must be at least 1, got {order}")
    raw = count_ngrams(sentences, order)
    if not raw[0]:
        raise ValueError("cannot build a language model from no text")
    adj = adjusted_counts(raw)
    lm = NgramLM(order, [dict() for _ in range(order)], [dict() for _ in range(order)])
    for n in range(1, order + 1):
        if discounts is not None:
            disc = discounts[n - 1]
        else:
            disc = estimate_discounts(count_of_counts(adj[n - 1]))
            if disc is None:
                disc = FALLBACK_DISCOUNTS
                lm.fallback_orders.append(n)
                warnings.warn(f"order {n}: count-of-counts {count_of_counts(adj[n - 1])} give no valid discounts; "
                              f"using the fallback {FALLBACK_DISCOUNTS}", DiscountFallbackWarning, stacklevel=2)
        lm.discounts.append(disc)
        _add_order(lm, n, adj[n - 1], disc)
    return lm


def _add_order(lm: NgramLM, n: int, adj: dict[Ngram, int], disc: Discounts) -> None:
    """Interpolated log10 probabilities of order ``n`` and the backoffs of their contexts."""
    if n == 1:
        adj = {g: a for g, a in adj.items() if g != (BOS,)}
    total: dict[Ngram, float] = defaultdict(float)
    mass: dict[Ngram, float] = defaultdict(float)  # discounted mass D1 N1 + D2 N2 + D3 N3+ per context
    for g, a in adj.items():
        total[g[:-1]] += a
        mass[g[:-1]] += disc.of(a)
    gamma = {h: mass[h] / total[h] for h in total}
    probs = lm.logprob[n - 1]
    if n == 1:
        vocab = set(adj) | {(UNK,)}
        uniform = 1.0 / len(vocab)
        for g in vocab:
            a = adj.get(g, 0)
            probs[g] = math.log10((a - disc.of(a)) / total[()] + gamma[()] * uniform)
        probs[(BOS,)] = LOG10_ZERO
    else:
        lower = lm.logprob[n - 2]
        for g, a in adj.items():
            h = g[:-1]
            probs[g] = math.log10((a - disc.of(a)) / total[h] + gamma[h] * 10 ** lower[g[1:]])
        lm.backoff[n - 2] = {h: math.log10(gm) for h, gm in gamma.items()}


# ---------------------------------------------------------------------- reading ARPA files


def _arpa_lines(path: Path) -> Iterable[tuple[int, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ARPA file not found")
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if line:
                yield lineno, line


def read_arpa(path: str | Path, max_order: int | None = None) -> NgramLM:
    """Parse an ARPA file (n-grams up to ``max_order`` only, if given); checks the header counts."""
    path = Path(path)
    header: dict[int, int] = {}
    section = None  # "data" or the current order
    logprob: dict[int, dict[Ngram, float]] = {}
    backoff: dict[int, dict[Ngram, float]] = {}
    for lineno, line in _arpa_lines(path):
        if line == "\\data\\":
            section = "data"
        elif line == "\\end\\":
            section = "end"
            break
        elif line.startswith("\\") and line.endswith("-grams:"):
            try:
                section = int(line[1:-7])
            except ValueError:
                raise ArpaError(f"{path}:{lineno}: bad section header {line!r}") from None
            if section not in header:
                raise ArpaError(f"{path}:{lineno}: section {line} not announced in \\data\\")
            if max_order is not None and section > max_order:
                break
            logprob[section], backoff[section] = {}, {}
        elif section == "data":
            if not line.startswith("ngram ") or "=" not in line:
                raise ArpaError(f"{path}:{lineno}: expected 'ngram N=COUNT', got {line!r}")
            n, c = line[6:].split("=", 1)
            header[int(n)] = int(c)
        elif isinstance(section, int):
            parts = line.split()
            words, rest = parts[1 : 1 + section], parts[1 + section :]
            if len(words) != section or len(rest) > 1:
                raise ArpaError(f"{path}:{lineno}: expected a {section}-gram line, got {line!r}")
            try:
                logprob[section][tuple(words)] = float(parts[0])
                if rest:
                    backoff[section][tuple(words)] = float(rest[0])
            except ValueError:
                raise ArpaError(f"{path}:{lineno}: bad number in {line!r}") from None
        else:
            raise ArpaError(f"{path}:{lineno}: text outside any section: {line!r}")
    if section != "end" and max_order is None:
        raise ArpaError(f"{path}: no \\end\\ marker (truncated file?)")
    if not header:
        raise ArpaError(f"{path}: no \\data\\ header")
    order = max(header) if max_order is None else min(max(header), max_order)
    for n in range(1, order + 1):
        if len(logprob.get(n, {})) != header.get(n):
            raise ArpaError(f"{path}: header says {header.get(n)} {n}-grams, found {len(logprob.get(n, {}))}")
    return NgramLM(order, [logprob[n] for n in range(1, order + 1)], [backoff[n] for n in range(1, order + 1)])


def arpa_vocabulary(path: str | Path) -> list[str]:
    """The unigrams of an ARPA file (reads only its header and unigram section)."""
    return read_arpa(path, max_order=1).vocabulary
