"""`paco-fr`: the command line every other entry point (dvc.yaml, Dagster, users) goes through.

Each stage package registers its own sub-command (a `register(subparsers)` function in its
`cli.py`), so this module only knows how to load configuration and dispatch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

# Sub-command modules, in the order `paco-fr --help` lists them.
COMMAND_MODULES = (
    "paco_fr.data.cli",
    "paco_fr.masks.cli",
    "paco_fr.train.cli",
    "paco_fr.eval.cli",
    "paco_fr.lineage_cli",
    "paco_fr.pipeline_cli",
)


def add_config_args(parser: argparse.ArgumentParser) -> None:
    """The options every stage shares: where params live, a preset, and field overrides."""
    parser.add_argument("--params", default=None, metavar="FILE",
                        help="params file (default: ./params.yaml when present, else built-in defaults)")
    parser.add_argument("--preset", default=None, metavar="NAME",
                        help="named preset from params.yaml `presets:` applied before --set")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config field, e.g. --set train.epochs=3 (repeatable)")


def add_lineage_arg(parser: argparse.ArgumentParser) -> None:
    """Where a stage appends its provenance record: in dvc.yaml, a log of the stage's own that DVC keeps
    as a second output (committed, so it travels with dvc.lock and experiment commits)."""
    parser.add_argument("--lineage", default=None, metavar="FILE",
                        help="append the provenance record here (default: $PACO_FR_LINEAGE_LOG, else "
                             "lineage/records.jsonl at the repository root)")


def config_from_args(args: argparse.Namespace):
    from paco_fr.config import load_config

    return load_config(args.params, preset=args.preset, overrides=args.overrides)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paco-fr",
        description="PaCo-FR facial representation pre-training: curate, regions, pretrain, "
                    "evaluate, compare, lineage.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that stage is not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from paco_fr.config import ConfigError

    try:
        result = args.func(args)
    except ConfigError as exc:
        print(f"paco-fr: configuration error: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
