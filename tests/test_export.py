"""Export formats (dense / compact / csr), their encodings, file sizes, the CSR runtime, ONNX and the CLI."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from audio_lottery.config import load_config
from audio_lottery.data.pipeline.tokenizers import CharTokenizer
from audio_lottery.pruning import Mask, get_strategy, global_magnitude
from audio_lottery.fallbacks import EagerRecurrenceWarning, UnshrunkExportWarning, fail_on_fallbacks
from audio_lottery.pruning import csr
from audio_lottery.pruning.bundle_check import check_tensor_infos
from audio_lottery.pruning.csr import CSRLinear, CSRLSTM, CSRPolicy, to_csr
from audio_lottery.pruning.export import (
    EXPORT_CONFIG,
    WEIGHTS,
    encoded_sizes,
    export_recognizer,
    pack_bits,
    rice_decode,
    rice_encode,
    unpack_bits,
)
from audio_lottery.recognizer import Recognizer, load_exported

from conftest import TINY_CONFIG, tiny_overrides

CLI = [sys.executable, "-m", "audio_lottery.cli", "-q"]


def _recognizer(seed: int = 0, overrides: tuple[str, ...] = ()) -> Recognizer:
    cfg = load_config(TINY_CONFIG, ["model.ds2.rnn_hidden=48", *overrides])
    torch.manual_seed(seed)
    rec = Recognizer.build(cfg, CharTokenizer())
    rec.model.train()
    with torch.no_grad():
        for _ in range(2):
            rec.model(torch.randn(3, 90, rec.featurizer.dim) * 2 + 1, torch.tensor([90, 70, 41]))
    rec.model.eval()
    return rec


def _ticket(rec: Recognizer, kind: str, levels: int) -> Mask:
    params = {n: p.detach() for n, p in rec.model.named_parameters()}
    mask = Mask.from_patterns(rec.model)
    for _ in range(levels):
        if kind == "channel":
            mask = get_strategy("channel")(params, mask, 0.2, None, groups=rec.model.structure_groups())
        else:
            mask = global_magnitude(params, mask, 0.2)
    mask.apply_(rec.model)
    return mask


def _batch(dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    lens = torch.tensor([150, 111, 40])
    feats = torch.randn(3, 160, dim, generator=g)
    feats[torch.arange(160)[None, :] >= lens[:, None]] = -50.0
    return feats, lens


def _outputs(model: nn.Module, feats, lens) -> torch.Tensor:
    with torch.no_grad():
        out, out_lens = model(feats, lens)
    return torch.cat([out[i, : int(n)] for i, n in enumerate(out_lens)])


# --------------------------------------------------------------------------- encodings


def test_bit_packing_round_trip() -> None:
    keep = torch.rand(5, 13, generator=torch.Generator().manual_seed(0)) < 0.3
    packed = pack_bits(keep)
    assert packed.dtype == torch.uint8 and packed.numel() == -(-65 // 8)
    assert torch.equal(unpack_bits(packed, 65).view(5, 13), keep)


@pytest.mark.parametrize("density", [0.0005, 0.05, 0.3, 0.9])
def test_rice_coded_positions_round_trip(density: float) -> None:
    keep = torch.rand(3000, generator=torch.Generator().manual_seed(1)) < density
    keep[-1] = True  # a last position exactly at the end
    unary, rem, k = rice_encode(keep)
    pos = rice_decode(unary, rem, k, int(keep.sum()), keep.numel())
    assert torch.equal(pos, keep.nonzero().squeeze(1))
    with pytest.raises(ValueError, match="beyond"):
        rice_decode(unary, rem, k, int(keep.sum()), keep.numel() - 1)
    with pytest.raises(ValueError, match="truncated"):
        rice_decode(unary[: unary.numel() // 2], rem, k, int(keep.sum()), keep.numel())


def test_encoded_sizes_pick_the_cheapest() -> None:
    keep = torch.zeros(8000, dtype=torch.bool)
    keep[::10] = True  # 10 % density, every gap 9: k = 3 -> 1 unary + 1 stop bit + 3 bits = 5 bits each
    sizes = encoded_sizes(keep, 4)
    assert sizes == {"dense": 32000, "bitmask": 1000 + 3200, "rice": 800 * 5 // 8 + 3200}


# --------------------------------------------------------------------------- export round trip


@pytest.mark.parametrize("kind,levels", [("unstructured", 10), ("channel", 5)])
def test_export_formats_reproduce_the_masked_model(tmp_path: Path, kind: str, levels: int) -> None:
    rec = _recognizer()
    mask = _ticket(rec, kind, levels)
    feats, lens = _batch(rec.featurizer.dim)
    ref = _outputs(rec.model, feats, lens)
    sizes = {}
    for fmt in ("dense", "compact", "csr"):
        out = tmp_path / fmt
        meta = export_recognizer(rec, mask, fmt, out, source={"test": kind})
        sizes[fmt] = (out / WEIGHTS).stat().st_size
        assert json.loads((out / EXPORT_CONFIG).read_text())["export_format"] == fmt
        assert meta["remaining"] == pytest.approx(mask.density())
        loaded = Recognizer.load(out)  # what eval / transcribe do
        assert torch.allclose(_outputs(loaded.model, feats, lens), ref, atol=1e-5, rtol=1e-5), fmt
        if fmt == "csr":
            forced = load_exported(out, CSRPolicy(linear_max_density=1.0, lstm_max_density=1.0, lstm_min_hidden=0))
            assert any(isinstance(m, CSRLSTM) for m in forced.model.modules())
            assert any(isinstance(m, CSRLinear) for m in forced.model.modules())
            assert torch.allclose(_outputs(forced.model, feats, lens), ref, atol=1e-5, rtol=1e-5)
    assert sizes["compact"] <= sizes["csr"] + 100 and sizes["csr"] < 0.6 * sizes["dense"]
    if kind == "channel":
        assert meta["params"] < 0.5 * sum(p.numel() for p in rec.model.parameters())
        assert load_exported(tmp_path / "compact").cfg.model.ds2.rnn_hidden_sizes != []


@pytest.mark.parametrize("kind,levels", [("unstructured", 7), ("unstructured", 10), ("unstructured", 14),
                                         ("channel", 7)])
def test_compact_file_is_at_most_1_3x_the_remaining_fraction_of_dense(tmp_path: Path, kind: str, levels: int) -> None:
    """The issue's target on a 0.7 M-parameter DS2. The remaining fraction counts every parameter
    (biases and norms always remain: 1.2 % of this small model, 0.1-0.5 % of the presets); down to
    10.7 % it also holds against the prunable weights' density alone."""
    rec = _recognizer(overrides=("model.ds2.rnn_hidden=160", "model.ds2.conv_channels=[8, 8]"))
    mask = _ticket(rec, kind, levels)
    sizes = {}
    for fmt in ("dense", "compact"):
        export_recognizer(rec, mask, fmt, tmp_path / fmt)
        sizes[fmt] = (tmp_path / fmt / WEIGHTS).stat().st_size
    params = list(rec.model.parameters())
    remaining = sum(int((p != 0).sum()) for p in params) / sum(p.numel() for p in params)
    assert sizes["compact"] <= 1.3 * remaining * sizes["dense"], (sizes, remaining)
    if levels <= 10:
        assert sizes["compact"] <= 1.3 * mask.density() * sizes["dense"], (sizes, mask.density())


