"""RNN-Transducer: the vectorised loss against a naive DP and hand computation, the model's
interface (padding invariance, greedy and beam search, prunable scope), presets, training
and a one-level lottery run on the tiny corpus."""

from __future__ import annotations

import math

import pytest
import torch

from audio_lottery.config import load_config
from audio_lottery.data.pipeline.features import FeatureExtractor
from audio_lottery.files import read_json
from audio_lottery.models import build_model
from audio_lottery.models.rnnt import RNNTransducer
from audio_lottery.models.transducer_loss import rnnt_loss, rnnt_loss_naive

from conftest import ROOT, tiny_overrides

CONFIGS = ROOT / "configs"
TINY = CONFIGS / "rnnt_tiny.yaml"

# --------------------------------------------------------------------------- loss


def _random_case(seed: int, t_lens: list[int], u_lens: list[int], v: int, dtype=torch.float64, pad_t=0, pad_u=0):
    g = torch.Generator().manual_seed(seed)
    b, t, u = len(t_lens), max(t_lens) + pad_t, max(u_lens) + pad_u
    logits = torch.randn(b, t, u + 1, v, generator=g, dtype=dtype).mul_(2).requires_grad_(True)
    targets = torch.randint(1, v, (b, max(u, 1)), generator=g)
    for i, n in enumerate(u_lens):
        targets[i, n:] = 0  # padding, like the collate function
    return logits, targets, torch.tensor(t_lens), torch.tensor(u_lens)


def test_hand_computed_tiny_lattices():
    torch.manual_seed(0)
    # T=1, U=1: emit y then blank
    logits = torch.randn(1, 1, 2, 4, dtype=torch.float64)
    lp = logits.log_softmax(-1)[0]
    expected = -(lp[0, 0, 3] + lp[0, 1, 0])
    got = rnnt_loss(logits, torch.tensor([[3]]), torch.tensor([1]), torch.tensor([1]))
    assert got.item() == pytest.approx(expected.item(), abs=1e-12)
    # T=2, U=1: two alignments (blank, y, blank) and (y, blank, blank)
    logits = torch.randn(1, 2, 2, 3, dtype=torch.float64)
    lp = logits.log_softmax(-1)[0]
    a = lp[0, 0, 0] + lp[1, 0, 2] + lp[1, 1, 0]
    b = lp[0, 0, 2] + lp[0, 1, 0] + lp[1, 1, 0]
    expected = -torch.logaddexp(a, b)
    got = rnnt_loss(logits, torch.tensor([[2]]), torch.tensor([2]), torch.tensor([1]))
    assert got.item() == pytest.approx(expected.item(), abs=1e-12)
    # T=3, U=0: blanks only
    logits = torch.randn(1, 3, 1, 5, dtype=torch.float64)
    expected = -logits.log_softmax(-1)[0, :, 0, 0].sum()
    got = rnnt_loss(logits, torch.zeros(1, 1, dtype=torch.long), torch.tensor([3]), torch.tensor([0]))
    assert got.item() == pytest.approx(expected.item(), abs=1e-12)


