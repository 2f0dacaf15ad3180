"""Face parsing datasets: LaPa and CelebAMask-HQ, each under two protocols.

- Standard (``lapa_parsing``, ``celebamask_hq_parsing``; FaRL's evaluation): the dataset's own
  classes (LaPa 11, CelebAMask-HQ 19); the probe learns and predicts in the aligned crop, and its
  class scores are warped back onto the original label map (LaPa: the image; CelebAMask-HQ: the
  512 x 512 masks), where F1 is counted (paco_fr.eval.dense.warp_back_labels). The test items keep
  their original label maps and the crop's affine map for that (paco_fr.eval.data.pack_original_labels).
- Ours (``lapa_parsing_regions``, ``celebamask_hq_parsing_regions``): the classes mapped onto ours
  (paco_fr.masks.REGIONS: background, head_other, skin, left/right brow, left/right eye, nose,
  mouth), scored in the aligned crop like the synthetic parsing benchmark.

LaPa, official layout:

    ROOT/{train,val,test}/images/<name>.jpg
    ROOT/{train,val,test}/labels/<name>.png        11 classes, mode L
    ROOT/{train,val,test}/landmarks/<name>.txt     "106" then 106 lines "x y"

    LaPa class     -> ours
    0 background   -> background
    1 skin         -> skin
    2/3 eyebrows   -> left_brow / right_brow   (then resolved by geometry, see below)
    4/5 eyes       -> left_eye / right_eye
    6 nose         -> nose
    7 upper lip, 8 inner mouth, 9 lower lip -> mouth
    10 hair        -> head_other

Faces are aligned on 5 points from the 106 (pupils 74/83, nose tip 54, mouth corners 84/90), the
label map with nearest-neighbour sampling.

CelebAMask-HQ, official layout:

    ROOT/CelebA-HQ-img/<id>.jpg                           1024 x 1024
    ROOT/CelebAMask-HQ-mask-anno/<id // 2000>/<id:05d>_<part>.png   512 x 512 binary masks
    ROOT/CelebA-HQ-to-CelebA-mapping.txt                  "idx orig_idx orig_file"
    ROOT/list_eval_partition.txt                          CelebA's partition (copy it in)

    masks are painted in this order (a later part wins, as in FaRL's reader) and mapped:
    neck -> head_other, skin -> skin, cloth -> background, l_ear/r_ear -> head_other,
    l_brow/r_brow -> brows, l_eye/r_eye -> eyes, nose -> nose, mouth/l_lip/u_lip -> mouth,
    hair -> head_other, hat -> head_other.
    eye_g (glasses), ear_r (earrings) and neck_l (necklace) are not classes of ours and are not
    painted: their pixels keep the label underneath.

CelebA-HQ images are already aligned and loosely framed; they are resized whole to the crop size
(no landmarks ship with the dataset).

Left and right (ours only): our convention is "left = smaller x in the image". The datasets' own l_/r_
naming is not used; in each map the brow and eye pairs are swapped where `left_*` lies right of
`right_*` (or, when only one of a pair is visible, right of the skin centroid). The standard
protocols keep the datasets' labels as they are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from paco_fr.eval.adapters._common import find_dir, find_file, resolve_left_right, text_lines
from paco_fr.data.align import canonical_template, estimate_similarity, warp_image
from paco_fr.eval.build import BuildContext, order_left_right, parse_float_tokens, read_label_png, read_rgb, resize_square
from paco_fr.eval.data import (BenchmarkData, BenchmarkDataError, TEST, TRAIN, VAL, pack_original_labels,
                               subsample_per_split, whole_split_kept)
from paco_fr.masks.regions_def import REGION_INDEX, REGIONS

R = REGION_INDEX
LAPA_TO_OURS = np.array([R["background"], R["skin"], R["left_brow"], R["right_brow"], R["left_eye"],
                         R["right_eye"], R["nose"], R["mouth"], R["mouth"], R["mouth"], R["head_other"]],
                        dtype=np.uint8)
LAPA_SPLITS = (("train", TRAIN), ("val", VAL), ("test", TEST))
LAPA_CLASSES = ("background", "skin", "left_eyebrow", "right_eyebrow", "left_eye", "right_eye", "nose", "upper_lip",
                "inner_mouth", "lower_lip", "hair")
# CelebAMask-HQ's 18 parts in FaRL's painting order (label = position + 1; a later part wins).
CELEBAMASK_NATIVE_PARTS = ("neck", "skin", "cloth", "l_ear", "r_ear", "l_brow", "r_brow", "l_eye", "r_eye", "nose",
                           "mouth", "l_lip", "u_lip", "hair", "eye_g", "hat", "ear_r", "neck_l")
CELEBAMASK_CLASSES = ("background", *CELEBAMASK_NATIVE_PARTS)

CELEBAMASK_PARTS = (
    ("neck", "head_other"), ("skin", "skin"), ("cloth", "background"), ("l_ear", "head_other"),
    ("r_ear", "head_other"), ("l_brow", "left_brow"), ("r_brow", "right_brow"), ("l_eye", "left_eye"),
    ("r_eye", "right_eye"), ("nose", "nose"), ("mouth", "mouth"), ("l_lip", "mouth"), ("u_lip", "mouth"),
    ("hair", "head_other"), ("hat", "head_other"),
)


def read_lapa_landmarks(path: Path) -> np.ndarray:
    values = [tok for _, toks in text_lines(path) for tok in toks]
    nums = parse_float_tokens(values, path, 1, "'106' then 106 'x y' lines")
    if len(nums) != 1 + 106 * 2 or int(nums[0]) != 106:
        raise BenchmarkDataError(f"{path}: expected '106' then 106 'x y' lines, got {len(nums)} numbers")
    return nums[1:].reshape(106, 2)


def _lapa_items(ctx: BuildContext, name: str):
    """(split of every kept item, and a generator of (rgb, native label map, 5 keypoints, split))."""
    root = ctx.require_root(name)
    entries = []
    for folder, split in LAPA_SPLITS:
        img_dir = find_dir(root, "images", (folder,), f"LaPa {folder} images")
        names = sorted(p.stem for p in img_dir.glob("*.jpg"))
        if not names:
            raise BenchmarkDataError(f"{img_dir}: no .jpg images")
        entries += [(root / folder, stem, split) for stem in names]
    split = np.asarray([e[2] for e in entries], dtype=np.int8)
    keep = subsample_per_split(split, ctx.caps, ctx.seed)

    def items():
        for i in tqdm(keep, desc=f"materialise {name}", unit="img", leave=False):
            folder, stem, item_split = entries[i]
            rgb = read_rgb(folder / "images" / f"{stem}.jpg")
            label_path = folder / "labels" / f"{stem}.png"
            raw = read_label_png(label_path)
            if raw.shape != rgb.shape[:2]:
                raise BenchmarkDataError(f"{label_path}: label size {raw.shape} differs from its image {rgb.shape[:2]}")
            if raw.max() >= len(LAPA_CLASSES):
                raise BenchmarkDataError(f"{label_path}: label {int(raw.max())} outside LaPa's 0..10")
            lm = read_lapa_landmarks(folder / "landmarks" / f"{stem}.txt")
            kp5 = order_left_right(np.stack([lm[74], lm[83], lm[54], lm[84], lm[90]]))
            yield rgb, raw, kp5, item_split

    return root, split, keep, items()


def _align(rgb: np.ndarray, label: np.ndarray, kp5: np.ndarray, ctx: BuildContext):
    """(crop, label map in the crop, original -> crop matrix): aligned like the pre-training crops."""
    matrix = estimate_similarity(kp5, canonical_template(ctx.crop_size, ctx.zoom))
    return (warp_image(rgb, matrix, ctx.crop_size), warp_image(label, matrix, ctx.crop_size, nearest=True),
            matrix)


def build_lapa(ctx: BuildContext) -> BenchmarkData:
    """The standard protocol: LaPa's 11 classes, scored on the original image."""
    root, split, keep, items = _lapa_items(ctx, "lapa_parsing")
    images, maps, originals, matrices = [], [], [], []
    for rgb, raw, kp5, item_split in items:
        crop, labels, matrix = _align(rgb, raw, kp5, ctx)
        images.append(crop)
        maps.append(labels)
        originals.append(raw if item_split == TEST else None)  # only test items are scored there
        matrices.append(matrix)
    return BenchmarkData(
        task="parsing", images=np.stack(images), split=split[keep],
        targets={"label_map": np.stack(maps), **pack_original_labels(originals, matrices)},
        meta={"class_names": list(LAPA_CLASSES), "ignore_in_mean": [0], "source": str(root),
              "class_map": "LaPa's own 11 classes", "alignment": "5-point (106 landmarks)",
              "scored_on": "original image (class scores warped back from the crop)",
              "full_test_split": whole_split_kept(split, keep)},
    )


