"""Backbones registered by name with their config section; :func:`build_model` makes one from a ModelConfig.

A backbone is a plug-in: its module defines the model, its config dataclass (``model.<name>``) and
the config-time checks, and registers them with :func:`register_model`; ``config.py`` learns the
name and the section from here (nothing there names a backbone)."""

from __future__ import annotations

from typing import Callable, TypeVar

from audio_lottery.config import ConfigError, ModelConfig, register_section
from audio_lottery.models.base import ASRModel

_REGISTRY: dict[str, type[ASRModel]] = {}
MODEL_NAMES: list[str] = []  # registered backbone names, in registration order

M = TypeVar("M", bound=type[ASRModel])


def register_model(name: str, section: type, check: Callable[[object], None] | None = None) -> Callable[[M], M]:
    """Class decorator: register an ASRModel subclass (it must define ``from_config``) under ``name``,
    with its config dataclass ``section`` (read from ``model.<name>``) and an optional config-time
    ``check(section)`` run by ``validate_config`` (raise ConfigError naming the key)."""

    def deco(cls: M) -> M:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered")
        if not hasattr(cls, "from_config"):
            raise TypeError(f"{cls.__name__} needs a from_config(cfg, vocab_size, feat_dim) classmethod")
        _REGISTRY[name] = cls
        register_section(ModelConfig, name, section, check, choice_key="model.name")
        if name not in MODEL_NAMES:
            MODEL_NAMES.append(name)
        return cls

    return deco


def build_model(cfg: ModelConfig, vocab_size: int, feat_dim: int) -> ASRModel:
    """Build the backbone ``cfg.name`` for ``vocab_size`` tokens (blank 0) and ``feat_dim`` features."""
    if cfg.name not in _REGISTRY:
        raise ConfigError(f"model.name: unknown model {cfg.name!r}; known: {', '.join(MODEL_NAMES)}")
    return _REGISTRY[cfg.name].from_config(cfg, vocab_size, feat_dim)
