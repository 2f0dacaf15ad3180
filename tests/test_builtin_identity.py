"""The builtin raw folder is the same bytes on every machine: built here with the committed params, its
DVC md5 must equal the one data/raw.dvc records (so a fresh clone reproduces the committed dvc.lock)."""

from pathlib import Path

import pytest
import yaml

from paco_fr.config import load_config
from paco_fr.data.builtin import write_builtin_raw
from paco_fr.lineage import content_hash

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_the_builtin_raw_folder_has_the_recorded_md5(tmp_path):
    cfg = load_config(ROOT / "params.yaml")
    assert cfg.curation.source == "builtin"
    recorded = yaml.safe_load((ROOT / "data" / "raw.dvc").read_text())["outs"][0]
    raw = write_builtin_raw(cfg.curation.builtin, tmp_path / "raw", progress=False)
    files = [p for p in raw.rglob("*") if p.is_file()]
    assert len(files) == recorded["nfiles"] and sum(p.stat().st_size for p in files) == recorded["size"]
    assert content_hash(raw) == recorded["md5"]