def test_export_refuses_bad_folders(tmp_path: Path) -> None:
    rec = _recognizer()
    mask = _ticket(rec, "unstructured", 8)
    export_recognizer(rec, mask, "compact", tmp_path / "m")
    meta = json.loads((tmp_path / "m" / EXPORT_CONFIG).read_text())
    name = next(n for n, i in meta["tensors"].items() if i["encoding"] != "dense")
    meta["tensors"][name]["shape"] = [3]
    (tmp_path / "m" / EXPORT_CONFIG).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=f"config.json: tensor {name!r}: shape \\[3\\] does not fit"):
        load_exported(tmp_path / "m")
    meta["format"] = "something-else"
    (tmp_path / "m" / EXPORT_CONFIG).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="config.json: not an audio-lottery export"):
        load_exported(tmp_path / "m")
    with pytest.raises(ValueError, match="unknown export format"):
        export_recognizer(rec, mask, "zip", tmp_path / "z")


def test_tensor_descriptions_are_checked_before_allocating(tmp_path: Path) -> None:
    expected = {"w": [4, 6], "b": [4]}
    ok = {"w": {"shape": [4, 6], "encoding": "rice", "k": 3, "count": 5}, "b": {"shape": [4], "encoding": "dense"}}
    check_tensor_infos(ok, expected, tmp_path / "config.json")
    bad_cases = [
        ({"w": {**ok["w"], "k": 1 << 40}}, "tensor 'w': rice parameter k=1099511627776 must be an integer in 0..16"),
        ({"w": {**ok["w"], "count": 25}}, "tensor 'w': count=25 must be an integer in 0..24"),
        ({"w": {**ok["w"], "shape": [4, -6]}}, "tensor 'w': shape [4, -6] does not fit"),
        ({"w": {"shape": [4, 6], "encoding": "csr", "matrix": [4, 7]}}, "tensor 'w': CSR matrix [4, 7] does not fit"),
        ({"w": {"shape": [4, 6], "encoding": "zip"}}, "tensor 'w': unknown encoding 'zip'"),
        ({"w": [4, 6]}, "tensor 'w': the description is not a mapping"),
    ]
    for change, message in bad_cases:
        with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'config.json'}: {message}")):
            check_tensor_infos({**ok, **change}, expected, tmp_path / "config.json")
    with pytest.raises(ValueError, match=re.escape("missing ['b'], unexpected []")):
        check_tensor_infos({"w": ok["w"]}, expected, tmp_path / "config.json")


