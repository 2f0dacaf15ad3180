"""RAF-DB basic expression (7 classes), official layout:

    ROOT/EmoLabel/list_patition_label.txt     "<train|test>_<id>.jpg <1..7>" (the file name's typo is official)
    ROOT/Image/aligned/<stem>_aligned.jpg     100 x 100 aligned faces

Labels 1..7 = surprise, fear, disgust, happiness, sadness, anger, neutral. `train_*` images are
train (a stratified n_val/(n_train+n_val) of them becomes val), `test_*` images are test.
The aligned crops are tighter than our zoom-0.8 template; they are resized as they are.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from paco_fr.eval.adapters._common import carve_val, find_dir, find_file, text_lines
from paco_fr.eval.build import BuildContext, read_rgb, resize_square
from paco_fr.eval.data import BenchmarkData, BenchmarkDataError, TEST, TRAIN, subsample_per_split, whole_split_kept

NAME = "rafdb_expression"
CLASSES = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")


def read_labels(path) -> tuple[list[str], np.ndarray, np.ndarray]:
    files, labels, split = [], [], []
    for line_no, tokens in text_lines(path):
        if len(tokens) != 2 or tokens[1] not in {str(i) for i in range(1, 8)}:
            raise BenchmarkDataError(f"{path}:{line_no}: expected '<file>.jpg <1..7>', got {' '.join(tokens)!r}")
        if tokens[0].startswith("train"):
            split.append(TRAIN)
        elif tokens[0].startswith("test"):
            split.append(TEST)
        else:
            raise BenchmarkDataError(f"{path}:{line_no}: file name {tokens[0]!r} starts with neither train nor test")
        files.append(tokens[0])
        labels.append(int(tokens[1]) - 1)
    if not files:
        raise BenchmarkDataError(f"{path}: no labelled images")
    return files, np.asarray(labels, dtype=np.int64), np.asarray(split, dtype=np.int8)


def build(ctx: BuildContext) -> BenchmarkData:
    root = ctx.require_root(NAME)
    label_path = find_file(root, "list_patition_label.txt", ("EmoLabel", ""), "RAF-DB basic labels")
    img_dir = find_dir(root, "aligned", ("Image", ""), "RAF-DB aligned images Image/aligned/*_aligned.jpg")
    files, labels, split = read_labels(label_path)
    val_fraction = ctx.n_val / max(ctx.n_train + ctx.n_val, 1)
    split = carve_val(split, labels, val_fraction, ctx.seed)
    keep = subsample_per_split(split, ctx.caps, ctx.seed)
    images = []
    for i in tqdm(keep, desc=f"materialise {NAME}", unit="img", leave=False):
        stem = files[i].rsplit(".", 1)[0]
        images.append(resize_square(read_rgb(img_dir / f"{stem}_aligned.jpg"), ctx.crop_size))
    return BenchmarkData(
        task="expression", images=np.stack(images), split=split[keep], targets={"label": labels[keep]},
        meta={"class_names": list(CLASSES), "source": str(root), "alignment": "official aligned crops, resized",
              "val": f"stratified {val_fraction:.3f} of train", "full_test_split": whole_split_kept(split, keep)},
    )
