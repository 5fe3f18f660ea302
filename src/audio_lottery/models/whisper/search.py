"""Greedy and beam search for an autoregressive decoder, without timestamps.

Both take ``step(tokens [N, L], offset) -> logits [N, L, V]`` (the decoder fed the new tokens
at positions ``offset..offset+L-1``, keeping its own key/value cache) and, for beam search,
``reorder(rows)`` (keep and reorder the cache's rows). ``suppress`` ids get ``-inf`` at every
step, ``suppress_begin`` ids only at the first generated step (Whisper's "suppress blank").
Returned sequences hold the generated tokens without the prompt and without the final ``eot``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

Step = Callable[[Tensor, int], Tensor]


def _suppressed(logits: Tensor, suppress: Sequence[int], begin: Sequence[int] | None) -> Tensor:
    ids = list(suppress) + list(begin or [])
    if ids:
        logits = logits.clone()
        logits[:, ids] = -float("inf")
    return logits


def _until_eot(tokens: list[int], eot: int) -> list[int]:
    return tokens[: tokens.index(eot)] if eot in tokens else tokens


@torch.no_grad()
def greedy_search(step: Step, prompt: Sequence[int], batch: int, eot: int, max_new: int | Sequence[int],
                  suppress: Sequence[int] = (), suppress_begin: Sequence[int] = ()) -> list[list[int]]:
    """The argmax token at every step for ``batch`` rows sharing ``prompt``; a row stops at ``eot`` or
    after ``max_new`` tokens (one limit for all rows, or one per row)."""
    tokens = torch.tensor([list(prompt)] * batch, dtype=torch.long)
    logits = step(tokens, 0)[:, -1]
    limits = torch.as_tensor(max_new, device=logits.device).expand(batch)
    max_new = int(limits.max()) if batch else 0
    finished = torch.zeros(batch, dtype=torch.bool, device=logits.device)
    out: list[Tensor] = []
    for i in range(max_new):
        nxt = _suppressed(logits, suppress, suppress_begin if i == 0 else None).argmax(dim=-1)
        nxt = torch.where(finished, torch.full_like(nxt, eot), nxt)
        out.append(nxt)
        finished |= (nxt == eot) | (limits <= i + 1)
        if bool(finished.all()) or i == max_new - 1:
            break
        logits = step(nxt[:, None], len(prompt) + i)[:, -1]
    rows = torch.stack(out, dim=1).tolist() if out else [[] for _ in range(batch)]
    return [_until_eot(r, eot) for r in rows]


@torch.no_grad()
def beam_search(step: Step, reorder: Callable[[Tensor], None], prompt: Sequence[int], eot: int, max_new: int,
                beam_size: int, patience: float = 1.0, suppress: Sequence[int] = (),
                suppress_begin: Sequence[int] = ()) -> list[int]:
    """Beam search for one input: the finished hypothesis with the best mean log-probability per token.

    Starts from one row (the prompt). Each step ranks every live hypothesis's ``beam_size + 1``
    best continuations and walks them best first until ``beam_size`` live ones are kept; the
    ``eot`` continuations met on the way finish (at most ``beam_size * patience`` in all, then the
    search stops). After ``max_new`` tokens, the best live hypotheses fill the finished ones up to
    ``beam_size``. Score = sum of log-probabilities (``eot``'s included) divided by the number of
    text tokens. This is the reference implementation's beam search (openai-whisper).
    """
    live: list[tuple[list[int], float]] = [([], 0.0)]
    finished: list[tuple[list[int], float]] = []
    logits = step(torch.tensor([list(prompt)], dtype=torch.long), 0)[:, -1]
    want = max(1, round(beam_size * patience))
    for i in range(max_new):
        logp = torch.log_softmax(_suppressed(logits.float(), suppress, suppress_begin if i == 0 else None), dim=-1)
        top_lp, top_id = logp.topk(beam_size + 1, dim=-1)
        cands = sorted(((live[r][1] + float(lp), r, int(t)) for r in range(len(live))
                        for lp, t in zip(top_lp[r].tolist(), top_id[r].tolist()) if lp > -float("inf")),
                       key=lambda c: -c[0])
        parents, nxt, new_live = [], [], []
        for score, r, tok in cands:  # best first, until the beam is full again
            if tok == eot:
                if len(finished) < want:
                    finished.append((live[r][0], score))
                continue
            new_live.append((live[r][0] + [tok], score))
            parents.append(r)
            nxt.append(tok)
            if len(new_live) == beam_size:
                break
        live = new_live
        if len(finished) >= want or not live or i == max_new - 1:
            break
        reorder(torch.tensor(parents, dtype=torch.long))
        logits = step(torch.tensor(nxt, dtype=torch.long)[:, None], len(prompt) + i)[:, -1]
    for hyp in sorted(live, key=lambda h: -h[1]):  # too few finished: the best live ones count too
        if len(finished) >= beam_size:
            break
        finished.append(hyp)
    return max(finished, key=lambda h: h[1] / max(1, len(h[0])))[0]
