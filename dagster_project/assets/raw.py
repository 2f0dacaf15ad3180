"""The raw image folder, versioned with `dvc add` whichever way a run starts (UI, schedule, sensor)."""

import dagster as dg
import yaml

from dagster_project.metadata import lineage_metadata
from dagster_project.resources import PathsResource
from paco_fr.config import to_dict
from paco_fr.pipeline import PipelineError, version_raw


@dg.asset(
    group_name="data",
    kinds={"folder", "dvc"},
    owners=["team:paco-fr"],
    pool="dvc",
    description="The raw image folder (params `paths.raw_dir`). Materialising it runs `dvc add` (its files "
                "go into the DVC cache; data/raw.dvc records its md5), writing the builtin folder first "
                "when `curation.source` is builtin and it is missing. Its data version is raw.dvc's md5: the "
                "same images give the same version, and nothing downstream runs.",
)
def raw_faces(context: dg.AssetExecutionContext, paths: PathsResource) -> dg.MaterializeResult:
    cfg = paths.config()
    raw = paths.root / cfg.paths.raw_dir
    builtin = cfg.curation.source == "builtin"
    if not raw.exists():
        if not builtin:
            raise dg.Failure(f"raw folder {raw} does not exist: point params `paths.raw_dir` at your images")
        from paco_fr.data.builtin import write_builtin_raw

        context.log.info(f"writing the builtin raw folder to {raw}")
        write_builtin_raw(cfg.curation.builtin, raw, progress=False)
    try:
        md5 = version_raw(paths.root, cfg.paths.raw_dir, params=to_dict(cfg.curation.builtin) if builtin else {})
    except PipelineError as exc:
        raise dg.Failure(str(exc)) from exc
    out = yaml.safe_load(raw.with_name(raw.name + ".dvc").read_text())["outs"][0]
    context.log.info(f"{cfg.paths.raw_dir}: {out.get('nfiles')} files, md5 {md5}")
    return dg.MaterializeResult(
        metadata={"files": int(out.get("nfiles", 0)), "bytes": int(out.get("size", 0)),
                  **lineage_metadata(paths.root, cfg.paths.raw_dir, md5)},
        data_version=dg.DataVersion(md5))
