"""Face parsing datasets: LaPa and CelebAMask-HQ, their classes mapped onto ours
(paco_fr.masks.REGIONS: background, head_other, skin, left/right brow, left/right eye, nose, mouth).

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

Left and right: our convention is "left = smaller x in the image". The datasets' own l_/r_ naming is
not used; in each map the brow and eye pairs are swapped where `left_*` lies right of `right_*`
(or, when only one of a pair is visible, right of the skin centroid).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from paco_fr.eval.adapters._common import find_dir, find_file, resolve_left_right, text_lines
from paco_fr.eval.build import (BuildContext, align_with_points, order_left_right, parse_float_tokens, read_label_png,
                                read_rgb, resize_square)
from paco_fr.eval.data import BenchmarkData, BenchmarkDataError, TEST, TRAIN, VAL, subsample_per_split
from paco_fr.masks.regions_def import REGION_INDEX, REGIONS

R = REGION_INDEX
LAPA_TO_OURS = np.array([R["background"], R["skin"], R["left_brow"], R["right_brow"], R["left_eye"],
                         R["right_eye"], R["nose"], R["mouth"], R["mouth"], R["mouth"], R["head_other"]],
                        dtype=np.uint8)
LAPA_SPLITS = (("train", TRAIN), ("val", VAL), ("test", TEST))

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


def build_lapa(ctx: BuildContext) -> BenchmarkData:
    root = ctx.require_root("lapa_parsing")
    entries = []
    for folder, split in LAPA_SPLITS:
        img_dir = find_dir(root, "images", (folder,), f"LaPa {folder} images")
        names = sorted(p.stem for p in img_dir.glob("*.jpg"))
        if not names:
            raise BenchmarkDataError(f"{img_dir}: no .jpg images")
        entries += [(root / folder, name, split) for name in names]
    split = np.asarray([e[2] for e in entries], dtype=np.int8)
    keep = subsample_per_split(split, ctx.caps, ctx.seed)
    images, maps = [], []
    for i in tqdm(keep, desc="materialise lapa_parsing", unit="img", leave=False):
        folder, name, _ = entries[i]
        rgb = read_rgb(folder / "images" / f"{name}.jpg")
        label_path = folder / "labels" / f"{name}.png"
        raw = read_label_png(label_path)
        if raw.shape != rgb.shape[:2]:
            raise BenchmarkDataError(f"{label_path}: label size {raw.shape} differs from its image {rgb.shape[:2]}")
        if raw.max() >= len(LAPA_TO_OURS):
            raise BenchmarkDataError(f"{label_path}: label {int(raw.max())} outside LaPa's 0..10")
        lm = read_lapa_landmarks(folder / "landmarks" / f"{name}.txt")
        kp5 = order_left_right(np.stack([lm[74], lm[83], lm[54], lm[84], lm[90]]))
        crop, _, labels = align_with_points(rgb, kp5, ctx, label_map=LAPA_TO_OURS[raw])
        images.append(crop)
        maps.append(resolve_left_right(labels))
    return BenchmarkData(
        task="parsing", images=np.stack(images), split=split[keep], targets={"label_map": np.stack(maps)},
        meta={"class_names": list(REGIONS), "ignore_in_mean": [0], "source": str(root),
              "class_map": "LaPa -> ours, see paco_fr/eval/adapters/parsing.py", "alignment": "5-point (106 landmarks)"},
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


def build_celebamask_hq(ctx: BuildContext) -> BenchmarkData:
    from paco_fr.eval.adapters.celeba import read_partition

    root = ctx.require_root("celebamask_hq_parsing")
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
    images, maps = [], []
    for i in tqdm(keep, desc="materialise celebamask_hq_parsing", unit="img", leave=False):
        hq_id = hq_ids[i]
        images.append(resize_square(read_rgb(img_dir / f"{hq_id}.jpg"), ctx.crop_size))
        label = _paint_celebamask(anno_dir / str(hq_id // 2000), hq_id)
        maps.append(resolve_left_right(resize_square(label, ctx.crop_size, nearest=True)))
    return BenchmarkData(
        task="parsing", images=np.stack(images), split=split[keep], targets={"label_map": np.stack(maps)},
        meta={"class_names": list(REGIONS), "ignore_in_mean": [0], "source": str(root),
              "class_map": "CelebAMask-HQ -> ours, see paco_fr/eval/adapters/parsing.py",
              "alignment": "official aligned images, resized"},
    )


def _paint_celebamask(folder: Path, hq_id: int) -> np.ndarray:
    label: np.ndarray | None = None
    found = 0
    for part, ours in CELEBAMASK_PARTS:
        path = folder / f"{hq_id:05d}_{part}.png"
        if not path.is_file():
            continue  # a part that is not visible has no mask file
        mask = read_label_png(path) > 0
        if label is None:
            label = np.zeros(mask.shape, dtype=np.uint8)
        elif mask.shape != label.shape:
            raise BenchmarkDataError(f"{path}: mask size {mask.shape} differs from the other parts {label.shape}")
        label[mask] = R[ours]
        found += 1
    if label is None or found == 0:
        raise BenchmarkDataError(f"{folder}: no part masks {hq_id:05d}_<part>.png for CelebA-HQ image {hq_id}")
    return label
