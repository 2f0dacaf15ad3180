"""End-to-end curation of a folder full of bad, odd and good inputs: every verdict and reason, the
nothing-lost invariant, the output contract, determinism, and the detector for real."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from curation_testdata import ACCEPTED, all_paths, build_bad_input_folder, encode, photo
from paco_fr.config import apply_overrides
from paco_fr.data.config import CurationConfig
from paco_fr.data.curate import curate
from paco_fr.data.landmarks import MediaPipeLandmarks
from paco_fr.data.reasons import REASON_CODES
from paco_fr.data.shards import iter_samples, read_sample
from paco_fr.masks.regions_def import REGION_INDEX
from paco_fr.lineage import content_hash

# The columns docs/architecture.md promises.
CONTRACT_COLUMNS = [
    "face_id", "source_path", "source_sha256", "face_index", "shard", "split", "synthetic", "identity",
    "landmark_source", "det_score", "box_x0", "box_y0", "box_x1", "box_y1",
    *[f"kp{i}_{a}" for i in range(5) for a in ("x", "y")],
    "face_size_px", "sharpness", "brightness", "contrast", "phash", "width", "height",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("curate")
    expected = build_bad_input_folder(base / "src", base / "outside")
    cfg = CurationConfig()
    result = curate(cfg, base / "src", base / "out", progress=False)
    manifest = pd.read_parquet(result.manifest_path)
    rejected = pd.read_parquet(result.rejected_path)
    return {"base": base, "src": base / "src", "out": base / "out", "expected": expected, "result": result,
            "manifest": manifest, "rejected": rejected, "cfg": cfg}


def _verdicts(manifest: pd.DataFrame, rejected: pd.DataFrame) -> dict[str, str]:
    got = {path: ACCEPTED for path in manifest["source_path"]}
    got.update(dict(zip(rejected["source_path"], rejected["reason"])))
    return got


def test_every_input_gets_its_expected_verdict_and_reason(corpus):
    got = _verdicts(corpus["manifest"], corpus["rejected"])
    mismatches = {path: (want, got.get(path)) for path, want in corpus["expected"].items() if got.get(path) != want}
    assert not mismatches, mismatches
    assert set(got) == set(corpus["expected"])
    assert set(corpus["rejected"]["reason"]) <= REASON_CODES
    assert corpus["rejected"]["detail"].str.len().gt(0).all(), "every rejection says why"


def test_nothing_is_lost_and_nothing_is_counted_twice(corpus):
    manifest, rejected = corpus["manifest"], corpus["rejected"]
    accepted_inputs = set(manifest["source_path"])
    rejected_inputs = list(rejected["source_path"])
    assert len(rejected_inputs) == len(set(rejected_inputs)), "one row per rejected input"
    assert not accepted_inputs & set(rejected_inputs), "never both"
    sidecars = {p for paths in manifest["sidecar_paths"] for p in paths} | {
        p for paths in rejected["sidecar_paths"] for p in paths}
    assert sidecars, "the fixture has sidecars"
    assert not sidecars & (accepted_inputs | set(rejected_inputs))
    assert all_paths(corpus["src"]) == accepted_inputs | set(rejected_inputs) | sidecars, "never neither"


def test_manifest_follows_the_corpus_contract(corpus):
    manifest, cfg = corpus["manifest"], corpus["cfg"]
    missing = [c for c in CONTRACT_COLUMNS if c not in manifest.columns]
    assert not missing
    assert manifest["face_id"].is_unique
    assert manifest["face_id"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert manifest["phash"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert manifest["image_phash"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert set(manifest["split"]) <= {"train", "val", "test"}
    assert manifest["synthetic"].dtype == bool
    kp = manifest[[f"kp{i}_{a}" for i in range(5) for a in ("x", "y")]].to_numpy()
    assert ((kp >= 0) & (kp <= cfg.crop_size)).all()
    # left eye left of right eye, eyes above the mouth, in the aligned crop
    assert (manifest["kp0_x"] < manifest["kp1_x"]).all() and (manifest["kp3_x"] < manifest["kp4_x"]).all()
    assert (manifest[["kp0_y", "kp1_y"]].max(axis=1) < manifest[["kp3_y", "kp4_y"]].min(axis=1)).all()
    out = corpus["out"]
    for name in ("manifest.parquet", "rejected.parquet", "summary.json", "preview.png", "validation.json"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.partial")) and not (out / ".curate-work").exists()


def test_shards_hold_every_face_with_deterministic_members(corpus):
    manifest, out, cfg = corpus["manifest"], corpus["out"], corpus["cfg"]
    seen = {}
    for shard in sorted(set(manifest["shard"])):
        with tarfile.open(out / shard) as tar:
            for member in tar.getmembers():
                assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (0, 0, 0, "", "")
        for key, sample in iter_samples(out / shard):
            seen[key] = (shard, sample)
    assert set(seen) == set(manifest["face_id"])
    for row in manifest.itertuples():
        shard, sample = seen[row.face_id]
        assert shard == row.shard
        assert set(sample) == ({"png", "json", "labels.png"} if row.has_labels else {"png", "json"})
        crop = Image.open(io.BytesIO(sample["png"]))
        assert crop.size == (cfg.crop_size, cfg.crop_size) and crop.mode == "RGB"
        assert not crop.info, "no PNG metadata"
        meta = json.loads(sample["json"])
        np.testing.assert_allclose(meta["keypoints5"],
                                   [[getattr(row, f"kp{i}_x"), getattr(row, f"kp{i}_y")] for i in range(5)], atol=1e-3)
        assert meta["landmark_scheme"] == row.landmark_scheme


def test_real_photos_are_detected_by_mediapipe(corpus):
    manifest = corpus["manifest"].set_index("source_path")
    for path in ("astronaut.png", "camera.png", "grace_exif.jpg"):
        row = manifest.loc[path]
        assert row["landmark_source"] == "mediapipe" and row["landmark_scheme"] == "mediapipe478"
        assert not row["synthetic"] and 0.5 <= row["det_score"] <= 1.0
    row = manifest.loc["astronaut.png"]
    sample = read_sample(corpus["out"] / row["shard"], row["face_id"])
    assert len(json.loads(sample["json"])["landmarks"]) == 478


def test_exif_orientation_is_applied_before_detection(corpus):
    row = corpus["manifest"].set_index("source_path").loc["grace_exif.jpg"]
    original = photo("grace_hopper")
    assert (row["width"], row["height"]) == (original.shape[1], original.shape[0])
    with MediaPipeLandmarks() as detector:
        reference = detector.detect(original)[0].box
    np.testing.assert_allclose([row["box_x0"], row["box_y0"], row["box_x1"], row["box_y1"]], reference, atol=12)


def test_ground_truth_sidecars_replace_the_detector(corpus):
    manifest = corpus["manifest"].set_index("source_path")
    labelled = manifest.loc["annotated/with_labels.png"]
    assert labelled["landmark_source"] == "ground_truth" and labelled["landmark_scheme"] == "ibug68"
    assert labelled["synthetic"] and pd.notna(labelled["identity"]) and labelled["has_labels"]
    assert labelled["det_score"] == 1.0
    sample = read_sample(corpus["out"] / labelled["shard"], labelled["face_id"])
    labels = np.array(Image.open(io.BytesIO(sample["labels.png"])))
    meta = json.loads(sample["json"])
    assert labels.shape == (112, 112) and len(meta["landmarks68"]) == 68
    # the warped label map and the crop keypoints agree: eye centres on the eyes, nose tip on the nose
    (lx, ly), (rx, ry), (nx, ny) = meta["keypoints5"][:3]
    assert labels[round(ly), round(lx)] == REGION_INDEX["left_eye"]
    assert labels[round(ry), round(rx)] == REGION_INDEX["right_eye"]
    assert labels[round(ny), round(nx)] == REGION_INDEX["nose"]
    pts = manifest.loc["annotated/with_pts.png"]
    assert pts["landmark_source"] == "ibug68" and not pts["synthetic"] and pd.isna(pts["identity"])


def test_summary_counts_match_the_tables(corpus):
    summary = json.loads((corpus["out"] / "summary.json").read_text())
    rejected = corpus["rejected"]
    assert summary["rejected_by_reason"] == rejected["reason"].value_counts().to_dict()
    assert summary["faces"] == len(corpus["manifest"])
    assert summary["inputs"] == summary["accepted_inputs"] + summary["rejected_inputs"]
    assert summary["faces_real"] + summary["faces_synthetic"] == summary["faces"]
    assert summary["validation"]["success"] is True
    assert json.loads((corpus["out"] / "validation.json").read_text())["success"] is True
    preview = Image.open(corpus["out"] / "preview.png")
    assert preview.width >= 112 and preview.height > 112


def test_rerun_gives_identical_bytes_and_ids(corpus):
    again = corpus["base"] / "again"
    curate(corpus["cfg"], corpus["src"], again, progress=False)
    first, second = corpus["out"], again
    shards = sorted(p.relative_to(first) for p in (first / "shards").glob("*.tar"))
    assert shards == sorted(p.relative_to(second) for p in (second / "shards").glob("*.tar"))
    for shard in shards:
        assert (first / shard).read_bytes() == (second / shard).read_bytes(), shard
    pd.testing.assert_frame_equal(corpus["manifest"], pd.read_parquet(second / "manifest.parquet"))
    pd.testing.assert_frame_equal(corpus["rejected"], pd.read_parquet(second / "rejected.parquet"))
    # Every file, not only the shards: another output folder and another run give the same version.
    assert content_hash(first) == content_hash(second)


def test_group_photo_gives_one_row_per_face_or_only_the_largest(tmp_path):
    left = photo("astronaut")[:, 96:416]                      # a 512 x 320 portrait
    right = np.asarray(Image.fromarray(photo("grace_hopper")).resize((256, 300)))
    canvas = np.full((512, 640, 3), 200, np.uint8)
    canvas[:, :320] = left
    canvas[100:400, 352:608] = right
    src = tmp_path / "src"
    src.mkdir()
    (src / "group.png").write_bytes(encode(canvas))
    everyone = curate(CurationConfig(), src, tmp_path / "all", progress=False)
    rows = pd.read_parquet(everyone.manifest_path)
    assert len(rows) == 2 and set(rows["face_index"]) == {0, 1} and set(rows["n_faces"]) == {2}
    assert rows["face_id"].is_unique and rows["split"].nunique() == 1, "faces of one photo share a split"
    largest = curate(apply_overrides(CurationConfig(), ["detector.keep=largest"]), src, tmp_path / "largest",
                     progress=False)
    one = pd.read_parquet(largest.manifest_path)
    assert len(one) == 1
    areas = (rows["box_x1"] - rows["box_x0"]) * (rows["box_y1"] - rows["box_y0"])
    assert one["face_id"].iloc[0] == rows.loc[areas.idxmax(), "face_id"]


def test_detections_below_min_score_are_low_score(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "astronaut.png").write_bytes(encode(photo("astronaut")))
    (src / "grace.png").write_bytes(encode(photo("grace_hopper")))
    cfg = apply_overrides(CurationConfig(), ["detector.min_score=0.99"])
    from paco_fr.data.validation import CorpusValidationError

    with pytest.raises(CorpusValidationError):  # nothing accepted: an empty corpus fails validation
        curate(cfg, src, tmp_path / "out", progress=False)
    rejected = pd.read_parquet(tmp_path / "out" / "rejected.parquet")
    assert list(rejected["reason"]) == ["low_score", "low_score"]
    assert rejected["detail"].str.contains("min_score=0.99").all()


def test_output_inside_the_source_is_refused(tmp_path):
    (tmp_path / "a.png").write_bytes(encode(photo("astronaut")))
    with pytest.raises(ValueError, match="inside the source"):
        curate(CurationConfig(), tmp_path, tmp_path / "corpus", progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        curate(CurationConfig(), tmp_path / "missing", tmp_path.parent / "out-missing", progress=False)


def test_splits_are_fixed_size_whole_units_in_salted_hash_order():
    from paco_fr.data.config import SplitConfig
    from paco_fr.data.splits import assign_splits, unit_keys

    identity = pd.Series([f"person-{i % 700}" if i % 3 else None for i in range(12000)], dtype=object)
    sha = pd.Series([f"{i:064x}" for i in range(12000)])
    keys = unit_keys(identity, sha)
    splits = pd.Series(assign_splits(keys, SplitConfig()))
    assert (splits == "test").sum() == 0
    val = int((splits == "val").sum())
    assert 1000 <= val < 1000 + keys.value_counts().max(), "1,000 faces, the last unit kept whole"
    assert (pd.DataFrame({"k": keys, "s": splits}).groupby("k")["s"].nunique() == 1).all(), "no unit straddles"
    small = pd.Series(assign_splits(keys[:200], SplitConfig()))
    assert (small == "val").sum() == 20, "10% of a small corpus (one face per unit here)"
    configured = pd.Series(assign_splits(keys, SplitConfig(val_faces=300, test_faces=200, test=0.5)))
    assert 200 <= (configured == "test").sum() and 300 <= (configured == "val").sum()
    # the same units in another order get the same splits; another salt reshuffles
    shuffled = keys.sample(frac=1.0, random_state=0)
    again = pd.Series(assign_splits(shuffled, SplitConfig()), index=shuffled.index).sort_index()
    assert list(again) == list(splits)
    assert list(assign_splits(keys, SplitConfig(salt="other"))) != list(splits)


def test_every_reason_is_documented():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "curation.md").read_text()
    from paco_fr.data.reasons import describe_reasons

    for reason in describe_reasons():
        assert f"| `{reason['code']}` | {reason['stage']} | {reason['description']} |" in docs, reason["code"]


def test_binary_hash_index_finds_a_near_hash_and_ignores_far_ones():
    from paco_fr.data.dedup import BinaryHashIndex

    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, (3000, 32), dtype=np.uint8)
    index = BinaryHashIndex(16)
    assert index.nearest(codes[0]) is None
    for label, code in enumerate(codes):
        index.add(code, label)
    near = codes[1234].copy()
    near[:2] ^= 0b1111  # 8 bits flipped
    assert index.nearest(near) == (1234, 8)
    far = rng.integers(0, 256, 32, dtype=np.uint8)  # ~128 bits from every stored code
    assert index.nearest(far) is None
    assert BinaryHashIndex(-1).nearest(codes[0]) is None


def test_a_detector_error_rejects_that_input_only_and_in_order(tmp_path, monkeypatch):
    """MediaPipe runs ahead on its own thread inside a worker; an exception there must surface as
    that input's processing_error and nowhere else (the chunk processor, in this process)."""
    from paco_fr.data.process import ChunkProcessor
    from paco_fr.data.sources import discover

    src = tmp_path / "src"
    src.mkdir()
    astronaut, grace = photo("astronaut"), photo("grace_hopper")
    (src / "a_astronaut.png").write_bytes(encode(astronaut))
    (src / "b_grace.png").write_bytes(encode(grace))
    original = MediaPipeLandmarks.detect

    def flaky_detect(self, image_rgb):
        if image_rgb.shape == astronaut.shape:
            raise RuntimeError("detector exploded")
        return original(self, image_rgb)

    monkeypatch.setattr(MediaPipeLandmarks, "detect", flaky_detect)
    outcomes, events = [], []
    processor = ChunkProcessor(CurationConfig())
    try:
        processor.run(discover(src), outcomes.append, lambda kind, position, *rest: events.append((kind, position)))
    finally:
        processor.close()
    assert [o.row["reason"] for o in outcomes] == ["processing_error", None]
    assert "RuntimeError: detector exploded" in outcomes[0].row["detail"]
    assert len(outcomes[1].faces) == 1
    assert ("done", 0) in events and ("done", 1) in events
