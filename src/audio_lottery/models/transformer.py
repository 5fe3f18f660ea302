"""Transformer encoder-decoder trained jointly with a CTC head (hybrid CTC/attention).

Conv2d subsampling (two 3x3 stride-2 convolutions: 4x in time) -> Linear -> sinusoidal
positions -> pre-LayerNorm self-attention encoder -> (a) CTC head (Linear, blank 0) and
(b) an autoregressive pre-LayerNorm attention decoder (causal self-attention, attention over
the encoder output, feed-forward).

Token ids: the CTC head predicts the tokenizer's ``V`` ids (blank 0). The decoder reads and
predicts ``V + 2`` ids: the tokenizer's, ``sos = V`` and ``eos = V + 1`` (see
:mod:`audio_lottery.decoding.beam`). Its log-probabilities of the blank and of ``sos`` are
always -inf (it never emits them); the embedding rows of the blank and ``eos`` (never read)
and the output rows of the blank and ``sos`` (never scored) are kept at zero, so they carry
no weight and are the first pruned.

* ``forward`` returns the CTC log-probabilities and output lengths, so greedy CTC decoding,
  MAC counting and the rest of the toolkit treat the model like any CTC model.
* ``loss = ctc_weight * CTC + (1 - ctc_weight) * CE`` where CTC is the base class's (mean over
  utterances of the loss divided by the target length) and CE the label-smoothed decoder
  cross-entropy under teacher forcing (input ``<sos> y``, target ``y <eos>``), averaged over
  target tokens; smoothing mass is spread over the ``V`` classes the decoder can emit
  (tokens 1..V-1 and ``eos``).
* ``decode`` is batched attention beam search (``beam_size``; 1 = greedy) with CTC prefix
  scoring weighted by ``ctc_prefix_weight``.

Padding never changes an utterance's results: inputs are zeroed beyond their length, the
subsampling convolutions are unpadded in time (a valid output frame only reads valid input
frames) and every attention over encoder frames masks the padded keys.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audio_lottery.config import ConfigError, ModelConfig, hparam
from audio_lottery.decoding.beam import beam_search
from audio_lottery.models.base import ASRModel, default_prunable, lengths_to_mask
from audio_lottery.models.registry import register_model
from audio_lottery.models.structure import Slice, StructureGroup, block_index, ffn_group, head_group, strided_index

IGNORE = -100


@dataclass
class TransformerConfig:
    d_model: int = hparam(256, "attention dimension of the encoder and the decoder", ge=1)
    heads: int = hparam(4, "attention heads (must divide d_model)", ge=1)
    ffn_dim: int = hparam(2048, "hidden size of each position-wise feed-forward block", ge=1)
    ffn_dims: list = hparam([], "feed-forward size of each encoder layer then each decoder layer (a shrunk model); "
                        "empty = ffn_dim for all")
    encoder_layers: int = hparam(12, "self-attention encoder layers", ge=1)
    decoder_layers: int = hparam(6, "attention decoder layers", ge=1)
    subsampling_channels: int = hparam(256, "channels of the two Conv2d (3x3, stride 2) subsampling layers (4x in time)",
                                   ge=1)
    dropout: float = hparam(0.1, "dropout after attention, feed-forward blocks and positional encoding", ge=0, lt=1)
    ctc_weight: float = hparam(0.3, "training loss = ctc_weight * CTC + (1 - ctc_weight) * decoder cross-entropy",
                           ge=0, le=1)
    label_smoothing: float = hparam(0.1, "label smoothing of the decoder cross-entropy (over real tokens and <eos>)",
                                ge=0, lt=1)
    beam_size: int = hparam(4, "beam width of attention decoding in decode() (1 = greedy)", ge=1)
    ctc_prefix_weight: float = hparam(0.3, "decoding score = (1 - w) * attention + w * CTC prefix score "
                                  "(0 = attention only)", ge=0, le=1)


def check_section(t: TransformerConfig) -> None:
    """Config-time checks of ``model.transformer`` (ConfigError naming the keys)."""
    if t.d_model % t.heads != 0:
        raise ConfigError(f"model.transformer.heads ({t.heads}) must divide model.transformer.d_model ({t.d_model})")



def sinusoids(positions: Tensor, dim: int) -> Tensor:
    """Sinusoidal position encodings ``[len(positions), dim]`` (sin on even, cos on odd channels)."""
    inv = torch.exp(torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    angles = positions.to(torch.float32)[:, None] * inv[None, :]
    pe = torch.zeros(positions.shape[0], dim, device=positions.device)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)
    return pe


def _split_heads(x: Tensor, heads: int) -> Tensor:
    """``[B, L, D]`` -> ``[B, H, L, D / H]``."""
    b, n, d = x.shape
    return x.view(b, n, heads, d // heads).transpose(1, 2)


def _merge_heads(x: Tensor) -> Tensor:
    """``[B, H, L, Dh]`` -> ``[B, L, H * Dh]``."""
    b, h, n, dh = x.shape
    return x.transpose(1, 2).reshape(b, n, h * dh)


def key_mask(lens: Tensor, max_len: int) -> Tensor:
    """Attention mask ``[B, 1, 1, max_len]``, True at valid keys (at least one key per row)."""
    return lengths_to_mask(lens.clamp(min=1), max_len)[:, None, None, :]


# --------------------------------------------------------------------------- building blocks


class Conv2dSubsampling(nn.Module):
    """Two Conv2d(3x3, stride 2) + ReLU over (time, freq), then Linear to ``d_model``: 4x in time."""

    def __init__(self, feat_dim: int, channels: int, d_model: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=2)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=2)
        self.freq = ((feat_dim - 1) // 2 - 1) // 2
        if self.freq < 1:
            raise ConfigError(f"model.transformer: {feat_dim} feature bins are too few for the 4x subsampling")
        self.out = nn.Linear(channels * self.freq, d_model)

    @staticmethod
    def out_lens(lens: Tensor) -> Tensor:
        """Valid output frames: each unpadded 3-frame, stride-2 convolution maps T to (T - 1) // 2."""
        return (((lens - 1) // 2 - 1) // 2).clamp(min=0)

    def forward(self, feats: Tensor) -> Tensor:
        """``[B, T, F]`` (zero beyond each length) -> ``[B, T', d_model]``."""
        x = F.relu(self.conv2(F.relu(self.conv1(feats[:, None]))))  # [B, C, T', F']
        b, c, t, f = x.shape
        return self.out(x.transpose(1, 2).reshape(b, t, c * f))


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused q/k/v projection (``in_proj``)."""

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.in_proj = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        q, k, v = self.in_proj(x).chunk(3, dim=-1)
        return _split_heads(q, self.heads), _split_heads(k, self.heads), _split_heads(v, self.heads)

    def attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, causal: bool = False) -> Tensor:
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal)
        return self.out_proj(_merge_heads(out))

    def forward(self, x: Tensor, mask: Tensor | None = None, causal: bool = False) -> Tensor:
        q, k, v = self.qkv(x)
        return self.attend(q, k, v, mask, causal)


class CrossAttention(nn.Module):
    """Multi-head attention from decoder positions to encoder frames (``q_proj``, fused ``kv_proj``)."""

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.kv_proj = nn.Linear(d_model, 2 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def memory(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values ``[B, H, S, Dh]`` of the encoder output (computed once per decode)."""
        k, v = self.kv_proj(memory).chunk(2, dim=-1)
        return _split_heads(k, self.heads), _split_heads(v, self.heads)

    def forward(self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
        """``x``: ``[B, L, D]`` queries; ``k``/``v``: ``[B, H, S, Dh]``; ``mask``: ``[B, 1, 1, S]``."""
        q = _split_heads(self.q_proj(x), self.heads)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.out_proj(_merge_heads(out))


class FeedForward(nn.Module):
    def __init__(self, d_model: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.fc1, self.fc2, self.drop = nn.Linear(d_model, ffn_dim), nn.Linear(ffn_dim, d_model), nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.drop(F.relu(self.fc1(x))))


class EncoderLayer(nn.Module):
    """Pre-LayerNorm: x + SelfAttn(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, d_model: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.self_attn = SelfAttention(d_model, heads, dropout)
        self.ffn = FeedForward(d_model, ffn_dim, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x + self.drop(self.self_attn(self.norm1(x), mask))
        return x + self.drop(self.ffn(self.norm2(x)))


class DecoderLayer(nn.Module):
    """Pre-LayerNorm: causal self-attention, attention over the encoder output, feed-forward."""

    def __init__(self, d_model: int, heads: int, ffn_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.self_attn = SelfAttention(d_model, heads, dropout)
        self.cross_attn = CrossAttention(d_model, heads, dropout)
        self.ffn = FeedForward(d_model, ffn_dim, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mem_k: Tensor, mem_v: Tensor, mem_mask: Tensor) -> Tensor:
        """Teacher forcing over all positions of ``x`` ``[B, U, D]``."""
        x = x + self.drop(self.self_attn(self.norm1(x), causal=True))
        x = x + self.drop(self.cross_attn(self.norm2(x), mem_k, mem_v, mem_mask))
        return x + self.drop(self.ffn(self.norm3(x)))

    def step(self, x: Tensor, cache: tuple[Tensor, Tensor] | None, mem_k: Tensor, mem_v: Tensor,
             mem_mask: Tensor, beam: int) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One new position ``x`` ``[A*K, 1, D]`` given the cached keys/values of the earlier ones.

        ``mem_k``/``mem_v`` are per utterance (``[A, H, S, Dh]``): the ``K`` rows of an utterance
        attend to its frames as ``K`` queries of one attention call.
        """
        sa = self.self_attn
        q, k, v = sa.qkv(self.norm1(x))
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        x = x + sa.attend(q, k, v, None)
        ca = self.cross_attn
        n, _, d = x.shape
        q = _split_heads(ca.q_proj(self.norm2(x)).view(n // beam, beam, d), ca.heads)  # [A, H, K, Dh]
        att = F.scaled_dot_product_attention(q, mem_k, mem_v, attn_mask=mem_mask)
        x = x + ca.out_proj(_merge_heads(att)).reshape(n, 1, d)
        return x + self.ffn(self.norm3(x)), (k, v)


@dataclass
class DecodeState:
    """Incremental decoding state of ``A`` utterances with ``beam`` hypothesis rows each."""

    mem_k: list[Tensor]  # per decoder layer, [A, H, S, Dh]
    mem_v: list[Tensor]
    mem_mask: Tensor  # [A, 1, 1, S]
    cache: list[tuple[Tensor, Tensor] | None]  # per decoder layer, keys/values [A*K, H, L, Dh]
    position: int
    beam: int


class _IncrementalDecoder:
    """Adapter giving :func:`beam_search` the model's ``step``/``reorder``."""

    def __init__(self, model: "TransformerASR") -> None:
        self.model = model

    def step(self, state: DecodeState, tokens: Tensor) -> tuple[Tensor, DecodeState]:
        return self.model.decoder_step(state, tokens)

    def reorder(self, state: DecodeState, rows: Tensor, utts: Tensor) -> DecodeState:
        same = utts.numel() == state.mem_mask.shape[0]
        pick = (lambda t: t) if same else (lambda t: t.index_select(0, utts))
        cache = [None if c is None else (c[0].index_select(0, rows), c[1].index_select(0, rows)) for c in state.cache]
        return DecodeState([pick(k) for k in state.mem_k], [pick(v) for v in state.mem_v], pick(state.mem_mask),
                           cache, state.position, state.beam)


# --------------------------------------------------------------------------- the model


def _check_config(cfg: TransformerConfig) -> None:
    if cfg.d_model < 2 or cfg.d_model % 2 or cfg.heads < 1 or cfg.d_model % cfg.heads:
        raise ConfigError("model.transformer: d_model must be even and divisible by heads")
    if cfg.encoder_layers < 1 or cfg.decoder_layers < 1 or cfg.ffn_dim < 1 or cfg.subsampling_channels < 1:
        raise ConfigError("model.transformer: layers, ffn_dim and subsampling_channels must be positive")
    for key in ("ctc_weight", "ctc_prefix_weight", "dropout"):
        if not 0.0 <= getattr(cfg, key) <= 1.0:
            raise ConfigError(f"model.transformer.{key} must lie in [0, 1]")
    if not 0.0 <= cfg.label_smoothing < 1.0:
        raise ConfigError("model.transformer.label_smoothing must lie in [0, 1)")
    if cfg.beam_size < 1:
        raise ConfigError("model.transformer.beam_size must be >= 1")
    n = cfg.encoder_layers + cfg.decoder_layers
    if cfg.ffn_dims and (len(cfg.ffn_dims) != n or any(not isinstance(f, int) or f < 1 for f in cfg.ffn_dims)):
        raise ConfigError(f"model.transformer.ffn_dims: need {n} positive integers (encoder then decoder layers), "
                          f"got {cfg.ffn_dims!r}")


@register_model("transformer", TransformerConfig, check=check_section)
class TransformerASR(ASRModel):
    """Transformer encoder-decoder with a CTC head; see the module docstring."""

    def __init__(self, cfg: TransformerConfig, vocab_size: int, feat_dim: int) -> None:
        super().__init__()
        _check_config(cfg)
        self.cfg, self.vocab_size, self.feat_dim = cfg, vocab_size, feat_dim
        self.sos, self.eos = vocab_size, vocab_size + 1
        self.decoder_vocab = vocab_size + 2
        d, h, p = cfg.d_model, cfg.heads, cfg.dropout
        ffn = [int(f) for f in cfg.ffn_dims] or [cfg.ffn_dim] * (cfg.encoder_layers + cfg.decoder_layers)
        self.subsample = Conv2dSubsampling(feat_dim, cfg.subsampling_channels, d)
        self.encoder = nn.ModuleList(EncoderLayer(d, h, ffn[i], p) for i in range(cfg.encoder_layers))
        self.encoder_norm = nn.LayerNorm(d)
        self.ctc_head = nn.Linear(d, vocab_size)
        self.embed = nn.Embedding(self.decoder_vocab, d)
        self.decoder = nn.ModuleList(DecoderLayer(d, h, ffn[cfg.encoder_layers + i], p)
                                     for i in range(cfg.decoder_layers))
        self.decoder_norm = nn.LayerNorm(d)
        self.decoder_out = nn.Linear(d, self.decoder_vocab)
        self.drop = nn.Dropout(p)
        never_out = torch.zeros(self.decoder_vocab, dtype=torch.bool)
        never_out[[self.blank, self.sos]] = True
        self.register_buffer("never_emitted", never_out, persistent=False)
        self._zero_unused_rows()

    @classmethod
    def from_config(cls, cfg: ModelConfig, vocab_size: int, feat_dim: int) -> "TransformerASR":
        """Build from ``cfg.transformer`` (registry entry point)."""
        return cls(cfg.transformer, vocab_size, feat_dim)

    # ------------------------------------------------------------------ init

    @torch.no_grad()
    def _zero_unused_rows(self) -> None:
        """Zero the embedding rows never read (blank, eos) and the output rows never scored (blank, sos)."""
        self.embed.weight[[self.blank, self.eos]] = 0.0
        self.decoder_out.weight[[self.blank, self.sos]] = 0.0
        self.decoder_out.bias[[self.blank, self.sos]] = 0.0

    def reset_parameters(self) -> None:
        """torch's default initialisers for every layer, then the unused rows zeroed."""
        super().reset_parameters()
        self._zero_unused_rows()

    def prunable(self) -> dict[str, nn.Parameter]:
        """Every Conv2d, Linear (attention projections, feed-forward, heads) and Embedding weight."""
        return default_prunable(self)

    def structure_groups(self) -> list[StructureGroup]:
        """Subsampling conv channels and attention heads (not shrinkable: the config has one size for
        them) and the feed-forward neurons of every encoder and decoder layer (shrinkable)."""
        d, h = self.cfg.d_model, self.cfg.heads
        dh = d // h
        sub, ch = self.subsample, self.cfg.subsampling_channels
        own = strided_index(ch)
        groups = [
            StructureGroup("subsample.conv1", "conv_channel", ch,
                           [Slice("subsample.conv1.weight", 0, own), Slice("subsample.conv2.weight", 1, own)],
                           [Slice("subsample.conv1.bias", 0, own)], shrinkable=False),
            StructureGroup("subsample.conv2", "conv_channel", ch,
                           [Slice("subsample.conv2.weight", 0, own),
                            Slice("subsample.out.weight", 1, block_index(ch, sub.freq))],
                           [Slice("subsample.conv2.bias", 0, own)], shrinkable=False),
        ]
        for stack in ("encoder", "decoder"):
            for i, layer in enumerate(getattr(self, stack)):
                groups.append(head_group(f"{stack}.{i}.self_attn", h, dh, {"in_proj": [0, d, 2 * d]}, "out_proj"))
                if stack == "decoder":
                    groups.append(head_group(f"{stack}.{i}.cross_attn", h, dh,
                                             {"q_proj": [0], "kv_proj": [0, d]}, "out_proj"))
                groups.append(ffn_group(f"{stack}.{i}.ffn", layer.ffn.fc1))
        return groups

    def shrunk_config(self, sizes: dict[str, int]) -> TransformerConfig:
        """``ffn_dims`` from the feed-forward group sizes (others unchanged)."""
        dims = [sizes.get(f"{stack}.{i}.ffn", layer.ffn.fc1.out_features)
                for stack in ("encoder", "decoder") for i, layer in enumerate(getattr(self, stack))]
        return dataclasses.replace(self.cfg, ffn_dims=dims)

    # ------------------------------------------------------------------ encoder / CTC

    def output_lengths(self, feat_lens: Tensor) -> Tensor:
        """Frames after the 4x subsampling: ``((T - 1) // 2 - 1) // 2``."""
        return Conv2dSubsampling.out_lens(feat_lens)

    def encode(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder output ``[B, T', d_model]`` (after the final LayerNorm) and its lengths."""
        lens = feat_lens.to(feats.device)
        x = feats * lengths_to_mask(lens, feats.shape[1])[:, :, None].to(feats.dtype)
        x = self.subsample(x)
        out_lens = self.output_lengths(lens)
        t = x.shape[1]
        x = x * math.sqrt(self.cfg.d_model) + sinusoids(torch.arange(t, device=x.device), self.cfg.d_model)
        x = self.drop(x)
        mask = key_mask(out_lens, t)
        for layer in self.encoder:
            x = layer(x, mask)
        return self.encoder_norm(x), out_lens

    def forward(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """CTC log-probabilities ``[B, T', V]`` and output lengths ``[B]``."""
        enc, out_lens = self.encode(feats, feat_lens)
        return self.ctc_log_probs(enc), out_lens

    def ctc_log_probs(self, enc: Tensor) -> Tensor:
        """The CTC head's log-probabilities ``[B, T', V]`` of encoder output ``enc``, in float32 also under
        autocast (``train.amp``): the one path of :meth:`forward`, :meth:`loss` and :meth:`decode`."""
        return F.log_softmax(self.ctc_head(enc).float(), dim=-1)

    # ------------------------------------------------------------------ decoder

    def _decoder_output(self, x: Tensor) -> Tensor:
        logits = self.decoder_out(self.decoder_norm(x)).masked_fill(self.never_emitted, float("-inf"))
        return F.log_softmax(logits, dim=-1)

    def decoder_log_probs(self, ys_in: Tensor, memory: Tensor, memory_lens: Tensor) -> Tensor:
        """Teacher-forced decoder log-probabilities ``[B, U, V + 2]`` for inputs ``ys_in`` ``[B, U]``.

        Position ``u`` sees ``ys_in[:, :u + 1]`` only (causal); padded encoder frames are masked.
        """
        u = ys_in.shape[1]
        x = self.embed(ys_in) * math.sqrt(self.cfg.d_model)
        x = self.drop(x + sinusoids(torch.arange(u, device=x.device), self.cfg.d_model))
        mask = key_mask(memory_lens, memory.shape[1])
        for layer in self.decoder:
            k, v = layer.cross_attn.memory(memory)
            x = layer(x, k, v, mask)
        return self._decoder_output(x)

    def teacher_forcing(self, targets: Tensor, target_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Decoder inputs ``<sos> y`` and targets ``y <eos>`` (``IGNORE`` beyond), both ``[B, U + 1]``."""
        b, u = targets.shape
        lens = target_lens.to(targets.device)
        valid = lengths_to_mask(lens, u)
        ys = torch.where(valid, targets, torch.full_like(targets, self.eos))
        ys_in = torch.cat([torch.full((b, 1), self.sos, dtype=ys.dtype, device=ys.device), ys], dim=1)
        ys_out = torch.cat([ys, torch.full((b, 1), IGNORE, dtype=ys.dtype, device=ys.device)], dim=1)
        ys_out[torch.arange(b, device=ys.device), lens] = self.eos
        ys_out = ys_out.masked_fill(~lengths_to_mask(lens + 1, u + 1), IGNORE)
        return ys_in, ys_out

    def attention_loss(self, log_probs: Tensor, ys_out: Tensor) -> Tensor:
        """Label-smoothed cross-entropy averaged over the non-``IGNORE`` target tokens.

        Per token: ``(1 - eps) * -log p(target) + eps * mean_c -log p(c)`` over the ``V`` classes
        the decoder can emit (equal to ``F.cross_entropy(..., label_smoothing=eps)`` over them).
        """
        eps = self.cfg.label_smoothing
        keep = ys_out != IGNORE
        target = ys_out.masked_fill(~keep, self.eos)
        nll = -log_probs.gather(-1, target[..., None]).squeeze(-1)
        smooth = -log_probs[..., ~self.never_emitted].mean(dim=-1)
        per_token = (1.0 - eps) * nll + eps * smooth
        return per_token[keep].mean()

    def loss(self, feats: Tensor, feat_lens: Tensor, targets: Tensor, target_lens: Tensor) -> Tensor:
        """``ctc_weight * CTC + (1 - ctc_weight) * label-smoothed decoder cross-entropy``."""
        w = self.cfg.ctc_weight
        enc, out_lens = self.encode(feats, feat_lens)
        target_lens = target_lens.to(enc.device)
        total = enc.new_zeros(())
        self.last_infeasible = 0
        if w > 0:
            ctc_lp = self.ctc_log_probs(enc)
            per_utt = self.ctc_per_utterance(ctc_lp, out_lens, targets, target_lens)
            total = total + w * (per_utt / target_lens.clamp(min=1).to(per_utt.dtype)).mean()
        if w < 1:
            ys_in, ys_out = self.teacher_forcing(targets.to(enc.device), target_lens)
            total = total + (1.0 - w) * self.attention_loss(self.decoder_log_probs(ys_in, enc, out_lens), ys_out)
        return total

    # ------------------------------------------------------------------ inference

    def init_decode_state(self, memory: Tensor, memory_lens: Tensor, beam: int) -> DecodeState:
        """Incremental decoding state for ``A`` utterances with ``beam`` rows each."""
        ks, vs = zip(*(layer.cross_attn.memory(memory) for layer in self.decoder))
        return DecodeState(list(ks), list(vs), key_mask(memory_lens, memory.shape[1]),
                           [None] * len(self.decoder), 0, beam)

    def decoder_step(self, state: DecodeState, tokens: Tensor) -> tuple[Tensor, DecodeState]:
        """Log-probabilities ``[A*K, V + 2]`` of the next token after feeding ``tokens`` ``[A*K]``."""
        pos = sinusoids(torch.tensor([state.position], device=tokens.device), self.cfg.d_model)
        x = self.embed(tokens)[:, None, :] * math.sqrt(self.cfg.d_model) + pos
        cache = []
        for layer, c, k, v in zip(self.decoder, state.cache, state.mem_k, state.mem_v):
            x, kv = layer.step(x, c, k, v, state.mem_mask, state.beam)
            cache.append(kv)
        out = self._decoder_output(x[:, 0])
        return out, DecodeState(state.mem_k, state.mem_v, state.mem_mask, cache, state.position + 1, state.beam)

    @torch.no_grad()
    def decode(self, feats: Tensor, feat_lens: Tensor, *, beam: int | None = None,
               ctc_weight: float | None = None) -> list[list[int]]:
        """Attention beam search (``beam`` defaults to ``beam_size``, ``ctc_weight`` to
        ``ctc_prefix_weight``); token ids per utterance without sos/eos. Call ``eval()`` first."""
        beam = self.cfg.beam_size if beam is None else int(beam)
        w = self.cfg.ctc_prefix_weight if ctc_weight is None else float(ctc_weight)
        enc, out_lens = self.encode(feats, feat_lens)
        result: list[list[int]] = [[] for _ in range(enc.shape[0])]
        keep = (out_lens > 0).nonzero().squeeze(1)
        if keep.numel() == 0:
            return result
        lens = out_lens[keep]
        enc = enc[keep, : int(lens.max())]
        ctc = self.ctc_log_probs(enc) if w > 0 else None
        state = self.init_decode_state(enc, lens, beam)
        hyps = beam_search(_IncrementalDecoder(self), state, lens, beam, self.sos, self.eos,
                           ctc_log_probs=ctc, ctc_weight=w, blank=self.blank)
        for i, h in zip(keep.tolist(), hyps):
            result[i] = h
        return result