def test_an_export_that_cannot_shrink_warns_and_benchmarks_fail_on_it(tmp_path: Path) -> None:
    rec = _recognizer()
    mask = _ticket(rec, "channel", 5)

    def cannot(sizes):  # a backbone with channel groups but no resized config (the base class's answer)
        raise NotImplementedError("this backbone cannot be shrunk")

    rec.model.shrunk_config = cannot
    with pytest.warns(UnshrunkExportWarning, match="compact export of a ds2 model: not shrunk.*cannot be shrunk"):
        meta = export_recognizer(rec, mask, "compact", tmp_path / "m")
    assert meta["params"] == sum(p.numel() for p in rec.model.parameters())  # full size, as the warning says
    with warnings.catch_warnings():
        fail_on_fallbacks()
        with pytest.raises(UnshrunkExportWarning):
            export_recognizer(rec, mask, "compact", tmp_path / "m2")
        export_recognizer(rec, mask, "dense", tmp_path / "m3")  # nothing to shrink: no fallback


def test_eager_recurrence_fallback_warns(monkeypatch) -> None:
    def refuse(fn):
        raise RuntimeError("scripting is off")

    monkeypatch.setattr(torch.jit, "script", refuse)
    csr.compiled_recurrence.cache_clear()
    try:
        with pytest.warns(EagerRecurrenceWarning, match="RuntimeError: scripting is off"):
            assert csr.compiled_recurrence() is csr._recurrence
        csr.compiled_recurrence.cache_clear()
        with warnings.catch_warnings():
            fail_on_fallbacks()
            with pytest.raises(EagerRecurrenceWarning):
                csr.compiled_recurrence()
    finally:
        csr.compiled_recurrence.cache_clear()


# --------------------------------------------------------------------------- CSR runtime


def test_csr_layers_match_dense_ones() -> None:
    torch.manual_seed(0)
    lstm = nn.LSTM(20, 16, batch_first=True)
    lin = nn.Linear(16, 5)
    with torch.no_grad():
        for p in (lstm.weight_ih_l0, lstm.weight_hh_l0, lin.weight):
            p.mul_(torch.rand_like(p) < 0.15)
    x = torch.randn(3, 11, 20)
    state = (torch.randn(1, 3, 16), torch.randn(1, 3, 16))
    with torch.no_grad():
        ref, (h, c) = lstm(x, state)
        for sparse_hh in (False, True):
            got, (h2, c2) = CSRLSTM(lstm, sparse_hh)(x, state)
            assert torch.allclose(got, ref, atol=1e-6) and torch.allclose(h2, h, atol=1e-6)
            assert torch.allclose(c2, c, atol=1e-6)
        assert torch.allclose(CSRLinear(lin)(ref), lin(ref), atol=1e-6)


