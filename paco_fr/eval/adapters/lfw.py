"""LFW verification, official View 2 layout:

    ROOT/pairs.txt                  line 1: "<folds> <n>" (10 300); then per fold n matched lines
                                    "<name> <i> <j>" and n mismatched lines "<name1> <i> <name2> <j>"
    ROOT/lfw/<name>/<name>_<i:04d>.jpg   250 x 250 images

The standard 10-fold protocol (``lfw/view2-10fold/acc``): every pair is a test pair once. For
fold k, the probe is fitted on the images of the other nine folds (the linear protocol's projection
uses their identity labels: "unrestricted, labeled outside data"), the threshold is chosen on the
other nine folds' pairs and applied to fold k's (paco_fr.eval.protocols.run_verification_folds,
paco_fr.eval.metrics.kfold_verification). So every image and pair is marked test here, and the
folds travel as targets (``image_fold``, ``pair_fold``). The ten folds must be identity-disjoint
(the official file is): an image in pairs of two folds is an error.

With ``eval.real_subsample`` each fold keeps at most (n_train + n_val + n_test) / 10 pairs, half
matched, so the folds stay equal in size (the official folds have 600 pairs each).

LFW has no landmarks: every image gets the same fixed crop, the similarity mapping typical LFW
landmark positions (LFW_MEAN_KEYPOINTS) onto our template, i.e. a centred crop and resize.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from paco_fr.eval.adapters._common import find_dir, find_file, text_lines
from paco_fr.eval.build import BuildContext, align_with_points, read_rgb
from paco_fr.eval.data import TEST, BenchmarkData, BenchmarkDataError

NAME = "lfw_verification"
# Approximate landmark positions in the (unfunneled) 250 x 250 LFW images.
LFW_MEAN_KEYPOINTS = np.array([[106.0, 113.0], [144.0, 113.0], [125.0, 135.0], [110.0, 156.0], [140.0, 156.0]])


def read_pairs(path: Path) -> list[tuple[int, str, int, str, int, bool]]:
    """(fold, name1, index1, name2, index2, same) for every pair, in file order."""
    lines = text_lines(path)
    if not lines:
        raise BenchmarkDataError(f"{path}: empty (expected '<folds> <pairs per fold>' then the pairs)")
    header = lines[0][1]
    if len(header) != 2 or not all(t.isdigit() for t in header):
        raise BenchmarkDataError(f"{path}:1: expected '<folds> <pairs per fold>' (the 10-fold View 2 "
                                 f"format), got {' '.join(header)!r}")
    n_folds, per_fold = int(header[0]), int(header[1])
    body = lines[1:]
    if len(body) != n_folds * 2 * per_fold:
        raise BenchmarkDataError(f"{path}: header promises {n_folds} folds x 2 x {per_fold} pairs = "
                                 f"{n_folds * 2 * per_fold} lines, found {len(body)}")
    pairs = []
    for k, (line_no, tokens) in enumerate(body):
        fold, within = divmod(k, 2 * per_fold)
        same = within < per_fold
        try:
            if same:
                if len(tokens) != 3:
                    raise ValueError
                pairs.append((fold, tokens[0], int(tokens[1]), tokens[0], int(tokens[2]), True))
            else:
                if len(tokens) != 4:
                    raise ValueError
                pairs.append((fold, tokens[0], int(tokens[1]), tokens[2], int(tokens[3]), False))
        except ValueError:
            expected = "'<name> <i> <j>'" if same else "'<name1> <i> <name2> <j>'"
            raise BenchmarkDataError(f"{path}:{line_no}: expected a {'matched' if same else 'mismatched'} "
                                     f"pair {expected}, got {' '.join(tokens)!r}") from None
    return pairs


def image_path(img_root: Path, name: str, index: int) -> Path:
    return img_root / name / f"{name}_{index:04d}.jpg"


def build(ctx: BuildContext) -> BenchmarkData:
    root = ctx.require_root(NAME)
    all_pairs = read_pairs(find_file(root, "pairs.txt", ("",), "LFW View 2 pairs"))
    img_root = find_dir(root, "lfw", ("",), "LFW images lfw/<name>/<name>_<i:04d>.jpg")
    pairs = _subsample_pairs(all_pairs, ctx) if ctx.real_subsample else all_pairs
    keys: dict[tuple[str, int], int] = {}
    key_fold: list[int] = []
    pair_idx, same, pair_fold = [], [], []
    for fold, n1, i1, n2, i2, is_same in pairs:
        idx = []
        for key in ((n1, i1), (n2, i2)):
            if key not in keys:
                keys[key] = len(keys)
                key_fold.append(fold)
            elif key_fold[keys[key]] != fold:
                raise BenchmarkDataError(f"pairs.txt: {key[0]} image {key[1]} is in folds {key_fold[keys[key]]} and "
                                         f"{fold}; the View 2 folds must be identity-disjoint")
            idx.append(keys[key])
        pair_idx.append(idx)
        same.append(is_same)
        pair_fold.append(fold)
    names = sorted({k[0] for k in keys})
    name_id = {n: i for i, n in enumerate(names)}
    images = [align_with_points(read_rgb(image_path(img_root, n, i)), LFW_MEAN_KEYPOINTS, ctx)[0]
              for n, i in tqdm(keys, desc=f"materialise {NAME}", unit="img", leave=False)]
    n_folds = len({p[0] for p in all_pairs})
    return BenchmarkData(
        task="verification", images=np.stack(images), split=np.full(len(keys), TEST, dtype=np.int8),
        targets={"identity": np.asarray([name_id[n] for n, _ in keys], dtype=np.int64),
                 "pairs": np.asarray(pair_idx, dtype=np.int64).reshape(-1, 2),
                 "pair_same": np.asarray(same, dtype=bool), "pair_split": np.full(len(pairs), TEST, dtype=np.int8),
                 "image_fold": np.asarray(key_fold, dtype=np.int64), "pair_fold": np.asarray(pair_fold, dtype=np.int64)},
        meta={"source": str(root), "folds": n_folds, "setting": "unrestricted, labeled outside data",
              "alignment": "fixed crop (mean landmarks)", "full_test_split": len(pairs) == len(all_pairs)},
    )


def _subsample_pairs(pairs, ctx: BuildContext):
    """At most (n_train + n_val + n_test) / n_folds pairs per fold, half matched and half mismatched."""
    rng = np.random.default_rng(ctx.seed)
    folds = sorted({p[0] for p in pairs})
    cap = max(2, (ctx.n_train + ctx.n_val + ctx.n_test) // len(folds)) // 2
    kept = []
    for fold in folds:
        for flag in (True, False):
            idx = [k for k, p in enumerate(pairs) if p[0] == fold and p[5] == flag]
            if len(idx) > cap:
                idx = sorted(rng.choice(idx, size=cap, replace=False).tolist())
            kept += idx
    return [pairs[k] for k in sorted(kept)]
