"""CelebA attributes (40 binary attributes), official layout:

    ROOT/list_attr_celeba.txt         line 1: N; line 2: the 40 attribute names;
                                      then "<file> v1 ... v40" with v in {-1, 1}
    ROOT/list_eval_partition.txt      "<file> <0|1|2>" (train / val / test)
    ROOT/img_align_celeba/<file>      the aligned 178x218 JPEGs
    ROOT/list_landmarks_align_celeba.txt   optional: line 1 N, line 2 header, then
                                      "<file> lx ly rx ry nx ny lmx lmy rmx rmy"

The annotation files may also sit in ROOT/Anno and ROOT/Eval (the distribution's folders).
With the landmark file, each face is aligned on its 5 points like the pre-training crops. Without
it, every image gets the same fixed crop: the similarity that maps CelebA's typical aligned landmark
positions (CELEBA_MEAN_KEYPOINTS) onto our template, i.e. a centred crop and resize.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from paco_fr.eval.adapters._common import find_dir, find_file, text_lines
from paco_fr.eval.build import BuildContext, align_with_points, parse_float_tokens, read_rgb
from paco_fr.eval.data import BenchmarkData, BenchmarkDataError, subsample_per_split, whole_split_kept

NAME = "celeba_attributes"
ANNO_DIRS = ("", "Anno", "Eval", "anno", "eval")
# Approximate mean landmark positions of img_align_celeba (178 x 218): eyes, nose, mouth corners.
CELEBA_MEAN_KEYPOINTS = np.array([[69.0, 111.0], [108.0, 111.0], [89.0, 134.0], [72.0, 152.0], [106.0, 152.0]])


def read_attributes(path) -> tuple[list[str], list[str], np.ndarray]:
    lines = text_lines(path)
    if len(lines) < 2:
        raise BenchmarkDataError(f"{path}: expected a count line and an attribute-name line")
    try:
        declared = int(lines[0][1][0])
    except (ValueError, IndexError) as exc:
        raise BenchmarkDataError(f"{path}:1: expected the number of images, got {lines[0][1]!r}") from exc
    names = lines[1][1]
    files, values = [], []
    for line_no, tokens in lines[2:]:
        if len(tokens) != len(names) + 1:
            raise BenchmarkDataError(f"{path}:{line_no}: expected a file name and {len(names)} values, "
                                     f"got {len(tokens)} tokens")
        vals = tokens[1:]
        if any(v not in ("1", "-1") for v in vals):
            raise BenchmarkDataError(f"{path}:{line_no}: attribute values must be 1 or -1")
        files.append(tokens[0])
        values.append([v == "1" for v in vals])
    if declared != len(files):
        raise BenchmarkDataError(f"{path}: header says {declared} images, found {len(files)} rows")
    return names, files, np.asarray(values, dtype=bool).reshape(len(files), len(names))


def read_partition(path) -> dict[str, int]:
    out = {}
    for line_no, tokens in text_lines(path):
        if len(tokens) != 2 or tokens[1] not in ("0", "1", "2"):
            raise BenchmarkDataError(f"{path}:{line_no}: expected '<file> <0|1|2>', got {' '.join(tokens)!r}")
        out[tokens[0]] = int(tokens[1])
    return out


def read_landmarks(path) -> dict[str, np.ndarray]:
    lines = text_lines(path)
    out = {}
    for line_no, tokens in lines[2:]:
        if len(tokens) != 11:
            raise BenchmarkDataError(f"{path}:{line_no}: expected a file name and 10 coordinates")
        out[tokens[0]] = parse_float_tokens(tokens[1:], path, line_no, "10 coordinates").reshape(5, 2)
    return out


def build(ctx: BuildContext) -> BenchmarkData:
    root = ctx.require_root(NAME)
    attr_path = find_file(root, "list_attr_celeba.txt", ANNO_DIRS, "CelebA attribute labels")
    part_path = find_file(root, "list_eval_partition.txt", ANNO_DIRS, "CelebA train/val/test partition")
    img_dir = find_dir(root, "img_align_celeba", ("", "Img"), "CelebA aligned images")
    names, files, attrs = read_attributes(attr_path)
    partition = read_partition(part_path)
    missing = [f for f in files if f not in partition]
    if missing:
        raise BenchmarkDataError(f"{part_path}: no partition for {len(missing)} images, e.g. {missing[0]}")
    landmarks = None
    try:
        landmarks = read_landmarks(find_file(root, "list_landmarks_align_celeba.txt", ANNO_DIRS))
    except BenchmarkDataError as exc:
        if "not found" not in str(exc):
            raise
    split = np.asarray([partition[f] for f in files], dtype=np.int8)
    keep = subsample_per_split(split, ctx.caps, ctx.seed)
    images = []
    for i in tqdm(keep, desc=f"materialise {NAME}", unit="img", leave=False):
        rgb = read_rgb(img_dir / files[i])
        kp = landmarks.get(files[i]) if landmarks is not None else None
        crop, _, _ = align_with_points(rgb, kp if kp is not None else CELEBA_MEAN_KEYPOINTS, ctx)
        images.append(crop)
    return BenchmarkData(
        task="attributes", images=np.stack(images), split=split[keep], targets={"attributes": attrs[keep]},
        meta={"attribute_names": names, "source": str(root), "files": [files[i] for i in keep],
              "alignment": "5-point landmarks" if landmarks is not None else "fixed crop (mean landmarks)",
              "full_test_split": whole_split_kept(split, keep)},
    )
