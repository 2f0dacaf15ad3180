"""Tiny datasets written in each benchmark's official layout (made here, never downloaded), shared by
the adapter tests and the end-to-end protocol tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from paco_fr.data.synthetic import generate_faces


def save_rgb(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path)


def noise(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, size=(h, w, 3), dtype=np.uint8)


def faces(n: int, seed: int = 0):
    return list(generate_faces(n, seed=seed, size=96, identity_offset=5_000_000))


# --- CelebA -------------------------------------------------------------------------------------

def write_celeba(root: Path, n: int = 6, landmarks: bool = False,
                 parts: tuple[int, ...] = (0, 0, 0, 0, 1, 2)) -> tuple[list[str], np.ndarray]:
    names = ["Smiling", "Male", "Eyeglasses"]
    files = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    values = np.random.default_rng(0).integers(0, 2, size=(n, 3)).astype(bool)
    lines = [str(n), " ".join(names)]
    lines += [f"{f} " + " ".join("1" if v else "-1" for v in row) for f, row in zip(files, values)]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for f, p in zip(files, parts[:n])))
    for i, f in enumerate(files):
        save_rgb(root / "img_align_celeba" / f, noise(218, 178, i))
    if landmarks:
        rows = [str(n), "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y "
                        "rightmouth_x rightmouth_y"]
        rows += [f"{f} 69 111 108 111 89 134 72 152 106 152" for f in files]
        (root / "list_landmarks_align_celeba.txt").write_text("\n".join(rows) + "\n")
    return files, values


# --- LFW ----------------------------------------------------------------------------------------

def write_lfw(root: Path) -> None:
    """10 folds of one matched pair (P<fold> 1 2) and one mismatched pair (P<fold> 1, Q<fold> 1):
    identity-disjoint folds, as in the official View 2 file."""
    lines = ["10 1"]
    for fold in range(10):
        lines.append(f"P{fold}\t1\t2")
        lines.append(f"P{fold}\t1\tQ{fold}\t1")
    (root / "pairs.txt").write_text("\n".join(lines) + "\n")
    for fold in range(10):
        for name, idx in ((f"P{fold}", 1), (f"P{fold}", 2), (f"Q{fold}", 1)):
            save_rgb(root / "lfw" / name / f"{name}_{idx:04d}.jpg", noise(250, 250, fold * 10 + idx))


# --- RAF-DB -------------------------------------------------------------------------------------

def write_rafdb(root: Path) -> list[int]:
    labels = [1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5]
    names = [f"train_{i:05d}.jpg" for i in range(1, 9)] + [f"test_{i:04d}.jpg" for i in range(1, 5)]
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("".join(f"{n} {l}\n" for n, l in zip(names, labels)))
    for i, n in enumerate(names):
        save_rgb(root / "Image" / "aligned" / n.replace(".jpg", "_aligned.jpg"), noise(100, 100, i))
    return labels


# --- 300W ---------------------------------------------------------------------------------------

def write_pts(path: Path, pts: np.ndarray) -> None:
    body = "\n".join(f"{x + 1:.3f} {y + 1:.3f}" for x, y in pts)  # the files count from 1
    path.write_text(f"version: 1\nn_points:  {len(pts)}\n{{\n{body}\n}}\n")


def write_300w(root: Path, extra_train: int = 0) -> list:
    """helen/trainset, lfpw/trainset (+ `extra_train` afw faces), lfpw/testset (common), ibug
    (challenging) and a private-set face that must be skipped; a magenta mark on each nose tip."""
    places = ["helen/trainset/a.jpg", "lfpw/trainset/b.png", "lfpw/testset/c.png", "ibug/d.jpg",
              "01_Indoor/indoor_001.png"] + [f"afw/{k}.jpg" for k in range(extra_train)]
    fs = faces(len(places))
    for face, rel in zip(fs, places):
        img = face.image.copy()
        x, y = np.round(face.landmarks68[30]).astype(int)
        img[y - 2:y + 3, x - 2:x + 3] = (255, 0, 255)
        save_rgb(root / rel, img)
        write_pts((root / rel).with_suffix(".pts"), face.landmarks68)
    return fs


# --- WFLW ---------------------------------------------------------------------------------------

def wflw_points(face) -> np.ndarray:
    rng = np.random.default_rng(int(face.identity))
    pts = face.landmarks68.mean(0) + rng.normal(size=(98, 2)) * 10
    kp = face.keypoints5
    pts[96], pts[97], pts[54], pts[76], pts[82] = kp[0], kp[1], kp[2], kp[3], kp[4]
    pts[60], pts[72] = face.landmarks68[36], face.landmarks68[45]
    return pts


def write_wflw(root: Path, n_train: int = 3, n_test: int = 1) -> None:
    anno = root / "WFLW_annotations" / "list_98pt_rect_attr_train_test"
    anno.mkdir(parents=True, exist_ok=True)
    fs = faces(n_train + n_test, seed=1)
    for name, chunk in (("train", fs[:n_train]), ("test", fs[n_train:])):
        lines = []
        for k, face in enumerate(chunk):
            rel = f"1--Handshaking/{name}_{k}.jpg"
            save_rgb(root / "WFLW_images" / rel, face.image)
            coords = " ".join(f"{v:.3f}" for v in wflw_points(face).ravel())
            flags = "1 0 0 0 1 0" if k % 2 == 0 else "0 1 0 0 0 1"
            lines.append(f"{coords} 10 10 90 90 {flags} {rel}")
        (anno / f"list_98pt_rect_attr_{name}.txt").write_text("\n".join(lines) + "\n")


# --- LaPa ---------------------------------------------------------------------------------------

def write_lapa(root: Path) -> None:
    """One face per split; LaPa's classes drawn where the face is, class 2 ("left eyebrow") on the
    image-right side (the dataset's own naming)."""
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
        label[y - 8:y - 5, x1 - 4:x1 + 4] = 2
        label[y - 8:y - 5, x0 - 4:x0 + 4] = 3
        label[y - 1:y + 2, x0 - 3:x0 + 3] = 4
        label[y - 1:y + 2, x1 - 3:x1 + 3] = 5
        mx, my = face.keypoints5[3:].mean(0).astype(int)
        label[my - 2:my, mx - 5:mx + 5] = 7
        label[my:my + 2, mx - 5:mx + 5] = 9
        (root / folder / "labels").mkdir(parents=True, exist_ok=True)
        Image.fromarray(label, mode="L").save(root / folder / "labels" / f"{name}.png")
        lm = np.tile(face.keypoints5.mean(0), (106, 1))
        lm[74], lm[83], lm[54], lm[84], lm[90] = face.keypoints5
        (root / folder / "landmarks").mkdir(parents=True, exist_ok=True)
        (root / folder / "landmarks" / f"{name}.txt").write_text(
            "106\n" + "\n".join(f"{x:.2f} {y_:.2f}" for x, y_ in lm) + "\n")


# --- CelebAMask-HQ ------------------------------------------------------------------------------

def write_celebamask(root: Path) -> None:
    """Three CelebA-HQ images (val, train, test through the CelebA partition), 64 x 64 part masks."""
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
        mask("eye_g", (28, 36, 14, 50))       # glasses: a class of the dataset, not of ours
        mask("u_lip", (46, 48, 26, 38))
        mask("cloth", (60, 64, 0, 64))
