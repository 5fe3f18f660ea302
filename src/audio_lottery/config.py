"""Typed hyper-parameters: dataclasses loaded from YAML presets plus dotted overrides.

Each field's help text lives beside it (``field(metadata={"help": ...})``). A run's
identity is the hash of its non-default hyper-parameters (see :func:`config_hash`).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from audio_lottery.rewind import parse_rewind


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key."""


def hparam(default: Any, help: str, choices: tuple | Callable[[], tuple] | None = None, *, ge: float | None = None, gt: float | None = None,
       le: float | None = None, lt: float | None = None, item: type | None = None) -> Any:
    """A field with its help text, allowed ``choices`` (or a function returning them), numeric bounds (``ge``/``gt``/``le``/``lt``)
    and, for lists, the type of each ``item`` (default: the type of the default's first item)."""
    meta: dict[str, Any] = {"help": help}
    if choices:
        meta["choices"] = choices
    bounds = {k: v for k, v in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt)) if v is not None}
    if bounds:
        meta["bounds"] = bounds
    if item is None and isinstance(default, list) and default:
        item = type(default[0])
    if item is not None:
        meta["item"] = item
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


# --------------------------------------------------------------------------- plug-ins
#
# Backbones (models/), strategies (pruning/), feature front-ends and tokenizers (data/pipeline/)
# extend the config without this module naming them: a backbone adds its section ``model.<name>``
# (:func:`register_section`), a strategy its choice of ``prune.strategy``, a front-end its choice of
# ``data.features.kind``, a tokenizer its choice of ``data.tokenizer`` (:func:`register_choice`,
# with a one-line help). The plug-in packages are imported the first time a plug-in section is
# built or a registered choice is asked for (:func:`discover_plugins`), so a config always knows
# every registered plug-in before it is read, validated or hashed.

PLUGIN_PACKAGES = ("audio_lottery.models", "audio_lottery.pruning", "audio_lottery.data.pipeline")
_CHOICES: dict[str, list[str]] = {}
_CHOICE_HELP: dict[tuple[str, str], str] = {}
_discovered = False


def discover_plugins() -> None:
    """Import the plug-in packages once (they register their sections and choices)."""
    global _discovered
    if not _discovered:
        _discovered = True
        for name in PLUGIN_PACKAGES:
            importlib.import_module(name)


def register_choice(key: str, value: str, help: str = "") -> None:
    """Allow ``value`` for the dotted config ``key`` (e.g. a strategy name for ``prune.strategy``);
    ``help`` (one line) is shown beside it in the key's help (:func:`field_help`)."""
    values = _CHOICES.setdefault(key, [])
    if value not in values:
        values.append(value)
    if help:
        _CHOICE_HELP[key, value] = help


def register_plugin(registry: dict[str, Any], key: str, value: str, obj: Any, help: str) -> None:
    """``registry[value] = obj`` and ``value`` a choice of the config ``key`` with its one-line
    ``help`` (a plug-in registry such as the feature front-ends); another object under a value
    already registered is refused."""
    if registry.get(value, obj) is not obj:
        raise ValueError(f"{key}: {value!r} is already registered")
    registry[value] = obj
    register_choice(key, value, help)


@dataclass(frozen=True)
class Registered:
    """``choices`` of a field whose values plug-ins register under ``key`` (:func:`register_choice`)."""

    key: str

    def __call__(self) -> tuple[str, ...]:
        return registered_choices(self.key)

    def help(self) -> str:
        """``value (help); ...`` of the registered values ("" when none carries a help)."""
        if not any((self.key, v) in _CHOICE_HELP for v in self()):
            return ""
        return "; ".join(f"{v} ({_CHOICE_HELP[self.key, v]})" if (self.key, v) in _CHOICE_HELP else v for v in self())


def registered_choices(key: str) -> tuple[str, ...]:
    """The values registered for ``key``, in registration order."""
    discover_plugins()
    return tuple(_CHOICES.get(key, ()))


