"""Modified Kneser-Ney n-gram estimation, ARPA writing/reading, and KenLM loading the files."""

from __future__ import annotations

import math
import random
import warnings

import pytest

from audio_lottery.fallbacks import DiscountFallbackWarning, fail_on_fallbacks
from audio_lottery.lm.build import build_lm, read_texts
from audio_lottery.lm.ngram import (
    FALLBACK_DISCOUNTS, ArpaError, Discounts, build_kneser_ney, count_of_counts, adjusted_counts, count_ngrams,
    estimate_discounts, read_arpa,
)
from audio_lottery.lm.units import infer_unit, text_units

CORPUS = [s.split() for s in ["a b", "b a b", "a b c"]]


def _kenlm(path, words):
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    d = Dictionary(words)
    return KenLM(str(path), d), d


def test_trigram_probabilities_by_hand(tmp_path):
    """Order 3 on "<s> a b </s>", "<s> b a b </s>", "<s> a b c </s>" with D = 0.5, 1, 1.5 at every order.

    Adjusted unigram counts (distinct left neighbours): a 2, b 2, c 1, </s> 2 (total 7); the
    unigram gamma is (1 + 1 + 1 + 0.5) / 7 = 1/2 spread over |V| = 5 (a b c </s> <unk>).
    Bigram contexts (adjusted counts): <s> -> a 2, b 1 (raw: starts with <s>); a -> b 2;
    b -> </s> 1, a 1, c 1; c -> </s> 1. Trigram contexts (raw): (<s> a) -> b 2; (a b) -> </s> 2, c 1.
    """
    d = Discounts(0.5, 1.0, 1.5)
    lm = build_kneser_ney(CORPUS, 3, discounts=[d, d, d])
    uni = {w: 1 / 7 + 0.5 / 5 for w in ("a", "b", "</s>")} | {"c": 0.5 / 7 + 0.1, "<unk>": 0.1}
    p_b_a = (2 - 1) / 2 + 0.5 * uni["b"]  # context a: total 2, gamma = D2 * 1 / 2
    p_a_b = 0.5 / 3 + 0.5 * uni["a"]  # context b: total 3, gamma = 3 * D1 / 3
    p_c_b = 0.5 / 3 + 0.5 * uni["c"]
    p_end_b = 0.5 / 3 + 0.5 * uni["</s>"]
    expected = {
        ("a", ()): uni["a"],
        ("<unk>", ()): 0.1,
        ("a", ("<s>",)): (2 - 1) / 3 + 0.5 * uni["a"],  # context <s>: total 3, gamma (1 + 0.5) / 3
        ("b", ("<s>", "a")): (2 - 1) / 2 + 0.5 * p_b_a,  # raw trigram count 2
        ("c", ("a", "b")): 0.5 / 3 + 0.5 * p_c_b,  # context (a b): total 3, gamma (1 + 0.5) / 3
        ("</s>", ("a", "b")): (2 - 1) / 3 + 0.5 * p_end_b,
        ("a", ("a", "b")): 0.5 * p_a_b,  # unseen trigram: backoff gamma(a b) = 1/2
        ("c", ("<s>", "a")): 0.5 * 0.5 * uni["c"],  # unseen trigram and bigram
        ("zebra", ("a", "b")): 0.5 * 0.5 * 0.1,  # unknown word -> <unk>
        ("a", ("c", "zebra")): uni["a"],  # context (<unk>) was never seen: no backoff penalty
        ("c", ("<s>", "b", "a", "b")): 0.5 / 3 + 0.5 * p_c_b,  # only the last two words count
    }
    for (w, ctx), p in expected.items():
        assert lm.log10_prob(w, ctx) == pytest.approx(math.log10(p), abs=1e-9), (w, ctx)
    assert lm.logprob[0][("<s>",)] == -99.0
    assert lm.backoff[1][("a", "b")] == pytest.approx(math.log10(0.5))

    path = lm.write_arpa(tmp_path / "lm.arpa")
    words = ["<unk>", "a", "b", "c", "</s>"]
    kenlm, d_ = _kenlm(path, words)
    state = kenlm.start(False)  # <s>
    state, s_a = kenlm.score(state, d_.get_index("a"))
    state, s_b = kenlm.score(state, d_.get_index("b"))
    _, s_c = kenlm.score(state, d_.get_index("c"))
    _, s_end = kenlm.finish(state)
    assert s_a == pytest.approx(math.log10(expected[("a", ("<s>",))]), abs=1e-6)
    assert s_b == pytest.approx(math.log10(expected[("b", ("<s>", "a"))]), abs=1e-6)
    assert s_c == pytest.approx(math.log10(expected[("c", ("a", "b"))]), abs=1e-6)
    assert s_end == pytest.approx(math.log10(expected[("</s>", ("a", "b"))]), abs=1e-6)


def test_adjusted_counts_are_continuation_counts():
    adj = adjusted_counts(count_ngrams(CORPUS, 3))
    assert adj[0] == {("<s>",): 3, ("a",): 2, ("b",): 2, ("c",): 1, ("</s>",): 2}
    assert adj[1][("<s>", "a")] == 2 and adj[1][("a", "b")] == 2 and adj[1][("b", "</s>")] == 1
    assert adj[2][("a", "b", "</s>")] == 2  # highest order: raw counts
    assert count_of_counts(adj[0]) == [1, 3, 0, 0]  # <s> alone is not counted


def test_discounts_from_count_of_counts():
    d = estimate_discounts([10, 4, 2, 1])
    y = 10 / (10 + 2 * 4)
    assert d.d1 == pytest.approx(1 - 2 * y * 4 / 10)
    assert d.d2 == pytest.approx(2 - 3 * y * 2 / 4)
    assert d.d3 == pytest.approx(3 - 4 * y * 1 / 2)
    assert estimate_discounts([3, 1, 0, 0]) is None  # a zero count-of-count: no estimate
    assert estimate_discounts([10, 1, 5, 1]) is None  # D2 = 2 - 3 * (10/12) * 5 / 1 < 0


