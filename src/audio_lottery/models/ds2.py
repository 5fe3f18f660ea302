"""DeepSpeech2 CNN-LSTM CTC model (deepspeech.pytorch layout), padding-invariant.

Conv2d blocks over (freq, time) -> sequence-wise batch norm + bidirectional LSTMs with
directions summed, each followed by dropout (``rnn_dropout``) -> batch norm + Linear (no bias)
-> log-softmax (layers in :mod:`audio_lottery.models.layers`). Its config section is ``model.ds2``
(:class:`DS2Config`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from audio_lottery.config import ConfigError, ModelConfig, hparam
from audio_lottery.models.base import ASRModel, default_prunable, lengths_to_mask
from audio_lottery.models.layers import BiLSTMLayer, ConvStack, SequenceBatchNorm, check_conv_pairs
from audio_lottery.models.registry import register_model
from audio_lottery.models.structure import Slice, StructureGroup, norm_slices, strided_index


@dataclass
class DS2Config:
    conv_channels: list = hparam([32, 32], "output channels of each Conv2d layer")
    conv_kernels: list = hparam([[41, 11], [21, 11]], "(freq, time) kernel of each Conv2d layer")
    conv_strides: list = hparam([[2, 2], [2, 1]], "(freq, time) stride of each Conv2d layer")
    rnn_layers: int = hparam(5, "number of bidirectional LSTM layers", ge=1)
    rnn_hidden: int = hparam(1024, "LSTM hidden size per direction", ge=1)
    bidirectional: bool = hparam(True, "bidirectional LSTMs (directions are summed)")
    rnn_batch_norm: bool = hparam(True, "sequence-wise batch norm before LSTM layers 2..N and the output")
    rnn_hidden_sizes: list = hparam([], "hidden size of each LSTM layer (a shrunk model); empty = rnn_hidden for all")
    rnn_dropout: float = hparam(0.0, "dropout on every LSTM layer's output (directions summed), in training only",
                                ge=0, lt=1)


# --------------------------------------------------------------------------- the model


def _check_config(cfg: DS2Config) -> None:
    if cfg.rnn_layers < 1 or cfg.rnn_hidden < 1:
        raise ConfigError("model.ds2: rnn_layers and rnn_hidden must be positive")
    sizes = cfg.rnn_hidden_sizes
    if sizes and (len(sizes) != cfg.rnn_layers or any(not isinstance(h, int) or h < 1 for h in sizes)):
        raise ConfigError(f"model.ds2.rnn_hidden_sizes: need {cfg.rnn_layers} positive integers, got {sizes!r}")


def hidden_sizes(cfg: DS2Config) -> list[int]:
    """Hidden size of every LSTM layer."""
    return [int(h) for h in cfg.rnn_hidden_sizes] or [cfg.rnn_hidden] * cfg.rnn_layers


@register_model("ds2", DS2Config, check=lambda c: check_conv_pairs(c, "model.ds2"))
class DeepSpeech2(ASRModel):
    """DeepSpeech2: Conv2d stack, (bi)LSTMs with summed directions, BN + Linear, CTC."""

    def __init__(self, cfg: DS2Config, vocab_size: int, feat_dim: int) -> None:
        super().__init__()
        _check_config(cfg)
        self.cfg, self.vocab_size, self.feat_dim = cfg, vocab_size, feat_dim
        self.conv = ConvStack(cfg.conv_channels, cfg.conv_kernels, cfg.conv_strides, feat_dim, "model.ds2")
        self.rnn_input_dim = self.conv.out_dim
        hidden = hidden_sizes(cfg)
        self.rnns = nn.ModuleList(
            BiLSTMLayer(
                self.rnn_input_dim if i == 0 else hidden[i - 1],
                hidden[i],
                cfg.bidirectional,
                batch_norm=cfg.rnn_batch_norm and i > 0,
            )
            for i in range(cfg.rnn_layers)
        )
        self.rnn_dropout = nn.Dropout(cfg.rnn_dropout)
        self.out_norm = SequenceBatchNorm(hidden[-1]) if cfg.rnn_batch_norm else None
        self.out = nn.Linear(hidden[-1], vocab_size, bias=False)

    @classmethod
    def from_config(cls, cfg: ModelConfig, vocab_size: int, feat_dim: int) -> "DeepSpeech2":
        """Build from ``cfg.ds2`` (registry entry point)."""
        return cls(cfg.ds2, vocab_size, feat_dim)

    def output_lengths(self, feat_lens: Tensor) -> Tensor:
        """Frames after the conv stack's time strides."""
        return self.conv.out_lens(feat_lens)

    def forward(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Log-probabilities ``[B, T', V]`` and output lengths ``[B]``."""
        x, lens = self.conv.encode(feats, feat_lens)
        mask = lengths_to_mask(lens, x.shape[1])
        for layer in self.rnns:
            x = self.rnn_dropout(layer(x, lens, mask))
        if self.out_norm is not None:
            x = self.out_norm(x, mask)
        return F.log_softmax(self.out(x).float(), dim=-1), lens  # fp32 under autocast (train.amp)

    def prunable(self) -> dict[str, nn.Parameter]:
        """Conv weights, every LSTM weight_ih/weight_hh, the output Linear weight (the paper's scope)."""
        return default_prunable(self)

    def structure_groups(self) -> list[StructureGroup]:
        """Conv output channels and LSTM hidden units (all 4 gate rows of both directions, the
        recurrent column, and the input columns of the next layer or the output Linear)."""
        groups = self.conv.channel_groups("conv", [f"{d}.weight_ih_l0" for d in self.rnns[0].directions("rnns.0")])
        for i, layer in enumerate(self.rnns):
            weights, state = layer.unit_slices(f"rnns.{i}")
            own = strided_index(layer.hidden)
            if i + 1 < len(self.rnns):
                w, st = self.rnns[i + 1].input_slices(f"rnns.{i + 1}", own)
                weights, state = weights + w, state + st
            else:
                weights.append(Slice("out.weight", 1, own))
                if self.out_norm is not None:
                    state += norm_slices("out_norm", own)
            groups.append(StructureGroup(f"rnns.{i}", "lstm_unit", layer.hidden, weights, state))
        return groups

    def shrunk_config(self, sizes: dict[str, int]) -> DS2Config:
        """``conv_channels`` and ``rnn_hidden_sizes`` from the group sizes (others unchanged)."""
        channels = [sizes.get(f"conv.{i}", b.conv.out_channels) for i, b in enumerate(self.conv)]
        hidden = [sizes.get(f"rnns.{i}", layer.hidden) for i, layer in enumerate(self.rnns)]
        return dataclasses.replace(self.cfg, conv_channels=channels, rnn_hidden_sizes=hidden)