def plugin_section(cls: type) -> type:
    """Class decorator (after ``@dataclass``): the section accepts fields that plug-ins add with
    :func:`register_section`; they take part in loading, equality, hashing and ``describe``."""
    cls._plugin_fields = {}
    cls._plugin_checks = []
    base_init = cls.__init__

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        discover_plugins()
        extra = {k: kwargs.pop(k) for k in list(kwargs) if k in cls._plugin_fields}
        base_init(self, *args, **kwargs)
        for name, (_, default_factory) in cls._plugin_fields.items():
            setattr(self, name, extra[name] if name in extra else default_factory())

    def __eq__(self, other: Any) -> bool:
        return type(other) is type(self) and all(getattr(self, n) == getattr(other, n) for n in section_fields(cls))

    def __repr__(self) -> str:
        return f"{cls.__name__}({', '.join(f'{n}={getattr(self, n)!r}' for n in section_fields(cls))})"

    cls.__init__, cls.__eq__, cls.__repr__ = __init__, __eq__, __repr__
    return cls


def register_section(owner: type, name: str, section: type, check: Callable[[Any], None] | None = None,
                     choice_key: str | None = None) -> None:
    """Add the dataclass ``section`` as field ``name`` of the plug-in section ``owner`` (e.g. a
    backbone's config as ``model.<name>``); ``check(section)`` runs in :func:`validate_config`
    (raise ConfigError naming the key); ``choice_key`` also registers ``name`` as its choice."""
    fields_ = owner._plugin_fields
    if name in fields_ and fields_[name][0] is not section:
        raise ValueError(f"config section {owner.__name__}.{name} is already registered")
    fields_[name] = (section, section)
    if check is not None and (name, check) not in owner._plugin_checks:
        owner._plugin_checks.append((name, check))
    if choice_key:
        register_choice(choice_key, name)


def section_fields(cls: type) -> dict[str, tuple[Any, Mapping[str, Any]]]:
    """Field name -> (type, metadata) of a config dataclass, plug-in fields included."""
    types = typing.get_type_hints(cls)
    out = {f.name: (types[f.name], f.metadata) for f in dataclasses.fields(cls)}
    out.update({name: (typ, {}) for name, (typ, _) in getattr(cls, "_plugin_fields", {}).items()})
    return out


@dataclass
class FeatureConfig:
    kind: str = hparam("logmel", "feature front-end", Registered("data.features.kind"))
    sample_rate: int = hparam(16000, "audio sample rate in Hz; audio is resampled to it", gt=0)
    n_mels: int = hparam(80, "number of mel bins (logmel)", ge=1)
    win_ms: float = hparam(25.0, "analysis window in ms (the linear preset uses 20)", gt=0)
    hop_ms: float = hparam(10.0, "frame shift in ms", gt=0)
    window: str = hparam("hann", "window function", ("hann", "hamming"))
    normalize: bool = hparam(True, "per-utterance mean/variance normalisation of each bin")


@dataclass
class AugmentConfig:
    freq_masks: int = hparam(0, "SpecAugment: number of frequency masks", ge=0)
    freq_width: int = hparam(27, "SpecAugment: maximal frequency-mask width F (bins)", ge=0)
    time_masks: int = hparam(0, "SpecAugment: number of time masks", ge=0)
    time_width: int = hparam(70, "SpecAugment: maximal time-mask width T (frames)", ge=0)
    time_width_ratio: float = hparam(0.2, "a time mask covers at most this fraction of the utterance", ge=0, le=1)
    noise_manifest: str = hparam("", "JSONL manifest of noise recordings mixed into training audio (a noise bank "
                             "from `audio-lottery data noise`: only its train split is used)")
    noise_prob: float = hparam(0.0, "probability that an utterance gets noise (the paper's protocol: 1.0)", ge=0, le=1)
    snr_min: float = hparam(0.0, "lowest SNR in dB for training noise (true SNR, drawn uniformly per utterance; "
                        "presets: low 15-25, high 0-10)")
    snr_max: float = hparam(20.0, "highest SNR in dB for training noise")
    speed_prob: float = hparam(0.0, "probability that an utterance is speed-perturbed (resampled: tempo and pitch "
                           "change together)", ge=0, le=1)
    speed_factors: list = hparam([0.9, 1.0, 1.1], "speed factors, one drawn uniformly per perturbed utterance "
                             "(1.1 = 10 % faster and higher)", item=float)
    vtlp_prob: float = hparam(0.0, "probability of a vocal-tract-length perturbation (the log-mel filterbank warped "
                          "by a factor drawn per utterance; log-mel front-end only)", ge=0, le=1)
    vtlp_min: float = hparam(0.9, "smallest VTLP warp factor", gt=0)
    vtlp_max: float = hparam(1.1, "largest VTLP warp factor", gt=0)
    reverb_prob: float = hparam(0.0, "probability of room reverberation (one of a built-in bank of simulated room "
                            "impulse responses, cached once)", ge=0, le=1)
    telephone_prob: float = hparam(0.0, "probability of a telephone channel (300-3400 Hz band, 8 kHz, G.711 coding)",
                               ge=0, le=1)
    telephone_codec: str = hparam("mulaw", "G.711 companding of the telephone channel", ("mulaw", "alaw"))


