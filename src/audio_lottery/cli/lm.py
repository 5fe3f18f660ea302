"""Command-line glue for LMs: ``lm build``, ``lm tune`` and the beam-search options of ``eval``/``transcribe``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from audio_lottery.layout import BEST
from audio_lottery.lm.params import read_decode_params, relative_params

BEAM_DEFAULT = 50


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_beam_args(p: argparse.ArgumentParser, grid: bool = False) -> None:
    """CTC beam-search options; without any of them decoding stays greedy."""
    g = p.add_argument_group("CTC beam search with an n-gram LM (flashlight-text); greedy unless one is given")
    g.add_argument("--beam", type=int, default=None, help=f"beam size (default {BEAM_DEFAULT} once beam search is on)")
    g.add_argument("--lm", default=None, help="ARPA LM from `audio-lottery lm build` (char/bpe units for lexicon-free "
                                              "decoding, word units with --lexicon)")
    if not grid:
        g.add_argument("--lm-weight", type=float, default=None, help="weight of log10 p_LM (default 1; tune it)")
        g.add_argument("--word-score", type=float, default=None,
                       help="bonus per word (lexicon) or per space frame (lexicon-free char); default 0")
    g.add_argument("--beam-threshold", type=float, default=None, help="prune hypotheses this far below the best (25)")
    g.add_argument("--beam-size-token", type=int, default=None, help="tokens tried per frame (default: all)")
    g.add_argument("--lexicon", default=None, metavar="FILE|lm",
                   help="lexicon-based decoding: a 'word tok tok ...' file, or `lm` for every word of the word LM")
    if not grid:
        g.add_argument("--decode-params", default=None, metavar="JSON",
                       help="settings written by `audio-lottery lm tune` (explicit options override them; "
                            "its LM and lexicon paths are relative to the JSON file's folder)")


def decoder_from_args(args: argparse.Namespace, tokenizer):
    """A :class:`CTCBeamDecoder` from the options of :func:`add_beam_args`, or None for greedy."""
    from audio_lottery.lm.beam import BeamSearchOptions, CTCBeamDecoder

    settings: dict = {}
    if getattr(args, "decode_params", None):
        settings = read_decode_params(Path(args.decode_params))
    explicit = {k: getattr(args, k, None) for k in ("beam", "lm", "lm_weight", "word_score", "beam_threshold",
                                                    "beam_size_token", "lexicon")}
    settings.update({k: v for k, v in explicit.items() if v is not None})
    if not settings:
        return None
    lexicon = settings.get("lexicon")
    mode = "lexicon" if lexicon else "lexicon-free"
    options = BeamSearchOptions(**{k: settings[k] for k in BeamSearchOptions.field_names() if k in settings}
                                | {"beam": settings.get("beam", BEAM_DEFAULT)})
    return CTCBeamDecoder(tokenizer, options, lm=settings.get("lm"), mode=mode,
                          lexicon=None if lexicon in (None, "lm") else lexicon)


def cmd_lm_build(args: argparse.Namespace) -> None:
    from audio_lottery.lm.build import build_lm, read_texts

    if not args.text and not args.manifest:
        raise ValueError("lm build: give --text FILE or --manifest FILE")
    tokenizer = None
    if args.tokenizer:
        from audio_lottery.data.pipeline.tokenizers import load_tokenizer

        tokenizer = load_tokenizer(Path(args.tokenizer))
    texts = read_texts(args.text or [], args.manifest or [])
    print(json.dumps(build_lm(texts, args.order, Path(args.out), args.unit, tokenizer)))


def cmd_lm_tune(args: argparse.Namespace) -> None:
    from audio_lottery.data.manifest import read_manifest
    from audio_lottery.files import atomic_write_json
    from audio_lottery.lm.tune import tune
    from audio_lottery.recognizer import Recognizer

    rec = Recognizer.load(args.model)
    records = read_manifest(args.manifest)
    if args.limit:
        records = records[: args.limit]
    decoder = decoder_from_args(args, rec.tokenizer)
    if decoder is None:  # only --lm-weights/--word-scores given: plain beam search
        from audio_lottery.lm.beam import BeamSearchOptions, CTCBeamDecoder

        decoder = CTCBeamDecoder(rec.tokenizer, BeamSearchOptions(beam=BEAM_DEFAULT))
    params = tune(rec, records, decoder, args.lm_weights, args.word_scores, progress=not args.quiet)
    params["tuning"]["manifest"] = str(args.manifest)
    params = relative_params(params, Path(args.out))
    atomic_write_json(Path(args.out), params)
    print(json.dumps({"out": args.out, "lm_weight": params["lm_weight"], "word_score": params["word_score"],
                      **{k: v for k, v in params["tuning"].items() if k != "grid"}}))


def add_lm_commands(sub, common: argparse.ArgumentParser) -> None:
    """The ``lm`` command group: ``build`` and ``tune``."""
    lm = sub.add_parser("lm", help="n-gram language models").add_subparsers(dest="lm_command", required=True)
    p = lm.add_parser("build", help="modified Kneser-Ney n-gram LM -> ARPA file", parents=[common])
    p.add_argument("--text", action="append", help="text file, one sentence per line (repeatable)")
    p.add_argument("--manifest", action="append", help="manifest whose transcripts to use (repeatable; "
                                                       "use the TRAIN manifest, never the test one)")
    p.add_argument("--order", type=int, default=3, help="n-gram order (default 3)")
    p.add_argument("--unit", choices=["word", "char", "bpe"], default="word",
                   help="word (lexicon decoding), char (lexicon-free, char model) or bpe (needs --tokenizer)")
    p.add_argument("--tokenizer", default=None, help="RUN/tokenizer of a BPE model (for --unit bpe)")
    p.add_argument("--out", required=True, help="ARPA file to write")
    p.set_defaults(func=cmd_lm_build)

    p = lm.add_parser("tune", help="grid search of --lm-weight x --word-score on a dev manifest", parents=[common])
    p.add_argument("--model", required=True, help=f"OUT/{BEST} of a training run")
    p.add_argument("--manifest", required=True, help="the DEV manifest")
    p.add_argument("--out", required=True, help="JSON with the best settings (for eval --decode-params)")
    p.add_argument("--limit", type=int, default=0, help="first N utterances only")
    p.add_argument("--lm-weights", type=_floats, default=[0.5, 1.0, 1.5, 2.0, 2.5, 3.0],
                   help="comma-separated LM weights to try")
    p.add_argument("--word-scores", type=_floats, default=[-2.0, -1.0, 0.0, 1.0],
                   help="comma-separated word scores to try (a list starting with a minus needs '=': "
                        "--word-scores=-1,0,1)")
    add_beam_args(p, grid=True)
    p.set_defaults(func=cmd_lm_tune)
