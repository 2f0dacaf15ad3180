"""The `regions` stage end to end on tiny corpora written here in the face_corpus format:
outputs and layout, determinism, bad input, the Great Expectations gate, and the CLI."""

from __future__ import annotations

import functools
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data as skdata

from paco_fr.data.align import align_face, transform_points, warp_image
from paco_fr.masks import REGIONS
from paco_fr.masks.config import CoverageRange, RegionsConfig
from paco_fr.masks.mediapipe_models import FaceMeshOnCrop
from paco_fr.masks.stage import RegionsInputError, build_regions
from paco_fr.masks.storage import iter_region_shard, load_region_maps
from paco_fr.masks.validation import RegionsValidationError, coverage_column, validate_regions
from paco_fr.lineage import content_hash, read_provenance

CROP = 112


# --- a tiny corpus in the docs/architecture.md layout ---------------------------------------------

def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


@functools.cache
def synthetic_samples(n: int, seed: int) -> tuple[dict, ...]:
    """Procedural faces as curation stores them: crop, ground-truth labels, 68 landmarks, keypoints5."""
    from paco_fr.data.synthetic import generate_faces

    out = []
    for i, face in enumerate(generate_faces(n, seed=seed, size=192)):
        aligned = align_face(face.image, face.keypoints5, CROP, zoom=0.8)
        out.append({
            "face_id": f"{seed:04x}{i:012x}",
            "members": {
                "png": _png(aligned.crop),
                "labels.png": _png(warp_image(face.label_map, aligned.matrix, CROP, nearest=True), "L"),
                "json": json.dumps({
                    "keypoints5": aligned.keypoints5.tolist(),
                    "landmarks": transform_points(face.landmarks68, aligned.matrix).tolist(),
                    "landmark_scheme": "ibug68"}).encode(),
            },
            "synthetic": True,
        })
    return tuple(out)


@functools.cache
def photo_sample(store_landmarks: bool) -> dict:
    """The scikit-image astronaut, aligned, with or without its stored MediaPipe landmarks."""
    image = skdata.astronaut()
    with FaceMeshOnCrop() as mesh:
        points = mesh.landmarks(image)
    aligned = align_face(image, points[[468, 473, 1, 61, 291]], CROP, zoom=0.8)
    meta = {"keypoints5": aligned.keypoints5.tolist(),
            "landmarks": transform_points(points, aligned.matrix).tolist() if store_landmarks else None,
            "landmark_scheme": "mediapipe478" if store_landmarks else None}
    return {"face_id": f"a57700000000000{int(store_landmarks)}",
            "members": {"png": _png(aligned.crop), "json": json.dumps(meta).encode()}, "synthetic": False}


def write_corpus(root: Path, shards: list[list[dict]], *, extra_manifest: list[str] = ()) -> Path:
    (root / "shards").mkdir(parents=True, exist_ok=True)
    rows = []
    for index, samples in enumerate(shards):
        with tarfile.open(root / "shards" / f"shard-{index:06d}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
            for sample in sorted(samples, key=lambda s: s["face_id"]):
                for ext in sorted(sample["members"]):
                    data = sample["members"][ext]
                    info = tarfile.TarInfo(f"{sample['face_id']}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                rows.append({"face_id": sample["face_id"], "shard": f"shards/shard-{index:06d}.tar",
                             "synthetic": sample["synthetic"]})
    rows += [{"face_id": f, "shard": "shards/shard-000000.tar", "synthetic": True} for f in extra_manifest]
    pd.DataFrame(rows).to_parquet(root / "manifest.parquet", index=False)
    return root


@pytest.fixture
def corpus(tmp_path) -> Path:
    return write_corpus(tmp_path / "corpus", [
        [*synthetic_samples(4, 1), photo_sample(True)],
        [*synthetic_samples(3, 2), photo_sample(False)],
    ])


# --- the stage -----------------------------------------------------------------------------------

