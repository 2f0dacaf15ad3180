"""`paco-fr lineage` and `paco-fr forget`: audit which data produced a result, and erase an image."""

from __future__ import annotations

import argparse
import json
import sys
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
                   help="also list the first N raw files of the recorded raw folder version (from the DVC cache)")
    p.add_argument("--version", default=None, metavar="MD5",
                   help="the recorded version of PATH to trace (default: the one in the workspace)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_config_args(p)
    p.set_defaults(func=_lineage)

    f = sub.add_parser(
        "forget",
        help="erase a raw image and every byte derived from it; list what must be retrained",
        description="Erasure: removes the image (and its annotation sidecars) from the raw folder and "
                    "versions it again, rebuilds curation and the region maps without it, deletes every "
                    "object that held it or a picture of its face from the DVC cache and the default remote "
                    "(raw files, crop shards, region maps, previews, reconstruction grids) and from Dagster's "
                    "storage, removes wandb media of the runs that trained on it, records the erasure in "
                    "lineage/forget.jsonl, and lists the encoders and reports to retrain.",
    )
    f.add_argument("image", help="path of the raw image (inside paths.raw_dir)")
    f.add_argument("--no-rebuild", action="store_true",
                   help="do not rebuild curation and the region maps now (they keep the image until rebuilt)")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=_forget)


def _lineage(args: argparse.Namespace) -> int:
    from paco_fr.audit import AuditError, find_uses, format_chain, lineage_chain

    try:
        if args.uses:
            report = find_uses(args.uses)
            if args.json:
                print(json.dumps({"image": report.image, "md5": report.md5,
                                  "raw_versions": [_brief(r) for r in report.raw_versions],
                                  "downstream": [_brief(r) for r in report.downstream]}, indent=2))
            else:
                print(report.format())
            return 0
        if not args.path:
            print("paco-fr lineage: give an artifact PATH or --uses RAW_IMAGE", file=sys.stderr)
            return 2
        links = lineage_chain(args.path, key=args.version)
    except AuditError as exc:
        print(f"paco-fr lineage: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([{"depth": link.depth, "name": link.name, "path": link.path, "stage": link.stage,
                           "md5": link.recorded_hash, "current_md5": link.current_hash, "status": link.status}
                          for link in links], indent=2))
    else:
        print(format_chain(links, files=args.files))
    return 0


def _forget(args: argparse.Namespace) -> int:
    from paco_fr.audit import AuditError
    from paco_fr.erasure import forget_image
    from paco_fr.pipeline import PipelineError, repo_root

    from paco_fr.config import load_config

    root = repo_root()
    cfg = load_config(root / "params.yaml")
    try:
        report = forget_image(args.image, root=root, raw_dir=cfg.paths.raw_dir, rebuild=not args.no_rebuild)
    except (AuditError, PipelineError) as exc:
        print(f"paco-fr forget: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"image": report.image, "md5": report.md5, "removed_files": report.removed_files,
                          "purged": [vars(p) for p in report.purged], "purged_from": report.purged_from,
                          "rebuilt": report.rebuilt, "retrain": report.retrain, "hooks": report.hooks,
                          "affected": {a: sorted(v) for a, v in report.affected.items()}}, indent=2))
    else:
        print(report.format())
    return 0


def _brief(rec: dict) -> dict:
    return {"stage": rec.get("stage"), "artifact": rec.get("artifact"), "md5": rec.get("key"),
            "run_id": rec.get("run", {}).get("run_id"), "created_at": rec.get("run", {}).get("created_at")}
