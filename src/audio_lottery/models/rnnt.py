"""RNN-Transducer: Conv2d front-end + LSTM encoder, LSTM prediction network, joint network.

- Encoder: DeepSpeech2's padding-safe pieces (:class:`~audio_lottery.models.ds2.ConvStack`,
  :class:`~audio_lottery.models.ds2.BiLSTMLayer`, per-sequence reversal) over ``[B, T, F]``
  features; the two directions of each layer are concatenated (or summed, as in DS2).
- Prediction network: embedding + LSTM over ``[blank] + y_1..y_U`` (blank id 0 doubles as
  the start symbol).
- Joint network: ``Linear(enc) + Linear(pred) -> tanh -> Linear(vocab)``, blank = 0.

Unlike the CTC backbones, :meth:`RNNTransducer.forward` returns the *encoder output*
``[B, T', D]`` (zero beyond each length) and its lengths, not log-probabilities: a transducer's
output distribution also depends on the label history. :meth:`~RNNTransducer.loss` is the
transducer loss (:mod:`audio_lottery.models.transducer_loss`) per target token averaged over
the batch; :meth:`~RNNTransducer.decode` is batched greedy decoding and
:meth:`~RNNTransducer.beam_search` a per-utterance beam search. MAC counts
(:mod:`audio_lottery.pruning.macs`) hook ``forward`` and therefore cover the encoder only.
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from audio_lottery.config import ConfigError, ModelConfig, hparam
from audio_lottery.models.base import ASRModel, default_prunable, lengths_to_mask
from audio_lottery.models.layers import BiLSTMLayer, ConvStack, check_conv_pairs, reverse_index, reverse_padded
from audio_lottery.models.registry import register_model
from audio_lottery.models.structure import Slice, StructureGroup, lstm_unit_slices, strided_index
from audio_lottery.models.transducer_loss import _logaddexp, gather_transitions, rnnt_loss_from_gathered

# --------------------------------------------------------------------------- building blocks


@dataclass
class RNNTConfig:
    conv_channels: list = hparam([32, 32], "output channels of each Conv2d layer of the front-end")
    conv_kernels: list = hparam([[41, 11], [21, 11]], "(freq, time) kernel of each Conv2d layer")
    conv_strides: list = hparam([[2, 2], [2, 2]], "(freq, time) stride of each Conv2d layer (time product = frame reduction)")
    encoder_layers: int = hparam(5, "number of encoder LSTM layers", ge=1)
    encoder_hidden: int = hparam(1024, "encoder LSTM hidden size per direction", ge=1)
    bidirectional: bool = hparam(True, "bidirectional encoder LSTMs (False: unidirectional, streamable)")
    merge_directions: str = hparam("concat", "how the two directions' outputs are combined", ("concat", "sum"))
    encoder_batch_norm: bool = hparam(True, "sequence-wise batch norm before encoder LSTM layers 2..N")
    embed_dim: int = hparam(1024, "prediction network: token embedding size (blank id 0 is the start symbol)", ge=1)
    pred_hidden: int = hparam(1024, "prediction network: LSTM hidden size", ge=1)
    pred_layers: int = hparam(1, "prediction network: LSTM layers", ge=1)
    joint_dim: int = hparam(1024, "joint network: size of the tanh layer between encoder/prediction and vocabulary", ge=1)
    max_symbols_per_frame: int = hparam(5, "decoding: most tokens emitted on one encoder frame (greedy and beam)", ge=1)
    beam_size: int = hparam(4, "default beam of RNNTransducer.beam_search (decode() is greedy)", ge=1)
    joint_chunk: int = hparam(0, "training: joint network + loss gathering recomputed in backward for this many "
                          "utterances at a time (saves the [B, T, U+1, joint_dim] activations; 0 = off)", ge=0)



class ConcatBiLSTMLayer(BiLSTMLayer):
    """:class:`BiLSTMLayer` whose two directions are concatenated (``[B, T, 2 * hidden]``)."""

    def forward(self, x: Tensor, lens: Tensor, mask: Tensor) -> Tensor:
        """``x``: ``[B, T, in_dim]``, ``mask``: ``[B, T]``; returns ``[B, T, 2 * hidden]``."""
        if self.norm is not None:
            x = self.norm(x, mask)
        y, _ = self.fwd(x)
        index = reverse_index(lens, x.shape[1])
        y_rev, _ = self.bwd(reverse_padded(x, index))
        y = torch.cat([y, reverse_padded(y_rev, index)], dim=-1)
        return y * mask[:, :, None].to(y.dtype)


class PredictionNetwork(nn.Module):
    """Embedding + LSTM over the label history; the blank id is the start symbol."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden: int, layers: int, blank: int) -> None:
        super().__init__()
        self.blank = blank
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, hidden, num_layers=layers, batch_first=True)

    def forward(self, targets: Tensor) -> Tensor:
        """``targets`` ``[B, U]`` -> outputs ``[B, U+1, hidden]`` after ``blank, y_1, ..., y_U``."""
        start = torch.full((targets.shape[0], 1), self.blank, dtype=torch.long, device=targets.device)
        y, _ = self.lstm(self.embed(torch.cat([start, targets.long()], dim=1)))
        return y

    def step(self, tokens: Tensor, state: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One step: ``tokens`` ``[N]`` -> output ``[N, hidden]`` and the new ``(h, c)`` ``[layers, N, hidden]``."""
        y, state = self.lstm(self.embed(tokens.long())[:, None, :], state)
        return y[:, 0], state


class JointNetwork(nn.Module):
    """``out(tanh(enc(e) + pred(g)))``; the two projections are applied before broadcasting."""

    def __init__(self, enc_dim: int, pred_dim: int, joint_dim: int, vocab_size: int) -> None:
        super().__init__()
        self.enc = nn.Linear(enc_dim, joint_dim)
        self.pred = nn.Linear(pred_dim, joint_dim)
        self.out = nn.Linear(joint_dim, vocab_size)

    def forward(self, enc_proj: Tensor, pred_proj: Tensor) -> Tensor:
        """Projected encoder ``[..., J]`` and prediction ``[..., J]`` (broadcastable) -> logits ``[..., V]``."""
        return self.out(torch.tanh(enc_proj + pred_proj))


def _check_config(cfg: RNNTConfig) -> None:
    for key in ("encoder_layers", "encoder_hidden", "embed_dim", "pred_hidden", "pred_layers", "joint_dim",
                "max_symbols_per_frame", "beam_size"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"model.rnnt.{key} must be positive")
    if cfg.joint_chunk < 0:
        raise ConfigError("model.rnnt.joint_chunk must be >= 0")


# --------------------------------------------------------------------------- the model


@register_model("rnnt", RNNTConfig, check=lambda c: check_conv_pairs(c, "model.rnnt"))
class RNNTransducer(ASRModel):
    """RNN-Transducer with a CNN-LSTM encoder, an LSTM prediction network and a joint network."""

    ctc_output = False  # forward() returns encoder features

    def __init__(self, cfg: RNNTConfig, vocab_size: int, feat_dim: int) -> None:
        super().__init__()
        _check_config(cfg)
        self.cfg, self.vocab_size, self.feat_dim = cfg, vocab_size, feat_dim
        self.conv = ConvStack(cfg.conv_channels, cfg.conv_kernels, cfg.conv_strides, feat_dim, "model.rnnt")
        concat = cfg.bidirectional and cfg.merge_directions == "concat"
        layer_cls = ConcatBiLSTMLayer if concat else BiLSTMLayer
        self.enc_dim = cfg.encoder_hidden * (2 if concat else 1)
        self.encoder = nn.ModuleList(
            layer_cls(self.conv.out_dim if i == 0 else self.enc_dim, cfg.encoder_hidden, cfg.bidirectional,
                      batch_norm=cfg.encoder_batch_norm and i > 0)
            for i in range(cfg.encoder_layers)
        )
        self.prediction = PredictionNetwork(vocab_size, cfg.embed_dim, cfg.pred_hidden, cfg.pred_layers, self.blank)
        self.joint = JointNetwork(self.enc_dim, cfg.pred_hidden, cfg.joint_dim, vocab_size)

    @classmethod
    def from_config(cls, cfg: ModelConfig, vocab_size: int, feat_dim: int) -> "RNNTransducer":
        """Build from ``cfg.rnnt`` (registry entry point)."""
        return cls(cfg.rnnt, vocab_size, feat_dim)

    # ------------------------------------------------------------------ encoder

    def output_lengths(self, feat_lens: Tensor) -> Tensor:
        """Encoder frames after the conv stack's time strides."""
        return self.conv.out_lens(feat_lens)

    def min_output_frames(self, tokens: list[int]) -> int:
        """A transducer can emit any number of tokens on one frame: one frame always suffices."""
        return 1

    def forward(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Encoder output ``[B, T', enc_dim]`` (zero beyond each length) and lengths ``[B]``.

        Not log-probabilities: use :meth:`loss`, :meth:`decode` or :meth:`beam_search`.
        """
        x, lens = self.conv.encode(feats, feat_lens)
        mask = lengths_to_mask(lens, x.shape[1])
        for layer in self.encoder:
            x = layer(x, lens, mask)
        return x, lens

    # ------------------------------------------------------------------ training

    def _transitions(self, enc_proj: Tensor, pred_proj: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.joint(enc_proj[:, :, None, :], pred_proj[:, None, :, :])  # [B, T, U+1, V]
        return gather_transitions(F.log_softmax(logits.float(), dim=-1), targets, self.blank)

    def transitions(self, enc: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Blank ``[B, T, U+1]`` and next-token ``[B, T, U]`` log-probs of the lattice of ``targets`` ``[B, U]``.

        With ``joint_chunk > 0`` (and gradients on) the joint network runs on that many
        utterances at a time under activation checkpointing, so the ``[B, T, U+1, joint_dim]``
        activations are recomputed in backward instead of stored.
        """
        enc_proj = self.joint.enc(enc)
        pred_proj = self.joint.pred(self.prediction(targets))
        chunk = self.cfg.joint_chunk
        if chunk <= 0 or not torch.is_grad_enabled():
            return self._transitions(enc_proj, pred_proj, targets)
        parts = [
            checkpoint(self._transitions, enc_proj[i : i + chunk], pred_proj[i : i + chunk], targets[i : i + chunk],
                       use_reentrant=False)
            for i in range(0, enc.shape[0], chunk)
        ]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def loss(self, feats: Tensor, feat_lens: Tensor, targets: Tensor, target_lens: Tensor) -> Tensor:
        """Mean over the batch of each utterance's transducer loss divided by its target length.

        An utterance with no encoder frame contributes 0 (counted in ``last_infeasible``).
        """
        enc, lens = self(feats, feat_lens)
        target_lens = target_lens.to(enc.device)
        u_max = int(target_lens.max()) if target_lens.numel() else 0
        targets = targets[:, :u_max].to(enc.device)
        blank_lp, label_lp = self.transitions(enc, targets)
        per_utt = rnnt_loss_from_gathered(blank_lp, label_lp, lens, target_lens, reduction="none")
        self.last_infeasible = int((lens < 1).sum())
        return (per_utt / target_lens.clamp(min=1).to(per_utt.dtype)).mean()

    # ------------------------------------------------------------------ decoding

    @torch.no_grad()
    def decode(self, feats: Tensor, feat_lens: Tensor) -> list[list[int]]:
        """Batched greedy decoding: on each frame emit the argmax token until it is blank or
        ``max_symbols_per_frame`` tokens were emitted there. Call ``eval()`` first."""
        enc, lens = self(feats, feat_lens)
        bsz, t_max, _ = enc.shape
        enc_proj = self.joint.enc(enc)
        tokens = torch.full((bsz,), self.blank, dtype=torch.long, device=enc.device)
        g, (h, c) = self.prediction.step(tokens, None)
        pred_proj = self.joint.pred(g)
        hyps: list[list[int]] = [[] for _ in range(bsz)]
        for t in range(t_max):
            active = t < lens
            for _ in range(self.cfg.max_symbols_per_frame):
                if not bool(active.any()):
                    break
                best = self.joint(enc_proj[:, t], pred_proj).argmax(dim=-1)
                emit = active & (best != self.blank)
                idx = emit.nonzero().squeeze(1)
                if idx.numel() == 0:
                    break
                for i, k in zip(idx.tolist(), best[idx].tolist()):
                    hyps[i].append(k)
                g_new, (h_new, c_new) = self.prediction.step(best[idx], (h[:, idx], c[:, idx]))
                pred_proj[idx] = self.joint.pred(g_new)
                h[:, idx], c[:, idx] = h_new, c_new
                active = emit
        return hyps

    @torch.no_grad()
    def beam_search(self, feats: Tensor, feat_lens: Tensor, beam: int | None = None) -> list[list[int]]:
        """Beam search per utterance (the encoder runs batched); ``beam`` defaults to ``cfg.beam_size``.

        Frame-synchronous: on each frame the hypotheses either end the frame with blank or
        extend by a token (at most ``max_symbols_per_frame`` per frame); after every expansion
        only the ``beam`` best of all (ended and still-extending) hypotheses survive, and
        ended hypotheses with the same tokens are merged (log-sum of their scores). With
        ``beam=1`` this is exactly the greedy search of :meth:`decode`.
        """
        beam = int(beam or self.cfg.beam_size)
        if beam < 1:
            raise ValueError("beam must be >= 1")
        enc, lens = self(feats, feat_lens)
        enc_proj = self.joint.enc(enc)
        return [self._beam_one(enc_proj[b, : int(lens[b])], beam) for b in range(enc.shape[0])]

    def _beam_one(self, enc_proj: Tensor, beam: int) -> list[int]:
        """Beam search over one utterance's projected encoder frames ``[T, J]``."""
        start = torch.full((1,), self.blank, dtype=torch.long, device=enc_proj.device)
        g, state = self.prediction.step(start, None)
        # tokens -> (projected prediction output [J], (h, c) each [layers, hidden])
        cache: dict[tuple, tuple[Tensor, tuple[Tensor, Tensor]]] = {(): (self.joint.pred(g)[0], (state[0][:, 0], state[1][:, 0]))}
        hyps: dict[tuple, float] = {(): 0.0}
        for t in range(enc_proj.shape[0]):
            ended: dict[tuple, float] = {}
            active = hyps
            for step in range(self.cfg.max_symbols_per_frame + 1):
                if not active:
                    break
                keys = list(active)
                if step == self.cfg.max_symbols_per_frame:  # symbol cap: move on without a blank
                    for k in keys:
                        ended[k] = _logaddexp(ended.get(k, -math.inf), active[k])
                    break
                pred_proj = torch.stack([cache[k][0] for k in keys])
                lp = F.log_softmax(self.joint(enc_proj[t], pred_proj).double(), dim=-1)
                scores = lp + torch.tensor([active[k] for k in keys], dtype=torch.float64, device=lp.device)[:, None]
                for k, s in zip(keys, scores[:, self.blank].tolist()):
                    ended[k] = _logaddexp(ended.get(k, -math.inf), s)
                scores[:, self.blank] = -math.inf
                top_s, top_i = scores.flatten().topk(min(beam, scores.numel()))
                pool = [(s, 0, k, None) for k, s in ended.items()]
                pool += [(s, 1, keys[i // self.vocab_size], i % self.vocab_size)
                         for s, i in zip(top_s.tolist(), top_i.tolist()) if s > -math.inf]
                pool.sort(key=lambda e: (-e[0], e[1]))
                kept = pool[:beam]
                ended = {k: s for s, kind, k, _ in kept if kind == 0}
                grow = [(s, k, tok) for s, kind, k, tok in kept if kind == 1]
                active = {}
                if grow:
                    toks = torch.tensor([tok for _, _, tok in grow], dtype=torch.long, device=enc_proj.device)
                    h = torch.stack([cache[k][1][0] for _, k, _ in grow], dim=1)
                    c = torch.stack([cache[k][1][1] for _, k, _ in grow], dim=1)
                    g, (h, c) = self.prediction.step(toks, (h, c))
                    proj = self.joint.pred(g)
                    for j, (s, k, tok) in enumerate(grow):
                        new = k + (tok,)
                        cache[new] = (proj[j], (h[:, j], c[:, j]))
                        active[new] = s
            hyps = ended
            cache = {k: cache[k] for k in hyps}
        return list(max(hyps.items(), key=lambda kv: kv[1])[0]) if hyps else []

    # ------------------------------------------------------------------ pruning

    def prunable(self) -> dict[str, nn.Parameter]:
        """Conv weights, every encoder and prediction LSTM weight_ih/weight_hh, the embedding and
        every joint-network Linear weight (:func:`default_prunable`)."""
        return default_prunable(self)

    def structure_groups(self) -> list[StructureGroup]:
        """Conv channels, encoder LSTM units (one group per direction when directions are concatenated:
        unit ``j`` of the backward LSTM feeds column ``H + j``), prediction LSTM units and joint units.
        Mask-only: the RNN-T config has one size per stack, so none of them shrink."""
        first = [f"{d}.weight_ih_l0" for d in self.encoder[0].directions("encoder.0")]
        groups = self.conv.channel_groups("conv", first)
        concat = self.cfg.bidirectional and self.cfg.merge_directions == "concat"
        for i, layer in enumerate(self.encoder):
            names = layer.directions(f"encoder.{i}")
            parts = [(n, k * layer.hidden) for k, n in enumerate(names)] if concat else [(None, 0)]
            for direction, offset in parts:
                weights, state = [], []
                for name in ([direction] if direction else names):
                    w, st = lstm_unit_slices(name, layer.hidden)
                    weights, state = weights + w, state + st
                own = strided_index(layer.hidden, offset=offset)
                if i + 1 < len(self.encoder):
                    w, st = self.encoder[i + 1].input_slices(f"encoder.{i + 1}", own)
                    weights, state = weights + w, state + st
                else:
                    weights.append(Slice("joint.enc.weight", 1, own))
                groups.append(StructureGroup(direction or f"encoder.{i}", "lstm_unit", layer.hidden, weights, state))
        lstm, hidden = self.prediction.lstm, self.cfg.pred_hidden
        for k in range(lstm.num_layers):
            weights, state = lstm_unit_slices("prediction.lstm", hidden, suffix=f"_l{k}")
            consumer = f"prediction.lstm.weight_ih_l{k + 1}" if k + 1 < lstm.num_layers else "joint.pred.weight"
            weights.append(Slice(consumer, 1, strided_index(hidden)))
            groups.append(StructureGroup(f"prediction.lstm.l{k}", "lstm_unit", hidden, weights, state))
        own = strided_index(self.cfg.joint_dim)
        groups.append(StructureGroup(
            "joint", "joint_unit", self.cfg.joint_dim,
            [Slice("joint.enc.weight", 0, own), Slice("joint.pred.weight", 0, own), Slice("joint.out.weight", 1, own)],
            [Slice("joint.enc.bias", 0, own), Slice("joint.pred.bias", 0, own)]))
        for g in groups:
            g.shrinkable = False
        return groups