def test_build_regions_writes_the_documented_layout(corpus, tmp_path):
    out = tmp_path / "regions"
    result = build_regions(RegionsConfig(), corpus, out, progress=False)
    assert sorted(p.name for p in out.iterdir()) == [
        "preview.png", "regions-000000.tar", "regions-000001.tar", "regions.parquet", "regions_summary.json",
        "validation.json"]
    table = pd.read_parquet(out / "regions.parquet")
    assert list(table.columns[:6]) == ["face_id", "shard", "corpus_shard", "synthetic", "provider", "source"]
    assert [c for c in table.columns if c.startswith("coverage_")] == [f"coverage_{n}" for n in REGIONS]
    assert len(table) == 9 and table["face_id"].is_unique
    assert np.allclose(table[[f"coverage_{n}" for n in REGIONS]].sum(axis=1), 1.0)
    by_id = table.set_index("face_id")
    stored = by_id.loc[photo_sample(True)["face_id"], ["provider", "source"]].tolist()
    assert stored == ["mediapipe", "stored_landmarks"]
    assert by_id.loc[photo_sample(False)["face_id"], ["provider", "source"]].tolist() == ["mediapipe", "mesh_on_crop"]
    assert (table["provider"] == "ground_truth").sum() == 7
    assert by_id.loc[photo_sample(False)["face_id"], "shard"] == "regions-000001.tar"

    maps = load_region_maps(out)
    assert set(maps) == set(table["face_id"])
    for sample in synthetic_samples(4, 1):
        truth = np.asarray(Image.open(io.BytesIO(sample["members"]["labels.png"])))
        assert np.array_equal(maps[sample["face_id"]], truth)
    photo = maps[photo_sample(False)["face_id"]]
    assert photo.shape == (CROP, CROP) and photo.dtype == np.uint8
    assert set(np.unique(photo)) == set(range(len(REGIONS)))

    summary = json.loads((out / "regions_summary.json").read_text())
    assert summary["n_faces"] == 9 and summary["faces_by_provider"] == {"ground_truth": 7, "mediapipe": 2}
    assert set(summary["classes"]) == set(REGIONS)
    skin = summary["classes"]["skin"]
    assert skin["fraction_empty"] == 0.0 and 0 < skin["min"] <= skin["mean"] <= skin["max"] < 1
    assert summary["classes"]["skin"]["mean"] == pytest.approx(table["coverage_skin"].mean())
    assert json.loads((out / "validation.json").read_text())["success"] is True
    assert result.validation["success"] and result.summary == summary
    with Image.open(out / "preview.png") as preview:
        assert preview.size[0] > 4 * CROP and preview.mode == "RGB"


def test_region_shards_are_reproducible_byte_for_byte(corpus, tmp_path):
    build_regions(RegionsConfig(), corpus, tmp_path / "a", progress=False)
    build_regions(RegionsConfig(), corpus, tmp_path / "b", progress=False)
    for name in ("regions-000000.tar", "regions-000001.tar", "preview.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    with tarfile.open(tmp_path / "a" / "regions-000000.tar") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.mode) for m in members} == {(0, 0, 0, "", 0o644)}
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / "regions.parquet"),
                                  pd.read_parquet(tmp_path / "b" / "regions.parquet"))
    assert content_hash(tmp_path / "a") == content_hash(tmp_path / "b"), "the same corpus gives the same version"


def test_forcing_mediapipe_maps_every_face_from_landmarks(corpus, tmp_path):
    result = build_regions(RegionsConfig(provider="mediapipe"), corpus, tmp_path / "mp", progress=False)
    table = pd.read_parquet(result.table_path)
    assert set(table["provider"]) <= {"mediapipe", "keypoints5"}
    assert (table["provider"] == "mediapipe").sum() >= 8  # the mesh finds the procedural faces


