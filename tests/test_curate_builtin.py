"""The builtin raw corpus (deterministic, idempotent, safe) and the `paco-fr raw` / `curate` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from curation_testdata import encode
from paco_fr.data.builtin import BUILTIN_PHOTOS, SOURCES_FILE, write_builtin_raw
from paco_fr.data.config import BuiltinSourceConfig
from paco_fr.lineage import content_hash, read_provenance

SMALL = BuiltinSourceConfig(photos=True, n_synthetic=6, n_identities=3, render_size=128, seed=1)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_builtin_raw_is_deterministic_and_complete(tmp_path):
    first = write_builtin_raw(SMALL, tmp_path / "a", progress=False)
    second = write_builtin_raw(SMALL, tmp_path / "b", progress=False)
    files = tree_bytes(first)
    assert files == tree_bytes(second)
    for spec in BUILTIN_PHOTOS:
        assert f"photos/{spec.file_name}" in files
    for i in range(6):
        for suffix in (".png", ".gt.json", ".labels.png"):
            assert f"synthetic/face-{i:06d}{suffix}" in files
    record = json.loads(files["synthetic/face-000000.gt.json"])
    assert record["synthetic"] is True and len(record["keypoints5"]) == 5 and len(record["landmarks68"]) == 68
    assert {"identity", "expression", "attributes"} <= set(record)
    sources = json.loads(files[SOURCES_FILE])
    assert all(p["licence"] and p["sha256"] for p in sources["photos"])
    assert "SYNTHETIC" in files["README.txt"].decode()
    assert not list(tmp_path.glob(".*")), "no temporary folder left behind"


def test_builtin_raw_is_idempotent_and_regenerates_on_new_settings(tmp_path):
    out = write_builtin_raw(SMALL, tmp_path / "raw", progress=False)
    marker = (out / "synthetic" / "face-000000.png").stat().st_mtime_ns
    write_builtin_raw(SMALL, out, progress=False)
    assert (out / "synthetic" / "face-000000.png").stat().st_mtime_ns == marker, "left untouched"
    bigger = BuiltinSourceConfig(photos=False, n_synthetic=8, n_identities=3, render_size=128, seed=1)
    write_builtin_raw(bigger, out, progress=False)
    assert (out / "synthetic" / "face-000007.png").exists() and not (out / "photos").exists()


def test_builtin_raw_refuses_to_overwrite_your_images(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="refusing"):
        write_builtin_raw(SMALL, mine, progress=False)
    assert (mine / "holiday.jpg").read_bytes() == b"precious"


def _params(tmp_path: Path) -> str:
    params = tmp_path / "params.yaml"
    params.write_text("curation:\n  builtin:\n    n_synthetic: 6\n    n_identities: 3\n    render_size: 128\n")
    return str(params)


def test_cli_raw_and_curate_builtin(tmp_path, capsys):
    from paco_fr.cli import main

    raw, corpus = tmp_path / "raw", tmp_path / "corpus"
    assert main(["raw", "--out", str(raw), "--params", _params(tmp_path), "--no-progress"]) == 0
    assert (raw / SOURCES_FILE).exists() and read_provenance(raw)["stage"] == "raw"
    code = main(["curate", "--source", "builtin", "--raw-dir", str(raw), "--out", str(corpus),
                 "--params", _params(tmp_path), "--no-progress", "--set", "curation.shard_size=4"])
    assert code == 0
    err = capsys.readouterr().err
    # README.txt and SOURCES.json are files, not images: reported, not hidden
    assert "curate: accepted:" in err and "curate: rejected: 2 unsupported_format" in err
    manifest = pd.read_parquet(corpus / "manifest.parquet")
    assert manifest["synthetic"].sum() == 6 and (~manifest["synthetic"]).sum() >= 2
    assert (manifest["landmark_source"] == "ground_truth").sum() == 6
    rejected = pd.read_parquet(corpus / "rejected.parquet")
    assert set(rejected["source_path"]) == {"README.txt", SOURCES_FILE}
    provenance = read_provenance(corpus)
    assert provenance["stage"] == "curate" and provenance["inputs"]["raw"]["md5"] == content_hash(raw)
    assert "curation.shard_size=4" in provenance["overrides"]
    assert len(list((corpus / "shards").glob("shard-*.tar"))) >= 2
    # an up-to-date raw folder is left byte for byte as it was
    before = tree_bytes(raw)
    assert main(["raw", "--out", str(raw), "--params", _params(tmp_path), "--no-progress"]) == 0
    assert tree_bytes(raw) == before


def test_cli_curate_exits_3_when_validation_fails(tmp_path, capsys):
    from paco_fr.cli import main

    src = tmp_path / "src"
    src.mkdir()
    (src / "flat.png").write_bytes(encode(__import__("numpy").full((64, 64, 3), 90, "uint8")))
    code = main(["curate", "--source", str(src), "--out", str(tmp_path / "out"), "--params", _params(tmp_path),
                 "--no-progress"])
    assert code == 3
    assert "failed validation" in capsys.readouterr().err
    assert (tmp_path / "out" / "validation.json").exists()
