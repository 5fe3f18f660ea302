"""CTranslate2 ``WhisperSpec`` variables <-> :class:`WhisperASR` state dict.

CTranslate2 fuses the encoder's and the decoder's self-attention query/key/value into
``self_attention/linear_0`` ([3D, D], key bias stored as zeros) and the decoder's
cross-attention key/value into ``attention/linear_1`` ([2D, D]); ``attention/linear_0`` is the
cross-attention query and the last ``linear_*`` of each attention its output projection. The
output projection ``decoder/projection/weight`` is an alias of the token embedding (tied).
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

from audio_lottery.models.whisper.ct2 import CT2Model, read_ct2

SPEC = "WhisperSpec"
REVISION = 3
_LN = (("gamma", "weight"), ("beta", "bias"))
_FFN = (("linear_0", "mlp.0"), ("linear_1", "mlp.2"))


def _attention(ct2: str, ours: str, fused: tuple[str, ...], rest: tuple[tuple[str, str], ...]
               ) -> Iterator[tuple[str, str, int, int]]:
    """(ct2 name, our name, part, parts) of one attention: ``fused`` projections share ``linear_0``
    (self) or ``linear_1`` (cross); ``rest`` maps single linears."""
    fused_layer = "linear_0" if len(fused) == 3 else "linear_1"
    for i, proj in enumerate(fused):
        yield f"{ct2}/{fused_layer}/weight", f"{ours}.{proj}.weight", i, len(fused)
        if proj != "key":
            yield f"{ct2}/{fused_layer}/bias", f"{ours}.{proj}.bias", i, len(fused)
    for linear, proj in rest:
        for kind in ("weight", "bias"):
            yield f"{ct2}/{linear}/{kind}", f"{ours}.{proj}.{kind}", 0, 1


def name_map(encoder_layers: int, decoder_layers: int) -> list[tuple[str, str, int, int]]:
    """Every (ct2 name, state-dict name, part, parts) pair; ``part`` of ``parts`` equal row blocks."""
    pairs: list[tuple[str, str, int, int]] = []
    for conv in ("conv1", "conv2"):
        pairs += [(f"encoder/{conv}/{k}", f"encoder.{conv}.{k}", 0, 1) for k in ("weight", "bias")]
    pairs.append(("encoder/position_encodings/encodings", "encoder.positional_embedding", 0, 1))
    pairs += [(f"encoder/layer_norm/{a}", f"encoder.ln_post.{b}", 0, 1) for a, b in _LN]
    pairs += [("decoder/embeddings/weight", "decoder.token_embedding.weight", 0, 1),
              ("decoder/position_encodings/encodings", "decoder.positional_embedding", 0, 1)]
    pairs += [(f"decoder/layer_norm/{a}", f"decoder.ln.{b}", 0, 1) for a, b in _LN]
    for side, layers in (("encoder", encoder_layers), ("decoder", decoder_layers)):
        for i in range(layers):
            ct2, ours = f"{side}/layer_{i}", f"{side}.blocks.{i}"
            pairs += _attention(f"{ct2}/self_attention", f"{ours}.attn", ("query", "key", "value"),
                                (("linear_1", "out"),))
            pairs += [(f"{ct2}/self_attention/layer_norm/{a}", f"{ours}.attn_ln.{b}", 0, 1) for a, b in _LN]
            if side == "decoder":
                pairs += _attention(f"{ct2}/attention", f"{ours}.cross_attn", ("key", "value"),
                                    (("linear_0", "query"), ("linear_2", "out")))
                pairs += [(f"{ct2}/attention/layer_norm/{a}", f"{ours}.cross_attn_ln.{b}", 0, 1) for a, b in _LN]
            pairs += [(f"{ct2}/ffn/{a}/{k}", f"{ours}.{b}.{k}", 0, 1) for a, b in _FFN for k in ("weight", "bias")]
            pairs += [(f"{ct2}/ffn/layer_norm/{a}", f"{ours}.mlp_ln.{b}", 0, 1) for a, b in _LN]
    return pairs


def _part(t: Tensor, part: int, parts: int) -> Tensor:
    rows = t.shape[0] // parts
    return t[part * rows: (part + 1) * rows]


def ct2_to_state_dict(model: CT2Model, encoder_layers: int, decoder_layers: int) -> dict[str, Tensor]:
    """Our float32 state dict from a ``WhisperSpec``; ValueError when the file is not such a Whisper."""
    if model.spec != SPEC or model.revision != REVISION:
        raise ValueError(f"expected a {SPEC} revision {REVISION}, got {model.spec} revision {model.revision}")
    out: dict[str, Tensor] = {}
    try:
        for ct2, ours, part, parts in name_map(encoder_layers, decoder_layers):
            out[ours] = _part(model[ct2], part, parts).to(torch.float32).clone()
        for side, layers in (("encoder", encoder_layers), ("decoder", decoder_layers)):
            for i in range(layers):
                biases = [(f"{side}/layer_{i}/self_attention/linear_0/bias", 1, 3)]
                if side == "decoder":
                    biases.append((f"decoder/layer_{i}/attention/linear_1/bias", 0, 2))
                for name, part, parts in biases:
                    if _part(model[name], part, parts).abs().max() != 0:
                        raise ValueError(f"{name}: the key projection has a bias, which Whisper has not")
    except KeyError as exc:
        raise ValueError(f"not a Whisper model with {encoder_layers}/{decoder_layers} layers: {exc}") from None
    return out


def state_dict_to_ct2(state: dict[str, Tensor], encoder_layers: int, decoder_layers: int, heads: tuple[int, int],
                      dtype: torch.dtype = torch.float16) -> CT2Model:
    """A ``WhisperSpec`` of our state dict (fused projections, zero key biases, tied projection alias)
    with the scalar settings a Whisper decoder spec carries; ``heads`` = (encoder, decoder)."""
    fused: dict[str, list[Tensor | None]] = {}
    for ct2, ours, part, parts in name_map(encoder_layers, decoder_layers):
        fused.setdefault(ct2, [None] * parts)[part] = state[ours]
    variables: dict[str, Tensor] = {}
    for ct2, blocks in fused.items():
        if ct2.endswith("/bias") and len(blocks) > 1:  # the key's place in a fused bias: zeros
            ref = next(b for b in blocks if b is not None)
            blocks = [torch.zeros_like(ref) if b is None else b for b in blocks]
        variables[ct2] = torch.cat([b.detach().cpu() for b in blocks]).to(dtype)
    scalars = {"encoder/num_heads": torch.tensor(heads[0], dtype=torch.int16),
               "decoder/num_heads": torch.tensor(heads[1], dtype=torch.int16),
               "decoder/pre_norm": torch.tensor(1, dtype=torch.int8),
               "decoder/activation": torch.tensor(3, dtype=torch.int8),  # GELU (erf)
               "decoder/alibi": torch.tensor(0, dtype=torch.int8),
               "decoder/scale_embeddings": torch.tensor(0, dtype=torch.int8),
               "decoder/start_from_zero_embedding": torch.tensor(0, dtype=torch.int8),
               "decoder/alignment_layer": torch.tensor(-1, dtype=torch.int16),
               "decoder/alignment_heads": torch.tensor(1, dtype=torch.int16)}
    variables.update(scalars)
    return CT2Model(SPEC, REVISION, dict(sorted(variables.items())),
                    {"decoder/projection/weight": "decoder/embeddings/weight"})


def load_wheel_weights(model: torch.nn.Module) -> None:
    """Load the pip-installed tiny.en ``model.bin`` (sha256 verified) into ``model`` (a WhisperASR)."""
    from audio_lottery.data.whisper_assets import asset

    path = asset("model.bin")
    cfg = model.cfg
    ct2 = read_ct2(path)
    for side, heads in (("encoder", cfg.n_audio_head), ("decoder", cfg.n_text_head)):
        stored = int(ct2[f"{side}/num_heads"])
        if stored != heads:
            raise ValueError(f"{path}: {side} has {stored} heads, model.whisper has {heads}")
    try:
        state = ct2_to_state_dict(ct2, cfg.n_audio_layer, cfg.n_text_layer)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    model.load_state_dict(state, strict=True)