def test_bad_faces_are_all_listed_and_nothing_is_written(tmp_path):
    good = list(synthetic_samples(3, 3))
    corrupt = {**good[0], "face_id": "badpng0000000001", "members": {**good[0]["members"], "png": b"not a png"}}
    no_json = {**good[1], "face_id": "nojson0000000002",
               "members": {k: v for k, v in good[1]["members"].items() if k != "json"}}
    bad_labels = {**good[2], "face_id": "badlab0000000003",
                  "members": {**good[2]["members"], "labels.png": _png(np.full((CROP, CROP), 200, np.uint8), "L")}}
    corpus = write_corpus(tmp_path / "corpus", [[*good, corrupt, no_json, bad_labels]],
                          extra_manifest=["missing000000004"])
    out = tmp_path / "regions"
    out.mkdir()
    (out / "keep.txt").write_text("previous output")
    with pytest.raises(RegionsInputError) as info:
        build_regions(RegionsConfig(), corpus, out, progress=False)
    message = str(info.value)
    assert "badpng0000000001.png: not a decodable PNG" in message
    assert "no nojson0000000002.json" in message
    assert "badlab0000000003.labels.png: labels outside" in message
    assert "missing000000004: in manifest.parquet but in no shard" in message
    assert len(info.value.problems) == 4
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]  # the previous output is untouched


