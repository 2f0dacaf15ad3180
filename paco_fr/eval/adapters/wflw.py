"""WFLW landmarks (98 points), official layout:

    ROOT/WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_train.txt
    ROOT/WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_test.txt
        one face per line: 196 coordinates (x0 y0 ... x97 y97), 4 box values (x_min y_min x_max
        y_max), 6 attribute flags (pose, expression, illumination, make-up, occlusion, blur), and the
        image path relative to WFLW_images/
    ROOT/WFLW_images/<event>/<file>.jpg

(The two lists may also sit directly in ROOT.) A seeded n_val share of train becomes val. NME is
normalised by the outer eye corners 60 and 72; the six attribute flags give the per-subset NMEs.

Two crops, two benchmarks, as for 300W (paco_fr.eval.adapters.ibug300w):

- ``build`` (``wflw_landmarks``, standard): a square box around the landmarks (longer side x1.25,
  the enlargement of HRNet's protocol), no rotation. HRNet and FaRL take their boxes (centre and
  scale) from HRNet's csv files, which are not part of the official layout; ours are computed from
  the landmarks, and the annotation's own 4 box values (a detector's rectangle) are not used.
- ``build_aligned`` (``wflw_landmarks_aligned``, ours): aligned on 5 points derived from the 98
  (pupils 96/97, nose tip 54, mouth corners 76/82) with the landmark jitter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from paco_fr.eval.adapters._common import carve_val, find_dir, find_file, text_lines
from paco_fr.eval.build import (BOX_ENLARGE, BuildContext, align_with_jitter, box_crop, five_points_from_98,
                                parse_float_tokens, read_rgb)
from paco_fr.eval.data import BenchmarkData, BenchmarkDataError, TEST, TRAIN, subsample_per_split, whole_split_kept
from paco_fr.eval.metrics import WFLW98_OUTER_EYE_CORNERS

NAME = "wflw_landmarks"
ANNO_DIRS = ("", "WFLW_annotations/list_98pt_rect_attr_train_test", "list_98pt_rect_attr_train_test")
SUBSETS = ("pose", "expression", "illumination", "make_up", "occlusion", "blur")
TOKENS_PER_LINE = 196 + 4 + 6 + 1


def read_list(path: Path) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(landmarks (98, 2), attribute flags (6,), image path) per line."""
    out = []
    for line_no, tokens in text_lines(path):
        if len(tokens) != TOKENS_PER_LINE:
            raise BenchmarkDataError(f"{path}:{line_no}: expected {TOKENS_PER_LINE} fields (196 coordinates, "
                                     f"4 box values, 6 attribute flags, image path), got {len(tokens)}")
        coords = parse_float_tokens(tokens[:196], path, line_no, "196 landmark coordinates").reshape(98, 2)
        flags = parse_float_tokens(tokens[200:206], path, line_no, "6 attribute flags")
        if not np.isin(flags, (0.0, 1.0)).all():
            raise BenchmarkDataError(f"{path}:{line_no}: attribute flags must be 0 or 1")
        out.append((coords, flags.astype(bool), tokens[206]))
    if not out:
        raise BenchmarkDataError(f"{path}: no annotated faces")
    return out


def build(ctx: BuildContext) -> BenchmarkData:
    """The standard box-crop protocol (see the module docstring)."""
    return _build(ctx, "box", lambda image, gt, rng: box_crop(image, gt, ctx))


def build_aligned(ctx: BuildContext) -> BenchmarkData:
    """Our ground-truth-aligned protocol (see the module docstring)."""
    return _build(ctx, "aligned",
                  lambda image, gt, rng: align_with_jitter(image, five_points_from_98(gt), ctx, rng, gt))


def _build(ctx: BuildContext, crop: str, crop_face) -> BenchmarkData:
    root = ctx.require_root(NAME)
    train = read_list(find_file(root, "list_98pt_rect_attr_train.txt", ANNO_DIRS, "WFLW train annotations"))
    test = read_list(find_file(root, "list_98pt_rect_attr_test.txt", ANNO_DIRS, "WFLW test annotations"))
    img_dir = find_dir(root, "WFLW_images", ("",), "WFLW images")
    entries = train + test
    split = np.asarray([TRAIN] * len(train) + [TEST] * len(test), dtype=np.int8)
    split = carve_val(split, None, ctx.n_val / max(ctx.n_train + ctx.n_val, 1), ctx.seed)
    keep = subsample_per_split(split, ctx.caps, ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    images, lms, flags = [], [], []
    for i in tqdm(keep, desc=f"materialise {NAME} ({crop})", unit="img", leave=False):
        gt, attr, rel = entries[i]
        crop_img, lm = crop_face(read_rgb(img_dir / rel), gt, rng)
        images.append(crop_img)
        lms.append(lm)
        flags.append(attr)
    alignment = (f"box crop: landmarks' bounding box, longer side x{BOX_ENLARGE}, no rotation" if crop == "box"
                 else "5-point + jitter")
    return BenchmarkData(
        task="landmarks", images=np.stack(images), split=split[keep],
        targets={"landmarks": np.stack(lms).astype(np.float32), "subset_flags": np.stack(flags)},
        meta={"scheme": "wflw98", "norm_indices": list(WFLW98_OUTER_EYE_CORNERS),
              "norm": "inter-ocular (outer eye corners 60, 72)", "subset_names": list(SUBSETS),
              "source": str(root), "alignment": alignment, "full_test_split": whole_split_kept(split, keep),
              **({"landmark_jitter": list(ctx.landmark_jitter)} if crop == "aligned" else {})},
    )