def build_lapa_regions(ctx: BuildContext) -> BenchmarkData:
    """Ours: LaPa mapped onto our 9 regions, scored in the aligned crop."""
    root, split, keep, items = _lapa_items(ctx, "lapa_parsing_regions")
    images, maps = [], []
    for rgb, raw, kp5, _ in items:
        crop, labels, _ = _align(rgb, LAPA_TO_OURS[raw], kp5, ctx)
        images.append(crop)
        maps.append(resolve_left_right(labels))
    return BenchmarkData(
        task="parsing", images=np.stack(images), split=split[keep], targets={"label_map": np.stack(maps)},
        meta={"class_names": list(REGIONS), "ignore_in_mean": [0], "source": str(root),
              "class_map": "LaPa -> ours, see paco_fr/eval/adapters/parsing.py", "alignment": "5-point (106 landmarks)",
              "scored_on": "aligned crop", "full_test_split": whole_split_kept(split, keep)},
    )


def _read_hq_mapping(path: Path) -> dict[str, int]:
    orig_to_hq = {}
    for line_no, tokens in text_lines(path)[1:]:
        if len(tokens) != 3 or not tokens[0].isdigit():
            raise BenchmarkDataError(f"{path}:{line_no}: expected 'idx orig_idx orig_file', got {' '.join(tokens)!r}")
        orig_to_hq[tokens[2]] = int(tokens[0])
    if not orig_to_hq:
        raise BenchmarkDataError(f"{path}: no rows after the header 'idx orig_idx orig_file'")
    return orig_to_hq


