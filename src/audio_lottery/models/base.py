"""The interface every speech recogniser implements (CTC models).

A model maps padded features ``[B, T, F]`` with lengths ``[B]`` to per-frame
log-probabilities ``[B, T', V]`` with output lengths ``[B]``. Token id 0 is the CTC blank.
Padding never changes the result for the valid frames of an utterance.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audio_lottery.decoding.ctc import greedy_decode
from audio_lottery.models.structure import StructureGroup

BLANK = 0


def lengths_to_mask(lens: Tensor, max_len: int) -> Tensor:
    """Bool mask ``[B, max_len]`` that is True at the valid positions ``t < lens[b]``."""
    return torch.arange(max_len, device=lens.device)[None, :] < lens[:, None]


def ctc_min_frames(targets: Tensor, target_lens: Tensor) -> Tensor:
    """Fewest CTC frames each target needs: its length plus its adjacent repeats."""
    if targets.shape[1] < 2:
        return target_lens.clone()
    repeat = targets[:, 1:] == targets[:, :-1]
    valid = lengths_to_mask(target_lens - 1, targets.shape[1] - 1)
    return target_lens + (repeat & valid).sum(dim=1)


_WEIGHT_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.Embedding)


def default_prunable(model: nn.Module) -> dict[str, nn.Parameter]:
    """Every weight matrix: Conv1d/2d/3d, Linear and Embedding weights, each RNN/LSTM/GRU
    ``weight_ih``/``weight_hh`` (all layers and directions) and the input/output projections of
    ``nn.MultiheadAttention``; never biases or normalisation parameters.
    """
    out: dict[str, nn.Parameter] = {}
    for mod_name, module in model.named_modules():
        prefix = f"{mod_name}." if mod_name else ""
        if isinstance(module, _WEIGHT_MODULES):
            out[prefix + "weight"] = module.weight
        elif isinstance(module, nn.RNNBase):
            out.update({prefix + n: p for n, p in module.named_parameters() if n.startswith(("weight_ih", "weight_hh"))})
        elif isinstance(module, nn.MultiheadAttention):
            for n in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
                if getattr(module, n, None) is not None:
                    out[prefix + n] = getattr(module, n)
    return out


class ASRModel(nn.Module):
    """Abstract CTC speech recogniser.

    Subclasses implement :meth:`forward`, :meth:`output_lengths` (and may narrow :meth:`prunable`) and the
    ``from_config`` classmethod used by the registry. ``last_infeasible`` holds how many
    utterances of the last :meth:`loss` call could not be aligned (too few output frames).
    """

    blank: int = BLANK
    ctc_output: bool = True  # forward() returns CTC log-probabilities (what CTC beam search decodes)

    def __init__(self) -> None:
        super().__init__()
        self.last_infeasible: int = 0

    # ------------------------------------------------------------------ abstract

    def forward(self, feats: Tensor, feat_lens: Tensor) -> tuple[Tensor, Tensor]:
        """Return log-probabilities ``[B, T', V]`` and output lengths ``[B]``."""
        raise NotImplementedError

    def output_lengths(self, feat_lens: Tensor) -> Tensor:
        """Output frame counts for input frame counts (the model's subsampling)."""
        raise NotImplementedError

    def prunable(self) -> dict[str, nn.Parameter]:
        """Tensors pruned by default, keyed by their ``named_parameters()`` names.

        The default is :func:`default_prunable`; a backbone narrows it where the paper does.
        """
        return default_prunable(self)

    def structure_groups(self) -> list[StructureGroup]:
        """Channel structure (hidden units, channels, neurons, heads) for structured pruning and
        shrinking; see :mod:`audio_lottery.pruning.groups`. The default: none."""
        return []

    def shrunk_config(self, sizes: dict[str, int]) -> object:
        """A copy of this backbone's config section with the shrinkable groups resized to ``sizes``
        (group name -> units); used to rebuild a shrunk model. Backbones with shrinkable groups override it."""
        raise NotImplementedError(f"{type(self).__name__} cannot be shrunk")

    # ------------------------------------------------------------------ shared

    def min_output_frames(self, tokens: list[int]) -> int:
        """Fewest output frames that can emit ``tokens`` (CTC: length plus adjacent repeats).

        Training drops utterances with fewer frames than this; a transducer overrides it.
        """
        from audio_lottery.data.pipeline.dataset import ctc_min_frames_of

        return ctc_min_frames_of(tokens)

    def subsampling(self, feat_lens: Tensor) -> Tensor:
        """Alias of :meth:`output_lengths` (the name used in docs/architecture.md)."""
        return self.output_lengths(feat_lens)

    def loss(self, feats: Tensor, feat_lens: Tensor, targets: Tensor, target_lens: Tensor) -> Tensor:
        """Mean over the batch of each utterance's CTC loss divided by its target length.

        Equals ``F.ctc_loss(..., blank=0, reduction="mean", zero_infinity=True)``: an
        infeasible utterance (fewer output frames than target length plus repeats)
        contributes 0 loss and 0 gradient but still counts in the mean; how many there
        were is stored in ``self.last_infeasible``.
        """
        log_probs, out_lens = self(feats, feat_lens)
        per_utt = self.ctc_per_utterance(log_probs, out_lens, targets, target_lens)
        return (per_utt / target_lens.clamp(min=1).to(per_utt.dtype)).mean()

    def ctc_per_utterance(
        self, log_probs: Tensor, out_lens: Tensor, targets: Tensor, target_lens: Tensor
    ) -> Tensor:
        """Per-utterance CTC loss ``[B]`` (infeasible ones zeroed); updates ``last_infeasible``."""
        self.last_infeasible = int((out_lens < ctc_min_frames(targets, target_lens)).sum())
        return F.ctc_loss(
            log_probs.transpose(0, 1).float(),
            targets,
            out_lens,
            target_lens,
            blank=self.blank,
            reduction="none",
            zero_infinity=True,
        )

    @torch.no_grad()
    def decode(self, feats: Tensor, feat_lens: Tensor) -> list[list[int]]:
        """Greedy CTC token ids per utterance (call ``eval()`` first for inference)."""
        log_probs, out_lens = self(feats, feat_lens)
        return greedy_decode(log_probs, out_lens, blank=self.blank)

    def reset_parameters(self) -> None:
        """Re-initialise every parameter (and norm statistics) with the model's initialiser.

        Uses torch's global RNG, so ``torch.manual_seed(s)`` beforehand fixes the result.
        """
        for module in self.modules():
            if module is not self and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def num_params(self, trainable_only: bool = False) -> int:
        """Number of parameters (optionally only those with ``requires_grad``)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)
