"""`paco-fr regions --corpus DIR --out DIR`: build face_regions and record its provenance."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from paco_fr.cli import add_config_args, add_lineage_arg  # noqa: PLC0415 - paco_fr.cli imports this module

    parser = sub.add_parser(
        "regions",
        help="facial-region label maps for a curated corpus",
        description="Build a region label map (background, head_other, skin, brows, eyes, nose, mouth) for "
                    "every face of a curated corpus, with coverage statistics, a preview and a Great "
                    "Expectations quality gate. Settings: params.yaml section `regions`.",
    )
    parser.add_argument("--corpus", required=True, metavar="DIR", help="curated corpus (output of `paco-fr curate`)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (replaced atomically)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_config_args(parser)
    add_lineage_arg(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from paco_fr.cli import config_from_args  # noqa: PLC0415
    from paco_fr.config import to_dict  # noqa: PLC0415
    from paco_fr.lineage import record_provenance  # noqa: PLC0415
    from paco_fr.masks.stage import RegionsInputError, build_regions  # noqa: PLC0415
    from paco_fr.masks.validation import RegionsValidationError  # noqa: PLC0415

    cfg = config_from_args(args)
    try:
        result = build_regions(cfg.regions, args.corpus, args.out, progress=not args.no_progress)
    except RegionsInputError as exc:
        print(f"paco-fr regions: bad input: {exc}", file=sys.stderr)
        return 1
    except RegionsValidationError as exc:
        print(f"paco-fr regions: quality gate failed (see {args.out}/validation.json):\n{exc}", file=sys.stderr)
        return 1
    record_provenance(args.out, "regions", inputs={"corpus": args.corpus}, params=to_dict(cfg.regions),
                      overrides=cfg.applied, extra={"wall_time_s": result.wall_time_s}, log=args.lineage)
    summary = result.summary
    providers = ", ".join(f"{k} {v}" for k, v in summary["faces_by_provider"].items())
    print(f"regions: {summary['n_faces']} faces in {len(result.shards)} shards ({providers}); "
          f"validation passed; wrote {result.out_dir}")
    return 0
