"""Multiply-accumulate counts of one forward pass, dense and under a mask.

Only multiplications by a weight are counted (Conv1d/2d/3d, Linear, LSTM/GRU/RNN and
the projections of ``nn.MultiheadAttention``); biases, norms, activations and
attention score products are not. The *effective* count scales every weight's MACs
by the density of its mask (an unmasked weight counts fully).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from audio_lottery.pruning.mask import Mask

# (parameter name relative to the module, MACs of that weight in this call)
_Counts = list[tuple[str, int]]


def _conv_macs(module: nn.Module, args: tuple, output: Tensor) -> _Counts:
    per_output = module.weight.numel() // module.weight.shape[0]
    return [("weight", output.numel() * per_output)]


def _linear_macs(module: nn.Module, args: tuple, output: Tensor) -> _Counts:
    rows = output.numel() // module.out_features
    return [("weight", rows * module.weight.numel())]


def _rnn_steps(x: Tensor | PackedSequence) -> int:
    if isinstance(x, PackedSequence):
        return int(x.data.shape[0])
    return x.numel() // x.shape[-1]


def _rnn_macs(module: nn.Module, args: tuple, output: object) -> _Counts:
    """Every layer and direction does ``weight.numel()`` MACs per weight per time step."""
    steps = _rnn_steps(args[0])
    return [
        (name, steps * getattr(module, name).numel())
        for name in module._flat_weights_names
        if name.startswith("weight_")
    ]


def _mha_macs(module: nn.MultiheadAttention, args: tuple, kwargs: dict) -> _Counts:
    query = args[0] if len(args) > 0 else kwargs["query"]
    key = args[1] if len(args) > 1 else kwargs["key"]
    rows_q = query.numel() // query.shape[-1]
    rows_k = key.numel() // key.shape[-1]
    e = module.embed_dim
    counts: _Counts = []
    if module.in_proj_weight is not None:
        counts.append(("in_proj_weight", rows_q * e * e + 2 * rows_k * e * e))
    else:
        counts.append(("q_proj_weight", rows_q * module.q_proj_weight.numel()))
        counts.append(("k_proj_weight", rows_k * module.k_proj_weight.numel()))
        counts.append(("v_proj_weight", rows_k * module.v_proj_weight.numel()))
    counts.append(("out_proj.weight", rows_q * module.out_proj.weight.numel()))
    return counts


_COUNTERS: list[tuple[type, Callable[..., _Counts]]] = [
    (nn.Conv1d, _conv_macs),
    (nn.Conv2d, _conv_macs),
    (nn.Conv3d, _conv_macs),
    (nn.Linear, _linear_macs),
    (nn.RNNBase, _rnn_macs),
]


def _density(mask: Mask | None, name: str) -> float:
    if mask is None or name not in mask:
        return 1.0
    m = mask[name]
    return float(m.sum()) / m.numel() if m.numel() else 1.0


def _register(model: nn.Module, counts: dict[str, int]) -> list:
    """Attach counting hooks; ``counts`` maps full parameter names to accumulated MACs."""

    def record(prefix: str, pairs: _Counts) -> None:
        for pname, macs in pairs:
            full = f"{prefix}.{pname}" if prefix else pname
            counts[full] = counts.get(full, 0) + int(macs)

    handles = []
    for prefix, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention):
            hook = lambda m, a, kw, o, p=prefix: record(p, _mha_macs(m, a, kw))  # noqa: E731
            handles.append(module.register_forward_hook(hook, with_kwargs=True))
            continue
        for cls, fn in _COUNTERS:
            if isinstance(module, cls):
                hook = lambda m, a, o, p=prefix, f=fn: record(p, f(m, a, o))  # noqa: E731
                handles.append(module.register_forward_hook(hook))
                break
    return handles


def effective_macs(model: nn.Module, mask: Mask | None, feats: Tensor, feat_lens: Tensor) -> dict:
    """MACs of ``model(feats, feat_lens)``: ``{dense_macs, effective_macs, weights}``.

    ``weights`` maps each counted parameter name to ``{"dense", "effective", "density"}``.
    The model runs once in eval mode without gradients; its mode is restored.
    """
    counts: dict[str, int] = {}
    handles = _register(model, counts)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(feats, feat_lens)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    weights = {}
    for name, macs in counts.items():
        d = _density(mask, name)
        weights[name] = {"dense": macs, "effective": macs * d, "density": d}
    return {
        "dense_macs": sum(counts.values()),
        "effective_macs": sum(w["effective"] for w in weights.values()),
        "weights": weights,
    }


def macs_per_second(
    model: nn.Module, mask: Mask | None, feat_dim: int, frames_per_second: int = 100
) -> dict:
    """:func:`effective_macs` on one second of zero features (batch of one)."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    feats = torch.zeros(1, frames_per_second, feat_dim, device=device, dtype=dtype)
    lens = torch.tensor([frames_per_second], device=device)
    return effective_macs(model, mask, feats, lens)
