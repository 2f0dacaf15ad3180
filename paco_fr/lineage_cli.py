"""`paco-fr lineage` and `paco-fr forget`: audit which data produced a result, and erase an image."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from paco_fr.cli import add_config_args, config_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lineage",
        help="print the chain from an artifact back to the raw files, or what used a raw image",
        description="With PATH (a report, encoder, corpus... folder or a file in one): the chain of "
                    "provenance records back to the raw files, with each input's hash and whether it "
                    "changed since. With --uses IMAGE: every corpus version, encoder and report that used it.",
    )
    p.add_argument("path", nargs="?", help="artifact folder or a file inside one")
    p.add_argument("--uses", metavar="RAW_IMAGE", help="list everything built from this raw image")
    p.add_argument("--files", type=int, default=0, metavar="N",
                   help="also list the first N raw files of each corpus in the chain")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_config_args(p)
    p.set_defaults(func=_lineage)

    f = sub.add_parser(
        "forget",
        help="remove a raw image from the raw folder and the corpus; report what is now stale",
        description="Erasure: deletes the image and its annotation sidecars from the raw folder, its "
                    "faces from the corpus shards and manifest and their region maps, records the "
                    "change, and lists every encoder and report built from it (stale until rebuilt).",
    )
    f.add_argument("image", help="path of the raw image")
    f.add_argument("--corpus", default=None, help="corpus folder (default: <data_dir>/corpus)")
    f.add_argument("--regions", default=None, help="regions folder (default: <data_dir>/regions)")
    f.add_argument("--json", action="store_true")
    add_config_args(f)
    f.set_defaults(func=_forget)


def _lineage(args: argparse.Namespace) -> int:
    from paco_fr.audit import AuditError, find_uses, format_chain, lineage_chain

    cfg = config_from_args(args)
    try:
        if args.uses:
            report = find_uses(args.uses, [Path(cfg.paths.data_dir)])
            if args.json:
                print(json.dumps({"image": report.image, "sha256": report.sha256,
                                  "corpora": [_brief(r) for r in report.corpora],
                                  "downstream": [_brief(r) for r in report.downstream]}, indent=2))
            else:
                print(report.format())
            return 0
        if not args.path:
            print("paco-fr lineage: give an artifact PATH or --uses RAW_IMAGE")
            return 2
        links = lineage_chain(args.path)
    except AuditError as exc:
        print(f"paco-fr lineage: {exc}")
        return 1
    if args.json:
        print(json.dumps([{"depth": link.depth, "name": link.name, "path": link.path, "stage": link.stage,
                           "hash": link.recorded_hash, "status": link.status} for link in links], indent=2))
    else:
        print(format_chain(links, manifest_rows=args.files))
    return 0


def _forget(args: argparse.Namespace) -> int:
    from paco_fr.audit import AuditError, forget_image

    cfg = config_from_args(args)
    data = Path(cfg.paths.data_dir)
    try:
        report = forget_image(args.image, corpus_dir=Path(args.corpus or data / "corpus"),
                              regions_dir=Path(args.regions or data / "regions"), search_roots=[data])
    except AuditError as exc:
        print(f"paco-fr forget: {exc}")
        return 1
    if args.json:
        print(json.dumps({"image": report.image, "removed_files": report.removed_files,
                          "removed_faces": report.removed_faces, "rewritten": report.rewritten,
                          "stale": [_brief(r) for r in report.stale]}, indent=2))
    else:
        print(report.format())
    return 0


def _brief(rec: dict) -> dict:
    return {k: rec.get(k) for k in ("stage", "artifact", "artifact_hash", "run_id", "created_at")}
