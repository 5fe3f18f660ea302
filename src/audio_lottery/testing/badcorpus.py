"""A corpus of bad inputs, each paired with the outcome the toolkit must produce.

:func:`write_bad_corpus` takes a few good manifest records (real speech) and writes, into
``out``:

- ``train.jsonl``: the good utterances plus one utterance per per-utterance case --
  broken audio or transcripts (outcome ``skip``: training leaves them out and counts
  them) and unusual but valid audio (outcome ``ok``: other sample rates, stereo, other
  encodings, used after conversion);
- ``refuse_<case>.jsonl``: one manifest per malformed-manifest case (outcome ``refuse``:
  training does not start, the message names the file and line);
- ``dev_<case>.jsonl``: dev sets that evaluation could not score (outcome
  ``refuse-eval``: the lottery or training refuses them before the first step).

Each :class:`Case` carries the reason (or message fragment) expected.

:func:`write_bad_folders` does the same for what a shared run or export folder can hold (it is
untrusted input): tokenizer folders whose ``tokenizer.json`` points out of the folder, export
folders whose ``config.json`` asks for absurd allocations, ``--decode-params`` files pointing
nowhere, audio given to ``transcribe`` that is missing or unreadable. Each :class:`LoadCase` must be
refused with a message naming the file (outcome ``refuse``) or load as described (``ok``);
:func:`observe_loads` runs them through the loaders themselves.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from audio_lottery.layout import TrainLayout
from audio_lottery.data.audio import load_audio

SR = 16000


@dataclass(frozen=True)
class Case:
    """One bad input: ``outcome`` is skip, ok, refuse or refuse-eval; ``expect`` the reason or
    message fragment; ``manifest`` where it lives; ``uid`` its utterance id (per-utterance cases)."""

    name: str
    outcome: str
    expect: str
    manifest: Path
    uid: str = ""
    line: int | None = None

    def named_in(self, message: str) -> bool:
        """Whether ``message`` names the manifest (and the line where there is one)."""
        if self.outcome in ("refuse", "refuse-eval"):
            return str(self.manifest) in message and (self.line is None or f"{self.manifest}:{self.line}" in message)
        return f":{self.line} " in message and str(self.manifest) in message


@dataclass
class BadCorpus:
    root: Path
    train: Path
    cases: list[Case] = field(default_factory=list)

    def by_outcome(self, outcome: str) -> list[Case]:
        return [c for c in self.cases if c.outcome == outcome]


def _rec(uid: str, audio: Path | str, duration: float, text: str) -> dict:
    return {"id": uid, "audio": str(audio), "duration": round(duration, 4), "text": text, "speaker": "fuzz"}


def _tone(seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def write_bad_corpus(out: Path, good: list[dict]) -> BadCorpus:
    """Write the bad-input corpus into ``out`` from ``good`` records (at least 3, with audio)."""
    if len(good) < 3:
        raise ValueError("write_bad_corpus needs at least 3 good records")
    out = Path(out)
    audio = out / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    good = [dict(r) for r in good]
    src, src_text = load_audio(good[0]["audio"], SR), good[0]["text"]
    dur = len(src) / SR
    rows: list[dict] = list(good)
    cases: list[Case] = []
    train = out / "train.jsonl"

    def add(name: str, outcome: str, expect: str, rec: dict) -> None:
        rows.append(rec)
        cases.append(Case(name, outcome, expect, train, rec["id"], len(rows)))

    def wav(name: str, data: np.ndarray, sr: int = SR, subtype: str = "FLOAT", fmt: str | None = None) -> Path:
        path = audio / name
        sf.write(str(path), data, sr, subtype=subtype, format=fmt)
        return path

    # ---- broken audio: skipped and counted
    corrupt = audio / "corrupt.wav"
    corrupt.write_bytes(np.random.default_rng(0).bytes(20000))
    add("corrupt file (random bytes)", "skip", "unreadable audio", _rec("corrupt", corrupt, 1.0, src_text))
    full = wav("full.flac", src, subtype="PCM_16")
    cut = audio / "truncated.flac"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 4 // 10])
    add("truncated FLAC", "skip", "unreadable audio", _rec("truncated_flac", cut, dur, src_text))
    whole = wav("whole.wav", src, subtype="PCM_16")
    cutw = audio / "truncated.wav"
    cutw.write_bytes(whole.read_bytes()[: whole.stat().st_size * 4 // 10])
    add("truncated WAV (header promises more)", "skip", "segment beyond the end of the audio",
        _rec("truncated_wav", cutw, dur, src_text))
    zero_bytes = audio / "zero_bytes.wav"
    zero_bytes.write_bytes(b"")
    add("zero-byte file", "skip", "unreadable audio", _rec("zero_bytes", zero_bytes, 1.0, src_text))
    add("zero-length audio (valid header, no samples)", "skip", "empty audio",
        _rec("zero_length", wav("zero_length.wav", np.zeros(0, np.float32)), 1.0, src_text))
    add("silent audio", "skip", "silent audio", _rec("silent", wav("silent.wav", np.zeros(SR * 2, np.float32)),
                                                      2.0, src_text))
    nan = src.copy()
    nan[len(nan) // 2] = np.nan
    add("NaN samples", "skip", "non-finite samples", _rec("nan", wav("nan.wav", nan), dur, src_text))
    inf = src.copy()
    inf[10] = np.inf
    add("infinite samples", "skip", "non-finite samples", _rec("inf", wav("inf.wav", inf), dur, src_text))
    long = np.tile(src, int(math.ceil(31.0 / dur)))
    add("very long file (beyond data.max_duration)", "skip", "duration out of range",
        _rec("very_long", wav("very_long.flac", long, subtype="PCM_16"), len(long) / SR, src_text))
    add("manifest duration longer than the audio", "skip", "segment beyond the end of the audio",
        _rec("duration_lies", good[0]["audio"], dur + 3.0, src_text))
    add("offset beyond the end of the audio", "skip", "segment beyond the end of the audio",
        {**_rec("offset_beyond", good[0]["audio"], 1.0, src_text), "offset": dur + 1.0})
    add("missing audio file", "skip", "missing audio file", _rec("missing", audio / "does_not_exist.wav", 1.0, src_text))
    (audio / "a_directory.wav").mkdir(exist_ok=True)
    add("directory instead of an audio file", "skip", "missing audio file",
        _rec("directory", audio / "a_directory.wav", 1.0, src_text))
    add("audio too short for its transcript", "skip", "audio too short for its transcript",
        _rec("too_short_for_text", wav("short.wav", _tone(0.4)), 0.4, "a" * 30 + " " + "b" * 30))
    add("audio shorter than data.min_duration", "skip", "duration out of range",
        _rec("tiny", wav("tiny.wav", _tone(0.08)), 0.08, "a"))
    # ---- broken transcripts: skipped and counted
    add("empty transcript", "skip", "empty transcript", _rec("empty_text", good[1]["audio"], good[1]["duration"], ""))
    add("whitespace-only transcript", "skip", "empty transcript",
        _rec("blank_text", good[1]["audio"], good[1]["duration"], "  \t "))
    add("non-ASCII transcript (accents)", "skip", "text outside the vocabulary",
        _rec("accents", good[1]["audio"], good[1]["duration"], "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e"))
    add("non-ASCII transcript (CJK, emoji)", "skip", "text outside the vocabulary",
        _rec("cjk", good[1]["audio"], good[1]["duration"], "\u65e5\u672c\u8a9e \U0001F600"))
    add("unnormalised transcript (case, digits, punctuation)", "skip", "text outside the vocabulary",
        _rec("unnormalised", good[1]["audio"], good[1]["duration"], "Hello, World! 42"))
    # ---- unusual but valid audio: used after conversion
    for sr in (8000, 22050, 44100):
        res = soxr.resample(src, SR, sr).astype(np.float32)
        add(f"{sr} Hz audio", "ok", f"resampled from {sr} Hz",
            _rec(f"sr_{sr}", wav(f"sr_{sr}.wav", res, sr, "PCM_16"), len(res) / sr, src_text))
    add("stereo audio", "ok", "mixed down to mono",
        _rec("stereo", wav("stereo.wav", np.stack([src, 0.5 * src], axis=1), subtype="PCM_16"), dur, src_text))
    add("24-bit FLAC", "ok", "", _rec("flac24", wav("pcm24.flac", src, subtype="PCM_24"), dur, src_text))
    add("Ogg Vorbis", "ok", "", _rec("ogg", wav("vorbis.ogg", src, subtype="VORBIS", fmt="OGG"), dur, src_text))
    add("very quiet (not silent) audio", "ok", "", _rec("quiet", wav("quiet.wav", src * 0.005), dur, src_text))
    add("clipped audio (|x| > 1)", "ok", "", _rec("loud", wav("loud.wav", src * 8.0), dur, src_text))
    _write_lines(train, [json.dumps(r, ensure_ascii=False) for r in rows])

    # ---- malformed manifests: refused before training
    base = [json.dumps(r) for r in good]
    refusing = {
        "duplicate utterance ids": ([json.dumps({**good[0], "audio": good[1]["audio"]})], "duplicate utterance id"),
        "malformed JSON line (cut short)": ([json.dumps(good[0])[:-25]], "not valid JSON"),
        "JSON array instead of an object": (["[1, 2, 3]"], "expected a JSON object"),
        "missing field (text)": ([json.dumps({k: v for k, v in good[0].items() if k not in ("text", "id")})],
                                 "missing field(s) text"),
        "negative duration": ([json.dumps({**good[0], "id": "neg", "duration": -1})], "duration must be a positive"),
        "NaN duration": (['{"id": "nan_dur", "audio": "a.wav", "duration": NaN, "text": "a", "speaker": "s"}'],
                         "duration must be a positive"),
        "duration is a string": ([json.dumps({**good[0], "id": "strdur", "duration": "long"})], "must be numbers"),
        "text is not a string": ([json.dumps({**good[0], "id": "numtext", "text": 42})], "text must be a string"),
        "audio is null": ([json.dumps({**good[0], "id": "nullaudio", "audio": None})], "audio must be"),
    }
    for name, (bad, expect) in refusing.items():
        path = out / f"refuse_{_slug(name)}.jsonl"
        _write_lines(path, base[:2] + bad + base[2:])
        cases.append(Case(name, "refuse", expect, path, line=3))
    path = out / "refuse_non_utf8.jsonl"
    path.write_bytes(("\n".join(base[:2]) + "\n").encode() + b'{"id": "x", "text": "caf\xe9"}\n')
    cases.append(Case("non-UTF-8 bytes in the manifest", "refuse", "not valid UTF-8", path, line=3))
    cases.append(Case("manifest file missing", "refuse", "manifest not found", out / "refuse_no_such_manifest.jsonl"))
    empty = out / "refuse_empty.jsonl"
    empty.write_text("")
    cases.append(Case("empty manifest", "refuse", "no usable training utterances", empty))
    path = out / "refuse_nothing_usable.jsonl"
    _write_lines(path, [json.dumps(r, ensure_ascii=False) for r in rows if r["id"] in
                        ("corrupt", "silent", "missing", "empty_text", "cjk")])
    cases.append(Case("every utterance unusable", "refuse", "no usable training utterances", path))

    # ---- dev sets evaluation could not score: refused before the first step
    dev_bad = {
        "dev utterance with a missing audio file": (_rec("dev_missing", audio / "gone.wav", 1.0, "a"),
                                                    "missing audio file"),
        "dev utterance with NaN audio": (_rec("dev_nan", audio / "nan.wav", dur, src_text), "non-finite samples"),
        "dev reference outside the vocabulary": (_rec("dev_oov", good[1]["audio"], good[1]["duration"], "Caf\u00e9!"),
                                                 "text outside the vocabulary"),
    }
    for name, (rec, expect) in dev_bad.items():
        path = out / f"dev_{_slug(name)}.jsonl"
        _write_lines(path, base[:2] + [json.dumps(rec, ensure_ascii=False)])
        cases.append(Case(name, "refuse-eval", expect, path, rec["id"], 3))
    path = out / "dev_empty.jsonl"
    path.write_text("\n")
    cases.append(Case("empty dev manifest", "refuse-eval", "has no utterances", path))
    return BadCorpus(out, train, cases)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")[:40]


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


@dataclass
class Observation:
    """What the toolkit did with one case (a :class:`Case` or a :class:`LoadCase`); ``handled`` when it
    is the expected outcome with the expected message fragment, naming the file (and the manifest line
    where there is one) unless the outcome is ``ok``."""

    case: Case | LoadCase
    outcome: str
    message: str

    @property
    def handled(self) -> bool:
        c = self.case
        if self.outcome != c.outcome or c.expect not in self.message:
            return False
        return c.outcome == "ok" or c.named_in(self.message)


def observe(corpus: BadCorpus, cfg, workdir: Path) -> list[Observation]:
    """Run every case through the training path's own checks (the pass before the first step).

    Per-utterance cases: :func:`~audio_lottery.train.loop.build_train_data` on the mixed
    manifest and the ``data_report.json`` it leads to; malformed manifests: reading and
    filtering them as training does; bad dev sets: :func:`~audio_lottery.train.loop.load_split`.
    Anything other than a ValueError (ManifestError, AudioError, ConfigError) counts as a crash.
    """
    import copy

    from audio_lottery.data.manifest import read_manifest
    from audio_lottery.data.pipeline.tokenizers import CharTokenizer
    from audio_lottery.train.data_check import write_data_report
    from audio_lottery.files import read_json
    from audio_lottery.recognizer import Recognizer
    from audio_lottery.train.loop import build_train_data, load_split

    rec = Recognizer.build(cfg, CharTokenizer())
    out: list[Observation] = []
    c = copy.deepcopy(cfg)
    c.data.train_manifest = str(corpus.train)
    data = build_train_data(c, rec, read_manifest(corpus.train))
    report = read_json(write_data_report(Path(workdir), data.filtered, c))
    skipped = {p["id"]: p for p in report["problems"]}
    notes = " ".join(report["notes"])
    for case in corpus.cases:
        if case.outcome in ("skip", "ok"):
            p = skipped.get(case.uid)
            if p is None:
                out.append(Observation(case, "ok", notes if case.expect in notes else ""))
            else:
                out.append(Observation(case, "skip", f"{corpus.train}:{p['line']} {p['audio']}: {p['reason']}: "
                                                       f"{p['detail']}"))
            continue
        c = copy.deepcopy(cfg)
        try:
            if case.outcome == "refuse":
                c.data.train_manifest = str(case.manifest)
                build_train_data(c, rec, load_split(c, "train"))
            else:
                c.data.dev_manifest = str(case.manifest)
                load_split(c, "dev")
            out.append(Observation(case, "accepted", ""))
        except ValueError as exc:
            out.append(Observation(case, case.outcome if case.outcome == "refuse-eval" else "refuse", str(exc)))
        except Exception as exc:  # noqa: BLE001 - a crash is what this looks for
            out.append(Observation(case, "crash", f"{type(exc).__name__}: {exc}"))
    return out


# --------------------------------------------------------------------------- untrusted folders

HUGE = 1 << 40  # elements: allocating this many fails at once (4 TiB of float32)


@dataclass(frozen=True)
class LoadCase:
    """One untrusted file for a loader: ``kind`` is tokenizer, export, model (a training folder), decode-params or audio;
    ``target`` what is loaded; ``names`` the file the message must name; ``expect`` a message
    fragment (outcome ``refuse``) or, for ``ok``, a value the loaded result must contain."""

    name: str
    kind: str
    target: Path
    outcome: str
    expect: str
    names: Path

    def named_in(self, message: str) -> bool:
        """Whether ``message`` names the file."""
        return str(self.names) in message


def _json_edit(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _bundle(src: Path, dest: Path, edit) -> Path:
    shutil.copytree(src, dest)
    _json_edit(dest / "config.json", edit)
    return dest


def _first(meta: dict, encoding: str) -> str:
    name = next((n for n, i in meta["tensors"].items() if i["encoding"] == encoding), None)
    if name is None:
        raise ValueError(f"write_bad_folders needs a ticket sparse enough for a {encoding!r} tensor")
    return name


def write_bad_folders(out: Path, rec, mask, texts: list[str]) -> list[LoadCase]:
    """Write the untrusted-folder cases into ``out`` from a DS2 recogniser ``rec`` with a sparse ticket
    ``mask`` (~10 % density, so that compact export uses bitmask or rice encodings) and ``texts`` to
    train a small BPE tokenizer on."""
    from audio_lottery.data.pipeline.tokenizers import BPE_MODEL_FILE, META_FILE, BpeTokenizer
    from audio_lottery.pruning.export import EXPORT_CONFIG, export_recognizer

    if rec.cfg.model.name != "ds2":
        raise ValueError("write_bad_folders builds its oversized configs from a DS2 model")
    out = Path(out)
    cases: list[LoadCase] = []

    # ---- tokenizer folders: the sentencepiece model must be the bpe.model inside the folder
    good_tok = out / "tokenizer_good"
    BpeTokenizer.train(texts, 40, good_tok)
    outside = out / "elsewhere" / "secret.model"  # a valid model outside the folder: loading it must fail
    outside.parent.mkdir(parents=True, exist_ok=True)
    outside.write_bytes((good_tok / BPE_MODEL_FILE).read_bytes())
    for name, value in (("absolute model path", str(outside)), ("model path with ../", "../elsewhere/secret.model")):
        folder = out / f"tokenizer_{_slug(name)}"
        BpeTokenizer.train(texts, 40, folder)
        _json_edit(folder / META_FILE, lambda d, v=value: d.update(model=v))
        cases.append(LoadCase(f"tokenizer.json: {name}", "tokenizer", folder, "refuse",
                              "'model' must be 'bpe.model'", folder / META_FILE))
    folder = out / "tokenizer_symlink"
    BpeTokenizer.train(texts, 40, folder)
    (folder / BPE_MODEL_FILE).unlink()
    (folder / BPE_MODEL_FILE).symlink_to(outside)
    cases.append(LoadCase("bpe.model is a link out of the folder", "tokenizer", folder, "refuse",
                          "a link out of the folder", folder / BPE_MODEL_FILE))
    cases.append(LoadCase("tokenizer folder as written", "tokenizer", good_tok, "ok", "bpe", good_tok))
    cases += _whisper_tokenizer_cases(out)

    # ---- export folders: config.json decides the allocations, so it is checked against the model first
    compact, csr = out / "export_compact", out / "export_csr"
    meta = export_recognizer(rec, mask, "compact", compact)
    csr_meta = export_recognizer(rec, mask, "csr", csr)
    sparse = next(n for n, i in meta["tensors"].items() if i["encoding"] in ("bitmask", "rice"))
    bad = _bundle(compact, out / "export_huge_shape",
                  lambda d: d["tensors"][sparse].update(shape=[1 << 20, 1 << 20]))
    cases.append(LoadCase(f"export tensor {sparse} listed as {HUGE} elements", "export", bad, "refuse",
                          f"tensor {sparse!r}: shape [1048576, 1048576] does not fit", bad / EXPORT_CONFIG))
    name = _first(csr_meta, "csr")

    def wide(d: dict) -> None:
        d["tensors"][name]["matrix"] = [d["tensors"][name]["matrix"][0], HUGE]
    bad = _bundle(csr, out / "export_huge_csr", wide)
    cases.append(LoadCase(f"CSR tensor {name} as a {HUGE}-column matrix", "export", bad, "refuse",
                          f"tensor {name!r}: CSR matrix", bad / EXPORT_CONFIG))

    def giant(d: dict) -> None:
        ds2 = d["config"]["model"]["ds2"]
        ds2["rnn_hidden"] = 1 << 20
        ds2["rnn_hidden_sizes"] = [1 << 20] * len(ds2.get("rnn_hidden_sizes") or [])
    bad = _bundle(compact, out / "export_giant_model", giant)
    cases.append(LoadCase("export config describing a 10^13-weight model", "export", bad, "refuse",
                          "a loaded model may have", bad / EXPORT_CONFIG))
    bad = _bundle(compact, out / "export_extra_tensor",
                  lambda d: d["tensors"].update(extra={"shape": [HUGE], "dtype": "float32", "encoding": "dense"}))
    cases.append(LoadCase("export lists a tensor the model lacks", "export", bad, "refuse",
                          "unexpected ['extra']", bad / EXPORT_CONFIG))
    cases.append(LoadCase("export folder as written", "export", compact, "ok", "ds2", compact))

    # ---- training folders: config.yaml describes the model Recognizer.load builds, so it is bounded too
    trained = out / "train_giant_model"
    weights = rec.save(trained)
    cfg_yaml = TrainLayout(trained).config
    cfg_yaml.write_text(cfg_yaml.read_text().replace(f"rnn_hidden: {rec.cfg.model.ds2.rnn_hidden}",
                                                     f"rnn_hidden: {1 << 20}"))
    cases.append(LoadCase("training folder whose config describes a 10^13-weight model", "model", weights,
                          "refuse", "a loaded model may have", cfg_yaml))

    # ---- --decode-params: paths relative to the JSON file, regular files only, numbers as numbers
    params = out / "params"
    (params / "lm").mkdir(parents=True, exist_ok=True)
    (params / "lm" / "char.arpa").write_text("\\data\\\n")
    (params / "a_directory.arpa").mkdir(exist_ok=True)
    for name, settings, outcome, expect in (
        ("LM path relative to the JSON file", {"lm": "lm/char.arpa", "beam": 4}, "ok", str(params / "lm" / "char.arpa")),
        ("LM path to a missing file", {"lm": "../no_such.arpa"}, "refuse", "there is no such file"),
        ("LM path to a directory", {"lm": "a_directory.arpa"}, "refuse", "not a regular file"),
        ("lexicon path to a missing absolute file", {"lexicon": str(out / "gone.lex")}, "refuse", "no such file"),
        ("beam is not a number", {"beam": "wide"}, "refuse", "'beam' must be an integer"),
        ("JSON array instead of an object", [1, 2], "refuse", "expected a JSON object"),
    ):
        path = params / f"{_slug(name)}.json"
        path.write_text(json.dumps(settings))
        cases.append(LoadCase(f"--decode-params: {name}", "decode-params", path, outcome, expect, path))

    # ---- audio given to transcribe
    audio = out / "transcribe"
    audio.mkdir(exist_ok=True)
    (audio / "random.wav").write_bytes(np.random.default_rng(1).bytes(20000))
    (audio / "folder.wav").mkdir(exist_ok=True)
    for name, path, expect in (("missing audio file", audio / "missing.wav", "no such file: "),
                               ("random bytes", audio / "random.wav", "unreadable audio"),
                               ("directory instead of audio", audio / "folder.wav", "not a regular file")):
        cases.append(LoadCase(f"transcribe: {name}", "audio", path, "refuse", expect, path))
    return cases


def _whisper_tokenizer_cases(out: Path) -> list[LoadCase]:
    """Whisper tokenizer folders: the Hugging Face file must be the one inside the folder."""
    from audio_lottery.data.pipeline.tokenizers import META_FILE
    from audio_lottery.data.pipeline.whisper_tokenizer import HF_FILE, WhisperTokenizer

    tok = WhisperTokenizer.from_wheel()
    outside = out / "elsewhere" / "secret.json"  # a valid tokenizer file outside the folder
    outside.parent.mkdir(parents=True, exist_ok=True)
    outside.write_text(tok.hf_json, encoding="utf-8")
    cases = []
    for name, value in (("absolute file path", str(outside)), ("file path with ../", "../elsewhere/secret.json")):
        folder = out / f"whisper_tokenizer_{_slug(name)}"
        tok.save(folder)
        _json_edit(folder / META_FILE, lambda d, v=value: d.update(file=v))
        cases.append(LoadCase(f"whisper tokenizer.json: {name}", "tokenizer", folder, "refuse",
                              f"'file' must be '{HF_FILE}'", folder / META_FILE))
    folder = out / "whisper_tokenizer_symlink"
    tok.save(folder)
    (folder / HF_FILE).unlink()
    (folder / HF_FILE).symlink_to(outside)
    cases.append(LoadCase("whisper tokenizer file is a link out of the folder", "tokenizer", folder, "refuse",
                          "a link out of the folder", folder / HF_FILE))
    folder = out / "whisper_tokenizer_good"
    tok.save(folder)
    cases.append(LoadCase("whisper tokenizer folder as written", "tokenizer", folder, "ok", "whisper", folder))
    return cases


def load_case(case: LoadCase):
    """Run the loader of ``case.kind`` on ``case.target``; returns what it loaded."""
    from audio_lottery.data.audio import load_audio
    from audio_lottery.data.pipeline.tokenizers import load_tokenizer
    from audio_lottery.lm.params import read_decode_params
    from audio_lottery.recognizer import Recognizer, load_exported

    loaders = {"tokenizer": load_tokenizer, "export": load_exported, "decode-params": read_decode_params,
               "audio": load_audio, "model": Recognizer.load}
    return loaders[case.kind](case.target)


def _loaded_fact(case: LoadCase, loaded) -> str:
    if case.kind == "tokenizer":
        return loaded.kind
    if case.kind in ("export", "model"):
        return loaded.cfg.model.name
    return json.dumps(loaded)


def observe_loads(cases: list[LoadCase]) -> list[Observation]:
    """Load every case; a ValueError or FileNotFoundError is a refusal, anything else a crash."""
    out = []
    for case in cases:
        try:
            loaded = load_case(case)
            out.append(Observation(case, "ok", _loaded_fact(case, loaded)))
        except (ValueError, FileNotFoundError) as exc:
            out.append(Observation(case, "refuse", str(exc)))
        except Exception as exc:  # noqa: BLE001 - a crash is what this looks for
            out.append(Observation(case, "crash", f"{type(exc).__name__}: {exc}"))
    return out
