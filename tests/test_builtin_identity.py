"""The builtin raw folder and the corpus curated from it are the same bytes on every machine: built
here with the committed params, their DVC md5s must equal the ones data/raw.dvc and dvc.lock record (so
a fresh clone reproduces the committed dvc.lock), whatever vector instructions this CPU has."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from paco_fr.config import load_config
from paco_fr.data.builtin import write_builtin_raw
from paco_fr.data.config import BuiltinSourceConfig
from paco_fr.lineage import content_hash
from paco_fr.pipeline import stage_outputs

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

# What numpy, OpenCV and OpenBLAS would run on a CPU without AVX-512 (each picks kernels at run time).
WITHOUT_AVX512 = {
    "NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR "
                                "AVX512_KNL AVX512_KNM",
    "OPENCV_CPU_DISABLE": "AVX512_SKX,AVX512_COMMON,AVX512_KNL,AVX512_KNM,AVX512_CNL,AVX512_CLX,AVX512_ICL",
    "OPENBLAS_CORETYPE": "Haswell",
}


@pytest.fixture(scope="module")
def builtin_raw(tmp_path_factory):
    cfg = load_config(ROOT / "params.yaml")
    assert cfg.curation.source == "builtin"
    return write_builtin_raw(cfg.curation.builtin, tmp_path_factory.mktemp("builtin") / "raw", progress=False)


def _curate(source: Path, out: Path, env: dict[str, str] | None = None) -> Path:
    subprocess.run([sys.executable, "-m", "paco_fr.cli", "curate", "--source", str(source), "--out", str(out),
                    "--params", str(ROOT / "params.yaml"), "--no-progress", "--no-progress-json",
                    "--lineage", str(out.parent / "lineage.jsonl")],
                   env={**os.environ, **(env or {})}, check=True, capture_output=True)
    return out


def test_the_builtin_raw_folder_has_the_recorded_md5(builtin_raw):
    recorded = yaml.safe_load((ROOT / "data" / "raw.dvc").read_text())["outs"][0]
    files = [p for p in builtin_raw.rglob("*") if p.is_file()]
    assert len(files) == recorded["nfiles"] and sum(p.stat().st_size for p in files) == recorded["size"]
    assert content_hash(builtin_raw) == recorded["md5"]


def test_the_default_corpus_has_the_md5_in_dvc_lock(builtin_raw, tmp_path):
    """What `paco-fr run` builds in a fresh clone: the curate stage's output as committed (the corpus
    of `paco-fr curate` equals that of the partitions and merge; tests/test_curation_workers.py)."""
    corpus = _curate(builtin_raw, tmp_path / "corpus")
    assert content_hash(corpus) == stage_outputs(root=ROOT)["data/corpus"]


def test_the_corpus_does_not_depend_on_the_cpus_vector_instructions(tmp_path):
    """Curated once as this CPU runs it and once as a CPU without AVX-512 would. The manifest's
    face_size_px differed in its last bits between the two before it was rounded. (Where this CPU has no
    AVX-512 both runs take the same kernels and the test proves nothing more than determinism.)"""
    raw = write_builtin_raw(BuiltinSourceConfig(photos=True, n_synthetic=120, n_identities=40), tmp_path / "raw",
                            progress=False)
    here = _curate(raw, tmp_path / "here" / "corpus")
    other = _curate(raw, tmp_path / "other" / "corpus", WITHOUT_AVX512)
    assert content_hash(here) == content_hash(other)