@pytest.mark.parametrize("breakage, match", [
    ("no_manifest", "no manifest.parquet"),
    ("no_shards", "no finished shards"),
    ("not_in_manifest", "in a shard but not in manifest.parquet"),
    ("broken_shard", "unreadable shard"),
])
def test_a_folder_that_is_not_a_corpus_is_refused_with_a_reason(tmp_path, breakage, match):
    corpus = write_corpus(tmp_path / "corpus", [list(synthetic_samples(2, 4))])
    if breakage == "no_manifest":
        (corpus / "manifest.parquet").unlink()
    elif breakage == "no_shards":
        (corpus / "shards" / "shard-000000.tar").unlink()
    elif breakage == "not_in_manifest":
        pd.read_parquet(corpus / "manifest.parquet").iloc[:1].to_parquet(corpus / "manifest.parquet")
    else:
        shard = corpus / "shards" / "shard-000000.tar"
        shard.write_bytes(b"\x00garbage" + shard.read_bytes()[:700])
    with pytest.raises(RegionsInputError, match=match):
        build_regions(RegionsConfig(), corpus, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_bad_region_maps_fail_the_quality_gate_with_the_face_listed(tmp_path):
    samples = list(synthetic_samples(4, 5))
    no_skin = np.zeros((CROP, CROP), np.uint8)  # a ground-truth map that is all background
    broken = {**samples[0], "face_id": "noskin0000000009",
              "members": {**samples[0]["members"], "labels.png": _png(no_skin, "L")}}
    corpus = write_corpus(tmp_path / "corpus", [[*samples[1:], broken]])
    out = tmp_path / "regions"
    with pytest.raises(RegionsValidationError, match="noskin0000000009") as info:
        build_regions(RegionsConfig(), corpus, out, progress=False)
    report = json.loads((out / "validation.json").read_text())
    assert report["success"] is False
    failing = {(f["expectation"], f["column"]): f for f in report["failures"]}
    skin = failing[("expect_column_values_to_be_between", "coverage_skin")]
    assert skin["failing_face_ids"] == ["noskin0000000009"] and skin["n_failing"] == 1
    assert info.value.report.success is False
    assert info.value.report.evaluated == len(report["expectations"])
    assert any("coverage_skin: 1 faces: noskin0000000009" in str(f) for f in info.value.report.failures)
    assert (out / "regions.parquet").exists() and (out / "preview.png").exists()  # kept for inspection


# --- the suite on tables -------------------------------------------------------------------------

def _table(n: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    means = {"background": 0.36, "head_other": 0.3, "skin": 0.28, "left_brow": 0.004, "right_brow": 0.004,
             "left_eye": 0.003, "right_eye": 0.003, "nose": 0.015, "mouth": 0.01}
    cov = np.array([[means[n] for n in REGIONS]] * n) * rng.uniform(0.8, 1.2, (n, len(REGIONS)))
    cov /= cov.sum(1, keepdims=True)
    table = pd.DataFrame(cov, columns=[coverage_column(n) for n in REGIONS])
    table.insert(0, "face_id", [f"f{i:03d}" for i in range(n)])
    table.insert(1, "provider", "mediapipe")
    return table


def test_a_plausible_table_passes():
    report = validate_regions(_table(), RegionsConfig())
    assert report.success, report.describe_failures()
    assert report.n_faces == 20 and len(report.expectations) >= 5 + 2 * len(REGIONS)


def test_each_broken_property_fails_its_expectation():
    table = _table()
    table.loc[3, "face_id"] = table.loc[4, "face_id"]           # duplicate id
    table.loc[5, "provider"] = "guesswork"                      # unknown provider
    table.loc[6, "coverage_mouth"] += 0.2                       # coverages no longer sum to 1
    report = validate_regions(table, RegionsConfig())
    failed = {(e.expectation, e.column): e for e in report.failures}
    assert failed[("expect_column_values_to_be_unique", "face_id")].failing_face_ids == ["f004"]
    assert failed[("expect_column_values_to_be_in_set", "provider")].failing_face_ids == ["f005"]
    assert failed[("expect_column_values_to_be_between", "coverage_total")].failing_face_ids == ["f006"]
    assert not report.success


def test_class_means_outside_the_configured_range_fail():
    cfg = RegionsConfig(coverage={"nose": CoverageRange(0.05, 0.1)})
    report = validate_regions(_table(), cfg)
    failed = {(e.expectation, e.column): e for e in report.failures}
    assert list(failed) == [("expect_column_mean_to_be_between", "coverage_nose")]
    assert failed[("expect_column_mean_to_be_between", "coverage_nose")].observed == pytest.approx(
        _table()["coverage_nose"].mean())
    # head_other is not checked when it is not segmented
    no_head = _table()
    no_head["coverage_background"] += no_head["coverage_head_other"]
    no_head["coverage_head_other"] = 0.0
    assert not validate_regions(no_head, RegionsConfig()).success
    assert validate_regions(no_head, RegionsConfig(segment_head=False)).success


def test_validation_needs_the_table_columns():
    with pytest.raises(ValueError, match="lacks columns"):
        validate_regions(_table().drop(columns=["coverage_nose"]), RegionsConfig())
    with pytest.raises(ValueError, match="empty"):
        validate_regions(_table().iloc[:0], RegionsConfig())


# --- CLI ---------------------------------------------------------------------------------------

def test_cli_builds_regions_and_records_provenance(corpus, tmp_path, capsys):
    from paco_fr.cli import main

    out = tmp_path / "cli_out"
    code = main(["regions", "--corpus", str(corpus), "--out", str(out), "--no-progress",
                 "--set", "regions.preview_faces=4"])
    assert code == 0, capsys.readouterr().err
    assert "regions: 9 faces in 2 shards" in capsys.readouterr().out
    provenance = read_provenance(out)
    assert provenance["stage"] == "regions" and provenance["key"] == content_hash(out)
    assert provenance["params"]["preview_faces"] == 4
    assert provenance["overrides"] == ["regions.preview_faces=4"]
    assert provenance["inputs"]["corpus"]["md5"] == content_hash(corpus)
    assert len(list(iter_region_shard(out / "regions-000000.tar"))) == 5


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys):
    from paco_fr.cli import main

    (tmp_path / "empty").mkdir()
    assert main(["regions", "--corpus", str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--no-progress"]) == 1
    assert "no manifest.parquet" in capsys.readouterr().err
    assert main(["regions", "--corpus", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--set", "regions.provider=magic"]) == 2
