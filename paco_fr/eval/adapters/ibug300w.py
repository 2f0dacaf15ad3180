"""300W landmarks (iBUG 68 points), official layout: images with a `.pts` file beside each,

    version: 1
    n_points:  68
    {
    x y          (68 lines, 1-based pixel coordinates as distributed)
    }

anywhere under ROOT (e.g. afw/, helen/trainset, helen/testset, lfpw/trainset, lfpw/testset, ibug/).
Split by path, as in the common 300W protocol: `testset` folders form the common test subset and
`ibug` the challenging subset (together "full"), everything else is train (a seeded n_val share of
it becomes val). The 300W private test set (01_Indoor, 02_Outdoor) is skipped.

Two crops, two benchmarks:

- ``build`` (``300w_landmarks``, the standard box-crop protocol): a square box around the face
  (the landmarks' bounding box, longer side x1.25: the enlargement of HRNet's protocol, whose own
  centre and scale come from HRNet's csv files, not part of the official layout), scaled to the crop
  with no rotation, for train and test alike. NME is invariant to that scale and shift, so NME in the crop
  equals NME in the original image.
- ``build_aligned`` (``300w_landmarks_aligned``, ours): aligned on 5 points derived from the 68
  (eye centres, nose tip 30, mouth corners 48/54) with the synthetic benchmark's random jitter. The
  ground truth removes roll and fixes scale, so this is easier than the standard protocol.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from paco_fr.eval.adapters._common import carve_val
from paco_fr.eval.build import (BOX_ENLARGE, BuildContext, align_with_jitter, box_crop, five_points_from_68,
                                parse_float_tokens, read_rgb)
from paco_fr.eval.data import BenchmarkData, BenchmarkDataError, TEST, TRAIN, subsample_per_split, whole_split_kept
from paco_fr.eval.metrics import IBUG68_OUTER_EYE_CORNERS

NAME = "300w_landmarks"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")
PRIVATE_DIRS = {"01_indoor", "02_outdoor"}
SUBSETS = ("common", "challenging")


def read_pts(path: Path, n_points: int = 68) -> np.ndarray:
    """(n_points, 2) float64 from an iBUG .pts file."""
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchmarkDataError(f"{path}: cannot read ({exc})") from exc
    header = {}
    k = 0
    while k < len(lines) and lines[k] != "{":
        key, _, value = lines[k].partition(":")
        header[key.strip()] = value.strip()
        k += 1
    if k == len(lines) or "}" not in lines[k:]:
        raise BenchmarkDataError(f"{path}: expected 'version:', 'n_points:' then the points between '{{' and '}}'")
    if header.get("n_points") != str(n_points):
        raise BenchmarkDataError(f"{path}: expected n_points: {n_points}, got {header.get('n_points')!r}")
    body = lines[k + 1: lines.index("}", k)]
    if len(body) != n_points:
        raise BenchmarkDataError(f"{path}: expected {n_points} point lines, found {len(body)}")
    pts = np.stack([parse_float_tokens(b.split(), path, k + 2 + i, "'x y'") for i, b in enumerate(body)])
    if pts.shape != (n_points, 2):
        raise BenchmarkDataError(f"{path}: every point line must hold two numbers")
    return pts - 1.0  # the files count pixels from 1


def _image_beside(pts: Path) -> Path:
    for suffix in IMAGE_SUFFIXES:
        candidate = pts.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    raise BenchmarkDataError(f"{pts}: no image beside it (looked for {', '.join(IMAGE_SUFFIXES)})")


def _subset(rel: Path) -> str | None:
    parts = [p.lower() for p in rel.parts]
    if PRIVATE_DIRS & set(parts):
        return None
    if "ibug" in parts:
        return "challenging"
    if "testset" in parts:
        return "common"
    return "train"


def build(ctx: BuildContext) -> BenchmarkData:
    """The standard box-crop protocol (see the module docstring)."""
    return _build(ctx, "box", lambda image, gt, rng: box_crop(image, gt, ctx))


def build_aligned(ctx: BuildContext) -> BenchmarkData:
    """Our ground-truth-aligned protocol (see the module docstring)."""
    return _build(ctx, "aligned",
                  lambda image, gt, rng: align_with_jitter(image, five_points_from_68(gt), ctx, rng, gt))


def _build(ctx: BuildContext, crop: str, crop_face) -> BenchmarkData:
    root = ctx.require_root(NAME)
    entries = []
    for pts in sorted(root.rglob("*.pts")):
        subset = _subset(pts.relative_to(root))
        if subset is not None:
            entries.append((pts, subset))
    if not entries:
        raise BenchmarkDataError(f"{root}: no .pts landmark files found (300W layout: images with a .pts file beside each)")
    split = np.asarray([TRAIN if s == "train" else TEST for _, s in entries], dtype=np.int8)
    split = carve_val(split, None, ctx.n_val / max(ctx.n_train + ctx.n_val, 1), ctx.seed)
    keep = subsample_per_split(split, ctx.caps, ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    images, lms, flags = [], [], []
    for i in tqdm(keep, desc=f"materialise {NAME} ({crop})", unit="img", leave=False):
        pts_path, subset = entries[i]
        gt = read_pts(pts_path)
        crop_img, lm = crop_face(read_rgb(_image_beside(pts_path)), gt, rng)
        images.append(crop_img)
        lms.append(lm)
        flags.append([subset == s for s in SUBSETS])
    alignment = (f"box crop: landmarks' bounding box, longer side x{BOX_ENLARGE}, no rotation" if crop == "box"
                 else "5-point + jitter")
    return BenchmarkData(
        task="landmarks", images=np.stack(images), split=split[keep],
        targets={"landmarks": np.stack(lms).astype(np.float32), "subset_flags": np.asarray(flags, dtype=bool)},
        meta={"scheme": "ibug68", "norm_indices": list(IBUG68_OUTER_EYE_CORNERS),
              "norm": "inter-ocular (outer eye corners 36, 45)", "subset_names": list(SUBSETS),
              "source": str(root), "alignment": alignment, "full_test_split": whole_split_kept(split, keep),
              **({"landmark_jitter": list(ctx.landmark_jitter)} if crop == "aligned" else {})},
    )
