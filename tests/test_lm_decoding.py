"""CTC beam search with an n-gram LM (flashlight-text): greedy equivalence, LM decisions, lexicon mode, CLI."""

from __future__ import annotations

import json

import pytest
import torch

from audio_lottery.cli import main
from audio_lottery.config import load_config
from audio_lottery.data.manifest import read_manifest
from audio_lottery.data.pipeline.tokenizers import BpeTokenizer, CharTokenizer
from audio_lottery.decoding.ctc import greedy_decode
from audio_lottery.lm.beam import BeamSearchOptions, CTCBeamDecoder
from audio_lottery.lm.build import build_lm
from audio_lottery.recognizer import Recognizer

from conftest import ROOT, TINY_CONFIG, tiny_overrides

CHAR = CharTokenizer()
TEXTS = ["the cat sat", "a cat", "the cat", "cat", "the cot", "a cat sat on the mat", "the dog sat"] * 3


def emissions(frames: list[dict[str, float]], tok=CHAR) -> torch.Tensor:
    """Log-probabilities ``[T, V]``: each frame's listed symbols (``_`` = blank) get their probability,
    the rest of the mass is spread over the other tokens."""
    v = tok.vocab_size
    out = torch.empty(len(frames), v)
    for t, frame in enumerate(frames):
        p = torch.full((v,), max(1e-4, (1 - sum(frame.values())) / v))
        for sym, prob in frame.items():
            p[0 if sym == "_" else tok.encode(sym)[0]] = prob
        out[t] = (p / p.sum()).log()
    return out


def spell(text: str, ambiguous: dict[int, dict[str, float]] | None = None) -> list[dict[str, float]]:
    """Confident frames for ``text`` with a blank after each character; ``ambiguous[i]`` replaces character i."""
    frames = []
    for i, ch in enumerate(text):
        frames += [(ambiguous or {}).get(i, {ch: 0.9}), {"_": 0.9}]
    return frames


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    d = tmp_path_factory.mktemp("lms")
    build_lm(TEXTS, 4, d / "char.arpa", "char")
    build_lm(TEXTS, 2, d / "word.arpa", "word")
    return d


def _greedy_texts(lp: torch.Tensor, lens: torch.Tensor, tok=CHAR) -> list[str]:
    return [" ".join(tok.decode(ids).split()) for ids in greedy_decode(lp, lens)]


@pytest.mark.parametrize("with_lm", [False, True])
def test_beam_one_without_lm_weight_is_greedy(lms, with_lm):
    torch.manual_seed(0)
    lp = (3 * torch.randn(6, 80, CHAR.vocab_size)).log_softmax(-1)
    lens = torch.tensor([80, 79, 50, 12, 1, 0])
    dec = CTCBeamDecoder(CHAR, BeamSearchOptions(beam=1, lm_weight=0.0), lm=lms / "char.arpa" if with_lm else None)
    assert dec(lp, lens) == _greedy_texts(lp, lens)
    assert any(" " in t for t in _greedy_texts(lp, lens))  # the random paths do cross word boundaries


def test_lm_overrules_ambiguous_acoustics(lms):
    frames = spell("the cat", {5: {"e": 0.5, "a": 0.4}})  # acoustics slightly prefer "cet"
    lp = emissions(frames)
    greedy = _greedy_texts(lp[None], torch.tensor([len(frames)]))[0]
    assert greedy == "the cet"
    dec = CTCBeamDecoder(CHAR, BeamSearchOptions(beam=16, lm_weight=1.0), lm=lms / "char.arpa")
    assert dec.decode_one(lp) == "the cat"
    assert dec.with_options(lm_weight=0.0).decode_one(lp) == "the cet"  # shares the LM, other weight


def test_word_score_acts_on_word_boundaries():
    lp = emissions(spell("ab cd", {2: {" ": 0.85, "_": 0.1}}))
    dec = CTCBeamDecoder(CHAR, BeamSearchOptions(beam=8))
    assert dec.decode_one(lp) == "ab cd"
    assert dec.with_options(word_score=-10.0).decode_one(lp) == "abcd"


def test_lexicon_mode(lms, tmp_path):
    lp = emissions(spell("the cet", {5: {"e": 0.5, "a": 0.3, "o": 0.2}}))
    free = CTCBeamDecoder(CHAR, BeamSearchOptions(beam=16, lm_weight=0.0))
    assert free.decode_one(lp) == "the cet"
    lexicon = CTCBeamDecoder(CHAR, BeamSearchOptions(beam=16, lm_weight=0.0), lm=lms / "word.arpa", mode="lexicon")
    assert lexicon.decode_one(lp) == "the cat"  # "cet" is no word: the best-scoring lexicon word wins
    assert lexicon.describe()["lexicon"] == "lm"
    lex_file = tmp_path / "lexicon.txt"
    lex_file.write_text("the t h e\ncot c o t\n")
    only_cot = CTCBeamDecoder(CHAR, BeamSearchOptions(beam=16, lm_weight=0.0), mode="lexicon", lexicon=lex_file)
    assert only_cot.decode_one(lp) == "the cot"
    lex_file.write_text("the t h e\ncot c o T\n")
    with pytest.raises(ValueError, match=r"lexicon.txt:2: .*\['T'\]"):
        CTCBeamDecoder(CHAR, mode="lexicon", lexicon=lex_file)


