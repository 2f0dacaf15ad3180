"""The one source of configuration: params.yaml read into typed, validated dataclasses.

Each stage owns the dataclass of its section (``paco_fr.<stage>.config``); this module composes them
into :class:`ProjectConfig` and implements the generic parts: strict loading (an unknown key is an
error, not a silent no-op), type checking, named presets and ``key=value`` overrides from the CLI or
the Dagster launchpad. Overrides that were applied are kept in ``ProjectConfig.applied`` so that
lineage can record them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, TypeVar, Union

import yaml

from paco_fr.data.config import CurationConfig
from paco_fr.eval.config import EvalConfig
from paco_fr.masks.config import MaskingConfig, RegionsConfig
from paco_fr.model.config import ModelConfig
from paco_fr.train.config import TrainConfig

DEFAULT_PARAMS = Path("params.yaml")

T = TypeVar("T")


class ConfigError(ValueError):
    """A params file, preset or override that does not fit the typed configuration."""


@dataclasses.dataclass
class PathsConfig:
    data_dir: str = "data"
    raw_dir: str = "data/raw"


@dataclasses.dataclass
class PipelineConfig:
    """What `paco-fr run` / `dvc repro` builds: which presets are pre-trained with which pre-training
    seeds (one encoder per preset and seed), which baselines are evaluated beside them. `full_presets`
    is the longer comparison (`paco-fr run --full`, an experiment)."""

    presets: list[str] = dataclasses.field(default_factory=lambda: ["paco_fr"])
    seeds: list[int] = dataclasses.field(default_factory=lambda: [0])
    full_presets: list[str] = dataclasses.field(default_factory=lambda: [
        "paco_fr", "mae", "no_structured_mask", "single_candidate", "no_replacement", "no_spatial",
        "no_incubation"])
    baselines: list[str] = dataclasses.field(default_factory=lambda: ["random", "pixels", "hog"])
    # How many cores' worth of stages `paco-fr run` runs at once (0: every core this process may use;
    # 1: one stage at a time, as `dvc repro` does). How the run is executed, never what it builds.
    jobs: int = 0
    # Whether a one-core stage may run beside an all-core one at idle CPU priority (docs/orchestration.md).
    # It slows pre-training by 14-27% on 2 cores, but the whole main job measured best with it (pairs 9-12).
    background: bool = True

    def __post_init__(self) -> None:
        if self.jobs < 0:
            raise ValueError(f"pipeline.jobs must be 0 (every core) or more, got {self.jobs}")


@dataclasses.dataclass
class ProjectConfig:
    seed: int = 0
    paths: PathsConfig = dataclasses.field(default_factory=PathsConfig)
    pipeline: PipelineConfig = dataclasses.field(default_factory=PipelineConfig)
    curation: CurationConfig = dataclasses.field(default_factory=CurationConfig)
    regions: RegionsConfig = dataclasses.field(default_factory=RegionsConfig)
    masking: MaskingConfig = dataclasses.field(default_factory=MaskingConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    # name -> {dotted.key: value}; applied with `preset=` before explicit overrides.
    presets: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    # What was applied on top of params.yaml (preset name and key=value strings), for lineage.
    applied: list[str] = dataclasses.field(default_factory=list)


def load_config(
    path: str | Path | None = None,
    *,
    preset: str | None = None,
    overrides: Sequence[str] = (),
) -> ProjectConfig:
    """Read params.yaml (or defaults when `path` is None and no params.yaml exists), then apply
    the named preset and the ``key=value`` overrides, in that order."""
    data: dict[str, Any] = {}
    if path is None and DEFAULT_PARAMS.exists():
        path = DEFAULT_PARAMS
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"params file not found: {path}")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, got {type(loaded).__name__}")
        data = loaded
    if "applied" in data:
        raise ConfigError("'applied' is recorded by the loader and cannot be set in a params file")
    cfg = from_dict(ProjectConfig, data)
    if preset:
        cfg = apply_preset(cfg, preset)
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    return cfg


def apply_preset(cfg: ProjectConfig, name: str) -> ProjectConfig:
    if name not in cfg.presets:
        known = ", ".join(sorted(cfg.presets)) or "none defined"
        raise ConfigError(f"unknown preset {name!r} (known: {known})")
    pairs = [f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
             for key, value in cfg.presets[name].items()]
    out = apply_overrides(cfg, pairs, record=False)
    out.applied = [*cfg.applied, f"preset={name}"]
    return out


def apply_overrides(cfg: T, overrides: Sequence[str], *, record: bool = True) -> T:
    """Return a copy of `cfg` with each ``dotted.key=value`` applied; values are YAML scalars or
    flow collections (``model.top_k=8``, ``eval.benchmarks=[a, b]``) checked against the field type."""
    data = to_dict(cfg)
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from exc
        _set_dotted(cfg, data, key, value)
    out = from_dict(type(cfg), data)
    if record and hasattr(out, "applied"):
        out.applied = [*getattr(cfg, "applied"), *overrides]  # type: ignore[attr-defined]
    return out


def _set_dotted(cfg: Any, data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node: Any = data
    node_type: Any = type(cfg)
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if dataclasses.is_dataclass(node_type):
            names = {f.name for f in dataclasses.fields(node_type)}
            if part not in names:
                raise ConfigError(f"unknown config key {'.'.join(parts[: depth + 1])!r}"
                                  f" (known at this level: {', '.join(sorted(names))})")
            node_type = typing.get_type_hints(node_type)[part]
        elif _origin(node_type) is dict:
            node_type = typing.get_args(node_type)[1] if typing.get_args(node_type) else Any
        else:
            raise ConfigError(f"cannot descend into {'.'.join(parts[:depth])!r}: not a section")
        if last:
            node[part] = value
        else:
            node = node.setdefault(part, {})


def to_dict(cfg: Any) -> Any:
    """Plain data (dicts, lists, scalars) for YAML/JSON and lineage records."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, Mapping):
        return {k: to_dict(v) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    return cfg


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build dataclass `cls` from `data`, rejecting unknown keys and values of the wrong type."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(_join(where, k) for k in unknown)}"
                          f" (known: {', '.join(sorted(fields))})")
    kwargs = {name: _coerce(hints[name], data[name], _join(where, name)) for name in fields if name in data}
    try:
        obj = cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from exc
    return obj


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _origin(tp: Any) -> Any:
    return typing.get_origin(tp)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = _origin(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} fits none of {tp}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if isinstance(value, bool) and ("off" in allowed or "on" in allowed):
            # YAML 1.1 reads a bare `off`/`on` as a boolean; the user meant the word.
            value = "on" if value else "off"
        if value not in allowed:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    if origin in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item_tp = args[0] if args else Any
        items = [_coerce(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        args = typing.get_args(tp)
        val_tp = args[1] if args else Any
        return {str(k): _coerce(val_tp, v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{where}: unsupported config type {tp}")
