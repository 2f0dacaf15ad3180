"""LFW verification, official View 2 layout:

    ROOT/pairs.txt                  line 1: "<folds> <n>" (10 300); then per fold n matched lines
                                    "<name> <i> <j>" and n mismatched lines "<name1> <i> <name2> <j>"
    ROOT/lfw/<name>/<name>_<i:04d>.jpg   250 x 250 images

The ten folds are identity-disjoint. Folds 0-6 are train (their identities fit the linear
protocol's projection), fold 7 is val (hyperparameters) and folds 8-9 are test. LFW has no
landmarks: every image gets the same fixed crop, the similarity mapping typical LFW landmark
positions (LFW_MEAN_KEYPOINTS) onto our template, i.e. a centred crop and resize.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from paco_fr.eval.adapters._common import find_dir, find_file, text_lines
from paco_fr.eval.build import BuildContext, align_with_points, read_rgb
from paco_fr.eval.data import BenchmarkData, BenchmarkDataError, TEST, TRAIN, VAL

NAME = "lfw_verification"
FOLD_SPLIT = {**{f: TRAIN for f in range(7)}, 7: VAL, 8: TEST, 9: TEST}
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
    pairs = read_pairs(find_file(root, "pairs.txt", ("",), "LFW View 2 pairs"))
    img_root = find_dir(root, "lfw", ("",), "LFW images lfw/<name>/<name>_<i:04d>.jpg")
    if ctx.real_subsample:
        pairs = _subsample_pairs(pairs, ctx)
    keys: dict[tuple[str, int], int] = {}
    key_split: list[int] = []
    pair_idx, same, pair_split = [], [], []
    for fold, n1, i1, n2, i2, is_same in pairs:
        s = FOLD_SPLIT.get(fold, TEST)
        idx = []
        for key in ((n1, i1), (n2, i2)):
            if key not in keys:
                keys[key] = len(keys)
                key_split.append(s)
            idx.append(keys[key])
        pair_idx.append(idx)
        same.append(is_same)
        pair_split.append(s)
    names = sorted({k[0] for k in keys})
    name_id = {n: i for i, n in enumerate(names)}
    images = [align_with_points(read_rgb(image_path(img_root, n, i)), LFW_MEAN_KEYPOINTS, ctx)[0]
              for n, i in tqdm(keys, desc=f"materialise {NAME}", unit="img", leave=False)]
    return BenchmarkData(
        task="verification", images=np.stack(images), split=np.asarray(key_split, dtype=np.int8),
        targets={"identity": np.asarray([name_id[n] for n, _ in keys], dtype=np.int64),
                 "pairs": np.asarray(pair_idx, dtype=np.int64).reshape(-1, 2),
                 "pair_same": np.asarray(same, dtype=bool), "pair_split": np.asarray(pair_split, dtype=np.int8)},
        meta={"source": str(root), "folds": "0-6 train, 7 val, 8-9 test", "alignment": "fixed crop (mean landmarks)"},
    )


def _subsample_pairs(pairs, ctx: BuildContext):
    """At most n_train/n_val/n_test pairs per split, half matched and half mismatched."""
    rng = np.random.default_rng(ctx.seed)
    caps = ctx.caps
    kept = []
    for s in (TRAIN, VAL, TEST):
        for flag in (True, False):
            idx = [k for k, p in enumerate(pairs) if FOLD_SPLIT.get(p[0], TEST) == s and p[5] == flag]
            cap = caps.get(s, 0) // 2
            if cap and len(idx) > cap:
                idx = sorted(rng.choice(idx, size=cap, replace=False).tolist())
            kept += idx
    return [pairs[k] for k in sorted(kept)]
