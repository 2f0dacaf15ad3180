"""`paco-fr curate` and `paco-fr raw`: the command line of the curation stage."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from paco_fr.cli import add_config_args

    curate = sub.add_parser(
        "curate",
        help="raw images -> aligned, validated face corpus",
        description="Curate a folder of images (or the builtin corpus) into DIR: aligned crops in tar "
                    "shards, manifest.parquet, rejected.parquet (a reason for every input left out), "
                    "summary.json, preview.png and validation.json (Great Expectations). A run that was "
                    "killed resumes from its last complete shard unless --no-resume is given. "
                    "Exit status 3 when the corpus fails validation.",
    )
    curate.add_argument("--source", default=None, metavar="builtin|PATH",
                        help="'builtin' (public-domain photos + procedural faces, materialised into --raw-dir "
                             "first) or a folder of images (default: params curation.source)")
    curate.add_argument("--out", required=True, metavar="DIR", help="output corpus folder")
    curate.add_argument("--raw-dir", default=None, metavar="DIR",
                        help="where --source builtin is materialised (default: params paths.raw_dir)")
    curate.add_argument("--no-resume", action="store_true", help="start from scratch even if a killed run left journals")
    curate.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_args(curate)
    curate.set_defaults(func=_curate)

    raw = sub.add_parser(
        "raw",
        help="materialise the builtin raw corpus (photos + procedural faces) as an image folder",
        description="Write the builtin corpus into DIR: photos/ (public-domain face photos shipped by "
                    "installed packages), synthetic/ (procedural faces with .gt.json and .labels.png "
                    "sidecars), README.txt and SOURCES.json. Deterministic; a folder already written "
                    "with the same settings is left untouched.",
    )
    raw.add_argument("--out", default=None, metavar="DIR", help="output folder (default: params paths.raw_dir)")
    raw.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_args(raw)
    raw.set_defaults(func=_raw)


def materialise_builtin(cfg, out: Path, *, progress: bool) -> Path:
    """Write the builtin raw corpus and, when it was (re)written, its provenance record. An
    unchanged folder keeps its record, so its bytes (and DVC hash) stay the same."""
    from paco_fr.config import to_dict
    from paco_fr.data.builtin import write_builtin_raw
    from paco_fr.lineage import PROVENANCE_FILE, record_provenance

    write_builtin_raw(cfg.curation.builtin, out, progress=progress)
    if not (out / PROVENANCE_FILE).exists():
        record_provenance(out, "raw", inputs={}, params=to_dict(cfg.curation.builtin), overrides=cfg.applied)
    return out


def _raw(args: argparse.Namespace) -> int:
    from paco_fr.cli import config_from_args

    cfg = config_from_args(args)
    out = Path(args.out or cfg.paths.raw_dir)
    try:
        materialise_builtin(cfg, out, progress=not args.no_progress)
    except FileExistsError as exc:
        print(f"paco-fr raw: {exc}", file=sys.stderr)
        return 1
    print(f"raw: builtin corpus in {out}", file=sys.stderr)
    return 0


def _curate(args: argparse.Namespace) -> int:
    from paco_fr.cli import config_from_args
    from paco_fr.config import to_dict
    from paco_fr.data.curate import RUN_KEYS, curate, summary_lines
    from paco_fr.data.validation import CorpusValidationError
    from paco_fr.lineage import record_provenance

    cfg = config_from_args(args)
    source = args.source or cfg.curation.source
    progress = not args.no_progress
    try:
        if source == "builtin":
            source_dir = materialise_builtin(cfg, Path(args.raw_dir or cfg.paths.raw_dir), progress=progress)
        else:
            source_dir = Path(source)
        result = curate(cfg.curation, source_dir, Path(args.out), resume=not args.no_resume, progress=progress)
    except CorpusValidationError as exc:
        print(f"paco-fr curate: {exc}", file=sys.stderr)
        print(f"see {Path(args.out) / 'validation.json'} and summary.json", file=sys.stderr)
        return 3
    except (FileNotFoundError, NotADirectoryError, FileExistsError, PermissionError, ValueError) as exc:
        print(f"paco-fr curate: {exc}", file=sys.stderr)
        return 1
    record_provenance(result.out_dir, "curate", inputs={"raw": source_dir}, params=to_dict(cfg.curation),
                      overrides=cfg.applied,
                      extra={"faces": result.summary["faces"], "inputs": result.summary["inputs"],
                             "run": {k: result.summary[k] for k in RUN_KEYS}})
    for line in summary_lines(result.summary):
        print(f"curate: {line}", file=sys.stderr)
    print(f"curate: corpus in {result.out_dir}", file=sys.stderr)
    return 0
