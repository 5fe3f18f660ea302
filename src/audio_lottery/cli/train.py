"""``audio-lottery info`` and ``audio-lottery train``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from audio_lottery.cli.common import add_config_args, add_device_arg, device_override
from audio_lottery.config import load_config


def cmd_info(args: argparse.Namespace) -> None:
    from audio_lottery.data.pipeline.tokenizers import CharTokenizer
    from audio_lottery.pruning.mask import select_prunable
    from audio_lottery.recognizer import Recognizer

    cfg = load_config(args.config, args.overrides)
    if cfg.data.tokenizer == "whisper":
        from audio_lottery.data.pipeline.whisper_tokenizer import WhisperTokenizer

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

    cfg = load_config(args.config, args.overrides + device_override(args))
    result = train_model(cfg, Path(args.out), progress=not args.quiet)
    print(json.dumps({k: v for k, v in result.items() if k != "history"}))


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("info", help="parameter counts of a config's model", parents=[common])
    add_config_args(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("train", help="train a recognizer", parents=[common])
    add_config_args(p)
    add_device_arg(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_train)