def test_csr_policy_decides_where_sparse_layers_run() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].weight[0, 0] = 1.0
    assert to_csr(model) == {"0": "linear"}
    assert isinstance(model[0], CSRLinear) and isinstance(model[1], nn.Linear)
    rec = _recognizer()
    _ticket(rec, "unstructured", 10)
    assert not any("lstm" in k for k in to_csr(rec.model).values())  # 48 hidden units: torch's LSTM is faster
    rec = _recognizer()
    _ticket(rec, "unstructured", 10)
    kinds = to_csr(rec.model, CSRPolicy(lstm_min_hidden=0, lstm_max_density=0.2))
    assert kinds["rnns.0.fwd"] == "lstm+hh" and kinds["out"] == "linear"


# --------------------------------------------------------------------------- ONNX


def test_onnx_export_of_a_shrunk_ds2_matches_torch(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from audio_lottery.lottery.export import add_onnx

    rec = _recognizer()
    mask = _ticket(rec, "channel", 5)
    export_recognizer(rec, mask, "compact", tmp_path / "m")
    check = add_onnx(tmp_path / "m", frames=80)
    assert check["max_abs_difference"] < 1e-4
    assert (tmp_path / "m" / "model.onnx").stat().st_size < 1.5 * (tmp_path / "m" / WEIGHTS).stat().st_size + 50_000
    assert json.loads((tmp_path / "m" / EXPORT_CONFIG).read_text())["onnx"] == check


# --------------------------------------------------------------------------- CLI


def _fake_run(root: Path, rec: Recognizer, mask: Mask, level: int) -> Path:
    """A lottery-run folder with one trained level (what `export` reads)."""
    run = root / "lottery_test"
    rec.save(run / f"level_{level}" / "train", "best.safetensors")
    mask.save(run / f"level_{level}" / "mask.safetensors")
    return run


def test_cli_export_then_eval_and_transcribe(tmp_path: Path, tiny_corpus: Path, cli_env: dict) -> None:
    cfg = load_config(TINY_CONFIG, tiny_overrides(tiny_corpus))
    torch.manual_seed(0)
    rec = Recognizer.build(cfg, CharTokenizer())
    mask = _ticket(rec, "channel", 4)
    run = _fake_run(tmp_path, rec, mask, 4)
    out = tmp_path / "exported"
    res = subprocess.run(CLI + ["export", "--run", str(run), "--level", "4", "--format", "compact", "--out", str(out)],
                         capture_output=True, text=True, env=cli_env, timeout=300)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["export_format"] == "compact" and summary["remaining"] == pytest.approx(mask.density())
    manifest = str(tiny_corpus / "dev.jsonl")
    scores = []
    for model in (run / "level_4" / "train" / "best.safetensors", out):
        res = subprocess.run(CLI + ["eval", "--model", str(model), "--manifest", manifest, "--limit", "4",
                                    "--hyps", str(tmp_path / f"{model.name}.jsonl")],
                             capture_output=True, text=True, env=cli_env, timeout=300)
        assert res.returncode == 0, res.stderr
        scores.append(json.loads(res.stdout))
    assert scores[0] == scores[1]
    assert (tmp_path / "best.safetensors.jsonl").read_text() == (tmp_path / "exported.jsonl").read_text()
    audio = str(tiny_corpus / json.loads(Path(manifest).read_text().splitlines()[0])["audio"])
    res = subprocess.run(CLI + ["transcribe", "--model", str(out), audio], capture_output=True, text=True,
                         env=cli_env, timeout=300)
    assert res.returncode == 0 and res.stdout.startswith(audio), res.stderr
    res = subprocess.run(CLI + ["export", "--run", str(run), "--level", "9", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, env=cli_env, timeout=300)
    assert res.returncode == 2 and "level_9" in res.stderr and "not trained" in res.stderr
