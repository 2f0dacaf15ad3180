"""Standard dataset adapters, each on a tiny fixture written here in the dataset's official layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from paco_fr.eval.adapters import celeba, ibug300w, lfw, parsing, rafdb, wflw
from paco_fr.eval.build import BuildContext
from paco_fr.eval.data import TEST, TRAIN, VAL, BenchmarkDataError
from paco_fr.masks.regions_def import REGION_INDEX as R

from benchmark_fixtures import (faces, write_300w, write_celeba, write_celebamask, write_lapa, write_lfw,
                                write_pts, write_rafdb, write_wflw)

CROP = 32


def ctx(root: Path, **kw) -> BuildContext:
    base = dict(crop_size=CROP, zoom=0.8, n_train=100, n_val=20, n_test=100, seed=0, data_root=str(root),
                landmark_jitter=(0.0, 0.0, 0.0))
    base.update(kw)
    return BuildContext(**base)


def test_celeba_reads_attributes_partition_and_aligns(tmp_path):
    files, values = write_celeba(tmp_path)
    data = celeba.build(ctx(tmp_path))
    assert data.task == "attributes" and data.images.shape == (6, CROP, CROP, 3)
    np.testing.assert_array_equal(data.targets["attributes"], values)
    np.testing.assert_array_equal(data.split, [TRAIN, TRAIN, TRAIN, TRAIN, VAL, TEST])
    assert data.meta["attribute_names"] == ["Smiling", "Male", "Eyeglasses"]
    assert data.meta["alignment"].startswith("fixed crop")
    capped = celeba.build(ctx(tmp_path, n_train=2))
    assert capped.counts() == {"train": 2, "val": 1, "test": 1}
    write_celeba(tmp_path, landmarks=True)
    assert celeba.build(ctx(tmp_path)).meta["alignment"] == "5-point landmarks"


def test_celeba_errors_name_the_file(tmp_path):
    write_celeba(tmp_path)
    attr = tmp_path / "list_attr_celeba.txt"
    lines = attr.read_text().splitlines()
    attr.write_text("\n".join(lines[:3] + [lines[3] + " 1"] + lines[4:]) + "\n")
    with pytest.raises(BenchmarkDataError, match=r"list_attr_celeba.txt:4: expected a file name and 3 values"):
        celeba.build(ctx(tmp_path))
    write_celeba(tmp_path)
    (tmp_path / "list_eval_partition.txt").unlink()
    with pytest.raises(BenchmarkDataError, match="list_eval_partition.txt: not found"):
        celeba.build(ctx(tmp_path))
    with pytest.raises(BenchmarkDataError, match="--data-root"):
        celeba.build(ctx(tmp_path, data_root=None))


# --- LFW ----------------------------------------------------------------------------------------

def test_lfw_ten_folds_every_pair_a_test_pair(tmp_path):
    write_lfw(tmp_path)
    data = lfw.build(ctx(tmp_path))
    assert data.task == "verification"
    assert len(data.images) == 30 and len(data.targets["pairs"]) == 20
    assert (data.split == TEST).all() and (data.targets["pair_split"] == TEST).all()
    np.testing.assert_array_equal(data.targets["pair_fold"], np.repeat(np.arange(10), 2))
    same = data.targets["pair_same"]
    np.testing.assert_array_equal(same, np.tile([True, False], 10))
    ident, pairs = data.targets["identity"], data.targets["pairs"]
    np.testing.assert_array_equal(ident[pairs[:, 0]] == ident[pairs[:, 1]], same)
    # every image carries its pairs' fold (folds are identity-disjoint)
    np.testing.assert_array_equal(data.targets["image_fold"][pairs[:, 0]], data.targets["pair_fold"])
    assert data.meta["folds"] == 10 and data.meta["full_test_split"]
    # subsampled: at most (n_train + n_val + n_test) / 10 pairs per fold, half matched; no longer the whole set
    assert data.meta["setting"] == "unrestricted, labeled outside data"
    capped = lfw.build(ctx(tmp_path, n_train=5, n_val=5, n_test=10))  # 2 pairs per fold: already the whole set
    assert capped.meta["full_test_split"] and len(capped.targets["pairs"]) == 20

def test_lfw_malformed_pairs_crossing_folds_and_missing_images(tmp_path):
    write_lfw(tmp_path)
    text = (tmp_path / "pairs.txt").read_text().replace("P3\t1\tQ3\t1", "P3\t1\tQ2\t1")
    (tmp_path / "pairs.txt").write_text(text)
    with pytest.raises(BenchmarkDataError, match=r"Q2 image 1 is in folds 2 and 3"):
        lfw.build(ctx(tmp_path))
    write_lfw(tmp_path)
    (tmp_path / "pairs.txt").write_text("300\n")
    with pytest.raises(BenchmarkDataError, match=r"pairs.txt:1: expected '<folds> <pairs per fold>'"):
        lfw.build(ctx(tmp_path))
    write_lfw(tmp_path)
    text = (tmp_path / "pairs.txt").read_text().replace("P3\t1\tQ3\t1", "P3\t1\tQ3")
    (tmp_path / "pairs.txt").write_text(text)
    with pytest.raises(BenchmarkDataError, match=r"pairs.txt:9: expected a mismatched pair"):
        lfw.build(ctx(tmp_path))
    write_lfw(tmp_path)
    (tmp_path / "lfw" / "Q9" / "Q9_0001.jpg").unlink()
    with pytest.raises(BenchmarkDataError, match=r"Q9_0001.jpg: image file not found"):
        lfw.build(ctx(tmp_path))


# --- RAF-DB -------------------------------------------------------------------------------------

def test_rafdb_labels_splits_and_errors(tmp_path):
    labels = write_rafdb(tmp_path)
    data = rafdb.build(ctx(tmp_path, n_train=6, n_val=2))
    np.testing.assert_array_equal(data.targets["label"], np.array(labels) - 1)
    assert data.counts() == {"train": 6, "val": 2, "test": 4}
    assert data.meta["class_names"][0] == "surprise" and data.images.shape[1:] == (CROP, CROP, 3)
    path = tmp_path / "EmoLabel" / "list_patition_label.txt"
    path.write_text(path.read_text().replace("test_0002.jpg 3", "test_0002.jpg 9"))
    with pytest.raises(BenchmarkDataError, match=r"list_patition_label.txt:10: expected '<file>.jpg <1..7>'"):
        rafdb.build(ctx(tmp_path))


# --- 300W ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("build", [ibug300w.build, ibug300w.build_aligned])
def test_300w_splits_subsets_and_landmark_geometry(tmp_path, build):
    write_300w(tmp_path)
    data = build(ctx(tmp_path, crop_size=64, n_val=1, n_train=1))
    # private 01_Indoor skipped; 2 train (1 carved to val), common + challenging test
    assert len(data.images) == 4 and data.counts() == {"train": 1, "val": 1, "test": 2}
    flags = data.targets["subset_flags"][data.split == TEST]
    assert sorted(map(tuple, flags.tolist())) == [(False, True), (True, False)]
    assert data.meta["norm_indices"] == [36, 45] and data.targets["landmarks"].shape == (4, 68, 2)
    assert data.meta["full_test_split"]
    for img, lm in zip(data.images, data.targets["landmarks"]):
        x, y = np.round(lm[30]).astype(int)
        r, g, b = img[y, x].astype(int)
        assert (r + b) / 2 - g > 80, f"the nose-tip landmark must land on the nose-tip mark, got {(r, g, b)}"


def test_300w_box_crop_keeps_roll_and_frames_the_landmarks(tmp_path):
    fs = write_300w(tmp_path)
    data = ibug300w.build(ctx(tmp_path, crop_size=64))
    assert data.meta["alignment"].startswith("box crop") and "landmark_jitter" not in data.meta
    for lm in data.targets["landmarks"]:
        # the 1.25x box: the landmarks' bounding box is centred and its longer side spans 64 / 1.25 px
        lo, hi = lm.min(0), lm.max(0)
        assert (hi - lo).max() == pytest.approx(64 / 1.25, abs=0.05)
        np.testing.assert_allclose((lo + hi) / 2, [31.5, 31.5], atol=0.05)
    # no rotation: the eye-corner line keeps the angle it has in the original image
    angles = sorted(np.arctan2(*(f.landmarks68[45] - f.landmarks68[36])[::-1]) for f in fs[:4])  # not the private one
    got = sorted(np.arctan2(*(lm[45] - lm[36])[::-1]) for lm in data.targets["landmarks"])
    np.testing.assert_allclose(got, angles, atol=1e-4)
    aligned = ibug300w.build_aligned(ctx(tmp_path, crop_size=64))
    assert aligned.meta["alignment"] == "5-point + jitter" and aligned.meta["landmark_jitter"] == [0.0, 0.0, 0.0]

def test_300w_jitter_moves_points_and_bad_pts_are_reported(tmp_path):
    write_300w(tmp_path)
    still = ibug300w.build_aligned(ctx(tmp_path, crop_size=64))
    moved = ibug300w.build_aligned(ctx(tmp_path, crop_size=64, landmark_jitter=(10.0, 0.1, 0.05)))
    eyes_still = still.targets["landmarks"][:, 36]
    eyes_moved = moved.targets["landmarks"][:, 36]
    assert np.abs(eyes_moved - eyes_still).max() > 1.0
    pts = tmp_path / "ibug" / "d.pts"
    lines = pts.read_text().splitlines()
    pts.write_text("\n".join(lines[:3] + lines[4:]) + "\n")  # 67 points
    with pytest.raises(BenchmarkDataError, match=r"d.pts: expected 68 point lines, found 67"):
        ibug300w.build(ctx(tmp_path))
    (tmp_path / "ibug" / "d.jpg").unlink()
    write_pts(pts, np.zeros((68, 2)) + np.arange(68)[:, None])
    with pytest.raises(BenchmarkDataError, match=r"d.pts: no image beside it"):
        ibug300w.build(ctx(tmp_path))


# --- WFLW ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("build", [wflw.build, wflw.build_aligned])
def test_wflw_reads_lists_and_reports_bad_lines(tmp_path, build):
    write_wflw(tmp_path)
    data = build(ctx(tmp_path, n_train=2, n_val=1))
    assert data.targets["landmarks"].shape == (4, 98, 2) and data.counts() == {"train": 2, "val": 1, "test": 1}
    assert data.meta["norm_indices"] == [60, 72]
    np.testing.assert_array_equal(data.targets["subset_flags"][0], [True, False, False, False, True, False])
    anno = tmp_path / "WFLW_annotations" / "list_98pt_rect_attr_train_test" / "list_98pt_rect_attr_test.txt"
    anno.write_text(anno.read_text().replace(" 1 0 0 0 1 0 ", " 1 0 0 0 1 "))
    with pytest.raises(BenchmarkDataError, match=r"list_98pt_rect_attr_test.txt:1: expected 207 fields"):
        build(ctx(tmp_path))
    anno.unlink()
    with pytest.raises(BenchmarkDataError, match=r"list_98pt_rect_attr_test.txt: not found"):
        build(ctx(tmp_path))


# --- LaPa ---------------------------------------------------------------------------------------

def test_lapa_native_keeps_its_classes_and_the_original_test_labels(tmp_path):
    from paco_fr.data.align import transform_points
    from paco_fr.eval.data import original_label

    write_lapa(tmp_path)
    data = parsing.build_lapa(ctx(tmp_path, crop_size=64))
    assert data.meta["class_names"] == list(parsing.LAPA_CLASSES) and len(parsing.LAPA_CLASSES) == 11
    maps = data.targets["label_map"]
    assert {0, 1, 2, 3, 4, 5, 7, 9, 10} <= set(np.unique(maps).tolist())
    for m in maps:  # the dataset's own naming is kept: its class 2 was drawn on the image right
        assert np.nonzero(m == 2)[1].mean() > np.nonzero(m == 3)[1].mean()
    (te,) = np.flatnonzero(data.split == TEST)
    original = np.asarray(Image.open(tmp_path / "test" / "labels" / "img_2.png"))
    np.testing.assert_array_equal(original_label(data, te), original)
    assert data.targets["orig_label_shape"][data.split != TEST].sum() == 0  # train/val are scored in the crop only
    # the stored matrix is the crop's: the original eye landmark lands where the crop's eye class is
    lm = np.loadtxt(tmp_path / "test" / "landmarks" / "img_2.txt", skiprows=1)
    x, y = np.round(transform_points(lm[74:75], data.targets["orig_to_crop"][te])[0]).astype(int)
    assert maps[te][y, x] in (4, 5)
    assert data.meta["full_test_split"]


def test_lapa_regions_maps_classes_and_resolves_left_right(tmp_path):
    write_lapa(tmp_path)
    data = parsing.build_lapa_regions(ctx(tmp_path, crop_size=64))
    assert data.counts() == {"train": 1, "val": 1, "test": 1}
    maps = data.targets["label_map"]
    present = set(np.unique(maps).tolist())
    assert {R["background"], R["skin"], R["head_other"], R["mouth"], R["left_brow"], R["right_brow"]} <= present
    for m in maps:
        lx = np.nonzero(m == R["left_brow"])[1].mean()
        rx = np.nonzero(m == R["right_brow"])[1].mean()
        assert lx < rx
        assert np.nonzero(m == R["left_eye"])[1].mean() < np.nonzero(m == R["right_eye"])[1].mean()


def test_lapa_errors(tmp_path):
    write_lapa(tmp_path)
    Image.fromarray(np.zeros((10, 10), np.uint8), mode="L").save(tmp_path / "val" / "labels" / "img_1.png")
    with pytest.raises(BenchmarkDataError, match=r"img_1.png: label size"):
        parsing.build_lapa(ctx(tmp_path))
    write_lapa_root = tmp_path / "again"
    write_lapa(write_lapa_root)
    (write_lapa_root / "test" / "landmarks" / "img_2.txt").write_text("106\n1 2\n")
    with pytest.raises(BenchmarkDataError, match=r"img_2.txt: expected '106' then 106"):
        parsing.build_lapa(ctx(write_lapa_root))


# --- CelebAMask-HQ ------------------------------------------------------------------------------

def test_celebamask_hq_native_paints_its_19_classes_in_farl_order(tmp_path):
    from paco_fr.eval.data import original_label

    write_celebamask(tmp_path)
    data = parsing.build_celebamask_hq(ctx(tmp_path, crop_size=32))
    names = data.meta["class_names"]
    assert len(names) == 19 and names[0] == "background"
    np.testing.assert_array_equal(data.split, [VAL, TRAIN, TEST])
    (te,) = np.flatnonzero(data.split == TEST)
    m = original_label(data, te)  # the 64 x 64 mask grid of the fixture
    assert m.shape == (64, 64)
    assert m[15, 30] == names.index("hair")          # hair painted after skin
    assert m[40, 30] == names.index("skin")
    assert m[29, 30] == names.index("eye_g")         # glasses are a class here, painted late
    assert m[47, 30] == names.index("u_lip") and m[62, 30] == names.index("cloth") and m[5, 5] == names.index("hair")
    assert data.targets["label_map"].shape == (3, 32, 32)
    # the crop is the masks resized: a crop pixel and the mask pixels it covers carry the same class
    assert data.targets["label_map"][te][20, 15] == m[41, 31]


def test_celebamask_hq_regions_paints_maps_and_splits(tmp_path):
    write_celebamask(tmp_path)
    data = parsing.build_celebamask_hq_regions(ctx(tmp_path, crop_size=64))
    np.testing.assert_array_equal(data.split, [VAL, TRAIN, TEST])  # via the CelebA partition
    m = data.targets["label_map"][0]
    assert m[15, 30] == R["head_other"]          # hair over skin
    assert m[40, 30] == R["skin"]
    assert m[32, 20] == R["left_eye"] and m[32, 44] == R["right_eye"]  # resolved by position
    assert m[29, 30] == R["skin"]                # under the glasses
    assert m[47, 30] == R["mouth"]
    assert m[62, 30] == R["background"]          # cloth


def test_celebamask_hq_missing_files(tmp_path):
    write_celebamask(tmp_path)
    (tmp_path / "list_eval_partition.txt").write_text("099095.jpg 0\n")
    with pytest.raises(BenchmarkDataError, match=r"no partition for 119614.jpg"):
        parsing.build_celebamask_hq(ctx(tmp_path))
    write_celebamask(tmp_path)
    for f in (tmp_path / "CelebAMask-HQ-mask-anno" / "0").glob("00002_*.png"):
        f.unlink()
    with pytest.raises(BenchmarkDataError, match=r"no part masks 00002_<part>.png"):
        parsing.build_celebamask_hq(ctx(tmp_path))
    (tmp_path / "CelebA-HQ-to-CelebA-mapping.txt").unlink()
    with pytest.raises(BenchmarkDataError, match=r"CelebA-HQ-to-CelebA-mapping.txt: not found"):
        parsing.build_celebamask_hq(ctx(tmp_path))
