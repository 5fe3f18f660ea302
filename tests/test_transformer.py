"""Transformer (CTC + attention decoder): padding invariance, the joint loss, beam search, CTC prefix
scores against brute force, re-initialisation, and short training / lottery runs on the tiny corpus."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from audio_lottery.config import ModelConfig, load_config
from audio_lottery.decoding.beam import CTCPrefixScorer
from audio_lottery.models import build_model
from audio_lottery.models.transformer import TransformerASR

from conftest import tiny_overrides

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "transformer_tiny.yaml"
SMALL = ROOT / "configs" / "transformer_small.yaml"
V, FEAT = 12, 24


def make_model(seed: int = 0, **kw) -> TransformerASR:
    cfg = ModelConfig(name="transformer")
    t = cfg.transformer
    t.d_model, t.heads, t.ffn_dim, t.encoder_layers, t.decoder_layers, t.subsampling_channels = 32, 4, 48, 2, 2, 4
    for k, v in kw.items():
        setattr(t, k, v)
    torch.manual_seed(seed)
    model = build_model(cfg, V, FEAT)
    assert isinstance(model, TransformerASR)
    return model


def padded_batch(lens: list[int], seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Features with random junk (not zeros) beyond each length."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(len(lens), max(lens), FEAT, generator=g) * 2, torch.tensor(lens)


# --------------------------------------------------------------------------- padding invariance


def test_encoder_and_ctc_outputs_ignore_padding():
    model = make_model().eval()
    feats, lens = padded_batch([83, 40, 61, 9])
    with torch.no_grad():
        lp, out_lens = model(feats, lens)
        assert out_lens.tolist() == model.output_lengths(lens).tolist() == [((n - 1) // 2 - 1) // 2 for n in lens]
        assert lp.shape[:2] == (4, int(out_lens.max())) and lp.shape[2] == V
        for b in range(4):
            n = int(lens[b])
            alone, alone_lens = model(feats[b:b + 1, :n], lens[b:b + 1])
            assert int(alone_lens) == int(out_lens[b])
            torch.testing.assert_close(lp[b, : out_lens[b]], alone[0], atol=1e-4, rtol=0)


@pytest.mark.parametrize("beam, ctc_weight", [(1, 0.0), (3, 0.0), (3, 0.4), (1, 0.5)])
def test_decode_of_a_padded_batch_equals_one_at_a_time(beam, ctc_weight):
    model = make_model(seed=3).eval()
    feats, lens = padded_batch([90, 45, 70, 7, 30], seed=4)  # 7 frames -> 1 output frame
    batch = model.decode(feats, lens, beam=beam, ctc_weight=ctc_weight)
    alone = [model.decode(feats[b:b + 1, : int(lens[b])], lens[b:b + 1], beam=beam, ctc_weight=ctc_weight)[0]
             for b in range(len(lens))]
    assert batch == alone
    out_lens = model.output_lengths(lens)
    for hyp, n in zip(batch, out_lens.tolist()):
        assert len(hyp) <= n and all(0 < t < V for t in hyp)


def test_decode_handles_utterances_without_output_frames():
    model = make_model().eval()
    feats, lens = padded_batch([40, 5])
    hyps = model.decode(feats, lens)
    assert hyps[1] == [] and len(hyps) == 2


# --------------------------------------------------------------------------- the loss


def test_loss_is_the_weighted_sum_of_ctc_and_label_smoothed_cross_entropy():
    model = make_model(seed=5, ctc_weight=0.3, label_smoothing=0.1).eval()  # eval: no dropout
    feats, lens = padded_batch([80, 64, 30], seed=6)
    g = torch.Generator().manual_seed(7)
    target_lens = torch.tensor([6, 3, 9])  # the last one is CTC-infeasible (5 frames)
    targets = torch.randint(1, V, (3, 9), generator=g)
    targets[lengths_beyond(target_lens, 9)] = 0
    loss = model.loss(feats, lens, targets, target_lens)
    assert model.last_infeasible == 1

    enc, out_lens = model.encode(feats, lens)
    ctc_lp = F.log_softmax(model.ctc_head(enc), dim=-1)
    ctc = F.ctc_loss(ctc_lp.transpose(0, 1), targets, out_lens, target_lens, blank=0, reduction="mean",
                     zero_infinity=True)
    sos, eos = V, V + 1
    ys_in = torch.full((3, 10), eos)
    ys_out = torch.full((3, 10), -100)
    for b, n in enumerate(target_lens.tolist()):
        y = targets[b, :n].tolist()
        ys_in[b, : n + 1] = torch.tensor([sos] + y)
        ys_out[b, : n + 1] = torch.tensor(y + [eos])
    log_probs = model.decoder_log_probs(ys_in, enc, out_lens)
    assert torch.isinf(log_probs[..., [0, sos]]).all()
    # the classes the decoder can emit: tokens 1..V-1 and eos -> renumbered 0..V-1
    emit = torch.tensor(list(range(1, V)) + [eos])
    remap = torch.full((V + 2,), -100)
    remap[emit] = torch.arange(V)
    mapped = torch.where(ys_out >= 0, remap[ys_out.clamp(min=0)], ys_out)
    ce = F.cross_entropy(log_probs[..., emit].reshape(-1, V), mapped.reshape(-1), ignore_index=-100,
                         label_smoothing=0.1)
    torch.testing.assert_close(loss, 0.3 * ctc + 0.7 * ce, atol=1e-5, rtol=1e-5)
    loss.backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def lengths_beyond(lens: torch.Tensor, width: int) -> torch.Tensor:
    return torch.arange(width)[None, :] >= lens[:, None]


def test_loss_extremes_use_one_branch():
    feats, lens = padded_batch([60, 50], seed=8)
    targets, target_lens = torch.tensor([[1, 2, 3], [4, 5, 0]]), torch.tensor([3, 2])
    ctc_only = make_model(seed=1, ctc_weight=1.0).eval()
    assert torch.allclose(ctc_only.loss(feats, lens, targets, target_lens),
                          super(TransformerASR, ctc_only).loss(feats, lens, targets, target_lens))
    att_only = make_model(seed=1, ctc_weight=0.0).eval()
    loss = att_only.loss(feats, lens, targets, target_lens)
    loss.backward()
    assert att_only.ctc_head.weight.grad is None and torch.isfinite(loss)


# --------------------------------------------------------------------------- decoding


def _lae(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) in float64."""
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def ctc_prefix_prob_loop(x: torch.Tensor, prefix: list[int], blank: int = 0) -> tuple[float, float]:
    """(log prefix probability, log full probability) of ``prefix`` under CTC log-probs ``x`` [T, V]:
    the textbook frame-by-frame recursion, one hypothesis, in float64."""
    x = x.double().tolist()
    T = len(x)
    ninf = -math.inf
    rn = [ninf] * T
    rb = [sum(x[u][blank] for u in range(t + 1)) for t in range(T)]
    psi = 0.0
    for i, c in enumerate(prefix):
        last = prefix[i - 1] if i else None
        new_n, new_b = [ninf] * T, [ninf] * T
        new_n[0] = x[0][c] if i == 0 else ninf
        psi = new_n[0]
        for t in range(1, T):
            phi = rb[t - 1] if c == last else _lae(rn[t - 1], rb[t - 1])
            new_n[t] = _lae(new_n[t - 1], phi) + x[t][c]
            new_b[t] = _lae(new_b[t - 1], new_n[t - 1]) + x[t][blank]
            psi = _lae(psi, phi + x[t][c])
        rn, rb = new_n, new_b
    return psi, _lae(rn[-1], rb[-1])


