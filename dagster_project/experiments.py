"""Experiments from the launchpad: other parameters, without touching the workspace.

The `experiment` job runs `dvc exp run --set-param ...` in a git worktree of its own that shares the
repository's DVC cache (paco_fr.pipeline.run_experiment), so params.yaml and the production artifacts
are never rewritten, and the result is listed by `dvc exp show` with its metrics. The run config's `set` block is
typed from params.yaml's dataclasses, so the launchpad rejects an unknown key or a wrong type before the
run starts.
"""

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import dagster as dg
import yaml

from dagster_project.resources import PathsResource
from paco_fr.config import ProjectConfig
from paco_fr.pipeline import PipelineError, override_pairs, run_experiment

# Sections an experiment may not change: where data lives, and the preset definitions themselves.
_FIXED = ("paths", "presets", "applied")


def _config_type(tp: Any) -> Any:
    """The Dagster config type of one params.yaml field."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return dg.Shape({f.name: dg.Field(_config_type(hint), is_required=False)
                         for f, hint in zip(dataclasses.fields(tp), typing.get_type_hints(tp).values())
                         if f.name not in _FIXED})
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return dg.Noneable(_config_type(args[0])) if len(args) == 1 else dg.Any
    if origin is Literal:  # the allowed words are checked against the typed config when the run starts
        return dg.String if all(isinstance(v, str) for v in typing.get_args(tp)) else dg.Any
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return [_config_type(args[0]) if args else dg.Any]
    if origin is dict:
        return dg.Permissive()
    return {int: dg.Int, float: dg.Float, bool: dg.Bool, str: dg.String}.get(tp, dg.Any)


def params_schema() -> dg.Shape:
    """Every params.yaml key as an optional, typed field (sections nest)."""
    return _config_type(ProjectConfig)


def flatten(values: dict[str, Any], prefix: str = "") -> list[str]:
    """{"train": {"lr": 0.001}} -> ["train.lr=0.001"] (values in YAML flow style)."""
    pairs = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not _is_leaf_mapping(name):
            pairs += flatten(value, f"{name}.")
        else:
            dumped = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
            pairs.append(f"{name}={dumped}")
    return pairs


def _is_leaf_mapping(name: str) -> bool:
    return name == "regions.coverage"


@dg.op(
    config_schema={
        "set": dg.Field(params_schema(), is_required=False, default_value={},
                        description="params.yaml values for this experiment, e.g. train: {lr: 0.001}"),
        "preset": dg.Field(dg.Noneable(str), is_required=False, default_value=None,
                           description="pre-train only this preset (pipeline.presets=[NAME])"),
        "seeds": dg.Field(dg.Noneable(int), is_required=False, default_value=None,
                          description="pre-training seeds 0..N-1"),
        "name": dg.Field(dg.Noneable(str), is_required=False, default_value=None, description="experiment name"),
        "targets": dg.Field([str], is_required=False, default_value=[],
                            description="DVC stages to reproduce (default: the whole pipeline)"),
    },
    tags={"kind": "dvc"},
    pool="dvc",
    description="`dvc exp run` with the given parameters, in a worktree of its own; the workspace and "
                "params.yaml stay as they are.",
)
def dvc_experiment(context: dg.OpExecutionContext, paths: PathsResource) -> dict:
    cfg = context.op_config
    pairs = flatten(cfg["set"])
    if cfg["preset"]:
        pairs.append(f"pipeline.presets=[{cfg['preset']}]")
    if cfg["seeds"]:
        pairs.append(f"pipeline.seeds=[{', '.join(str(s) for s in range(cfg['seeds']))}]")
    if not pairs:
        raise dg.Failure("an experiment needs at least one parameter different from params.yaml")
    root = Path(paths.repo_root)
    try:
        pairs = override_pairs(None, pairs, root)
        context.log.info(f"dvc exp run with {' '.join(pairs)}")
        result = run_experiment(root, pairs, targets=cfg["targets"], name=cfg["name"],
                                env={"PACO_FR_RUN_ID": context.run_id})
    except PipelineError as exc:
        raise dg.Failure(str(exc)) from exc
    context.add_output_metadata({"experiment": result.name, "commit": result.rev, "params": pairs,
                                 "metrics": dg.MetadataValue.json(result.metrics)})
    return {"name": result.name, "rev": result.rev, "params": pairs}


@dg.job(description="Run the pipeline with other parameters as a DVC experiment (`dvc exp show` lists it); "
                    "production artifacts and params.yaml are not touched.")
def experiment():
    dvc_experiment()
