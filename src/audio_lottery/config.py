"""Typed hyper-parameters: dataclasses loaded from YAML presets plus dotted overrides.

Each field's help text lives beside it (``field(metadata={"help": ...})``). A run's
identity is the hash of its non-default hyper-parameters (see :func:`config_hash`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key."""


def _f(default: Any, help: str, choices: tuple | None = None, *, ge: float | None = None, gt: float | None = None,
       le: float | None = None, lt: float | None = None, item: type | None = None) -> Any:
    """A field with its help text, allowed ``choices``, numeric bounds (``ge``/``gt``/``le``/``lt``)
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


@dataclass
class FeatureConfig:
    kind: str = _f("logmel", "logmel (mel filterbank) or linear (DeepSpeech2 log1p spectrogram)", ("logmel", "linear"))
    sample_rate: int = _f(16000, "audio sample rate in Hz; audio is resampled to it", gt=0)
    n_mels: int = _f(80, "number of mel bins (logmel)", ge=1)
    win_ms: float = _f(25.0, "analysis window in ms (the linear preset uses 20)", gt=0)
    hop_ms: float = _f(10.0, "frame shift in ms", gt=0)
    window: str = _f("hann", "window function", ("hann", "hamming"))
    normalize: bool = _f(True, "per-utterance mean/variance normalisation of each bin")


@dataclass
class AugmentConfig:
    freq_masks: int = _f(0, "SpecAugment: number of frequency masks", ge=0)
    freq_width: int = _f(27, "SpecAugment: maximal frequency-mask width F (bins)", ge=0)
    time_masks: int = _f(0, "SpecAugment: number of time masks", ge=0)
    time_width: int = _f(70, "SpecAugment: maximal time-mask width T (frames)", ge=0)
    time_width_ratio: float = _f(0.2, "a time mask covers at most this fraction of the utterance", ge=0, le=1)
    noise_manifest: str = _f("", "JSONL manifest of noise recordings mixed into training audio (a noise bank "
                             "from `audio-lottery data noise`: only its train split is used)")
    noise_prob: float = _f(0.0, "probability that an utterance gets noise (the paper's protocol: 1.0)", ge=0, le=1)
    snr_min: float = _f(0.0, "lowest SNR in dB for training noise (true SNR, drawn uniformly per utterance; "
                        "presets: low 15-25, high 0-10)")
    snr_max: float = _f(20.0, "highest SNR in dB for training noise")


@dataclass
class DataConfig:
    train_manifest: str = _f("", "JSONL manifest of training utterances")
    dev_manifest: str = _f("", "JSONL manifest for model selection (never the test set)")
    test_manifest: str = _f("", "JSONL manifest for the final test")
    tokenizer: str = _f("char", "char (blank, a-z, ', space) or bpe (sentencepiece)", ("char", "bpe"))
    bpe_vocab_size: int = _f(256, "sentencepiece vocabulary size (bpe)", ge=2)
    max_duration: float = _f(20.0, "training utterances longer than this (s) are skipped", gt=0)
    min_duration: float = _f(0.2, "training utterances shorter than this (s) are skipped", ge=0)
    max_train_utterances: int = _f(0, "use at most this many training utterances (0 = all)", ge=0)
    max_eval_utterances: int = _f(0, "validate on at most this many dev utterances (0 = all; test is never capped)",
                                  ge=0)
    batch_seconds: float = _f(240.0, "audio seconds per training batch (duration bucketing)", gt=0)
    max_batch_size: int = _f(32, "upper bound on utterances per batch", ge=1)
    num_workers: int = _f(0, "DataLoader worker processes", ge=0)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class DS2Config:
    conv_channels: list = _f([32, 32], "output channels of each Conv2d layer")
    conv_kernels: list = _f([[41, 11], [21, 11]], "(freq, time) kernel of each Conv2d layer")
    conv_strides: list = _f([[2, 2], [2, 1]], "(freq, time) stride of each Conv2d layer")
    rnn_layers: int = _f(5, "number of bidirectional LSTM layers", ge=1)
    rnn_hidden: int = _f(1024, "LSTM hidden size per direction", ge=1)
    bidirectional: bool = _f(True, "bidirectional LSTMs (directions are summed)")
    rnn_batch_norm: bool = _f(True, "sequence-wise batch norm before LSTM layers 2..N and the output")
    rnn_hidden_sizes: list = _f([], "hidden size of each LSTM layer (a shrunk model); empty = rnn_hidden for all")


@dataclass
class TransformerConfig:
    d_model: int = _f(256, "attention dimension of the encoder and the decoder", ge=1)
    heads: int = _f(4, "attention heads (must divide d_model)", ge=1)
    ffn_dim: int = _f(2048, "hidden size of each position-wise feed-forward block", ge=1)
    ffn_dims: list = _f([], "feed-forward size of each encoder layer then each decoder layer (a shrunk model); "
                        "empty = ffn_dim for all")
    encoder_layers: int = _f(12, "self-attention encoder layers", ge=1)
    decoder_layers: int = _f(6, "attention decoder layers", ge=1)
    subsampling_channels: int = _f(256, "channels of the two Conv2d (3x3, stride 2) subsampling layers (4x in time)",
                                   ge=1)
    dropout: float = _f(0.1, "dropout after attention, feed-forward blocks and positional encoding", ge=0, lt=1)
    ctc_weight: float = _f(0.3, "training loss = ctc_weight * CTC + (1 - ctc_weight) * decoder cross-entropy",
                           ge=0, le=1)
    label_smoothing: float = _f(0.1, "label smoothing of the decoder cross-entropy (over real tokens and <eos>)",
                                ge=0, lt=1)
    beam_size: int = _f(4, "beam width of attention decoding in decode() (1 = greedy)", ge=1)
    ctc_prefix_weight: float = _f(0.3, "decoding score = (1 - w) * attention + w * CTC prefix score "
                                  "(0 = attention only)", ge=0, le=1)


@dataclass
class RNNTConfig:
    conv_channels: list = _f([32, 32], "output channels of each Conv2d layer of the front-end")
    conv_kernels: list = _f([[41, 11], [21, 11]], "(freq, time) kernel of each Conv2d layer")
    conv_strides: list = _f([[2, 2], [2, 2]], "(freq, time) stride of each Conv2d layer (time product = frame reduction)")
    encoder_layers: int = _f(5, "number of encoder LSTM layers", ge=1)
    encoder_hidden: int = _f(1024, "encoder LSTM hidden size per direction", ge=1)
    bidirectional: bool = _f(True, "bidirectional encoder LSTMs (False: unidirectional, streamable)")
    merge_directions: str = _f("concat", "how the two directions' outputs are combined", ("concat", "sum"))
    encoder_batch_norm: bool = _f(True, "sequence-wise batch norm before encoder LSTM layers 2..N")
    embed_dim: int = _f(1024, "prediction network: token embedding size (blank id 0 is the start symbol)", ge=1)
    pred_hidden: int = _f(1024, "prediction network: LSTM hidden size", ge=1)
    pred_layers: int = _f(1, "prediction network: LSTM layers", ge=1)
    joint_dim: int = _f(1024, "joint network: size of the tanh layer between encoder/prediction and vocabulary", ge=1)
    max_symbols_per_frame: int = _f(5, "decoding: most tokens emitted on one encoder frame (greedy and beam)", ge=1)
    beam_size: int = _f(4, "default beam of RNNTransducer.beam_search (decode() is greedy)", ge=1)
    joint_chunk: int = _f(0, "training: joint network + loss gathering recomputed in backward for this many "
                          "utterances at a time (saves the [B, T, U+1, joint_dim] activations; 0 = off)", ge=0)


@dataclass
class ConformerConfig:
    subsampling_channels: list = _f([256], "output channels of each Conv2d subsampling layer (each halves time and "
                                    "frequency: one layer = 2x as in Efficient Conformer, two = 4x)")
    subsampling_kernel: int = _f(3, "kernel of the Conv2d subsampling layers (odd)", ge=1)
    num_blocks: int = _f(16, "number of Conformer blocks", ge=1)
    stage_dims: list = _f([256, 384, 512], "model dim of each stage (Efficient Conformer progressive downsampling)")
    downsample_blocks: list = _f([4, 10], "indices of the blocks whose convolution module strides by "
                                 "downsample_stride and widens into the next stage (one per stage change)")
    downsample_stride: int = _f(2, "time stride of a downsampling block", ge=1)
    attention_group_sizes: list = _f([3, 1, 1], "grouped attention size of each stage (1 = plain attention)")
    num_heads: int = _f(8, "attention heads", ge=1)
    ffn_ratio: int = _f(4, "feed-forward hidden size / model dim", ge=1)
    ffn_hidden_sizes: list = _f([], "[ff1, ff2] hidden sizes of each block (a shrunk model); empty = ffn_ratio * dim")
    kernel_size: int = _f(15, "depthwise convolution kernel of the convolution module (odd)", ge=1)
    dropout: float = _f(0.1, "dropout after subsampling, in feed-forward, attention and convolution modules",
                        ge=0, lt=1)
    prune_convolutions: bool = _f(False, "prune the convolution weights too (default: Linear weights only, as the "
                                  "paper's official code)")


@dataclass
class ModelConfig:
    name: str = _f("ds2", "backbone name in the model registry")
    ds2: DS2Config = field(default_factory=DS2Config)
    conformer: ConformerConfig = field(default_factory=ConformerConfig)
    rnnt: RNNTConfig = field(default_factory=RNNTConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)


@dataclass
class TrainConfig:
    epochs: int = _f(16, "training epochs (per lottery level)", ge=1)
    optimizer: str = _f("adamw", "optimizer", ("adamw", "adam"))
    lr: float = _f(3e-4, "peak learning rate", gt=0)
    betas: list = _f([0.9, 0.999], "Adam betas")
    weight_decay: float = _f(1e-5, "AdamW decoupled weight decay", ge=0)
    schedule: str = _f("anneal", "anneal: warm-up then /lr_anneal per epoch (DeepSpeech2); noam: warm-up then "
                       "lr * sqrt(warmup / step) (Conformer, Transformer)", ("anneal", "noam"))
    lr_anneal: float = _f(1.01, "learning rate is divided by this after every epoch (schedule anneal)", gt=0)
    warmup_steps: int = _f(0, "linear warm-up steps at the start of training", ge=0)
    grad_clip: float = _f(400.0, "gradient-norm clipping threshold", gt=0)
    sortagrad: bool = _f(True, "first epoch visits batches from shortest to longest")
    seed: int = _f(0, "random seed (weights, batches, augmentation)")
    threads: int = _f(2, "torch intra-op threads", ge=1)
    device: str = _f("cpu", "cpu, cuda, cuda:N or auto (cuda when available); under torchrun cuda means cuda:LOCAL_RANK")
    amp: str = _f("off", "mixed precision: off, bf16 (autocast) or fp16 (autocast + gradient scaler)",
                  ("off", "bf16", "fp16"))
    sync_batchnorm: bool = _f(True, "under DDP, batch-norm statistics over the global batch (equal to one "
                              "process with that batch); false: each rank's own shard")
    eval_every_epochs: int = _f(1, "validate on dev every N epochs", ge=1)
    max_steps: int = _f(0, "stop after this many optimizer steps (0 = no limit)", ge=0)
    max_minutes: float = _f(0.0, "stop after this many minutes of training (0 = no limit)", ge=0)
    log_every_steps: int = _f(20, "write a metrics line every N steps", ge=1)


@dataclass
class PruneConfig:
    strategy: str = _f("global_magnitude", "mask strategy: unstructured (global_magnitude, layerwise_magnitude, "
                       "random) or structured (block, nm, channel)",
                       ("global_magnitude", "layerwise_magnitude", "random", "block", "nm", "channel"))
    fraction: float = _f(0.2, "fraction of the remaining weights pruned per level", ge=0, lt=1)
    min_tensor_density: float = _f(0.0, "layer-collapse guard: every tensor keeps at least this fraction of its "
                                   "weights (global_magnitude; 0 = the paper's plain global rule)", ge=0, le=1)
    include: list = _f([], "glob patterns of prunable tensor names to include (empty = the model's defaults)", item=str)
    exclude: list = _f([], "glob patterns of prunable tensor names to exclude", item=str)
    rewind: str = _f("0", "rewind point: 0 (theta_0), '<k>it' (after k steps) or '<k>ep' (after k epochs)")
    structure: str = _f("block", "structure an unstructured ticket is converted to by the `structured` branch",
                        ("block", "nm", "channel"))
    block_shape: list = _f([1, 4], "(rows, columns) of a block of the 2-D view [out, in*kernel] of a weight "
                           "(block strategy and structure)")
    nm: list = _f([2, 4], "N:M sparsity: at most N of every M consecutive weights of a row are kept (nm)")


@dataclass
class LotteryConfig:
    levels: int = _f(10, "number of pruning levels after the dense level 0", ge=0)
    match_tolerance: float = _f(0.005, "a ticket 'matches' dense when its dev WER <= dense WER + this (absolute)", ge=0)
    replicate: int = _f(0, "replicate index (different seeds share a lottery hash)", ge=0)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    lottery: LotteryConfig = field(default_factory=LotteryConfig)


# --------------------------------------------------------------------------- helpers


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


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


def _apply(obj: Any, data: dict, prefix: str = "") -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    types = _field_types(type(obj))
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if name not in fields:
            raise ConfigError(f"unknown key {key!r}; allowed: {', '.join(sorted(fields))}")
        typ = types[name]
        if dataclasses.is_dataclass(typ):
            _apply(getattr(obj, name), value, key + ".")
            continue
        coerced = _coerce(value, typ, key)
        choices = fields[name].metadata.get("choices")
        if choices and "off" in choices and value is False:  # YAML 1.1 reads a bare `off` as false
            coerced = "off"
        _check_field(fields[name].metadata, coerced, key)
        setattr(obj, name, coerced)


_ITEM_TYPES = {int: (int,), float: (int, float), str: (str,), list: (list,)}
_ITEM_NAMES = {int: "integers", float: "numbers", str: "strings", list: "lists"}
_BOUND_TEXT = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def _check_field(meta: Mapping[str, Any], value: Any, key: str) -> None:
    """Choices, numeric bounds and list item types of one field; ConfigError names the key."""
    choices = meta.get("choices")
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
    from audio_lottery.models import MODEL_NAMES
    from audio_lottery.lottery.rewind import parse_rewind

    d, m = cfg.data, cfg.model

    def need(cond: bool, message: str) -> None:
        if not cond:
            raise ConfigError(message)

    need(m.name in MODEL_NAMES, f"model.name: {m.name!r} is not allowed; allowed values: {', '.join(MODEL_NAMES)}")
    need(d.min_duration < d.max_duration, f"data.min_duration ({d.min_duration}) must be < data.max_duration "
         f"({d.max_duration})")
    need(d.augment.snr_min <= d.augment.snr_max, f"data.augment.snr_min ({d.augment.snr_min}) must be <= "
         f"data.augment.snr_max ({d.augment.snr_max})")
    need(len(cfg.train.betas) == 2 and all(0 <= b < 1 for b in cfg.train.betas),
         f"train.betas: expected two numbers in [0, 1), got {cfg.train.betas!r}")
    for name in ("ds2", "rnnt"):
        sub = getattr(m, name)
        n = len(sub.conv_channels)
        need(len(sub.conv_kernels) == n and len(sub.conv_strides) == n,
             f"model.{name}.conv_channels, conv_kernels and conv_strides must have the same length "
             f"(got {n}, {len(sub.conv_kernels)}, {len(sub.conv_strides)})")
        for key in ("conv_kernels", "conv_strides"):
            pairs = getattr(sub, key)
            need(all(isinstance(p, list) and len(p) == 2 and all(isinstance(x, int) and x >= 1 for x in p)
                     for p in pairs), f"model.{name}.{key}: expected [freq, time] pairs of positive integers, "
                                      f"got {pairs!r}")
    t = m.transformer
    need(t.d_model % t.heads == 0, f"model.transformer.heads ({t.heads}) must divide model.transformer.d_model "
         f"({t.d_model})")
    c = m.conformer
    need(len(c.attention_group_sizes) == len(c.stage_dims) == len(c.downsample_blocks) + 1,
         "model.conformer.stage_dims and attention_group_sizes need one entry per stage and downsample_blocks "
         f"one fewer (got {len(c.stage_dims)}, {len(c.attention_group_sizes)}, {len(c.downsample_blocks)})")
    need(c.kernel_size % 2 == 1, f"model.conformer.kernel_size must be odd, got {c.kernel_size}")
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
    return dataclasses.asdict(cfg)


def non_defaults(cfg: Any, default: Any | None = None) -> dict:
    """The fields of ``cfg`` that differ from the dataclass defaults, nested."""
    default = default if default is not None else type(cfg)()
    out: dict = {}
    for f in dataclasses.fields(cfg):
        a, b = getattr(cfg, f.name), getattr(default, f.name)
        if dataclasses.is_dataclass(a):
            sub = non_defaults(a, b)
            if sub:
                out[f.name] = sub
        elif a != b:
            out[f.name] = a
    return out


# Keys that change how fast a run goes, not what it computes: never part of a run's identity.
RUNTIME_KEYS = ("train.threads", "train.device", "data.num_workers", "train.log_every_steps")
PATH_KEYS = ("data.train_manifest", "data.dev_manifest", "data.test_manifest", "data.augment.noise_manifest")


def _get(cfg: Any, key: str) -> Any:
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
        value = _get(cfg, key)
        if value:
            _set(cfg, key, str((Path(base or Path.cwd()) / value).resolve()))
    return cfg


def config_hash(cfg: Any, ignore: tuple[str, ...] = RUNTIME_KEYS) -> str:
    """Short stable hash of the non-default hyper-parameters, without the dotted ``ignore`` keys."""
    import copy

    c = copy.deepcopy(cfg)
    default = type(cfg)()
    for key in ignore:
        try:
            _set(c, key, _get(default, key))
        except AttributeError:
            continue
    blob = json.dumps(non_defaults(c), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:10]


def save_config(cfg: Config, path: str | Path) -> None:
    from audio_lottery.io import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(to_dict(cfg), sort_keys=False))


def describe(cls: type = Config, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted key, default, help) for every field, for ``--help`` listings and docs."""
    rows = []
    inst = cls()
    for f in dataclasses.fields(inst):
        typ = _field_types(cls)[f.name]
        if dataclasses.is_dataclass(typ):
            rows += describe(typ, f"{prefix}{f.name}.")
        else:
            rows.append((f"{prefix}{f.name}", getattr(inst, f.name), f.metadata.get("help", "")))
    return rows