def brute_force(x: torch.Tensor, prefix: list[int], blank: int = 0) -> tuple[float, float]:
    """Sum over every alignment of ``x`` [T, V]: (prefix probability, exact probability), as logs."""
    T, Vx = x.shape
    pre, full = [], []
    for path in itertools.product(range(Vx), repeat=T):
        labels = [c for i, c in enumerate(path) if c != blank and (i == 0 or c != path[i - 1])]
        lp = float(sum(x[t, c] for t, c in enumerate(path)))
        if labels[: len(prefix)] == prefix:
            pre.append(lp)
        if labels == prefix:
            full.append(lp)
    as_log = lambda v: float(torch.logsumexp(torch.tensor(v, dtype=torch.float64), 0)) if v else -math.inf  # noqa: E731
    return as_log(pre), as_log(full)


def test_ctc_prefix_scores_equal_brute_force_sums_over_alignments():
    g = torch.Generator().manual_seed(11)
    T, Vx = 5, 3
    x = torch.log_softmax(torch.randn(2, T, Vx, generator=g, dtype=torch.float64) * 1.5, dim=-1)
    lens = torch.tensor([T, 4])  # the second utterance is padded by one frame
    x[1, 4] = torch.log_softmax(torch.randn(Vx, generator=g, dtype=torch.float64), 0)  # junk in the padding
    scorer = CTCPrefixScorer(x, lens, beam=1, blank=0)
    for prefix in ([1], [2], [1, 1], [1, 2], [2, 2, 1], [1, 2, 1], [2, 1, 2, 1]):
        state = scorer.initial_state()
        for c in prefix:
            psi, _ = scorer.scores(state)
            state = scorer.advance(state, torch.zeros(2, 1, dtype=torch.long), torch.full((2, 1), c), psi[:, :, c])
        psi_next, end = scorer.scores(state)
        for b in range(2):
            n = int(lens[b])
            want_pre, want_full = brute_force(x[b, :n], prefix)
            assert float(state.psi[b, 0]) == pytest.approx(want_pre, abs=1e-9), (prefix, b)
            assert float(end[b, 0]) == pytest.approx(want_full, abs=1e-9), (prefix, b)
            assert ctc_prefix_prob_loop(x[b, :n], prefix) == pytest.approx((want_pre, want_full), abs=1e-9)
            for c in (1, 2):  # the scores of every one-token extension
                assert float(psi_next[b, 0, c]) == pytest.approx(brute_force(x[b, :n], prefix + [c])[0], abs=1e-9)
            assert psi_next[b, 0, 0] == -math.inf
    # the empty prefix: probability 1 of starting with it, all-blank probability of being it
    _, end = scorer.scores(scorer.initial_state())
    assert float(end[0, 0]) == pytest.approx(brute_force(x[0], [])[1], abs=1e-9)
    # exact probabilities agree with torch's CTC loss
    tgt = torch.tensor([[1, 2]])
    nll = F.ctc_loss(x[:1].transpose(0, 1), tgt, torch.tensor([T]), torch.tensor([2]), reduction="sum")
    assert -float(nll) == pytest.approx(brute_force(x[0], [1, 2])[1], abs=1e-9)


