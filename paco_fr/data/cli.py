"""`paco-fr curate`, `curate-part`, `curate-merge` and `raw`: the command line of the curation stage."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _worker_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="worker processes (default: the cores this process may use)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-progress-json", action="store_true",
                        help="no JSON progress lines on stderr (every 10 s: done, total, faces, rejected, rates, ETA)")


def register(sub: argparse._SubParsersAction) -> None:
    from paco_fr.cli import add_config_args, add_lineage_arg

    curate = sub.add_parser(
        "curate",
        help="raw images -> aligned, validated face corpus",
        description="Curate a folder of images (or the builtin corpus) into DIR: aligned crops in tar "
                    "shards, manifest.parquet, rejected.parquet (a reason for every input left out), "
                    "summary.json, preview.png and validation.json (Great Expectations), with N worker "
                    "processes. A run that was killed resumes from its complete chunks (kept in "
                    "DIR/.curate-work) unless --no-resume is given. Exit status 3 when the corpus fails "
                    "validation.",
    )
    curate.add_argument("--source", default=None, metavar="builtin|PATH",
                        help="'builtin' (public-domain photos + procedural faces, materialised into --raw-dir "
                             "first) or a folder of images (default: params curation.source)")
    curate.add_argument("--out", required=True, metavar="DIR", help="output corpus folder")
    curate.add_argument("--raw-dir", default=None, metavar="DIR",
                        help="where --source builtin is materialised (default: params paths.raw_dir)")
    _worker_args(curate)
    curate.add_argument("--no-resume", action="store_true", help="start from scratch even if a killed run left chunks")
    add_config_args(curate)
    add_lineage_arg(curate)
    curate.set_defaults(func=_curate)

    part = sub.add_parser(
        "curate-part",
        help="curate one partition of a folder (a slice by a stable hash of each relative path)",
        description="Curate partition I of curation.partitions of a folder into PARTDIR (chunk tars and "
                    "tables, faces.parquet, inputs.parquet, part.json). Resumable: complete chunks are "
                    "reused. Merge all partitions with `paco-fr curate-merge`.",
    )
    part.add_argument("--source", required=True, metavar="DIR", help="folder of images")
    part.add_argument("--part", required=True, type=int, metavar="I", help="partition index, 0..partitions-1")
    part.add_argument("--out", required=True, metavar="PARTDIR", help="partition folder")
    _worker_args(part)
    part.add_argument("--no-resume", action="store_true", help="start from scratch even if a killed run left chunks")
    add_config_args(part)
    add_lineage_arg(part)
    part.set_defaults(func=_curate_part)

    merge = sub.add_parser(
        "curate-merge",
        help="merge curated partitions into one validated face corpus",
        description="Make the global decisions (exact and near duplicates across partitions, splits, "
                    "shard order) over every partition of curation.partitions and publish the corpus "
                    "into DIR. Exit status 3 when the corpus fails validation.",
    )
    merge.add_argument("--source", required=True, metavar="DIR", help="the folder the partitions were curated from")
    parts = merge.add_mutually_exclusive_group(required=True)
    parts.add_argument("--parts", nargs="+", metavar="PARTDIR", help="every partition folder")
    parts.add_argument("--parts-dir", metavar="DIR",
                       help="the folder holding part-0 ... part-<M-1> (M = curation.partitions; others are ignored)")
    merge.add_argument("--out", required=True, metavar="DIR", help="output corpus folder")
    merge.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_args(merge)
    add_lineage_arg(merge)
    merge.set_defaults(func=_curate_merge)

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
    """Write the builtin raw corpus and record its version in the lineage log (once per version: an
    unchanged folder is left byte for byte as it was)."""
    from paco_fr.config import to_dict
    from paco_fr.data.builtin import write_builtin_raw
    from paco_fr.lineage import content_hash, display_path, find_record, record_provenance

    write_builtin_raw(cfg.curation.builtin, out, progress=progress)
    key = content_hash(out)
    if find_record(display_path(out), key) is None:
        record_provenance(out, "raw", inputs={}, params=to_dict(cfg.curation.builtin), overrides=cfg.applied,
                          key=key)
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
    from paco_fr.data.curate import curate

    cfg = config_from_args(args)
    source = args.source or cfg.curation.source
    progress = not args.no_progress

    def run():
        if source == "builtin":
            source_dir = materialise_builtin(cfg, Path(args.raw_dir or cfg.paths.raw_dir), progress=progress)
        else:
            source_dir = Path(source)
        result = curate(cfg.curation, source_dir, Path(args.out), workers=args.workers, resume=not args.no_resume,
                        progress=progress, progress_json=not args.no_progress_json)
        return result, {"raw": source_dir}

    return _publish("curate", args, cfg, run)


def _curate_part(args: argparse.Namespace) -> int:
    from paco_fr.cli import config_from_args
    from paco_fr.config import to_dict
    from paco_fr.data.partition import curate_partition
    from paco_fr.lineage import record_provenance

    cfg = config_from_args(args)
    try:
        result = curate_partition(cfg.curation, Path(args.source), args.part, Path(args.out), workers=args.workers,
                                  resume=not args.no_resume, progress=not args.no_progress,
                                  progress_json=not args.no_progress_json)
    except (FileNotFoundError, NotADirectoryError, PermissionError, ValueError) as exc:
        print(f"paco-fr curate-part: {exc}", file=sys.stderr)
        return 1
    facts = result.run_facts()
    record_provenance(result.out_dir, "curate_part", inputs={"raw": Path(args.source)}, params=to_dict(cfg.curation),
                      overrides=cfg.applied, extra={"inputs": result.inputs, "faces": result.faces, **facts},
                      log=args.lineage)
    print(f"curate-part: partition {result.part} of {result.partitions}: {result.inputs} inputs, {result.faces} "
          f"candidate faces, {result.rejected} rejected; chunks: {len(result.chunks_reused)} reused, "
          f"{len(result.chunks_done)} curated {result.chunks_done if result.chunks_done else ''}".rstrip(),
          file=sys.stderr)
    for death in result.worker_deaths:
        print(f"curate-part: a worker died on chunk {death.chunk} (exit {death.exitcode}) with "
              f"{', '.join(death.in_hand) or 'no input'} in hand; the chunk was redone", file=sys.stderr)
    if result.worker_peak_rss_mb:
        print(f"curate-part: worker peak RSS {result.worker_peak_rss_mb:.0f} MB", file=sys.stderr)
    print(f"curate-part: partition in {result.out_dir}", file=sys.stderr)
    return 0


def _curate_merge(args: argparse.Namespace) -> int:
    from paco_fr.cli import config_from_args
    from paco_fr.data.merge import merge_partitions

    cfg = config_from_args(args)

    parts = ([Path(p) for p in args.parts] if args.parts else
             [Path(args.parts_dir) / f"part-{i}" for i in range(cfg.curation.n_partitions)])

    def run():
        result = merge_partitions(cfg.curation, Path(args.source), parts, Path(args.out), progress=not args.no_progress)
        return result, {"raw": Path(args.source), **{f"part{i}": p for i, p in enumerate(parts)}}

    return _publish("curate-merge", args, cfg, run)


def _publish(command: str, args: argparse.Namespace, cfg, run) -> int:
    """Run a stage that publishes a corpus; report its outcome and record its provenance."""
    from paco_fr.config import to_dict
    from paco_fr.data.merge import summary_lines
    from paco_fr.data.validation import CorpusValidationError
    from paco_fr.lineage import record_provenance

    try:
        result, inputs = run()
    except CorpusValidationError as exc:
        print(f"paco-fr {command}: {exc}", file=sys.stderr)
        print(f"see {Path(args.out) / 'validation.json'} and summary.json", file=sys.stderr)
        return 3
    except (FileNotFoundError, NotADirectoryError, FileExistsError, PermissionError, ValueError) as exc:
        print(f"paco-fr {command}: {exc}", file=sys.stderr)
        return 1
    record_provenance(result.out_dir, "curate", inputs=inputs, params=to_dict(cfg.curation), overrides=cfg.applied,
                      extra={"faces": result.summary["faces"], "inputs": result.summary["inputs"],
                             **result.summary["run"]}, log=args.lineage)
    for line in summary_lines(result.summary):
        print(f"curate: {line}", file=sys.stderr)
    chunks = result.summary["run"].get("chunks_reused")
    if chunks:
        print(f"curate: resumed: {chunks} complete chunks reused", file=sys.stderr)
    print(f"curate: corpus in {result.out_dir}", file=sys.stderr)
    return 0