def _celebamask_items(ctx: BuildContext, name: str):
    """(root, split of every listed image, kept indices, CelebA-HQ ids, image folder, mask folder)."""
    from paco_fr.eval.adapters.celeba import read_partition

    root = ctx.require_root(name)
    mapping = _read_hq_mapping(find_file(root, "CelebA-HQ-to-CelebA-mapping.txt", ("",), "CelebA-HQ to CelebA index map"))
    partition = read_partition(find_file(root, "list_eval_partition.txt", ("", "Anno", "Eval"),
                                         "CelebA's train/val/test partition (copy it from CelebA)"))
    img_dir = find_dir(root, "CelebA-HQ-img", ("",), "CelebA-HQ images")
    anno_dir = find_dir(root, "CelebAMask-HQ-mask-anno", ("",), "CelebAMask-HQ part masks")
    hq_ids, split_list = [], []
    for orig_file, hq_id in sorted(mapping.items(), key=lambda kv: kv[1]):
        if orig_file not in partition:
            raise BenchmarkDataError(f"list_eval_partition.txt: no partition for {orig_file} (CelebA-HQ image {hq_id})")
        hq_ids.append(hq_id)
        split_list.append(partition[orig_file])
    split = np.asarray(split_list, dtype=np.int8)
    keep = subsample_per_split(split, ctx.caps, ctx.seed)
    return root, split, keep, hq_ids, img_dir, anno_dir


def resize_matrix(shape: tuple[int, int], size: int) -> np.ndarray:
    """(2, 3) map from the pixels of an (H, W) array to those of its resize to (size, size)
    (OpenCV's pixel-centre convention, as cv2.resize samples)."""
    h, w = shape
    sx, sy = size / w, size / h
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])


