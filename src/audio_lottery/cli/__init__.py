"""The one ``audio-lottery`` command and its sub-commands."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from audio_lottery.cli import noise as cli_noise
from audio_lottery.config import ConfigError, load_config
from audio_lottery.layout import BEST, REPORT_HTML, REPORT_MD, EXPORT_CONFIG, EXPORT_WEIGHTS, RUN_PREFIX, TOKENIZER, ExportLayout
from audio_lottery.cli.lm import add_beam_args, add_lm_commands, decoder_from_args


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="YAML preset, e.g. configs/ds2_small.yaml")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key, e.g. --set train.epochs=3 (repeatable)")


def _add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default=None,
                   help="train.device (auto: cuda when available); under torchrun each process takes cuda:LOCAL_RANK")


def _device_override(args: argparse.Namespace) -> list[str]:
    return [f"train.device={args.device}"] if args.device else []


def cmd_data_synth(args: argparse.Namespace) -> None:
    from audio_lottery.data.synth import synthesize_corpus

    summary = synthesize_corpus(Path(args.out), hours=args.hours, seed=args.seed, workers=args.workers)
    print(json.dumps(summary))


def cmd_data_prepare(args: argparse.Namespace) -> None:
    from audio_lottery.data.corpora import prepare_corpus

    root = Path(args.root) if args.root else None
    print(json.dumps(prepare_corpus(args.name, root, Path(args.out))))


def cmd_data_combine(args: argparse.Namespace) -> None:
    from audio_lottery.data.manifest import combine_manifests

    print(json.dumps(combine_manifests(args.manifests, args.out)))


def cmd_data_check(args: argparse.Namespace) -> int:
    from audio_lottery.train.data_check import check_manifest

    cfg = load_config(args.config, args.overrides) if args.config else None
    report = check_manifest(args.manifest, cfg, args.role)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.render())
    return 0 if report.ok else 1


def cmd_info(args: argparse.Namespace) -> None:
    from audio_lottery.data.tokenizers import CharTokenizer
    from audio_lottery.pruning.mask import select_prunable
    from audio_lottery.recognizer import Recognizer

    cfg = load_config(args.config, args.overrides)
    if cfg.data.tokenizer == "whisper":
        from audio_lottery.data.whisper_tokenizer import WhisperTokenizer

        tokenizer = WhisperTokenizer.from_wheel()
    else:
        tokenizer = CharTokenizer() if cfg.data.tokenizer == "char" else _FixedVocab(cfg.data.bpe_vocab_size)
    rec = Recognizer.build(cfg, tokenizer)
    prunable = select_prunable(rec.model, cfg.prune.include, cfg.prune.exclude)
    print(json.dumps({
        "model": cfg.model.name,
        "params": sum(p.numel() for p in rec.model.parameters()),
        "prunable_params": sum(p.numel() for p in prunable.values()),
        "prunable_tensors": len(prunable),
        "feature_dim": rec.featurizer.dim,
        "vocab_size": tokenizer.vocab_size,
    }))


class _FixedVocab:
    """Stand-in tokenizer for ``info`` on BPE configs (only the size matters)."""

    def __init__(self, size: int) -> None:
        self.vocab_size = size


def cmd_train(args: argparse.Namespace) -> None:
    from audio_lottery.train.loop import train_model

    cfg = load_config(args.config, args.overrides + _device_override(args))
    result = train_model(cfg, Path(args.out), progress=not args.quiet)
    print(json.dumps({k: v for k, v in result.items() if k != "history"}))


def cmd_eval(args: argparse.Namespace) -> None:
    from audio_lottery.data.manifest import read_manifest
    from audio_lottery.eval.evaluate import evaluate
    from audio_lottery.pretrained import load_recognizer

    if args.snr or args.run:
        return cli_noise.cmd_eval_noise(args)
    if not args.model or not args.manifest:
        raise ValueError("eval needs --model and --manifest (or --run/--snr, see --help)")
    rec = load_recognizer(args.model)
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
    from audio_lottery.pretrained import load_recognizer

    rec = load_recognizer(args.model)
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


def cmd_lottery(args: argparse.Namespace) -> None:
    from audio_lottery.lottery.runner import run_lottery

    cfg = load_config(args.config, args.overrides + _device_override(args))
    if args.levels is not None:
        cfg.lottery.levels = args.levels
    run_dir = run_lottery(cfg, Path(args.root), progress=not args.quiet)
    print(run_dir)


def cmd_branch(args: argparse.Namespace) -> None:
    from audio_lottery.lottery.branches import run_branch

    levels = [int(x) for x in args.levels.split(",")] if args.levels else None
    out = run_branch(args.name, Path(args.run), levels=levels, overrides=args.overrides,
                     tag=args.tag, progress=not args.quiet, device=args.device)
    print(out)


def cmd_export(args: argparse.Namespace) -> None:
    from audio_lottery.lottery.export import add_onnx, export_ticket

    meta = export_ticket(Path(args.run), args.level, args.format, Path(args.out), branch=args.branch)
    summary = {k: meta[k] for k in ("export_format", "remaining", "params", "sizes")}
    summary["bytes"] = ExportLayout(Path(args.out)).weights.stat().st_size
    if args.onnx:
        summary["onnx"] = add_onnx(Path(args.out))
    print(json.dumps(summary))


def cmd_report(args: argparse.Namespace) -> None:
    from audio_lottery.lottery.report import write_report

    md, html = write_report(Path(args.run))
    print(md)
    print(html)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    parser = argparse.ArgumentParser(prog="audio-lottery", description=__doc__, parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="corpora and manifests").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("synth", help="synthesise the embedded default corpus offline", parents=[common])
    p.add_argument("--out", required=True)
    p.add_argument("--hours", type=float, default=3.5, help="hours of training audio")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=None)
    p.set_defaults(func=cmd_data_synth)
    cli_noise.add_data_parsers(data, common)
    p = data.add_parser("prepare", help="manifests from an official corpus layout", parents=[common])
    p.add_argument("name", choices=["librispeech", "tedlium", "commonvoice", "asterisk"])
    p.add_argument("--root", help="corpus folder (required, except asterisk: default / = the installed "
                   "Debian packages asterisk-core-sounds-en and asterisk-core-sounds-en-g722)")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_data_prepare)
    p = data.add_parser("check", help="validate a manifest: malformed lines, unusable audio and transcripts "
                        "(exit 1 when training would refuse it)", parents=[common])
    p.add_argument("--manifest", required=True)
    p.add_argument("--role", choices=["train", "eval"], default="train", help="check as training or dev/test data")
    p.add_argument("--config", help="preset whose duration range, sample rate and model apply (default: defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_data_check)
    p = data.add_parser("combine", help="one training manifest from several (e.g. data/synth/train.jsonl and "
                        "data/asterisk/adapt.jsonl for configs/whisper_tiny_en.yaml)", parents=[common])
    p.add_argument("manifests", nargs="+", help="source manifests, in order")
    p.add_argument("--out", required=True, help="the combined manifest (audio paths relative to its folder)")
    p.set_defaults(func=cmd_data_combine)

    p = sub.add_parser("info", help="parameter counts of a config's model", parents=[common])
    _add_config_args(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("train", help="train a recognizer", parents=[common])
    _add_config_args(p)
    _add_device_arg(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="WER/CER of a trained model on a manifest (one JSON line)", parents=[common])
    p.add_argument("--model", help=f"OUT/{BEST} of a training run, an export folder or pretrained:whisper-tiny.en")
    p.add_argument("--manifest", help="utterances to score (with --snr: default the model's test manifest)")
    p.add_argument("--limit", type=int, default=0, help="first N utterances only")
    p.add_argument("--hyps", help="write id/ref/hyp JSONL here")
    add_beam_args(p)
    cli_noise.add_eval_args(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("transcribe", help="transcribe audio files (wav, flac, mp3; any sample rate); an unreadable "
                                          "file is named and skipped (exit status 1 when any was)",
                       parents=[common])
    p.add_argument("--model", required=True, help="a trained model, an export folder or pretrained:whisper-tiny.en")
    p.add_argument("audio", nargs="+")
    add_beam_args(p)
    p.set_defaults(func=cmd_transcribe)

    add_lm_commands(sub, common)

    p = sub.add_parser("lottery", help="iterative magnitude pruning with rewinding", parents=[common])
    _add_config_args(p)
    _add_device_arg(p)
    p.add_argument("--levels", type=int, default=None, help="pruning levels after the dense level 0")
    p.add_argument("--root", required=True, help=f"runs are created under ROOT/{RUN_PREFIX}<hash>")
    p.set_defaults(func=cmd_lottery)

    p = sub.add_parser("branch", help="a control experiment over an existing lottery run", parents=[common])
    p.add_argument("name", help="random-reinit, random-prune, retrain, transfer, transfer-finetune, ...")
    p.add_argument("--run", "--run-dir", dest="run", required=True,
                   help="the lottery run folder (under torchrun write --run-dir: torchrun takes --run for its own)")
    p.add_argument("--levels", default=None, help="comma-separated levels (default: all pruned levels)")
    p.add_argument("--tag", default="", help="suffix of the branch folder (for several retrain configs)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    _add_device_arg(p)
    p.set_defaults(func=cmd_branch)

    cli_noise.add_overlap_parser(sub, common)
    p = sub.add_parser("export", help="export a ticket: dense, compact (shrunk / sparse-encoded) or csr",
                       parents=[common])
    p.add_argument("--run", required=True, help="the lottery run folder")
    p.add_argument("--level", type=int, required=True)
    p.add_argument("--branch", default="", help="export a branch's level, e.g. structured-<tag> (default: IMP)")
    p.add_argument("--format", choices=["dense", "compact", "csr"], default="compact")
    p.add_argument("--out", required=True, help=f"folder for {EXPORT_WEIGHTS}, {EXPORT_CONFIG} and {TOKENIZER}/")
    p.add_argument("--onnx", action="store_true", help="also write model.onnx (needs the [onnx] extra) and check it")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("report", help=f"write {REPORT_MD} and {REPORT_HTML} for a run", parents=[common])
    p.add_argument("run")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.verbose = getattr(args, "verbose", False)
    args.quiet = getattr(args, "quiet", False)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if os.environ.get("RANK", "0") != "0":  # torchrun: only rank 0 prints results and progress
        from audio_lottery.train.distributed import quiet_other_ranks

        quiet_other_ranks()
    try:
        rc = args.func(args)
    except (ConfigError, FileNotFoundError, ValueError, RuntimeError) as exc:
        if args.verbose:
            raise
        print(f"audio-lottery: error: {exc}", file=sys.stderr)
        return 2
    return rc or 0