def test_mismatched_lm_units_are_refused(lms):
    with pytest.raises(ValueError, match="word-level LM cannot drive lexicon-free"):
        CTCBeamDecoder(CHAR, lm=lms / "word.arpa")
    with pytest.raises(ValueError, match="needs a word-level LM"):
        CTCBeamDecoder(CHAR, lm=lms / "char.arpa", mode="lexicon")
    with pytest.raises(FileNotFoundError, match="missing.arpa"):
        CTCBeamDecoder(CHAR, lm=lms / "missing.arpa")


def test_bpe_lexicon_free(tmp_path):
    tok = BpeTokenizer.train(TEXTS, 40, tmp_path / "tok")
    build_lm(TEXTS, 3, tmp_path / "bpe.arpa", "bpe", tok)
    torch.manual_seed(1)
    lp = (3 * torch.randn(3, 40, tok.vocab_size)).log_softmax(-1)
    lens = torch.tensor([40, 33, 5])
    dec = CTCBeamDecoder(tok, BeamSearchOptions(beam=1, lm_weight=0.0), lm=tmp_path / "bpe.arpa")
    assert dec(lp, lens) == _greedy_texts(lp, lens, tok)
    with pytest.raises(ValueError, match="needs a word-boundary token"):
        dec.with_options(word_score=1.0)
    with pytest.raises(ValueError, match="char-level LM cannot drive"):
        build_lm(TEXTS, 3, tmp_path / "char.arpa", "char")
        CTCBeamDecoder(tok, lm=tmp_path / "char.arpa")


def test_transducer_is_refused():
    cfg = load_config(ROOT / "configs" / "rnnt_tiny.yaml")
    rec = Recognizer.build(cfg, CHAR)
    dec = CTCBeamDecoder(CHAR)
    with pytest.raises(ValueError, match="no CTC output"):
        rec.transcribe([torch.zeros(8000).numpy()], decoder=dec)


def test_cli_build_tune_eval_transcribe(tiny_corpus, tmp_path, capsys):
    torch.manual_seed(0)
    rec = Recognizer.build(load_config(TINY_CONFIG, tiny_overrides(tiny_corpus)), CHAR)
    model = rec.save(tmp_path / "model")
    train, dev, test = (str(tiny_corpus / f"{s}.jsonl") for s in ("train", "dev", "test"))

    def run(*argv) -> dict:
        assert main(["-q", *argv]) == 0
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    built = run("lm", "build", "--manifest", train, "--order", "4", "--unit", "char", "--out", str(tmp_path / "c.arpa"))
    assert built["unit"] == "char" and built["sentences"] == len(read_manifest(train)) and built["ngrams"][0] > 20
    run("lm", "build", "--manifest", train, "--order", "2", "--out", str(tmp_path / "w.arpa"))
    tuned = run("lm", "tune", "--model", str(model), "--manifest", dev, "--lm", str(tmp_path / "c.arpa"),
                "--lm-weights", "0,1", "--word-scores", "0,2", "--beam", "4", "--limit", "3",
                "--out", str(tmp_path / "tuned.json"))
    params = json.loads((tmp_path / "tuned.json").read_text())
    assert len(params["tuning"]["grid"]) == 4 and params["beam"] == 4 and params["mode"] == "lexicon-free"
    assert params["lm"] == "c.arpa"  # relative to the JSON file's folder, where --decode-params resolves it
    assert tuned["best_wer"] == min(r["wer"] for r in params["tuning"]["grid"])
    scores = run("eval", "--model", str(model), "--manifest", test, "--limit", "3",
                 "--decode-params", str(tmp_path / "tuned.json"))
    assert scores["utterances"] == 3 and "wer" in scores
    run("eval", "--model", str(model), "--manifest", test, "--limit", "3", "--lm", str(tmp_path / "w.arpa"),
        "--lexicon", "lm", "--beam", "4", "--hyps", str(tmp_path / "hyps.jsonl"))
    words = {w for t in read_manifest(train) for w in t["text"].split()}
    hyps = [json.loads(l)["hyp"] for l in (tmp_path / "hyps.jsonl").read_text().splitlines()]
    assert all(w in words for h in hyps for w in h.split())  # lexicon decoding only emits LM words
    audio = read_manifest(test)[0]["audio"]
    assert main(["-q", "transcribe", "--model", str(model), "--lm", str(tmp_path / "c.arpa"), audio]) == 0
    assert capsys.readouterr().out.startswith(audio)
    assert main(["-q", "eval", "--model", str(model), "--manifest", test, "--lm", str(tmp_path / "w.arpa")]) == 2
    assert "word-level LM cannot drive lexicon-free" in capsys.readouterr().err
