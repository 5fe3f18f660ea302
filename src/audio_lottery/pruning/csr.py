"""A CSR execution path for inference: sparse matmuls where a weight is sparse enough to pay.

:func:`to_csr` swaps, in place, every ``nn.Linear`` whose weight density is at most
``CSRPolicy.linear_max_density`` for a :class:`CSRLinear`, and every single-layer, one-way,
batch-first ``nn.LSTM`` (DeepSpeech2's and the RNN-T encoder's per-direction LSTMs) whose
``weight_ih`` is sparse enough and whose hidden size is at least ``lstm_min_hidden`` for a
:class:`CSRLSTM`. The CSR LSTM computes the input projection of all frames as one sparse
matmul, then runs the recurrence in a TorchScript loop (the recurrent weight sparse too if it is
sparse enough). Torch's own LSTM (oneDNN) runs input projection and recurrence in one fused C++
kernel, which a per-step loop only beats when the recurrent matmul is large and sparse, hence
the hidden-size floor (measured in ``bench/bench_inference.py``).

Inference only (no autograd through CSR weights); the converted model is not meant to be saved
(export a ``csr`` bundle instead, see :mod:`audio_lottery.pruning.export`).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from audio_lottery.fallbacks import EagerRecurrenceWarning



@dataclass
class CSRPolicy:
    """When a layer runs sparse (densities are fractions of non-zero weights)."""

    linear_max_density: float = 0.2
    lstm_max_density: float = 0.2
    lstm_min_hidden: int = 512


def density(t: Tensor) -> float:
    """Fraction of non-zero entries."""
    return float((t != 0).sum()) / t.numel() if t.numel() else 1.0


def csr_tensor(t: Tensor) -> Tensor:
    """``t`` (2-D) as a CSR tensor, without torch's "beta" warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return t.detach().to_sparse_csr()


CHUNK = 128  # dense columns per sparse matmul: MKL's CSR x dense product is several times faster per
#             column on narrow, cache-resident operands than on one wide one (measured: 1.5x on a whole DS2 layer)


def sparse_linear(weight: Tensor, x: Tensor) -> Tensor:
    """``x @ weight.T`` for a CSR ``weight`` ``[out, in]`` and dense ``x`` ``[..., in]``."""
    rows = x.reshape(-1, x.shape[-1])
    parts = [torch.sparse.mm(weight, rows[i:i + CHUNK].t().contiguous()).t() for i in range(0, rows.shape[0], CHUNK)]
    out = torch.cat(parts) if parts else rows.new_zeros(0, weight.shape[0])
    return out.reshape(*x.shape[:-1], weight.shape[0])


class CSRLinear(nn.Module):
    """``nn.Linear`` with its weight in CSR form."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight_csr = csr_tensor(linear.weight)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def forward(self, x: Tensor) -> Tensor:
        y = sparse_linear(self.weight_csr, x)
        return y if self.bias is None else y + self.bias


def _recurrence(gates: Tensor, w_hh: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """LSTM steps over precomputed input gates ``[T, 4H, B]`` with state ``[H, B]`` (transposed layout,
    so a CSR ``w_hh`` ``[4H, H]`` multiplies from the left). Returns outputs ``[T, H, B]``, h, c."""
    outs: list[Tensor] = []
    for t in range(gates.shape[0]):
        g = gates[t] + torch.mm(w_hh, h) if not w_hh.is_sparse_csr else gates[t] + torch.sparse.mm(w_hh, h)
        i, f, gg, o = g.chunk(4, 0)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(gg)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs, 0), h, c


@functools.cache
def compiled_recurrence() -> Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]:
    """:func:`_recurrence` compiled by TorchScript (its per-step dispatch is ~10 % faster than Python's;
    TorchScript is deprecated in torch 2.13 but still works), or the Python function if that fails
    (with an :class:`~audio_lottery.fallbacks.EagerRecurrenceWarning` naming the error)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.script(_recurrence)
    except Exception as exc:  # noqa: BLE001 - any scripting failure falls back to eager Python
        warnings.warn(f"CSR LSTM: TorchScript could not compile the recurrence, running it as eager Python "
                      f"({type(exc).__name__}: {exc})", EagerRecurrenceWarning, stacklevel=2)
        return _recurrence


class CSRLSTM(nn.Module):
    """A single-layer, one-way, batch-first ``nn.LSTM`` with CSR input (and optionally recurrent) weights."""

    def __init__(self, lstm: nn.LSTM, sparse_hh: bool) -> None:
        super().__init__()
        if lstm.num_layers != 1 or lstm.bidirectional or not lstm.batch_first or lstm.proj_size:
            raise ValueError("CSRLSTM replaces single-layer, one-way, batch-first LSTMs without projections")
        self.hidden_size = lstm.hidden_size
        self.w_ih = csr_tensor(lstm.weight_ih_l0)
        self.w_hh = csr_tensor(lstm.weight_hh_l0) if sparse_hh else lstm.weight_hh_l0.detach().clone()
        bias = lstm.bias_ih_l0 + lstm.bias_hh_l0 if lstm.bias else torch.zeros(4 * lstm.hidden_size)
        self.register_buffer("bias", bias.detach().clone())

    def forward(self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``x`` ``[B, T, I]`` -> outputs ``[B, T, H]`` and ``(h_n, c_n)`` ``[1, B, H]`` like ``nn.LSTM``."""
        b, t, _ = x.shape
        rows = x.transpose(0, 1).reshape(t * b, -1)  # (time, batch) order
        steps = max(1, CHUNK // b)
        parts = [torch.sparse.mm(self.w_ih, rows[i * b:(i + steps) * b].t().contiguous()).view(-1, min(steps, t - i), b)
                 for i in range(0, t, steps)]
        gates = torch.cat([p.permute(1, 0, 2) for p in parts]) + self.bias[None, :, None]  # [T, 4H, B], contiguous
        if hx is None:
            h = x.new_zeros(self.hidden_size, b)
            c = x.new_zeros(self.hidden_size, b)
        else:
            h, c = hx[0][0].t().contiguous(), hx[1][0].t().contiguous()
        out, h, c = compiled_recurrence()(gates, self.w_hh, h, c)
        return out.permute(2, 0, 1), (h.t()[None], c.t()[None])


def _lstm_sparse_enough(lstm: nn.LSTM, policy: CSRPolicy) -> bool:
    return (lstm.num_layers == 1 and not lstm.bidirectional and lstm.batch_first and not lstm.proj_size
            and lstm.hidden_size >= policy.lstm_min_hidden
            and density(lstm.weight_ih_l0) <= policy.lstm_max_density)


@torch.no_grad()
def to_csr(model: nn.Module, policy: CSRPolicy | None = None) -> dict[str, str]:
    """Swap sparse-enough layers of ``model`` for CSR ones, in place; returns ``{module name: kind}``."""
    policy = policy or CSRPolicy()
    swapped: dict[str, str] = {}
    for name, module in list(model.named_modules()):
        new: nn.Module | None = None
        if isinstance(module, nn.Linear) and density(module.weight) <= policy.linear_max_density:
            new, kind = CSRLinear(module), "linear"
        elif isinstance(module, nn.LSTM) and _lstm_sparse_enough(module, policy):
            sparse_hh = density(module.weight_hh_l0) <= policy.lstm_max_density
            new, kind = CSRLSTM(module, sparse_hh), "lstm" + ("+hh" if sparse_hh else "")
        if new is None:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, new)
        swapped[name] = kind
    return swapped