def greedy_reference(model: TransformerASR, feats: torch.Tensor, lens: torch.Tensor, ctc_weight: float) -> list[int]:
    """One utterance, no cache, no batching: argmax of the joint score until <eos> (forced at T' tokens)."""
    enc, out_lens = model.encode(feats, lens)
    T = int(out_lens[0])
    ctc = F.log_softmax(model.ctc_head(enc), dim=-1)[0, :T]
    sos, eos = model.sos, model.eos
    ys: list[int] = []
    while True:
        att = model.decoder_log_probs(torch.tensor([[sos] + ys]), enc, out_lens)[0, -1].double()
        if ctc_weight > 0:
            psi_g, _ = ctc_prefix_prob_loop(ctc, ys)
            ctc_part = torch.full_like(att, -math.inf)
            for c in range(1, model.vocab_size):
                ctc_part[c] = ctc_prefix_prob_loop(ctc, ys + [c])[0] - psi_g
            ctc_part[eos] = ctc_prefix_prob_loop(ctc, ys)[1] - psi_g
            score = ctc_part if ctc_weight == 1 else (1 - ctc_weight) * att + ctc_weight * ctc_part
        else:
            score = att
        if len(ys) >= T:
            return ys
        best = int(score.argmax())
        if best == eos:
            return ys
        ys.append(best)


