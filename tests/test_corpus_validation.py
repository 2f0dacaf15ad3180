"""The Great Expectations suite: a sound manifest passes; each kind of breakage fails it by name;
`curate` fails loudly (and still writes validation.json) when its corpus does not pass."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from curation_testdata import encode
from paco_fr.data.config import CurationConfig
from paco_fr.data.curate import curate
from paco_fr.data.splits import assign_splits, unit_keys
from paco_fr.data.validation import CorpusValidationError, validate_manifest

CFG = CurationConfig()


def good_manifest(n_faces: int = 400, n_identities: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n_faces):
        sha = hashlib.sha256(f"image {i}".encode()).hexdigest()
        identity = str(i % n_identities)
        kp = rng.uniform(10, CFG.crop_size - 10, size=(5, 2))
        rows.append({
            "face_id": hashlib.sha256(f"{sha}:0".encode()).hexdigest()[:16],
            "source_path": f"synthetic/face-{i:06d}.png", "source_sha256": sha, "pixel_sha256": sha[::-1],
            "face_index": 0, "n_faces": 1, "shard": "shards/shard-000000.tar",
            "synthetic": True, "identity": identity, "expression": "neutral", "attributes": "{}",
            "landmark_source": "ground_truth", "landmark_scheme": "ibug68", "det_score": 1.0,
            "box_x0": 10.0, "box_y0": 10.0, "box_x1": 100.0, "box_y1": 120.0,
            **{f"kp{k}_{a}": float(kp[k, j]) for k in range(5) for j, a in enumerate("xy")},
            "face_size_px": 140.0, "sharpness": 300.0, "brightness": 120.0, "contrast": 40.0,
            "phash": rng.bytes(32).hex(), "image_phash": rng.bytes(32).hex(), "width": 192, "height": 192, "crop_size": CFG.crop_size,
            "has_labels": True, "sidecar_paths": [f"synthetic/face-{i:06d}.gt.json"],
        })
    df = pd.DataFrame(rows)
    df["split"] = assign_splits(unit_keys(df["identity"], df["source_sha256"]), CFG.split)
    return df


def _leak_identity(df: pd.DataFrame, identity: str) -> pd.DataFrame:
    """Move one face of `identity` to another split than its other faces."""
    df = df.copy()
    rows = df.index[df["identity"] == identity]
    df.loc[rows[0], "split"] = "val" if df.loc[rows[1], "split"] != "val" else "train"
    return df


def failed_expectations(report) -> set[tuple[str, str | None]]:
    return {(o.expectation, o.kwargs.get("column")) for o in report.failures}


def test_a_sound_manifest_passes():
    report = validate_manifest(good_manifest(), CFG)
    assert report.success, [o.describe() for o in report.failures]
    kinds = {o.expectation for o in report.outcomes}
    assert {"expect_column_values_to_be_unique", "expect_column_values_to_be_in_set",
            "expect_column_values_to_be_between", "expect_column_sum_to_be_between"} <= kinds
    as_json = json.loads(json.dumps(report.to_dict()))
    assert as_json["success"] is True and as_json["n_rows"] == 400


@pytest.mark.parametrize("breakage, expectation, column", [
    (lambda df: df.assign(face_id=df["face_id"].where(df.index != 1, df["face_id"][0])),
     "expect_column_values_to_be_unique", "face_id"),
    (lambda df: df.assign(kp3_x=df["kp3_x"].where(df.index != 5, CFG.crop_size + 4.0)),
     "expect_column_values_to_be_between", "_kp_max"),
    (lambda df: df.assign(kp0_y=df["kp0_y"].where(df.index != 5, -1.0)),
     "expect_column_values_to_be_between", "_kp_min"),
    (lambda df: df.assign(source_sha256=df["source_sha256"].where(df.index != 7, None)),
     "expect_column_values_to_be_in_set", "_null_required"),
    (lambda df: df.assign(split=df["split"].where(df.index != 3, "holdout")),
     "expect_column_values_to_be_in_set", "split"),
    (lambda df: df.assign(det_score=df["det_score"].where(df.index != 2, 1.7)),
     "expect_column_values_to_be_between", "det_score"),
    (lambda df: df.assign(synthetic=df["synthetic"].map({True: "yes"})),
     "expect_column_values_to_be_of_type", "synthetic"),
    (lambda df: df.assign(split=np.where(df.index < 300, "val", df["split"])),
     "expect_column_sum_to_be_between", "_is_val"),
    (lambda df: df.assign(split=df["split"].replace("val", "train")),
     "expect_column_sum_to_be_between", "_is_val"),
    (lambda df: df.assign(split=np.where(df.index == 0, "test", df["split"])),
     "expect_column_sum_to_be_between", "_is_test"),
    (lambda df: _leak_identity(df, "3"), "expect_column_values_to_be_between", "_splits_per_unit"),
    (lambda df: df.drop(columns=["phash"]), "expect_column_values_to_match_regex", "phash"),
    (lambda df: df.iloc[:0], "expect_table_row_count_to_be_between", None),
])
def test_each_breakage_fails_the_suite_by_name(breakage, expectation, column):
    report = validate_manifest(breakage(good_manifest()), CFG)
    assert not report.success
    assert (expectation, column) in failed_expectations(report), [o.describe() for o in report.failures]


def test_the_error_lists_every_failing_expectation():
    df = good_manifest()
    df.loc[0, "face_id"] = df.loc[1, "face_id"]
    df.loc[2, "split"] = "holdout"
    df.loc[4, "brightness"] = None
    report = validate_manifest(df, CFG)
    error = CorpusValidationError(report, where="data/corpus")
    message = str(error)
    assert "failed validation" in message and "data/corpus" in message
    assert "expect_column_values_to_be_unique(face_id)" in message
    assert "expect_column_values_to_be_in_set(split)" in message and "holdout" in message
    assert "expect_column_values_to_be_in_set(_null_required)" in message and "brightness" in message


def test_split_sizes_follow_the_configured_targets():
    df = good_manifest(n_faces=20, n_identities=5)  # 10% of 20 faces: 2, by identities of 4 faces
    assert (df["split"] == "val").sum() == 4
    assert validate_manifest(df, CFG).success


def test_curate_fails_loudly_but_keeps_its_evidence(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "black.png").write_bytes(encode(np.zeros((64, 64, 3), np.uint8)))
    (src / "notes.txt").write_text("hello")
    out = tmp_path / "out"
    with pytest.raises(CorpusValidationError, match="expect_table_row_count_to_be_between"):
        curate(CFG, src, out, progress=False)
    validation = json.loads((out / "validation.json").read_text())
    assert validation["success"] is False and validation["failed"]
    rejected = pd.read_parquet(out / "rejected.parquet")
    assert sorted(rejected["reason"]) == ["no_face", "unsupported_format"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["validation"]["success"] is False