CASES = [
    ([1], [0], 3),
    ([1], [1], 4),
    ([1], [5], 6),
    ([6], [0], 5),
    ([7], [4], 5),
    ([5, 1, 3], [2, 3, 0], 7),       # padded batch: different T and U, a length-1 item and U=0
    ([9, 4, 1, 6], [1, 6, 2, 0], 11),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("t_lens,u_lens,v", CASES)
def test_loss_and_gradients_match_naive_reference(t_lens, u_lens, v, dtype):
    logits, targets, tl, ul = _random_case(sum(t_lens) * 31 + v, t_lens, u_lens, v, dtype, pad_t=2, pad_u=1)
    fast = rnnt_loss(logits, targets, tl, ul, reduction="none")
    ref = rnnt_loss_naive(logits, targets, tl, ul, reduction="none")
    assert torch.allclose(fast.double(), ref, rtol=1e-6, atol=1e-4)
    w = torch.linspace(0.5, 1.5, len(t_lens), dtype=torch.float64)  # distinct weights per utterance
    g_fast, = torch.autograd.grad((fast.double() * w).sum(), logits)
    g_ref, = torch.autograd.grad((ref * w).sum(), logits)
    assert torch.isfinite(g_fast).all()
    assert (g_fast.double() - g_ref).abs().max() < 1e-4
    # padded frames and lattice nodes get no gradient
    for i, (t, u) in enumerate(zip(t_lens, u_lens)):
        assert (g_fast[i, t:] == 0).all() and (g_fast[i, :, u + 1 :] == 0).all()


def test_naive_reference_gradients_are_exact():
    logits, targets, tl, ul = _random_case(3, [3, 2], [2, 1], 4)
    assert torch.autograd.gradcheck(lambda x: rnnt_loss_naive(x, targets, tl, ul, reduction="sum"), (logits,))


def test_realistic_shape_matches_naive():
    logits, targets, tl, ul = _random_case(5, [60, 41, 17], [25, 30, 3], 29, torch.float32)
    fast = rnnt_loss(logits, targets, tl, ul, reduction="sum")
    ref = rnnt_loss_naive(logits, targets, tl, ul, reduction="sum")
    assert fast.item() == pytest.approx(ref.item(), rel=1e-6)
    g1, = torch.autograd.grad(fast, logits)
    g2, = torch.autograd.grad(ref, logits)
    assert (g1.double() - g2).abs().max() < 1e-4


def test_padded_batch_equals_each_utterance_alone_and_reductions():
    logits, targets, tl, ul = _random_case(7, [8, 3, 5], [4, 0, 2], 6, pad_t=1, pad_u=2)
    batch = rnnt_loss(logits, targets, tl, ul, reduction="none")
    for i in range(3):
        t, u = int(tl[i]), int(ul[i])
        alone = rnnt_loss(logits[i : i + 1, :t, : u + 1], targets[i : i + 1, : max(u, 1)], tl[i : i + 1], ul[i : i + 1])
        assert alone.item() == pytest.approx(batch[i].item(), abs=1e-10)
    assert rnnt_loss(logits, targets, tl, ul, reduction="sum").item() == pytest.approx(batch.sum().item())
    assert rnnt_loss(logits, targets, tl, ul).item() == pytest.approx(batch.mean().item())
    lp = logits.log_softmax(-1)
    assert torch.allclose(rnnt_loss(lp, targets, tl, ul, reduction="none", fused_log_softmax=False), batch)
    zero = rnnt_loss(logits, targets, torch.tensor([8, 0, 5]), ul, reduction="none")
    assert zero[1] == 0 and torch.allclose(zero[[0, 2]], batch[[0, 2]])
    with pytest.raises(ValueError):
        rnnt_loss(logits, targets, tl, ul, reduction="max")
    with pytest.raises(ValueError):
        rnnt_loss(logits, targets, tl + 5, ul)


# --------------------------------------------------------------------------- model


def _tiny_model(seed: int = 0, **overrides) -> RNNTransducer:
    cfg = load_config(TINY, [f"model.rnnt.{k}={v}" for k, v in overrides.items()])
    torch.manual_seed(seed)
    return build_model(cfg.model, 29, cfg.data.features.n_mels)


def _peaky(model: RNNTransducer, blank_bias: float = 1.0) -> RNNTransducer:
    """Sharper joint outputs so a random model emits a mix of blanks and tokens."""
    with torch.no_grad():
        model.joint.out.weight.mul_(8)
        model.joint.enc.weight.mul_(3)
        model.joint.out.bias.zero_()
        model.joint.out.bias[model.blank] = blank_bias
    return model.eval()


def _inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    lens = torch.tensor([120, 57, 9, 83])
    return torch.randn(4, 120, 40, generator=g), lens


def test_forward_returns_encoder_output_and_lengths():
    m = _tiny_model()
    feats, lens = _inputs()
    enc, out_lens = m(feats, lens)
    assert enc.shape == (4, 30, 64) and out_lens.tolist() == m.output_lengths(lens).tolist() == [30, 15, 3, 21]
    assert (enc[1, 15:] == 0).all()
    assert m.min_output_frames([1, 2, 3, 4, 5]) == 1
    uni = _tiny_model(bidirectional=False)
    assert uni(feats, lens)[0].shape == (4, 30, 32)
    summed = _tiny_model(merge_directions="sum")
    assert summed(feats, lens)[0].shape == (4, 30, 32)


def test_prunable_scope():
    m = _tiny_model()
    names = set(m.prunable())
    assert {"conv.0.conv.weight", "conv.1.conv.weight", "prediction.embed.weight", "prediction.lstm.weight_ih_l0",
            "prediction.lstm.weight_hh_l0", "joint.enc.weight", "joint.pred.weight", "joint.out.weight",
            "encoder.0.fwd.weight_ih_l0", "encoder.1.bwd.weight_hh_l0"} <= names
    assert not any("bias" in n or ".bn." in n or ".norm." in n for n in names)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    m.reset_parameters()
    changed = {n for n, p in m.named_parameters() if not torch.equal(before[n], p)}
    assert names <= changed


def test_loss_trains_and_joint_chunking_changes_nothing():
    feats, lens = _inputs()
    targets = torch.randint(1, 29, (4, 12), generator=torch.Generator().manual_seed(2))
    t_lens = torch.tensor([12, 7, 0, 9])
    losses, grads = [], []
    for chunk in (0, 3):
        m = _tiny_model(joint_chunk=chunk)
        loss = m.loss(feats, lens, targets, t_lens)
        loss.backward()
        losses.append(loss.item())
        grads.append({n: p.grad.clone() for n, p in m.named_parameters()})
    assert math.isfinite(losses[0]) and losses[0] == pytest.approx(losses[1], rel=1e-6)
    for n in grads[0]:
        assert torch.allclose(grads[0][n], grads[1][n], atol=1e-6), n
    m = _tiny_model()
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    first = None
    for _ in range(15):
        opt.zero_grad()
        loss = m.loss(feats, lens, targets, t_lens)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < first


def test_greedy_decode_is_padding_invariant_and_equals_beam_1():
    m = _peaky(_tiny_model())
    feats, lens = _inputs()
    batch = m.decode(feats, lens)
    assert any(batch) and any(0 < len(h) < 3 * n for h, n in zip(batch, m.output_lengths(lens).tolist()))
    assert all(0 < k < 29 for h in batch for k in h)
    for i in range(4):
        n = int(lens[i])
        assert m.decode(feats[i : i + 1, :n], lens[i : i + 1])[0] == batch[i]
    assert m.beam_search(feats, lens, beam=1) == batch


def test_beam_search_is_padding_invariant():
    m = _peaky(_tiny_model(1, max_symbols_per_frame=2), blank_bias=1.0)
    feats, lens = _inputs()
    beams = m.beam_search(feats, lens, beam=4)
    assert any(beams) and beams != m.decode(feats, lens)
    for i in range(4):
        n = int(lens[i])
        assert m.beam_search(feats[i : i + 1, :n], lens[i : i + 1], beam=4)[0] == beams[i]
    assert all(0 < k < 29 for h in beams for k in h)


def _capped_sequence_scores(m: RNNTransducer, enc_proj: torch.Tensor) -> dict[tuple, float]:
    """Brute force: log-sum over every alignment (<= cap tokens per frame; a frame that reached the
    cap moves on without a blank, as the decoders do) of each token sequence."""
    cap, scores = m.cfg.max_symbols_per_frame, {}

    def pred(prefix: tuple) -> torch.Tensor:
        g, state = m.prediction.step(torch.tensor([m.blank]), None)
        for k in prefix:
            g, state = m.prediction.step(torch.tensor([k]), state)
        return m.joint.pred(g)[0]

    def walk(t: int, k: int, prefix: tuple, score: float) -> None:
        if t == enc_proj.shape[0]:
            scores[prefix] = float(torch.logaddexp(torch.tensor(scores.get(prefix, -math.inf)), torch.tensor(score)))
            return
        lp = torch.log_softmax(m.joint(enc_proj[t], pred(prefix)).double(), -1)
        if k == cap:
            walk(t + 1, 0, prefix, score)
            return
        walk(t + 1, 0, prefix, score + float(lp[m.blank]))
        for tok in range(1, m.vocab_size):
            walk(t, k + 1, prefix + (tok,), score + float(lp[tok]))

    walk(0, 0, (), 0.0)
    return scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exhaustive_beam_search_finds_the_best_sequence(seed):
    cfg = load_config(TINY, ["model.rnnt.max_symbols_per_frame=2"])
    torch.manual_seed(seed)
    m = _peaky(RNNTransducer(cfg.model.rnnt, 3, 40), blank_bias=-0.5)
    feats = torch.randn(1, 8, 40, generator=torch.Generator().manual_seed(seed))
    lens = torch.tensor([8])
    with torch.no_grad():
        enc, out_lens = m(feats, lens)
        assert out_lens.tolist() == [2]
        scores = _capped_sequence_scores(m, m.joint.enc(enc[0]))
    best = max(scores, key=scores.get)
    assert len(scores) == 31 and best  # every sequence of <= 4 tokens from {1, 2}; the best is not empty
    assert m.beam_search(feats, lens, beam=100) == [list(best)]
    greedy = m.decode(feats, lens)
    assert m.beam_search(feats, lens, beam=1) == greedy
    assert scores[tuple(greedy[0])] <= scores[best]


# --------------------------------------------------------------------------- presets


def _count(name: str) -> tuple[int, int, int]:
    cfg = load_config(CONFIGS / f"{name}.yaml")
    dim = FeatureExtractor(cfg.data.features).dim
    with torch.device("meta"):
        m = build_model(cfg.model, 29, dim)
    return sum(p.numel() for p in m.parameters()), sum(p.numel() for p in m.prunable().values()), dim


def test_paper_preset_parameter_count():
    params, prunable, dim = _count("rnnt_paper")
    assert dim == 161
    assert params == 131_753_277 and prunable == 131_644_512
    assert abs(params - 132.23e6) / 132.23e6 < 0.02


def test_small_preset_is_cpu_sized():
    params, _, dim = _count("rnnt_small")
    assert dim == 80 and 4e6 <= params <= 6e6 and params == 5_730_109


# --------------------------------------------------------------------------- end to end


def test_two_training_steps_on_the_tiny_corpus(tiny_corpus, tmp_path):
    from audio_lottery.train.loop import train_model

    cfg = load_config(TINY, tiny_overrides(tiny_corpus, "train.max_steps=2"))
    result = train_model(cfg, tmp_path / "run", progress=False)
    assert result["steps"] == 2 and (tmp_path / "run" / "best.safetensors").is_file()
    (epoch,) = result["history"]
    assert result["best_dev_cer"] == epoch["dev_cer"] and math.isfinite(epoch["dev_cer"]) and result["best_epoch"] == 1


def test_one_level_lottery_on_the_tiny_corpus(tiny_corpus, tmp_path):
    from audio_lottery.lottery.runner import run_lottery
    from audio_lottery.pruning.mask import Mask

    cfg = load_config(TINY, tiny_overrides(tiny_corpus, "train.max_steps=3", "lottery.levels=1"))
    run = run_lottery(cfg, tmp_path / "runs", progress=False)
    res = read_json(run / "level_1" / "result.json")
    assert res["remaining"] == pytest.approx(0.8, abs=1e-3)
    mask = Mask.load(run / "level_1" / "mask.safetensors")
    assert "joint.out.weight" in mask.keys() and "prediction.embed.weight" in mask.keys()