def build_celebamask_hq(ctx: BuildContext) -> BenchmarkData:
    """The standard protocol: CelebAMask-HQ's 19 classes (FaRL's painting), scored on the masks'
    own grid (512 x 512 in the distribution)."""
    root, split, keep, hq_ids, img_dir, anno_dir = _celebamask_items(ctx, "celebamask_hq_parsing")
    images, maps, originals, matrices = [], [], [], []
    for i in tqdm(keep, desc="materialise celebamask_hq_parsing", unit="img", leave=False):
        hq_id = hq_ids[i]
        images.append(resize_square(read_rgb(img_dir / f"{hq_id}.jpg"), ctx.crop_size))
        label = _paint_celebamask(anno_dir / str(hq_id // 2000), hq_id, CELEBAMASK_NATIVE_PARTS)
        maps.append(resize_square(label, ctx.crop_size, nearest=True))
        originals.append(label if split[i] == TEST else None)
        matrices.append(resize_matrix(label.shape, ctx.crop_size))
    return BenchmarkData(
        task="parsing", images=np.stack(images), split=split[keep],
        targets={"label_map": np.stack(maps), **pack_original_labels(originals, matrices)},
        meta={"class_names": list(CELEBAMASK_CLASSES), "ignore_in_mean": [0], "source": str(root),
              "class_map": "CelebAMask-HQ's own 19 classes, FaRL's painting order",
              "alignment": "official aligned images, resized", "scored_on": "512 x 512 mask grid (scores resized back)",
              "full_test_split": whole_split_kept(split, keep)},
    )


def build_celebamask_hq_regions(ctx: BuildContext) -> BenchmarkData:
    """Ours: CelebAMask-HQ mapped onto our 9 regions, scored at the crop size."""
    root, split, keep, hq_ids, img_dir, anno_dir = _celebamask_items(ctx, "celebamask_hq_parsing_regions")
    parts = tuple(part for part, _ in CELEBAMASK_PARTS)
    to_ours = np.asarray([R["background"]] + [R[ours] for _, ours in CELEBAMASK_PARTS], dtype=np.uint8)
    images, maps = [], []
    for i in tqdm(keep, desc="materialise celebamask_hq_parsing_regions", unit="img", leave=False):
        hq_id = hq_ids[i]
        images.append(resize_square(read_rgb(img_dir / f"{hq_id}.jpg"), ctx.crop_size))
        label = to_ours[_paint_celebamask(anno_dir / str(hq_id // 2000), hq_id, parts)]
        maps.append(resolve_left_right(resize_square(label, ctx.crop_size, nearest=True)))
    return BenchmarkData(
        task="parsing", images=np.stack(images), split=split[keep], targets={"label_map": np.stack(maps)},
        meta={"class_names": list(REGIONS), "ignore_in_mean": [0], "source": str(root),
              "class_map": "CelebAMask-HQ -> ours, see paco_fr/eval/adapters/parsing.py",
              "alignment": "official aligned images, resized", "scored_on": "crop",
              "full_test_split": whole_split_kept(split, keep)},
    )


def _paint_celebamask(folder: Path, hq_id: int, parts: tuple[str, ...]) -> np.ndarray:
    """The label map of one image: part k of `parts` is painted with label k + 1, in that order (a
    later part wins); pixels in no mask stay 0."""
    label: np.ndarray | None = None
    for k, part in enumerate(parts):
        path = folder / f"{hq_id:05d}_{part}.png"
        if not path.is_file():
            continue  # a part that is not visible has no mask file
        mask = read_label_png(path) > 0
        if label is None:
            label = np.zeros(mask.shape, dtype=np.uint8)
        elif mask.shape != label.shape:
            raise BenchmarkDataError(f"{path}: mask size {mask.shape} differs from the other parts {label.shape}")
        label[mask] = k + 1
    if label is None:
        raise BenchmarkDataError(f"{folder}: no part masks {hq_id:05d}_<part>.png for CelebA-HQ image {hq_id}")
    return label
