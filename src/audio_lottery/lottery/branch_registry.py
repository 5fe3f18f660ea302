"""The one branch contract: a registered function whose keyword-only parameters declare its options.

A branch is ``fn(cfg, run_dir, level, *, <params>) -> (mask, initial weights)`` (one level at a time,
trained by the shared ``train_level``) or, registered with ``whole_run=True``,
``fn(cfg, run_dir, out, levels, progress, *, <params>) -> None`` (the whole branch at once). Each
keyword-only parameter is annotated ``Annotated[T, Param(...)]``:

- ``Param("help")`` with a default in the signature: the branch's own parameter of type ``T``
  (``int``, ``float`` or ``str``); a value other than the default names the branch folder;
- ``Param(key="prune.structure")``: the parameter sets that config key. ``--structure X`` is the
  override ``prune.structure=X`` (exactly the spelling ``--set`` takes, so the branch folder is the
  same either way); its help and choices are the config field's, its default the run's value, and
  the function receives the value of the key in the branch's config.

``audio-lottery branch NAME --help`` lists the parameters (the CLI builds them from :data:`BRANCHES`).
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable

from audio_lottery.config import Config, field_choices, field_info, get_key

OWN_TYPES = (int, float, str)


@dataclass(frozen=True)
class Param:
    """Annotation of a branch parameter: its help, or the config ``key`` it sets."""

    help: str = ""
    key: str = ""


@dataclass(frozen=True)
class BranchParam:
    """One declared parameter of a branch (derived from the signature)."""

    name: str
    type: type
    help: str
    key: str = ""  # the config key it sets; '' for the branch's own parameter
    default: Any = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def choices(self) -> tuple:
        return field_choices(field_info(self.key)[1]) if self.key else ()


@dataclass(frozen=True)
class Branch:
    """A registered branch: its function, whether it runs the whole branch at once, its parameters."""

    name: str
    fn: Callable[..., Any]
    whole_run: bool
    params: dict[str, BranchParam]

    @property
    def description(self) -> str:
        return (inspect.getdoc(self.fn) or "").split("\n\n")[0].replace("\n", " ")

    def bind(self, values: dict[str, Any] | None) -> tuple[list[str], dict[str, Any]]:
        """Parameter values (None = not given) -> (config overrides ``key=value``, the own parameters'
        values with defaults filled in and types checked)."""
        values = {k: v for k, v in (values or {}).items() if v is not None}
        unknown = sorted(set(values) - set(self.params))
        if unknown:
            raise ValueError(f"branch {self.name!r} has no parameter {', '.join(unknown)}; "
                             f"its parameters: {', '.join(self.params) or 'none'}")
        overrides = [f"{p.key}={values[n]}" for n, p in self.params.items() if p.key and n in values]
        own = {}
        for n, p in self.params.items():
            if not p.key:
                try:
                    own[n] = p.type(values.get(n, p.default))
                except (TypeError, ValueError):
                    raise ValueError(f"branch {self.name!r}: {p.flag} expects {p.type.__name__}, "
                                     f"got {values[n]!r}") from None
        return overrides, own

    def own_changes(self, own: dict[str, Any]) -> dict[str, Any]:
        """The own parameters that differ from their defaults (they name the branch folder)."""
        return {n: v for n, v in own.items() if v != self.params[n].default}

    def arguments(self, cfg: Config, own: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments of one call: config-bound parameters read from ``cfg``."""
        return {n: get_key(cfg, p.key) if p.key else own[n] for n, p in self.params.items()}


BRANCHES: dict[str, Branch] = {}
RESERVED = {"run", "levels", "tag", "overrides", "device", "name", "command", "func", "verbose", "quiet"}


def declared_params(fn: Callable[..., Any], name: str) -> dict[str, BranchParam]:
    """The keyword-only parameters of ``fn``, each ``Annotated[T, Param(...)]``."""
    hints = typing.get_type_hints(fn, include_extras=True)
    params = {}
    for pname, sig in inspect.signature(fn).parameters.items():
        if sig.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        hint = hints.get(pname)
        meta = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Param)]
        if not meta:
            raise TypeError(f"branch {name!r}: parameter {pname!r} needs an Annotated[type, Param(...)] hint")
        if pname in RESERVED:
            raise TypeError(f"branch {name!r}: parameter name {pname!r} is taken by the branch command")
        typ, decl = typing.get_args(hint)[0], meta[0]
        if decl.key:
            field_type, field_meta = field_info(decl.key)  # ConfigError for an unknown key
            if typ is not field_type:
                raise TypeError(f"branch {name!r}: parameter {pname!r} sets {decl.key}, of type {field_type.__name__}")
            params[pname] = BranchParam(pname, field_type, decl.help or field_meta.get("help", ""), decl.key)
        else:
            if typ not in OWN_TYPES or sig.default is inspect.Parameter.empty:
                raise TypeError(f"branch {name!r}: own parameter {pname!r} needs a type in "
                                f"{[t.__name__ for t in OWN_TYPES]} and a default")
            params[pname] = BranchParam(pname, typ, decl.help, "", sig.default)
    return params


def register_branch(name: str, *, whole_run: bool = False) -> Callable[[Callable], Callable]:
    """Register ``fn`` as branch ``name`` with the parameters its signature declares."""
    def deco(fn: Callable) -> Callable:
        if name in BRANCHES and BRANCHES[name].fn is not fn:
            raise ValueError(f"branch {name!r} is already registered")
        BRANCHES[name] = Branch(name, fn, whole_run, declared_params(fn, name))
        return fn

    return deco


def get_branch(name: str) -> Branch:
    if name not in BRANCHES:
        raise ValueError(f"unknown branch {name!r}; known: {', '.join(sorted(BRANCHES))}")
    return BRANCHES[name]

