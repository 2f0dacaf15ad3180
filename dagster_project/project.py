"""What the Dagster graph reads from the repository: its root, the committed configuration, the DVC
stage behind each asset partition, and each stage's code version.

The graph has DVC's dimensions: one `pretrained_encoder` partition per DVC `pretrain` stage (preset x
seed), one `eval_report` partition per `evaluate` stage (encoder x benchmark), one `baseline_report`
partition per `evaluate_baseline` stage (baseline x benchmark). They are read from the committed params.yaml, which no run
rewrites (overrides are DVC experiments), so the partitions are the same for every process.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from paco_fr.config import ProjectConfig, load_config
from paco_fr.pipeline import repo_root

# The library code each DVC stage depends on (dvc.yaml `deps`): a change there is a new code version.
STAGE_CODE = {
    "raw": (),
    "curate": ("paco_fr/data",),
    "regions": ("paco_fr/masks",),
    "pretrain": ("paco_fr/model", "paco_fr/train"),
    "evaluate": ("paco_fr/eval",),
    "compare": ("paco_fr/eval",),
}


def default_repo_root() -> str:
    return str(repo_root(os.environ.get("PACO_FR_REPO", Path(__file__).resolve().parents[1])))


@lru_cache(maxsize=4)
def _config(root: str) -> ProjectConfig:
    return load_config(Path(root) / "params.yaml")


def project_config(root: str | os.PathLike[str] | None = None) -> ProjectConfig:
    """params.yaml as committed in the repository (read once per process)."""
    return _config(str(root or default_repo_root()))


def encoder_id(preset: str, seed: int) -> str:
    """The name of one pre-trained encoder: its folder under data/encoders/ and its partition key."""
    return f"{preset}-s{seed}"


def split_encoder_id(name: str) -> tuple[str, int]:
    preset, _, seed = name.rpartition("-s")
    if not preset or not seed.isdigit():
        raise ValueError(f"{name!r} is not an encoder id of the form <preset>-s<seed>")
    return preset, int(seed)


def encoder_ids(cfg: ProjectConfig) -> list[str]:
    return [encoder_id(p, s) for p in cfg.pipeline.presets for s in cfg.pipeline.seeds]


def pretrain_stage(encoder: str) -> str:
    preset, seed = split_encoder_id(encoder)
    return f"pretrain@{preset}-{seed}"


def evaluate_stage(encoder: str, benchmark: str) -> str:
    preset, seed = split_encoder_id(encoder)
    return f"evaluate@{preset}-{seed}-{benchmark}"


def baseline_stage(baseline: str, benchmark: str) -> str:
    return f"evaluate_baseline@{baseline}-{benchmark}"


def code_version(stage: str) -> str | None:
    """md5 over the source files of a stage's code dependencies, as installed (the code that runs;
    bytecode caches left out), or None for a stage without code of its own."""
    import paco_fr

    folders = STAGE_CODE[stage]
    if not folders:
        return None
    base = Path(paco_fr.__file__).resolve().parents[1]
    digest = hashlib.md5()
    for folder in folders:
        for path in sorted((base / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                digest.update(path.relative_to(base).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def artifact_for(asset: str, partition: str | None, data_dir: str = "data") -> str:
    """The DVC output (or `dvc add`ed folder) behind one asset partition, as dvc.lock names it."""
    keys = dict(zip(_DIMENSIONS.get(asset, ()), partition.split("|"))) if partition and "|" in partition else {}
    paths = {
        "raw_faces": lambda: None,
        "face_corpus_part": lambda: f"{data_dir}/corpus_parts/part-{partition}",
        "face_corpus": lambda: f"{data_dir}/corpus",
        "face_regions": lambda: f"{data_dir}/regions",
        "pretrained_encoder": lambda: f"{data_dir}/encoders/{partition}",
        "eval_report": lambda: f"{data_dir}/reports/{keys['encoder']}/{keys['benchmark']}",
        "baseline_report": lambda: f"{data_dir}/reports/{keys['baseline']}/{keys['benchmark']}",
        "benchmark_summary": lambda: f"{data_dir}/summary",
    }
    return paths[asset]() or ""


# Dagster orders a multi-partition key's dimensions by name.
_DIMENSIONS = {"eval_report": ("benchmark", "encoder"), "baseline_report": ("baseline", "benchmark")}


def stage_for(asset: str, partition: str | None) -> str | None:
    """The DVC stage behind one asset partition (None for the raw folder, which is `dvc add`ed)."""
    keys = dict(zip(_DIMENSIONS.get(asset, ()), partition.split("|"))) if partition and "|" in partition else {}
    stages = {
        "raw_faces": lambda: None,
        "face_corpus_part": lambda: f"curate_part@{partition}",
        "face_corpus": lambda: "curate",
        "face_regions": lambda: "regions",
        "pretrained_encoder": lambda: pretrain_stage(partition),
        "eval_report": lambda: evaluate_stage(keys["encoder"], keys["benchmark"]),
        "baseline_report": lambda: baseline_stage(keys["baseline"], keys["benchmark"]),
        "benchmark_summary": lambda: "compare",
    }
    return stages[asset]()
