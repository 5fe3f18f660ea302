"""RNN-Transducer loss (Graves 2012) in vectorised PyTorch, plus a naive reference.

Lattice: for utterance ``b`` with ``T_b`` encoder frames and ``U_b`` target tokens, node
``(t, u)`` means "``t`` frames consumed, ``u`` tokens emitted". From ``(t, u)`` the model
either emits blank (``-> (t + 1, u)``, log-prob ``blank[t, u]``) or the next token
``y_{u+1}`` (``-> (t, u + 1)``, log-prob ``label[t, u]``). With forward variables
``alpha[0, 0] = 0`` and

    alpha[t, u] = logaddexp(alpha[t-1, u] + blank[t-1, u], alpha[t, u-1] + label[t, u-1])

the loss is ``-(alpha[T_b-1, U_b] + blank[T_b-1, U_b])``.

:func:`rnnt_loss` loops over ``t`` only; along ``u`` the recurrence is solved in closed form
with a cumulative sum and ``logcumsumexp``: with ``c[u] = sum_{j<u} label[t, j]`` and
``x[u] = alpha[t-1, u] + blank[t-1, u]``,

    alpha[t, u] = c[u] + logcumsumexp_u(x - c)

so one frame costs a handful of batched tensor ops. Only forward variables are computed;
gradients come from autograd. Every intermediate stays finite (no ``-inf`` masking), so
padded frames and tokens never put NaN into the gradients: they are computed and ignored.

Precision: ``c`` is a running sum of log-probabilities, so in float32 the result carries an
absolute error of about ``1e-7 * |c|`` (``|c|`` ~ U x the typical wrong-token log-prob).
That is ~1e-5 for random logits with U = 30; pass float64 logits where it matters.

:func:`rnnt_loss_naive` is a plain Python dynamic programme (alpha and beta per utterance,
float64, analytic gradients); it is a reference for tests and benchmarks only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["rnnt_loss", "rnnt_loss_from_gathered", "gather_transitions", "rnnt_loss_naive"]

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(losses: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    if reduction == "mean":
        return losses.mean()
    raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check(logits: Tensor, targets: Tensor, logit_lens: Tensor, target_lens: Tensor) -> int:
    """Validate shapes; return U (the lattice's maximal target length)."""
    if logits.dim() != 4:
        raise ValueError(f"logits must be [B, T, U+1, V], got shape {tuple(logits.shape)}")
    b, t, u1, _ = logits.shape
    u = u1 - 1
    if targets.dim() != 2 or targets.shape[0] != b or targets.shape[1] < u:
        raise ValueError(f"targets must be [B, >= U] = [{b}, >= {u}], got shape {tuple(targets.shape)}")
    if logit_lens.shape != (b,) or target_lens.shape != (b,):
        raise ValueError("logit_lens and target_lens must be [B]")
    if t < 1:
        raise ValueError("logits need at least one frame")
    if int(logit_lens.max()) > t or int(target_lens.max()) > u:
        raise ValueError(f"lengths exceed the logits' shape (T={t}, U={u})")
    return u


def gather_transitions(log_probs: Tensor, targets: Tensor, blank: int = 0) -> tuple[Tensor, Tensor]:
    """Blank log-probs ``[B, T, U+1]`` and next-token log-probs ``[B, T, U]`` of ``log_probs``
    ``[B, T, U+1, V]``; ``targets`` ``[B, >= U]`` (padding may hold any value)."""
    b, t, u1, v = log_probs.shape
    u = u1 - 1
    blank_lp = log_probs[..., blank]
    idx = targets[:, :u].clamp(0, v - 1).to(torch.long)
    idx = idx[:, None, :, None].expand(b, t, u, 1)
    label_lp = log_probs[:, :, :u, :].gather(3, idx).squeeze(3)
    return blank_lp, label_lp


def rnnt_loss_from_gathered(
    blank_lp: Tensor, label_lp: Tensor, logit_lens: Tensor, target_lens: Tensor, reduction: str = "mean"
) -> Tensor:
    """Transducer loss from the lattice's transition log-probs (see :func:`gather_transitions`).

    ``blank_lp`` ``[B, T, U+1]``, ``label_lp`` ``[B, T, U]``. Utterances with ``logit_lens < 1``
    get loss 0 (and no gradient). ``reduction``: ``"mean"`` (over the batch), ``"sum"`` or ``"none"``.
    """
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    bsz, t_max, u1 = blank_lp.shape
    if label_lp.shape != (bsz, t_max, u1 - 1):
        raise ValueError(f"label_lp must be [B, T, U] = {(bsz, t_max, u1 - 1)}, got {tuple(label_lp.shape)}")
    # c[b, t, u] = sum_{j < u} label[b, t, j]
    c = torch.cat([label_lp.new_zeros(bsz, t_max, 1), label_lp.cumsum(dim=2)], dim=2)
    alpha = c[:, 0]
    alphas = [alpha]
    for t in range(1, t_max):
        ct = c[:, t]
        alpha = ct + torch.logcumsumexp(alpha + blank_lp[:, t - 1] - ct, dim=1)
        alphas.append(alpha)
    all_alpha = torch.stack(alphas, dim=1)  # [B, T, U+1]
    device = blank_lp.device
    logit_lens, target_lens = logit_lens.to(device), target_lens.to(device)
    last_t = (logit_lens - 1).clamp(0, t_max - 1)
    last_u = target_lens.clamp(0, u1 - 1)
    rows = torch.arange(bsz, device=device)
    log_like = all_alpha[rows, last_t, last_u] + blank_lp[rows, last_t, last_u]
    losses = torch.where(logit_lens >= 1, -log_like, torch.zeros_like(log_like))
    return _reduce(losses, reduction)


def rnnt_loss(
    logits: Tensor,
    targets: Tensor,
    logit_lens: Tensor,
    target_lens: Tensor,
    blank: int = 0,
    reduction: str = "mean",
    fused_log_softmax: bool = True,
) -> Tensor:
    """RNN-Transducer negative log-likelihood.

    Args:
        logits: joint-network output ``[B, T, U+1, V]`` (or log-probabilities with
            ``fused_log_softmax=False``; log-softmax of log-probs is a no-op anyway).
        targets: token ids ``[B, >= U]`` without blanks, padded with anything.
        logit_lens: valid frames per utterance ``[B]`` (1..T; 0 gives loss 0).
        target_lens: valid tokens per utterance ``[B]`` (0..U).
        blank: the blank id.
        reduction: ``"mean"`` over the batch, ``"sum"`` or ``"none"`` (``[B]``).

    Computed in float32 (float64 if the logits are float64); differentiable by autograd.
    """
    _check(logits, targets, logit_lens, target_lens)
    x = logits if logits.dtype == torch.float64 else logits.float()
    log_probs = F.log_softmax(x, dim=-1) if fused_log_softmax else x
    blank_lp, label_lp = gather_transitions(log_probs, targets, blank)
    return rnnt_loss_from_gathered(blank_lp, label_lp, logit_lens, target_lens, reduction)


# --------------------------------------------------------------------------- naive reference


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log1p(math.exp(-abs(a - b)))


def _naive_one(blank: list, label: list, t_len: int, u_len: int) -> tuple[float, list, list]:
    """Loss and gradients w.r.t. ``blank[t][u]`` and ``label[t][u]`` of one utterance (plain Python)."""
    ninf = -math.inf
    alpha = [[ninf] * (u_len + 1) for _ in range(t_len)]
    for t in range(t_len):
        for u in range(u_len + 1):
            if t == 0 and u == 0:
                alpha[t][u] = 0.0
                continue
            a = alpha[t - 1][u] + blank[t - 1][u] if t > 0 else ninf
            b = alpha[t][u - 1] + label[t][u - 1] if u > 0 else ninf
            alpha[t][u] = _logaddexp(a, b)
    beta = [[ninf] * (u_len + 1) for _ in range(t_len)]
    for t in range(t_len - 1, -1, -1):
        for u in range(u_len, -1, -1):
            if t == t_len - 1 and u == u_len:
                beta[t][u] = blank[t][u]
                continue
            a = blank[t][u] + beta[t + 1][u] if t < t_len - 1 else ninf
            b = label[t][u] + beta[t][u + 1] if u < u_len else ninf
            beta[t][u] = _logaddexp(a, b)
    log_like = beta[0][0]
    g_blank = [[0.0] * (u_len + 1) for _ in range(t_len)]
    g_label = [[0.0] * max(u_len, 1) for _ in range(t_len)]
    for t in range(t_len):
        for u in range(u_len + 1):
            if t < t_len - 1:
                g_blank[t][u] = -math.exp(alpha[t][u] + blank[t][u] + beta[t + 1][u] - log_like)
            elif u == u_len:
                g_blank[t][u] = -math.exp(alpha[t][u] + blank[t][u] - log_like)
            if u < u_len:
                g_label[t][u] = -math.exp(alpha[t][u] + label[t][u] + beta[t][u + 1] - log_like)
    return -log_like, g_blank, g_label


class _NaiveRNNT(torch.autograd.Function):
    @staticmethod
    def forward(ctx, log_probs, targets, logit_lens, target_lens, blank):  # type: ignore[override]
        bsz, _, _, v = log_probs.shape
        losses = torch.zeros(bsz, dtype=torch.float64)
        grad = torch.zeros(log_probs.shape, dtype=torch.float64)
        lp = log_probs.detach().double().cpu()
        for b in range(bsz):
            t_len, u_len = int(logit_lens[b]), int(target_lens[b])
            if t_len < 1:
                continue
            y = [int(k) for k in targets[b, :u_len]]
            blank_tab = lp[b, :t_len, : u_len + 1, blank].tolist()
            steps, ids = torch.arange(u_len), torch.tensor(y, dtype=torch.long)
            label_tab = lp[b, :t_len][:, steps, ids].tolist()
            loss, g_blank, g_label = _naive_one(blank_tab, label_tab, t_len, u_len)
            losses[b] = loss
            grad[b, :t_len, : u_len + 1, blank] += torch.tensor(g_blank, dtype=torch.float64)
            if u_len:
                view = grad[b, :t_len]  # (u, y_u) pairs are distinct: plain indexed add is exact
                view[:, steps, ids] += torch.tensor(g_label, dtype=torch.float64)[:, :u_len]
        ctx.save_for_backward(grad)
        return losses.to(log_probs.device)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        g = grad.to(grad_out.device) * grad_out.double()[:, None, None, None]
        return g, None, None, None, None


def rnnt_loss_naive(
    logits: Tensor,
    targets: Tensor,
    logit_lens: Tensor,
    target_lens: Tensor,
    blank: int = 0,
    reduction: str = "mean",
    fused_log_softmax: bool = True,
) -> Tensor:
    """Reference transducer loss: per utterance, a plain Python float64 DP over every ``(t, u)``
    (forward variables for the loss, forward-backward for the gradients). Same arguments and
    result as :func:`rnnt_loss` (returned in float64). Slow; for tests and benchmarks only."""
    _check(logits, targets, logit_lens, target_lens)
    x = logits.double()
    log_probs = F.log_softmax(x, dim=-1) if fused_log_softmax else x
    losses = _NaiveRNNT.apply(log_probs, targets.cpu(), logit_lens.cpu(), target_lens.cpu(), blank)
    return _reduce(losses, reduction)
