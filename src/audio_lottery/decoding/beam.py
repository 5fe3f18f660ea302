"""Batched attention beam search with optional CTC prefix scoring (joint CTC/attention decoding).

Token ids. The CTC vocabulary is the tokenizer's ``V`` ids with the blank at 0. An attention
decoder reads and predicts ``V + 2`` ids: the tokenizer's ids plus ``sos = V`` (start of
sentence, only ever an input) and ``eos = V + 1`` (end of sentence, only ever an output). The
decoder never emits the blank or ``sos`` (their log-probabilities are -inf). Hypotheses are
returned as tokenizer ids without ``sos``/``eos``.

Scoring. A hypothesis' score is the sum over its tokens (including the final ``eos``) of
``(1 - w) * log p_att(token | prefix) + w * (log psi(prefix + token) - log psi(prefix))`` where
``psi`` is the CTC prefix probability (:class:`CTCPrefixScorer`) and ``w`` the CTC weight; the
CTC part telescopes to ``log P_ctc(hypothesis)`` once ``eos`` is scored. With ``w = 0`` this is
plain attention decoding; with ``w = 1`` the attention term is left out (not multiplied by 0: the
decoder's blank and ``sos`` scores are -inf), so the search ranks by CTC prefix scores alone.

Search (the same rule as fairseq's): at each step the ``2K`` best one-token extensions of
the ``K`` running hypotheses are ranked; an extension by ``eos`` ranked within the first ``K``
finishes that hypothesis, and the ``K`` best extensions by other tokens keep running. An
utterance stops when ``K`` hypotheses have finished or when its running hypotheses hold as many
tokens as it has encoder frames (``max_lens``; a CTC alignment cannot emit more), where only
``eos`` is allowed. With ``K = 1`` this is exactly greedy decoding.

Length normalisation. The finished hypothesis returned is the one with the highest score
divided by its length in tokens counting ``eos`` (``score / (len(tokens) + 1)``), so long
hypotheses are not penalised merely for having more (negative) log-probability terms. The
search itself (ranking of extensions) uses the raw scores, which all hypotheses of one step
share the length of.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

NEG_INF = float("-inf")


class StepDecoder(Protocol):
    """An incremental attention decoder over ``A`` utterances with ``K`` hypothesis rows each."""

    def step(self, state: Any, tokens: Tensor) -> tuple[Tensor, Any]:
        """Feed the last token ``[A*K]`` of every hypothesis row; return next-token log-probs ``[A*K, V+2]``."""
        ...

    def reorder(self, state: Any, rows: Tensor, utts: Tensor) -> Any:
        """Keep hypothesis rows ``rows`` (indices into the current rows, ``K`` per kept utterance,
        utterance-major) belonging to the kept utterances ``utts`` (indices into the current ones)."""
        ...


# --------------------------------------------------------------------------- CTC prefix scores


def _shift(x: Tensor, first: float | Tensor) -> Tensor:
    """``y[0] = first``, ``y[t] = x[t - 1]`` along dim 0."""
    head = torch.full_like(x[:1], first) if not isinstance(first, Tensor) else first
    return torch.cat([head, x[:-1]], dim=0)


@dataclass
class CTCState:
    """CTC forward variables of ``K`` hypotheses per utterance (log domain, float64).

    ``r[t, a, k, 0]``: log-probability that frames ``0..t`` emit hypothesis ``(a, k)`` ending in a
    non-blank; ``r[..., 1]``: the same ending in a blank. ``psi``: log prefix probability of
    each hypothesis; ``last``: its last token (-1 for the empty prefix); ``length``: tokens so far.
    """

    r: Tensor
    psi: Tensor
    last: Tensor
    length: int


class CTCPrefixScorer:
    """Batched CTC prefix scoring (Watanabe et al. 2017, hybrid CTC/attention, algorithm 2).

    For a prefix ``g`` and a token ``c``, the prefix probability of ``h = g + c`` -- the
    probability that the collapsed CTC label sequence of the utterance *starts with* ``h`` -- is
    ``psi(h) = sum_t Phi_{t-1} x_t(c)`` with ``Phi_{t-1} = r^b_{t-1}(g) + [c != last(g)] r^n_{t-1}(g)``
    (``Phi_{-1} = 1`` for the empty ``g``), and the probability that the label sequence is exactly
    ``g`` is ``r^n_{T-1}(g) + r^b_{T-1}(g)``. The forward variables of a new hypothesis are linear
    recurrences, solved here with cumulative sums in the log domain (float64) instead of a loop
    over frames. Only frames ``t < lens`` of each utterance count, so padding changes nothing.

    ``log_probs``: ``[A, T, V]`` CTC log-probabilities of ``A`` utterances, ``lens``: ``[A]``
    (all >= 1); ``beam``: hypothesis rows per utterance.
    """

    def __init__(self, log_probs: Tensor, lens: Tensor, beam: int, blank: int = 0) -> None:
        if (lens < 1).any():
            raise ValueError("CTC prefix scoring needs at least one frame per utterance")
        self.x = log_probs.detach().double().transpose(0, 1)  # [T, A, V]
        self.lens = lens.to(self.x.device)
        self.beam, self.blank = beam, blank
        self.vocab = self.x.shape[2]
        self._update_blank()

    def _update_blank(self) -> None:
        t = torch.arange(self.x.shape[0], device=self.x.device)
        self.valid = t[:, None] < self.lens[None, :]  # [T, A]
        self.xb = self.x[:, :, self.blank]  # [T, A]
        self.cum_b = self.xb.cumsum(0)  # [T, A]

    def initial_state(self) -> CTCState:
        """The empty prefix: all-blank alignments, ``psi = log 1``."""
        T, A, _ = self.x.shape
        r = torch.full((T, A, self.beam, 2), NEG_INF, dtype=self.x.dtype, device=self.x.device)
        r[..., 1] = self.cum_b[:, :, None]
        zeros = torch.zeros(A, self.beam, dtype=self.x.dtype, device=self.x.device)
        return CTCState(r, zeros, torch.full((A, self.beam), -1, dtype=torch.long, device=self.x.device), 0)

    def _phi(self, state: CTCState) -> tuple[Tensor, Tensor]:
        """``Phi`` shifted by one frame, for a new token different from / equal to the last one: ``[T, A, K]``."""
        rn, rb = state.r[..., 0], state.r[..., 1]
        first = 0.0 if state.length == 0 else NEG_INF
        mask = ~self.valid[:, :, None]
        phi_any = _shift(torch.logaddexp(rn, rb), first).masked_fill(mask, NEG_INF)
        phi_same = _shift(rb, first).masked_fill(mask, NEG_INF)
        return phi_any, phi_same

    def scores(self, state: CTCState) -> tuple[Tensor, Tensor]:
        """Log prefix probabilities of every one-token extension ``[A, K, V]`` (blank: -inf) and
        the log-probability that the label sequence ends with the current prefix ``[A, K]``."""
        phi_any, phi_same = self._phi(state)
        psi = torch.logsumexp(phi_any[..., None] + self.x[:, :, None, :], dim=0)  # [A, K, V]
        has_last = state.last >= 0
        if has_last.any():
            last = state.last.clamp(min=0)
            psi_last = torch.logsumexp(phi_same + self._gather_tokens(last), dim=0)  # [A, K]
            current = psi.gather(2, last[..., None]).squeeze(2)
            psi = psi.scatter(2, last[..., None], torch.where(has_last, psi_last, current)[..., None])
        psi[..., self.blank] = NEG_INF
        end_t = (self.lens - 1)[None, :, None, None].expand(1, -1, self.beam, 2)
        r_end = state.r.gather(0, end_t).squeeze(0)  # [A, K, 2]
        return psi, torch.logaddexp(r_end[..., 0], r_end[..., 1])

    def _gather_tokens(self, tokens: Tensor) -> Tensor:
        """``x[t, a, tokens[a, k]]`` as ``[T, A, K]``."""
        T = self.x.shape[0]
        return self.x.gather(2, tokens[None].expand(T, -1, -1))

    def advance(self, state: CTCState, parent: Tensor, tokens: Tensor, psi: Tensor) -> CTCState:
        """Forward variables of ``h = hyp[a, parent[a, k]] + tokens[a, k]`` whose prefix score is ``psi[a, k]``.

        Tokens outside the CTC vocabulary (only on hypotheses scored -inf) are treated as blank.
        """
        tokens = torch.where((tokens > 0) & (tokens < self.vocab), tokens, torch.full_like(tokens, self.blank))
        idx = parent[None, :, :, None].expand(state.r.shape[0], -1, -1, 2)
        g = CTCState(state.r.gather(2, idx), state.psi.gather(1, parent), state.last.gather(1, parent), state.length)
        phi_any, phi_same = self._phi(g)
        phi = torch.where((tokens == g.last)[None], phi_same, phi_any)  # [T, A, K]
        xc = self._gather_tokens(tokens)  # [T, A, K]
        cum_c = xc.cumsum(0)
        # r^n_t = sum_{s<=t} Phi_{s-1} prod_{u=s..t} x_u(c)
        rn = cum_c + torch.logcumsumexp(phi - (cum_c - xc), dim=0)
        # r^b_t = sum_{s<=t} r^n_{s-1} prod_{u=s..t} x_u(blank)
        cum_b, xb = self.cum_b[:, :, None], self.xb[:, :, None]
        rb = cum_b + torch.logcumsumexp(_shift(rn, NEG_INF) - (cum_b - xb), dim=0)
        return CTCState(torch.stack([rn, rb], dim=-1), psi.double(), tokens, state.length + 1)

    def keep(self, state: CTCState, utts: Tensor) -> CTCState:
        """Keep only utterances ``utts`` (indices into the current ones)."""
        self.x, self.lens = self.x[:, utts], self.lens[utts]
        self._update_blank()
        return CTCState(state.r[:, utts], state.psi[utts], state.last[utts], state.length)


# --------------------------------------------------------------------------- beam search


@torch.no_grad()
def beam_search(
    decoder: StepDecoder,
    state: Any,
    max_lens: Tensor,
    beam: int,
    sos: int,
    eos: int,
    ctc_log_probs: Tensor | None = None,
    ctc_weight: float = 0.0,
    blank: int = 0,
) -> list[list[int]]:
    """Best hypothesis (token ids, no ``sos``/``eos``) for each of ``A = len(max_lens)`` utterances.

    ``state`` is the decoder's initial state for ``A`` utterances with ``beam`` rows each;
    ``max_lens[a] >= 1`` bounds the number of tokens (the encoder frames). ``ctc_log_probs``
    ``[A, T, V]`` (frames beyond ``max_lens`` ignored) enables CTC prefix scoring with weight
    ``ctc_weight``. See the module docstring for the scores, the stopping rule and the length
    normalisation.
    """
    A, K = int(max_lens.shape[0]), int(beam)
    if K < 1:
        raise ValueError("beam must be >= 1")
    device = max_lens.device
    use_ctc = ctc_log_probs is not None and ctc_weight > 0
    scorer = CTCPrefixScorer(ctc_log_probs, max_lens, K, blank) if use_ctc else None
    cstate = scorer.initial_state() if scorer else None
    active = torch.arange(A, device=device)
    max_lens = max_lens.clone()
    scores = torch.full((A, K), NEG_INF, dtype=torch.float64, device=device)
    scores[:, 0] = 0.0
    ys = torch.full((A * K, 1), sos, dtype=torch.long, device=device)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(A)]
    length = 0
    while active.numel():
        n_act = int(active.numel())
        logp, state = decoder.step(state, ys[:, -1])
        vd = logp.shape[-1]
        joint = logp.double().view(n_act, K, vd)
        ctc_full = None
        if scorer is not None:
            psi, psi_end = scorer.scores(cstate)
            ctc_full = torch.full_like(joint, NEG_INF)
            ctc_full[..., : scorer.vocab] = psi
            ctc_full[..., eos] = psi_end
            prev = cstate.psi[..., None]
            delta = torch.where(torch.isfinite(prev), ctc_full - prev, torch.full_like(ctc_full, NEG_INF))
            # at w = 1 the attention term is dropped, not multiplied by 0 (0 * -inf is nan for blank and sos)
            joint = delta if ctc_weight >= 1 else (1.0 - ctc_weight) * joint + ctc_weight * delta
        force = length >= max_lens  # [A]: only eos from here on
        not_eos = torch.arange(vd, device=device) != eos
        joint = joint.masked_fill(force[:, None, None] & not_eos[None, None, :], NEG_INF)
        cand = (scores[..., None] + joint).view(n_act, K * vd)
        top_s, top_i = cand.topk(min(2 * K, K * vd), dim=1)
        parent, tok = top_i // vd, top_i % vd
        is_eos = tok == eos
        rank = torch.arange(top_s.shape[1], device=device)[None, :]
        fin = is_eos & (rank < K) & torch.isfinite(top_s)
        if fin.any():
            for a, j in fin.nonzero().tolist():
                row = a * K + int(parent[a, j])
                finished[int(active[a])].append((float(top_s[a, j]), ys[row, 1:].tolist()))
        order = torch.sort(is_eos.to(torch.int8), dim=1, stable=True).indices[:, :K]
        run_parent, run_tok, run_s = parent.gather(1, order), tok.gather(1, order), top_s.gather(1, order)
        n_fin = torch.tensor([len(finished[int(u)]) for u in active], device=device)
        done = force | (n_fin >= K) | ~torch.isfinite(run_s).any(dim=1)
        keep = (~done).nonzero().squeeze(1)
        if keep.numel() == 0:
            break
        rows = (keep[:, None] * K + run_parent[keep]).reshape(-1)
        ys = torch.cat([ys[rows], run_tok[keep].reshape(-1, 1)], dim=1)
        state = decoder.reorder(state, rows, keep)
        if scorer is not None:
            psi_sel = ctc_full.view(n_act, K * vd).gather(1, run_parent * vd + run_tok)
            cstate = scorer.advance(cstate, run_parent, run_tok, psi_sel)
            if keep.numel() < n_act:
                cstate = scorer.keep(cstate, keep)
        scores, active, max_lens = run_s[keep], active[keep], max_lens[keep]
        length += 1
    out = []
    for hyps in finished:
        if not hyps:
            out.append([])
            continue
        best = max(hyps, key=lambda h: h[0] / (len(h[1]) + 1))
        out.append(best[1])
    return out
