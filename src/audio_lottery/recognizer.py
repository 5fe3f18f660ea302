"""A recognizer bundle: config + features + tokenizer + model, saved and loaded together.

On disk a trained model is ``<dir>/<name>.safetensors`` with ``<dir>/config.yaml`` and
``<dir>/tokenizer/`` beside it; loading never executes code from the files.
"""

from __future__ import annotations

import copy

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from audio_lottery.config import Config, load_config, save_config
from audio_lottery.data.pipeline.dataset import pad_features
from audio_lottery.data.pipeline.features import build_featurizer
from audio_lottery.data.pipeline.tokenizers import load_tokenizer, tokenizer_saved
from audio_lottery.layout import BEST, ExportLayout, TrainLayout
from audio_lottery.models.registry import build_model
from audio_lottery.files import load_tensors, save_tensors
from audio_lottery.pruning.bundle_check import model_shapes
from audio_lottery.pruning.export import is_export_dir, read_export


@dataclass
class Recognizer:
    cfg: Config
    featurizer: torch.nn.Module  # FeatureExtractor or WhisperLogMel (build_featurizer)
    tokenizer: object
    model: torch.nn.Module

    @classmethod
    def build(cls, cfg: Config, tokenizer) -> "Recognizer":
        """Fresh model for ``cfg`` (weights from torch's current RNG state)."""
        featurizer = build_featurizer(cfg.data.features)
        model = build_model(cfg.model, tokenizer.vocab_size, featurizer.dim)
        return cls(cfg, featurizer, tokenizer, model)

    def save(self, out_dir: Path, weights_name: str = BEST) -> Path:
        """Write weights, config and tokenizer into ``out_dir``; returns the weights path."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(self.cfg, TrainLayout(out_dir).config)
        tok_dir = TrainLayout(out_dir).tokenizer
        if not tokenizer_saved(tok_dir):
            self.tokenizer.save(tok_dir)
        path = out_dir / weights_name
        save_model(path, self.model)
        return path

    @classmethod
    def load(cls, model_path: str | Path) -> "Recognizer":
        """Load ``.../<name>.safetensors`` with the config and tokenizer beside it, or an exported
        model folder (``audio-lottery export``: ``model.safetensors`` + ``config.json``)."""
        model_path = Path(model_path)
        for folder in (model_path, model_path.parent):
            if is_export_dir(folder) and (folder == model_path or model_path == ExportLayout(folder).weights):
                return load_exported(folder)
        if model_path.is_dir():
            model_path = TrainLayout(model_path).best
        cfg_path = TrainLayout(model_path.parent).config
        if not cfg_path.is_file():
            raise FileNotFoundError(f"{model_path}: no {cfg_path.name} beside the model")
        cfg = load_config(cfg_path)
        tokenizer = load_tokenizer(TrainLayout(model_path.parent).tokenizer)
        model_shapes(cfg, tokenizer.vocab_size, cfg_path)  # an untrusted config: bound the model before building it
        rec = cls.build(cfg, tokenizer)
        load_model_weights(model_path, rec.model)
        rec.model.eval()
        return rec

    def features(self, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded features [B, T, F] and lengths for a list of 1-D waveforms."""
        return pad_features([self.featurizer(torch.as_tensor(w, dtype=torch.float32)) for w in waves])

    @torch.no_grad()
    def transcribe(self, waves: list[np.ndarray], decoder: Callable | None = None) -> list[str]:
        """Transcripts of 1-D waveforms at the configured sample rate.

        The model's own decoding (greedy) by default; ``decoder(log_probs, lens) -> texts`` (e.g. a
        :class:`~audio_lottery.lm.beam.CTCBeamDecoder`) decodes the CTC outputs instead.
        """
        self.model.eval()
        feats, lens = self.features(waves)
        device = next(self.model.parameters()).device
        if device.type != "cpu":
            feats, lens = feats.to(device), lens.to(device)
        if decoder is None:
            return [self.tokenizer.decode(ids) for ids in self.model.decode(feats, lens)]
        return decoder(*self.ctc_log_probs(feats, lens))

    @torch.no_grad()
    def ctc_log_probs(self, feats: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CTC log-probabilities ``[B, T', V]`` and lengths; a clear error for a non-CTC model."""
        if not getattr(self.model, "ctc_output", True):
            raise ValueError(f"model.name={self.cfg.model.name} has no CTC output: beam search with an LM decodes "
                             "CTC models only (ds2, conformer, transformer's CTC head); use greedy decoding")
        self.model.eval()
        return self.model(feats, lens)


def load_exported(path: Path, csr_policy=None, runtime: str | None = None) -> Recognizer:
    """The :class:`Recognizer` stored in an export folder (eval mode); ``runtime`` (``dense`` or ``csr``)
    overrides the one the folder names."""
    from audio_lottery.pruning.csr import to_csr

    path = Path(path)
    meta, cfg, tokenizer, state = read_export(path)
    rec = Recognizer.build(cfg, tokenizer)
    missing, unexpected = rec.model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{ExportLayout(path).weights}: weights do not fit the model (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]})")
    rec.model.eval()
    if (runtime or meta.get("runtime")) == "csr":
        to_csr(rec.model, csr_policy)
    return rec


def quantize_int8(rec: Recognizer) -> Recognizer:
    """``rec`` for CPU inference with torch dynamic int8 quantisation of every ``nn.Linear`` (weights int8,
    activations quantised per batch at run time); ``rec`` itself is unchanged. A model with a tied output
    projection offers ``untie_output()`` on a submodule (Whisper's decoder): it becomes a Linear first, so
    it is quantised too. Convolutions, embeddings and norms stay float32. Inference only."""
    from torch.ao.quantization import quantize_dynamic

    model = copy.deepcopy(rec.model).eval()
    for module in model.modules():
        if callable(getattr(module, "untie_output", None)):
            module.untie_output()
    model = quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    return Recognizer(rec.cfg, rec.featurizer, rec.tokenizer, model.eval())


def save_model(path: Path, model: torch.nn.Module, metadata: dict[str, str] | None = None) -> None:
    """Save model weights and buffers as safetensors (atomic)."""
    save_tensors(Path(path), model.state_dict(), metadata)


def load_model_weights(path: Path, model: torch.nn.Module) -> None:
    """Load safetensors weights into ``model``; a mismatch names the file and the keys."""
    state = load_tensors(Path(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]})")