@pytest.mark.parametrize("ctc_weight", [0.0, 0.5, 1.0])
def test_beam_one_equals_greedy_decoding(ctc_weight):
    model = make_model(seed=13).eval()
    with torch.no_grad():
        model.embed.weight.mul_(0.3)  # a less repetitive random decoder
    feats, lens = padded_batch([70, 38, 51], seed=14)
    hyps = model.decode(feats, lens, beam=1, ctc_weight=ctc_weight)
    with torch.no_grad():
        for b in range(3):
            n = int(lens[b])
            ref = greedy_reference(model, feats[b:b + 1, :n], lens[b:b + 1], ctc_weight)
            assert hyps[b] == ref
    if ctc_weight == 1:  # CTC prefix scores alone: the attention decoder's -inf rows (blank, sos) give no nan
        assert any(hyps)


# --------------------------------------------------------------------------- parameters


def test_reset_parameters_is_reproducible_and_keeps_unused_rows_zero():
    model = make_model()
    torch.manual_seed(42)
    model.reset_parameters()
    first = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(7)
    model.reset_parameters()
    assert any(not torch.equal(first[k], v) for k, v in model.state_dict().items())
    torch.manual_seed(42)
    model.reset_parameters()
    for k, v in model.state_dict().items():
        assert torch.equal(first[k], v), k
    assert (model.embed.weight[[0, model.eos]] == 0).all()
    assert (model.decoder_out.weight[[0, model.sos]] == 0).all()


def test_prunable_covers_every_weight_matrix_and_no_bias_or_norm():
    model = make_model()
    prunable = model.prunable()
    params = dict(model.named_parameters())
    assert all(params[n] is p for n, p in prunable.items())
    for name, p in params.items():
        if name.endswith(".weight") and p.dim() >= 2:
            assert name in prunable, name
        else:
            assert name not in prunable, name
    for name in ("encoder.0.self_attn.in_proj.weight", "decoder.1.cross_attn.kv_proj.weight",
                 "decoder.0.cross_attn.q_proj.weight", "subsample.conv1.weight", "embed.weight",
                 "ctc_head.weight", "decoder_out.weight"):
        assert name in prunable


def test_presets_sizes():
    small = load_config(SMALL)
    model = build_model(small.model, 29, small.data.features.n_mels)
    assert 4_000_000 <= model.num_params() <= 6_000_000
    tiny = load_config(TINY)
    assert build_model(tiny.model, 29, tiny.data.features.n_mels).num_params() < 60_000
    assert small.train.schedule == tiny.train.schedule == "noam"


# --------------------------------------------------------------------------- end to end


def test_two_training_steps_on_the_tiny_corpus(tiny_corpus, tmp_path):
    from audio_lottery.recognizer import Recognizer
    from audio_lottery.train.loop import train_model

    cfg = load_config(TINY, tiny_overrides(tiny_corpus, "train.max_steps=2", "train.threads=1"))
    result = train_model(cfg, tmp_path / "run", progress=False)
    assert result["steps"] == 2 and result["skipped_steps"] == 0
    assert (tmp_path / "run" / "best.safetensors").is_file()
    rec = Recognizer.load(tmp_path / "run" / "best.safetensors")
    assert isinstance(rec.model, TransformerASR)
    text = rec.transcribe([torch.zeros(16000).numpy()])[0]
    assert set(text) <= set(rec.tokenizer.symbols[1:]), text  # no blank, <sos> or <eos> leaks into the text


def test_one_level_lottery_on_the_tiny_corpus(tiny_corpus, tmp_path):
    from audio_lottery.files import read_json
    from audio_lottery.lottery.runner import run_lottery
    from audio_lottery.pruning.mask import Mask

    cfg = load_config(TINY, tiny_overrides(tiny_corpus, "train.max_steps=2", "train.threads=1"))
    cfg.lottery.levels = 1
    run = run_lottery(cfg, tmp_path, progress=False)
    res = read_json(run / "level_1" / "result.json")
    assert res["remaining"] == pytest.approx(0.8, abs=1e-3)
    mask = Mask.load(run / "level_1" / "mask.safetensors")
    assert any(".self_attn.in_proj.weight" in k for k in mask.keys())