def test_estimated_discounts_used_for_unigrams():
    """Order 1, one sentence "a a a a b b b c c d": counts a 4, b 3, c 2, d 1, </s> 1, so t = 2, 1, 1, 1,
    Y = 1/2, D1 = 1 - 2 Y 1/2 = 0.5, D2 = 2 - 3 Y = 0.5, D3+ = 3 - 4 Y = 1; total 11, |V| = 6."""
    lm = build_kneser_ney(["a a a a b b b c c d".split()], 1)
    assert lm.fallback_orders == []
    assert (lm.discounts[0].d1, lm.discounts[0].d2, lm.discounts[0].d3) == pytest.approx((0.5, 0.5, 1.0))
    gamma = (0.5 * 2 + 0.5 * 1 + 1.0 * 2) / 11
    assert lm.log10_prob("a") == pytest.approx(math.log10(3 / 11 + gamma / 6))
    assert lm.log10_prob("c") == pytest.approx(math.log10(1.5 / 11 + gamma / 6))
    assert lm.log10_prob("</s>") == pytest.approx(math.log10(0.5 / 11 + gamma / 6))
    assert lm.log10_prob("q") == pytest.approx(math.log10(gamma / 6))


def test_tiny_corpus_falls_back_and_says_so():
    with pytest.warns(DiscountFallbackWarning, match=r"order 1: .*fallback") as caught:
        lm = build_kneser_ney(CORPUS, 2)
    assert lm.fallback_orders == [1, 2] and lm.discounts == [FALLBACK_DISCOUNTS] * 2
    assert [str(w.message).split(":")[0] for w in caught] == ["order 1", "order 2"]


def test_benchmarks_fail_on_the_discount_fallback():
    with warnings.catch_warnings():
        fail_on_fallbacks()
        with pytest.raises(DiscountFallbackWarning):
            build_kneser_ney(CORPUS, 2)


def _random_corpus(seed: int, n: int = 300) -> list[str]:
    rng = random.Random(seed)
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "to", "it's"]
    return [" ".join(rng.choice(words[: rng.randint(3, 10)]) for _ in range(rng.randint(1, 9))) for _ in range(n)]


@pytest.mark.parametrize("unit,order", [("word", 3), ("word", 4), ("char", 5)])
def test_arpa_is_well_formed_and_context_sums_are_one(tmp_path, unit, order):
    texts = _random_corpus(order)
    summary = build_lm(texts, order, tmp_path / "lm.arpa", unit)
    # small vocabularies leave the low orders without count-of-counts (fallback), the high ones estimate
    assert order not in summary["fallback_orders"]
    text = (tmp_path / "lm.arpa").read_text()
    header = {int(l[6:].split("=")[0]): int(l.split("=")[1]) for l in text.splitlines() if l.startswith("ngram ")}
    sections = text.split("\\end\\")[0].split("-grams:")[1:]
    found = [sum(1 for l in s.splitlines() if l.strip() and not l.startswith("\\")) for s in sections]
    assert header == {n: c for n, c in enumerate(found, 1)} == dict(enumerate(summary["ngrams"], 1))
    lm = read_arpa(tmp_path / "lm.arpa")
    assert lm.order == order and infer_unit(lm.vocabulary) == unit

    vocab = [w for w in lm.vocabulary if w != "<s>"]
    kenlm, d = _kenlm(tmp_path / "lm.arpa", vocab)
    rng = random.Random(1)
    sentences = [text_units(t, unit) for t in texts[:6]] + [["the", "zebra"], ["mat", "mat", "mat"]]
    for tokens in sentences:
        state, hist = kenlm.start(False), ["<s>"]
        for w in tokens[: rng.randint(0, len(tokens))]:
            state, _ = kenlm.score(state, d.get_index(w) if w in vocab else d.get_index("<unk>"))
            hist.append(w)
        total = 0.0
        for w in vocab:
            score = kenlm.finish(state)[1] if w == "</s>" else kenlm.score(state, d.get_index(w))[1]
            assert score == pytest.approx(lm.log10_prob(w, hist), abs=1e-5)
            total += 10**score
        assert total == pytest.approx(1.0, abs=1e-6), hist


def test_read_texts_and_errors(tmp_path):
    f = tmp_path / "t.txt"
    f.write_text("Hello, World!\n\n  It's 2 o'clock  \n")
    assert read_texts([f]) == ["hello world", "it's two o'clock"]
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_texts([tmp_path / "nope.txt"])
    (tmp_path / "e.txt").write_text("\n ... \n")
    with pytest.raises(ValueError, match="no text"):
        read_texts([tmp_path / "e.txt"])
    with pytest.raises(ValueError, match="reserved"):
        build_kneser_ney([["a", "<unk>"]], 2)
    with pytest.raises(ValueError, match="BPE tokenizer"):
        build_lm(["a b"], 2, tmp_path / "x.arpa", "bpe")
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0\ta\n-1.0\tb\n\\end\\\n")
    with pytest.raises(ArpaError, match="header says 3"):
        read_arpa(bad)


def test_char_units_use_a_word_boundary_token():
    assert text_units("hi you", "char") == ["h", "i", "|", "y", "o", "u"]
    assert infer_unit(["<s>", "</s>", "<unk>", "a", "|", "'"]) == "char"
    assert infer_unit(["<s>", "a", "cat"]) == "word"
    assert infer_unit(["<s>", "\u2581the", "s"]) == "bpe"
