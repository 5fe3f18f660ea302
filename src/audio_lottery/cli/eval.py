"""``audio-lottery eval`` and ``audio-lottery transcribe`` (evaluation under noise: :mod:`.noise`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from audio_lottery.cli import noise as cli_noise
from audio_lottery.cli.lm import add_beam_args, decoder_from_args
from audio_lottery.layout import BEST


def _load(args: argparse.Namespace):
    """The recognizer of ``--model``, int8-quantised with ``--int8``."""
    from audio_lottery.pretrained import load_recognizer
    from audio_lottery.recognizer import quantize_int8

    rec = load_recognizer(args.model)
    return quantize_int8(rec) if args.int8 else rec


def cmd_eval(args: argparse.Namespace) -> None:
    from audio_lottery.data.manifest import read_manifest
    from audio_lottery.eval.evaluate import evaluate

    if args.snr or args.run:
        if args.int8:
            raise ValueError("--int8 applies to eval --model --manifest and transcribe, not to --snr/--run")
        return cli_noise.cmd_eval_noise(args)
    if not args.model or not args.manifest:
        raise ValueError("eval needs --model and --manifest (or --run/--snr, see --help)")
    rec = _load(args)
    records = read_manifest(args.manifest)
    if args.limit:
        records = records[: args.limit]
    scores = evaluate(rec, records, progress=not args.quiet, decoder=decoder_from_args(args, rec.tokenizer))
    hyps = scores.pop("hyps")
    if args.hyps:
        from audio_lottery.files import atomic_write_jsonl

        rows = [{"id": r["id"], "ref": r.get("raw_text", r["text"]), "hyp": hyps[r["id"]]} for r in records]
        atomic_write_jsonl(Path(args.hyps), rows)
    print(json.dumps(scores))


def cmd_transcribe(args: argparse.Namespace) -> int:
    """Print ``PATH<TAB>text`` per file; a file that cannot be read is named on stderr and skipped,
    and the exit status is 1 when any was (2 when nothing could start, e.g. the model did not load)."""
    from audio_lottery.data.audio import AudioError, load_audio

    rec = _load(args)
    sr = rec.cfg.data.features.sample_rate
    decoder = decoder_from_args(args, rec.tokenizer)
    failed = []
    for path in args.audio:
        try:
            wave = load_audio(path, sr)
        except AudioError as exc:
            print(f"audio-lottery: error: {exc}", file=sys.stderr, flush=True)
            failed.append(path)
            continue
        text = rec.transcribe([wave], decoder=decoder)[0]
        print(f"{path}\t{text}", flush=True)
    if failed:
        print(f"audio-lottery: {len(failed)} of {len(args.audio)} files not transcribed: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0


INT8_HELP = "torch dynamic int8 quantisation of the model's Linear layers (CPU inference)"


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("eval", help="WER/CER of a trained model on a manifest (one JSON line)", parents=[common])
    p.add_argument("--model", help=f"OUT/{BEST} of a training run, an export folder or pretrained:whisper-tiny.en")
    p.add_argument("--manifest", help="utterances to score (with --snr: default the model's test manifest)")
    p.add_argument("--limit", type=int, default=0, help="first N utterances only")
    p.add_argument("--hyps", help="write id/ref/hyp JSONL here")
    p.add_argument("--int8", action="store_true", help=INT8_HELP)
    add_beam_args(p)
    cli_noise.add_eval_args(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("transcribe", help="transcribe audio files (wav, flac, mp3; any sample rate); an unreadable "
                                          "file is named and skipped (exit status 1 when any was)",
                       parents=[common])
    p.add_argument("--model", required=True, help="a trained model, an export folder or pretrained:whisper-tiny.en")
    p.add_argument("audio", nargs="+")
    p.add_argument("--int8", action="store_true", help=INT8_HELP)
    add_beam_args(p)
    p.set_defaults(func=cmd_transcribe)
