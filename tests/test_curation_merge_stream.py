"""The merge streams: how many rows it reads or writes at a time changes no byte of the corpus (the
row-group size only the manifest's layout), and the suite run chunk by chunk reports what it reports
on the whole manifest, failures included."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from paco_fr.config import apply_overrides
from paco_fr.data.builtin import write_builtin_raw
from paco_fr.data.config import BuiltinSourceConfig, CurationConfig
from paco_fr.data.merge import merge_partitions
from paco_fr.data.partition import curate_partition
from paco_fr.data.validation import CorpusValidationError, validate_manifest, validate_manifest_file
from test_corpus_validation import CFG, good_manifest

# Small shards, so that shard boundaries fall inside and across the tiny row groups below.
SETTINGS = ["shard_size=8", "chunk_inputs=8", "partitions=2"]


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """Two curated partitions of procedural faces (ground truth: no detector), with an exact copy,
    a file that is no image and an orphan sidecar, so that rejected.parquet has rows to stream."""
    root = tmp_path_factory.mktemp("stream")
    raw = root / "raw"
    write_builtin_raw(BuiltinSourceConfig(photos=False, n_synthetic=36, n_identities=9), raw, progress=False)
    faces = sorted((raw / "synthetic").glob("*.png"))
    (raw / "synthetic" / "copy-of-first.png").write_bytes(faces[0].read_bytes())
    (raw / "notes.txt").write_text("not an image")
    (raw / "lonely.gt.json").write_text("{}")
    cfg = apply_overrides(CurationConfig(), SETTINGS)
    dirs = [root / f"part-{i}" for i in range(cfg.n_partitions)]
    for i, d in enumerate(dirs):
        curate_partition(cfg, raw, i, d, workers=1, progress=False, progress_json=False)
    return cfg, raw, dirs


def test_batch_size_changes_no_byte_of_the_corpus(parts, tmp_path):
    cfg, raw, dirs = parts
    default = merge_partitions(cfg, raw, dirs, tmp_path / "default", progress=False)
    assert default.summary["faces"] > 16 and default.summary["rejected_inputs"] >= 3
    assert pq.read_metadata(default.manifest_path).num_row_groups == 1
    merge_partitions(cfg, raw, dirs, tmp_path / "tiny", progress=False, batch_rows=12)
    assert tree(tmp_path / "tiny") == tree(tmp_path / "default")


def test_row_groups_change_only_the_manifest_layout(parts, tmp_path):
    cfg, raw, dirs = parts
    merge_partitions(cfg, raw, dirs, tmp_path / "default", progress=False)
    small = merge_partitions(cfg, raw, dirs, tmp_path / "small", progress=False, batch_rows=13, row_group_rows=5)
    faces = small.summary["faces"]
    assert pq.read_metadata(small.manifest_path).num_row_groups == -(-faces // 5)
    assert pq.read_metadata(small.rejected_path).num_row_groups == -(-small.summary["rejected_inputs"] // 5)
    pd.testing.assert_frame_equal(pd.read_parquet(small.manifest_path),
                                  pd.read_parquet(tmp_path / "default" / "manifest.parquet"))
    pd.testing.assert_frame_equal(pd.read_parquet(small.rejected_path),
                                  pd.read_parquet(tmp_path / "default" / "rejected.parquet"))
    same = {k: v for k, v in tree(tmp_path / "small").items() if not k.endswith(".parquet")}
    assert same == {k: v for k, v in tree(tmp_path / "default").items() if not k.endswith(".parquet")}
    assert len([k for k in same if k.startswith("shards/")]) == -(-faces // 8)


def _broken(path: Path) -> pd.DataFrame:
    """A manifest whose faults lie in different chunks of 40 rows: a face id repeated 200 rows
    later, a (source_sha256, face_index) pair repeated, a split leak, a null brightness."""
    df = good_manifest(n_faces=160, n_identities=80)
    df.loc[150, "face_id"] = df.loc[3, "face_id"]
    df.loc[120, ["source_sha256", "face_index"]] = df.loc[10, ["source_sha256", "face_index"]].to_list()
    leak = df.index[df["identity"] == df.loc[0, "identity"]]
    df.loc[leak[-1], "split"] = "val" if df.loc[leak[0], "split"] != "val" else "train"
    df.loc[90, "brightness"] = None
    df.to_parquet(path, index=False)
    return pd.read_parquet(path)


def test_a_bad_chunk_fails_the_suite_with_the_same_report(tmp_path):
    whole = validate_manifest(_broken(tmp_path / "manifest.parquet"), CFG)
    chunked = validate_manifest_file(tmp_path / "manifest.parquet", CFG, batch_rows=40)
    assert not whole.success
    assert chunked.to_dict() == whole.to_dict()
    assert str(CorpusValidationError(chunked, "x")) == str(CorpusValidationError(whole, "x"))
    failed = {o.expectation + "(" + str(o.kwargs.get("column", o.kwargs.get("column_list"))) + ")"
              for o in chunked.failures}
    assert failed >= {"expect_column_values_to_be_unique(face_id)",
                      "expect_compound_columns_to_be_unique(['source_sha256', 'face_index'])",
                      "expect_column_values_to_be_between(_splits_per_unit)",
                      "expect_column_values_to_be_in_set(_null_required)"}


def test_a_sound_manifest_passes_in_chunks(tmp_path):
    df = good_manifest(n_faces=120, n_identities=60)
    df.to_parquet(tmp_path / "manifest.parquet", index=False)
    chunked = validate_manifest_file(tmp_path / "manifest.parquet", CFG, batch_rows=50)
    assert chunked.success, [o.describe() for o in chunked.failures]
    assert chunked.to_dict() == validate_manifest(pd.read_parquet(tmp_path / "manifest.parquet"), CFG).to_dict()
    assert np.isclose(chunked.n_rows, 120)
