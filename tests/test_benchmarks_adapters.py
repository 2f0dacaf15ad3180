"""Standard dataset adapters, each on a tiny fixture written here in the dataset's official layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from paco_fr.data.synthetic import generate_faces
from paco_fr.eval.adapters import celeba, ibug300w, lfw, parsing, rafdb, wflw
from paco_fr.eval.build import BuildContext
from paco_fr.eval.data import TEST, TRAIN, VAL, BenchmarkDataError
from paco_fr.masks.regions_def import REGION_INDEX as R

CROP = 32


def ctx(root: Path, **kw) -> BuildContext:
    base = dict(crop_size=CROP, zoom=0.8, n_train=100, n_val=20, n_test=100, seed=0, data_root=str(root),
                landmark_jitter=(0.0, 0.0, 0.0))
    base.update(kw)
    return BuildContext(**base)


def save_rgb(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path)


def noise(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, size=(h, w, 3), dtype=np.uint8)


def faces(n: int, seed: int = 0):
    return list(generate_faces(n, seed=seed, size=96, identity_offset=5_000_000))


# --- CelebA -------------------------------------------------------------------------------------

def write_celeba(root: Path, n: int = 6, landmarks: bool = False) -> tuple[list[str], np.ndarray]:
    names = ["Smiling", "Male", "Eyeglasses"]
    files = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    values = np.random.default_rng(0).integers(0, 2, size=(n, 3)).astype(bool)
    lines = [str(n), " ".join(names)]
    lines += [f"{f} " + " ".join("1" if v else "-1" for v in row) for f, row in zip(files, values)]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    parts = [0, 0, 0, 0, 1, 2][:n]
    (root / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for f, p in zip(files, parts)))
    for i, f in enumerate(files):
        save_rgb(root / "img_align_celeba" / f, noise(218, 178, i))
    if landmarks:
        rows = [str(n), "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y "
                        "rightmouth_x rightmouth_y"]
        rows += [f"{f} 69 111 108 111 89 134 72 152 106 152" for f in files]
        (root / "list_landmarks_align_celeba.txt").write_text("\n".join(rows) + "\n")
    return files, values


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

def write_lfw(root: Path) -> None:
    lines = ["10 1"]
    for fold in range(10):
        lines.append(f"P{fold}\t1\t2")                     # matched pair of person P<fold>
        lines.append(f"P{fold}\t1\tQ{fold}\t1")            # mismatched pair
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    for fold in range(10):
        for name, idx in ((f"P{fold}", 1), (f"P{fold}", 2), (f"Q{fold}", 1)):
            save_rgb(root / "lfw" / name / f"{name}_{idx:04d}.jpg", noise(250, 250, fold * 10 + idx))


def test_lfw_pairs_folds_and_identities(tmp_path):
    write_lfw(tmp_path)
    data = lfw.build(ctx(tmp_path))
    assert data.task == "verification"
    assert len(data.images) == 30 and len(data.targets["pairs"]) == 20
    ps, same = data.targets["pair_split"], data.targets["pair_same"]
    assert (ps == TRAIN).sum() == 14 and (ps == VAL).sum() == 2 and (ps == TEST).sum() == 4
    np.testing.assert_array_equal(same, np.tile([True, False], 10))
    ident = data.targets["identity"]
    pairs = data.targets["pairs"]
    np.testing.assert_array_equal(ident[pairs[:, 0]] == ident[pairs[:, 1]], same)
    # every image of a pair carries that pair's split (folds are identity-disjoint)
    np.testing.assert_array_equal(data.split[pairs[:, 0]], ps)


def test_lfw_malformed_pairs_and_missing_images(tmp_path):
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

def write_rafdb(root: Path) -> list[int]:
    labels = [1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5]
    names = [f"train_{i:05d}.jpg" for i in range(1, 9)] + [f"test_{i:04d}.jpg" for i in range(1, 5)]
    (root / "EmoLabel").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("".join(f"{n} {l}\n" for n, l in zip(names, labels)))
    for i, n in enumerate(names):
        save_rgb(root / "Image" / "aligned" / n.replace(".jpg", "_aligned.jpg"), noise(100, 100, i))
    return labels


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

def write_pts(path: Path, pts: np.ndarray) -> None:
    body = "\n".join(f"{x + 1:.3f} {y + 1:.3f}" for x, y in pts)  # the files count from 1
    path.write_text(f"version: 1\nn_points:  {len(pts)}\n{{\n{body}\n}}\n")


def write_300w(root: Path) -> list:
    fs = faces(5)
    places = ["helen/trainset/a.jpg", "lfpw/trainset/b.png", "lfpw/testset/c.png", "ibug/d.jpg",
              "01_Indoor/indoor_001.png"]
    for face, rel in zip(fs, places):
        img = face.image.copy()
        x, y = np.round(face.landmarks68[30]).astype(int)
        img[y - 2:y + 3, x - 2:x + 3] = (255, 0, 255)  # a magenta mark on the nose tip
        save_rgb(root / rel, img)
        write_pts((root / rel).with_suffix(".pts"), face.landmarks68)
    return fs


def test_300w_splits_subsets_and_landmark_geometry(tmp_path):
    write_300w(tmp_path)
    data = ibug300w.build(ctx(tmp_path, crop_size=64, n_val=1, n_train=1))
    # private 01_Indoor skipped; 2 train (1 carved to val), common + challenging test
    assert len(data.images) == 4 and data.counts() == {"train": 1, "val": 1, "test": 2}
    flags = data.targets["subset_flags"][data.split == TEST]
    assert sorted(map(tuple, flags.tolist())) == [(False, True), (True, False)]
    assert data.meta["norm_indices"] == [36, 45] and data.targets["landmarks"].shape == (4, 68, 2)
    for img, lm in zip(data.images, data.targets["landmarks"]):
        x, y = np.round(lm[30]).astype(int)
        r, g, b = img[y, x].astype(int)
        assert (r + b) / 2 - g > 80, f"the nose-tip landmark must land on the nose-tip mark, got {(r, g, b)}"


def test_300w_jitter_moves_points_and_bad_pts_are_reported(tmp_path):
    write_300w(tmp_path)
    still = ibug300w.build(ctx(tmp_path, crop_size=64))
    moved = ibug300w.build(ctx(tmp_path, crop_size=64, landmark_jitter=(10.0, 0.1, 0.05)))
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

def wflw_points(face) -> np.ndarray:
    rng = np.random.default_rng(int(face.identity))
    pts = face.landmarks68.mean(0) + rng.normal(size=(98, 2)) * 10
    kp = face.keypoints5
    pts[96], pts[97], pts[54], pts[76], pts[82] = kp[0], kp[1], kp[2], kp[3], kp[4]
    pts[60], pts[72] = face.landmarks68[36], face.landmarks68[45]
    return pts


def write_wflw(root: Path) -> None:
    anno = root / "WFLW_annotations" / "list_98pt_rect_attr_train_test"
    anno.mkdir(parents=True)
    fs = faces(4, seed=1)
    for name, chunk in (("train", fs[:3]), ("test", fs[3:])):
        lines = []
        for k, face in enumerate(chunk):
            rel = f"1--Handshaking/{name}_{k}.jpg"
            save_rgb(root / "WFLW_images" / rel, face.image)
            coords = " ".join(f"{v:.3f}" for v in wflw_points(face).ravel())
            lines.append(f"{coords} 10 10 90 90 1 0 0 0 1 0 {rel}")
        (anno / f"list_98pt_rect_attr_{name}.txt").write_text("\n".join(lines) + "\n")


def test_wflw_reads_lists_and_reports_bad_lines(tmp_path):
    write_wflw(tmp_path)
    data = wflw.build(ctx(tmp_path, n_train=2, n_val=1))
    assert data.targets["landmarks"].shape == (4, 98, 2) and data.counts() == {"train": 2, "val": 1, "test": 1}
    assert data.meta["norm_indices"] == [60, 72]
    np.testing.assert_array_equal(data.targets["subset_flags"][0], [True, False, False, False, True, False])
    anno = tmp_path / "WFLW_annotations" / "list_98pt_rect_attr_train_test" / "list_98pt_rect_attr_test.txt"
    anno.write_text(anno.read_text().replace(" 1 0 0 0 1 0 ", " 1 0 0 0 1 "))
    with pytest.raises(BenchmarkDataError, match=r"list_98pt_rect_attr_test.txt:1: expected 207 fields"):
        wflw.build(ctx(tmp_path))
    anno.unlink()
    with pytest.raises(BenchmarkDataError, match=r"list_98pt_rect_attr_test.txt: not found"):
        wflw.build(ctx(tmp_path))


# --- LaPa ---------------------------------------------------------------------------------------

def write_lapa(root: Path) -> None:
    for k, folder in enumerate(("train", "val", "test")):
        face = faces(1, seed=10 + k)[0]
        name = f"img_{k}"
        save_rgb(root / folder / "images" / f"{name}.jpg", face.image)
        size = face.image.shape[0]
        label = np.full((size, size), 1, np.uint8)   # skin
        label[:10] = 10                              # hair
        label[:, :6] = 0                             # background
        x0, x1 = int(face.keypoints5[0, 0]), int(face.keypoints5[1, 0])
        y = int(face.keypoints5[0, 1])
        # LaPa class 2 ("left eyebrow") drawn on the image-right side, 3 on the left: our
        # convention (left = smaller x) must win.
        label[y - 8:y - 5, x1 - 4:x1 + 4] = 2
        label[y - 8:y - 5, x0 - 4:x0 + 4] = 3
        label[y - 1:y + 2, x0 - 3:x0 + 3] = 4
        label[y - 1:y + 2, x1 - 3:x1 + 3] = 5
        mx, my = face.keypoints5[3:].mean(0).astype(int)
        label[my - 2:my, mx - 5:mx + 5] = 7
        label[my:my + 2, mx - 5:mx + 5] = 9
        (root / folder / "labels").mkdir(parents=True)
        Image.fromarray(label, mode="L").save(root / folder / "labels" / f"{name}.png")
        lm = np.tile(face.keypoints5.mean(0), (106, 1))
        lm[74], lm[83], lm[54], lm[84], lm[90] = face.keypoints5
        (root / folder / "landmarks").mkdir(parents=True)
        (root / folder / "landmarks" / f"{name}.txt").write_text(
            "106\n" + "\n".join(f"{x:.2f} {y_:.2f}" for x, y_ in lm) + "\n")


def test_lapa_maps_classes_and_resolves_left_right(tmp_path):
    write_lapa(tmp_path)
    data = parsing.build_lapa(ctx(tmp_path, crop_size=64))
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

def write_celebamask(root: Path) -> None:
    (root / "CelebA-HQ-to-CelebA-mapping.txt").write_text(
        "idx orig_idx orig_file\n0 119613 119614.jpg\n1 99094 099095.jpg\n2 200121 200122.jpg\n")
    (root / "list_eval_partition.txt").write_text("099095.jpg 0\n119614.jpg 1\n200122.jpg 2\n")
    for hq in range(3):
        save_rgb(root / "CelebA-HQ-img" / f"{hq}.jpg", noise(128, 128, hq))
        folder = root / "CelebAMask-HQ-mask-anno" / "0"
        folder.mkdir(parents=True, exist_ok=True)

        def mask(part: str, box: tuple[int, int, int, int]) -> None:
            m = np.zeros((64, 64), np.uint8)
            y0, y1, x0, x1 = box
            m[y0:y1, x0:x1] = 255
            Image.fromarray(m, mode="L").save(folder / f"{hq:05d}_{part}.png")

        mask("skin", (10, 60, 10, 54))
        mask("hair", (0, 20, 0, 64))          # painted after skin: wins where they overlap
        mask("l_eye", (30, 34, 40, 48))       # dataset's "l_" on the image right
        mask("r_eye", (30, 34, 16, 24))
        mask("eye_g", (28, 36, 14, 50))       # glasses: not a class of ours, not painted
        mask("u_lip", (46, 48, 26, 38))
        mask("cloth", (60, 64, 0, 64))


def test_celebamask_hq_paints_maps_and_splits(tmp_path):
    write_celebamask(tmp_path)
    data = parsing.build_celebamask_hq(ctx(tmp_path, crop_size=64))
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