@dataclass
class DataConfig:
    train_manifest: str = hparam("", "JSONL manifest of training utterances")
    dev_manifest: str = hparam("", "JSONL manifest for model selection (never the test set)")
    test_manifest: str = hparam("", "JSONL manifest for the final test")
    tokenizer: str = hparam("char", "output units", Registered("data.tokenizer"))
    bpe_vocab_size: int = hparam(256, "sentencepiece vocabulary size (bpe)", ge=2)
    max_duration: float = hparam(20.0, "training utterances longer than this (s) are skipped", gt=0)
    min_duration: float = hparam(0.2, "training utterances shorter than this (s) are skipped", ge=0)
    max_train_utterances: int = hparam(0, "use at most this many training utterances (0 = all)", ge=0)
    max_eval_utterances: int = hparam(0, "validate on at most this many dev utterances (0 = all; test is never capped)",
                                  ge=0)
    batch_seconds: float = hparam(240.0, "audio seconds per training batch (duration bucketing)", gt=0)
    max_batch_size: int = hparam(32, "upper bound on utterances per batch", ge=1)
    num_workers: int = hparam(0, "DataLoader worker processes", ge=0)
    feature_cache_mb: int = hparam(2048, "keep up to this many MiB of decoded training input in memory, shared by "
                                   "every training of the process, when data.num_workers is 0: the un-augmented "
                                   "features when no waveform augmentation and no VTLP is on, else the decoded audio "
                                   "(each utterance is then decoded once; 0 = off; results are the same)",
                                   ge=0)
    real_test_manifest: str = hparam("", "JSONL manifest of a real-speech test set that `report` and the demo also "
                                 "score the dense model and the tickets on (never used for training or selection; "
                                 "empty: asterisk/test.jsonl beside the test manifest's corpus folder, i.e. "
                                 "data/asterisk/test.jsonl for data/synth, when prepared)")
    features: FeatureConfig = field(default_factory=FeatureConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@plugin_section
@dataclass
class ModelConfig:
    """The backbone's name; every registered backbone adds its own section (``model.<name>``)."""

    name: str = hparam("ds2", "backbone name in the model registry", choices=Registered("model.name"))


@dataclass
class TrainConfig:
    epochs: int = hparam(16, "training epochs (per lottery level)", ge=1)
    optimizer: str = hparam("adamw", "optimizer", ("adamw", "adam"))
    lr: float = hparam(3e-4, "peak learning rate", gt=0)
    betas: list = hparam([0.9, 0.999], "Adam betas")
    weight_decay: float = hparam(1e-5, "AdamW decoupled weight decay", ge=0)
    schedule: str = hparam("anneal", "anneal: warm-up then /lr_anneal per epoch (DeepSpeech2); noam: warm-up then "
                       "lr * sqrt(warmup / step) (Conformer, Transformer); linear_decay: warm-up, times a linear decay to 0 "
                       "at the end of the run's budget (the first of epochs, max_steps, max_minutes to run out)",
                       ("anneal", "noam", "linear_decay"))
    lr_anneal: float = hparam(1.01, "learning rate is divided by this after every epoch (schedule anneal)", gt=0)
    warmup_steps: int = hparam(0, "linear warm-up steps at the start of training", ge=0)
    grad_clip: float = hparam(400.0, "gradient-norm clipping threshold", gt=0)
    ema_decay: float = hparam(0.0, "exponential moving average of the weights after every step, evaluated, kept "
                              "as best and pruned instead of the last step's weights (0 = off)", ge=0, lt=1)
    sortagrad: bool = hparam(True, "first epoch visits batches from shortest to longest")
    seed: int = hparam(0, "random seed (weights, batches, augmentation)")
    threads: int = hparam(2, "torch intra-op threads", ge=1)
    device: str = hparam("cpu", "cpu, cuda, cuda:N or auto (cuda when available); under torchrun cuda means cuda:LOCAL_RANK")
    amp: str = hparam("off", "mixed precision: off, bf16 (autocast) or fp16 (autocast + gradient scaler)",
                  ("off", "bf16", "fp16"))
    sync_batchnorm: bool = hparam(True, "under DDP, batch-norm statistics over the global batch (equal to one "
                              "process with that batch); false: each rank's own shard")
    eval_every_epochs: int = hparam(1, "validate on dev every N epochs", ge=1)
    max_steps: int = hparam(0, "stop after this many optimizer steps (0 = no limit)", ge=0)
    max_minutes: float = hparam(0.0, "stop after this many minutes of training (0 = no limit)", ge=0)
    log_every_steps: int = hparam(20, "write a metrics line every N steps", ge=1)


@dataclass
class PruneConfig:
    strategy: str = hparam("global_magnitude", "mask strategy: unstructured (global_magnitude, lamp, "
                       "layerwise_magnitude, random) or structured (block, nm, channel); the registered strategies",
                       Registered("prune.strategy"))
    fraction: float = hparam(0.2, "fraction of the remaining weights pruned per level", ge=0, lt=1)
    min_tensor_density: float = hparam(0.0, "layer-collapse guard: every tensor keeps at least this fraction of its "
                                   "weights (global_magnitude, lamp; 0 = the paper's plain global rule)", ge=0, le=1)
    include: list = hparam([], "glob patterns of prunable tensor names to include (empty = the model's defaults)", item=str)
    exclude: list = hparam([], "glob patterns of prunable tensor names to exclude", item=str)
    rewind: str = hparam("0", "rewind point: 0 (theta_0), '<k>it' (after k steps) or '<k>ep' (after k epochs)")
    structure: str = hparam("block", "structure an unstructured ticket is converted to by the `structured` branch "
                        "(its --structure parameter)", Registered("prune.structure"))
    block_shape: list = hparam([1, 4], "(rows, columns) of a block of the 2-D view [out, in*kernel] of a weight "
                           "(block strategy and structure)")
    nm: list = hparam([2, 4], "N:M sparsity: at most N of every M consecutive weights of a row are kept (nm)")


@dataclass
class LotteryConfig:
    levels: int = hparam(10, "number of pruning levels after the dense level 0", ge=0)
    match_tolerance: float = hparam(0.005, "a ticket 'matches' dense when its dev WER <= dense WER + this (absolute)", ge=0)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    lottery: LotteryConfig = field(default_factory=LotteryConfig)


# --------------------------------------------------------------------------- helpers


def field_choices(meta: Mapping[str, Any]) -> tuple:
    """The allowed values in a field's metadata (empty: any)."""
    choices = meta.get("choices")
    return tuple(choices()) if callable(choices) else tuple(choices or ())


def field_help(meta: Mapping[str, Any]) -> str:
    """A field's help followed, for registered choices, by each value with its one-line help."""
    text, choices = meta.get("help", ""), meta.get("choices")
    listed = choices.help() if isinstance(choices, Registered) else ""
    return f"{text}: {listed}" if listed else text


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Convert ``value`` to ``typ`` or raise a ConfigError naming ``key``."""
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if typ is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
    if typ is float:
        try:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if typ is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    if typ is list:
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip() else []
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return value
    return value


# Keys that configs once had and nothing reads any more: the value they always held, and why they went.
# A saved run's config.yaml still carries them, so loading drops them when they hold that value and
# refuses any other value (a run that asked for something this code cannot do).
RETIRED_KEYS: dict[str, tuple[Any, str]] = {
    "lottery.replicate": (0, "it was never read; another seed of the same search is train.seed"),
}


def _retired(key: str, value: Any) -> bool:
    """True when ``key`` is retired and holds its old value (skip it); ConfigError for another value."""
    if key not in RETIRED_KEYS:
        return False
    old, why = RETIRED_KEYS[key]
    if value != old:
        raise ConfigError(f"{key} is retired ({why}); only its old value {old!r} is accepted, got {value!r}")
    return True


def _apply(obj: Any, data: dict, prefix: str = "") -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    fields = section_fields(type(obj))
    for name, value in data.items():
        key = f"{prefix}{name}"
        if name not in fields and _retired(key, value):
            continue
        if name not in fields:
            raise ConfigError(f"unknown key {key!r}; allowed: {', '.join(sorted(fields))}")
        typ, meta = fields[name]
        if dataclasses.is_dataclass(typ):
            _apply(getattr(obj, name), value, key + ".")
            continue
        coerced = _coerce(value, typ, key)
        if "off" in field_choices(meta) and value is False:  # YAML 1.1 reads a bare `off` as false
            coerced = "off"
        _check_field(meta, coerced, key)
        setattr(obj, name, coerced)


_ITEM_TYPES = {int: (int,), float: (int, float), str: (str,), list: (list,)}
_ITEM_NAMES = {int: "integers", float: "numbers", str: "strings", list: "lists"}
_BOUND_TEXT = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def _check_field(meta: Mapping[str, Any], value: Any, key: str) -> None:
    """Choices, numeric bounds and list item types of one field; ConfigError names the key."""
    choices = field_choices(meta)
    if choices and value not in choices:
        raise ConfigError(f"{key}: {value!r} is not allowed; allowed values: {', '.join(map(str, choices))}")
    bounds = meta.get("bounds")
    if bounds:
        ok = isinstance(value, (int, float)) and math.isfinite(value) and all(
            {"ge": value >= b, "gt": value > b, "le": value <= b, "lt": value < b}[op] for op, b in bounds.items())
        if not ok:
            rule = " and ".join(f"{_BOUND_TEXT[op]} {b}" for op, b in bounds.items())
            raise ConfigError(f"{key}: must be {rule}, got {value!r}")
    item = meta.get("item")
    if item is not None and isinstance(value, list):
        bad = [v for v in value if isinstance(v, bool) or not isinstance(v, _ITEM_TYPES[item])]
        if bad:
            raise ConfigError(f"{key}: expected a list of {_ITEM_NAMES[item]}, got {value!r}")


def validate_config(cfg: Config) -> Config:
    """Checks that involve several keys or the model registry; ConfigError names the keys."""
    d, m = cfg.data, cfg.model

    def need(cond: bool, message: str) -> None:
        if not cond:
            raise ConfigError(message)

    need(d.min_duration < d.max_duration, f"data.min_duration ({d.min_duration}) must be < data.max_duration "
         f"({d.max_duration})")
    need(d.augment.snr_min <= d.augment.snr_max, f"data.augment.snr_min ({d.augment.snr_min}) must be <= "
         f"data.augment.snr_max ({d.augment.snr_max})")
    a = d.augment
    need(bool(a.speed_factors) and all(0.5 <= f <= 2.0 for f in a.speed_factors),
         f"data.augment.speed_factors: need factors in [0.5, 2], got {a.speed_factors!r}")
    need(a.vtlp_min <= a.vtlp_max, f"data.augment.vtlp_min ({a.vtlp_min}) must be <= data.augment.vtlp_max ({a.vtlp_max})")
    need(len(cfg.train.betas) == 2 and all(0 <= b < 1 for b in cfg.train.betas),
         f"train.betas: expected two numbers in [0, 1), got {cfg.train.betas!r}")
    for section, check in type(m)._plugin_checks:
        check(getattr(m, section))
    try:
        parse_rewind(cfg.prune.rewind)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return cfg


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like dotted.key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _nest(key: str, value: Any) -> dict:
    out: dict = {}
    cur = out
    parts = key.split(".")
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    return out


def check_prune(p: PruneConfig) -> None:
    """Refuse structured-pruning settings that cannot work (ConfigError naming the key)."""
    shape = p.block_shape
    if len(shape) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape):
        raise ConfigError(f"prune.block_shape: need two positive integers (rows, columns), got {shape!r}")
    nm = p.nm
    if len(nm) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in nm) or not 1 <= nm[0] < nm[1]:
        raise ConfigError(f"prune.nm: need integers [N, M] with 1 <= N < M, got {nm!r}")


def apply_overrides(cfg: Config, overrides: list[str] | None) -> Config:
    """Apply ``dotted.key=value`` overrides in place and return ``cfg``."""
    for text in overrides or []:
        key, value = _parse_override(text)
        _apply(cfg, _nest(key, value))
    check_prune(cfg.prune)
    return validate_config(cfg)


def config_from_dict(data: dict | None) -> Config:
    cfg = Config()
    _apply(cfg, data or {})
    check_prune(cfg.prune)
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML preset (optionally) and apply dotted overrides."""
    data: dict = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML ({exc})") from None
        try:
            cfg = validate_config(config_from_dict(data))
        except ConfigError as exc:
            raise ConfigError(f"{p}: {exc}") from None
    else:
        cfg = Config()
    return apply_overrides(cfg, overrides)


def to_dict(cfg: Any) -> dict:
    """Nested plain dict of a config (plug-in sections included)."""
    out = {}
    for name in section_fields(type(cfg)):
        value = getattr(cfg, name)
        out[name] = to_dict(value) if dataclasses.is_dataclass(value) else copy.deepcopy(value)
    return out


def non_defaults(cfg: Any, default: Any | None = None) -> dict:
    """The fields of ``cfg`` that differ from the dataclass defaults, nested."""
    default = default if default is not None else type(cfg)()
    out: dict = {}
    for name in section_fields(type(cfg)):
        a, b = getattr(cfg, name), getattr(default, name)
        if dataclasses.is_dataclass(a):
            sub = non_defaults(a, b)
            if sub:
                out[name] = sub
        elif a != b:
            out[name] = a
    return out


# Keys that change how fast a run goes, not what it computes: never part of a run's identity.
RUNTIME_KEYS = ("train.threads", "train.device", "data.num_workers", "data.feature_cache_mb", "train.log_every_steps",
                "data.real_test_manifest")
PATH_KEYS = ("data.train_manifest", "data.dev_manifest", "data.test_manifest", "data.augment.noise_manifest",
             "data.real_test_manifest")


def get_key(cfg: Any, key: str) -> Any:
    """The value of the dotted ``key`` in ``cfg``."""
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def _set(cfg: Any, key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for part in parents:
        cfg = getattr(cfg, part)
    setattr(cfg, last, value)


def resolve_paths(cfg: Config, base: Path | None = None) -> Config:
    """Make the manifest paths absolute (in place), so a run works from any directory."""
    for key in PATH_KEYS:
        value = get_key(cfg, key)
        if value:
            _set(cfg, key, str((Path(base or Path.cwd()) / value).resolve()))
    return cfg


def config_hash(cfg: Any, ignore: tuple[str, ...] = RUNTIME_KEYS) -> str:
    """Short stable hash of the non-default hyper-parameters, without the dotted ``ignore`` keys."""
    c = copy.deepcopy(cfg)
    default = type(cfg)()
    for key in ignore:
        try:
            _set(c, key, get_key(default, key))
        except AttributeError:
            continue
    blob = json.dumps(non_defaults(c), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def save_config(cfg: Config, path: str | Path) -> None:
    from audio_lottery.files import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(to_dict(cfg), sort_keys=False))


def field_info(key: str) -> tuple[Any, Mapping[str, Any]]:
    """(type, metadata) of the dotted config ``key``; ConfigError when no such key exists."""
    cls: Any = Config
    *sections, last = key.split(".")
    for part in sections:
        typ = section_fields(cls).get(part, (None,))[0]
        if not dataclasses.is_dataclass(typ):
            raise ConfigError(f"unknown config key {key!r}")
        cls = typ
    if last not in section_fields(cls) or dataclasses.is_dataclass(section_fields(cls)[last][0]):
        raise ConfigError(f"unknown config key {key!r}")
    return section_fields(cls)[last]


def describe(cls: type = Config, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted key, default, help) for every field, for ``--help`` listings and docs."""
    rows = []
    inst = cls()
    for name, (typ, meta) in section_fields(cls).items():
        if dataclasses.is_dataclass(typ):
            rows += describe(typ, f"{prefix}{name}.")
        else:
            rows.append((f"{prefix}{name}", getattr(inst, name), field_help(meta)))
    return rows
