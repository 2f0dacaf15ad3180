"""Named benchmark protocols: which test set, which crop of the face, which label set, which metric.

A number is comparable with a published one only when both were measured under the same protocol.
Every report records its benchmark's protocol (``report.json["benchmark_protocol"]``: id, version,
title, whether it is a standard of the literature, whose protocol it follows, and whether the whole
official test split was scored); the comparison table lists them and prints a published number
beside ours only where the protocol (id and version) is the same and the whole test split was
scored (paco_fr.eval.reported).

The probe (``eval.protocol``: linear, knn, finetune) is a separate choice: it says how the
features are turned into predictions, not what is measured.

A protocol's version goes up whenever what it measures changes (crop, labels, split, metric), so
that reports of two versions never share a column and a published number is never printed beside
a protocol it was not checked against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BenchmarkProtocol:
    id: str
    version: int
    title: str
    primary: str                 # the primary metric's name in report.json
    higher_is_better: bool
    standard: bool               # a protocol of the literature; False: this project's own
    follows: str                 # whose protocol, or why it is ours
    subsets: tuple[str, ...] = ()  # reported as <primary>/<subset>

    @property
    def key(self) -> str:
        return f"{self.id} v{self.version}"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "version": self.version, "key": self.key, "title": self.title,
                "primary_metric": self.primary, "higher_is_better": self.higher_is_better,
                "standard": self.standard, "follows": self.follows, "subsets": list(self.subsets)}


_OURS = "this project's own (no published numbers use it)"
_HRNET_BOX = ("HRNet face alignment (Wang et al., TPAMI 2019; HRNet/HRNet-Facial-Landmark-Detection) as FaRL "
              "uses it: a square box around the face, no rotation, scale x1.25; NME over all points divided by "
              "the outer-eye-corner distance, in the original image")
_FARL_PARSING = ("FaRL's face parsing evaluation (FacePerceiver/FaRL, farl/experiments/face_parsing): the "
                 "dataset's own classes, predicted logits warped back to the original image, F1 per class from "
                 "counts over the whole test set, mean over the non-background classes")

SYNTHETIC_ATTRIBUTES = BenchmarkProtocol(
    "synthetic/attributes/mean-acc", 1, "procedural faces, 11 binary attributes, 5-point aligned crops, mean accuracy",
    "mean_accuracy", True, False, _OURS)
SYNTHETIC_EXPRESSION = BenchmarkProtocol(
    "synthetic/expression/acc", 1, "procedural faces, 5 expressions, 5-point aligned crops, accuracy",
    "accuracy", True, False, _OURS)
SYNTHETIC_LANDMARKS = BenchmarkProtocol(
    "synthetic/landmarks-68/gt-aligned-nme-io", 1,
    "procedural faces, 68 points, 5-point aligned crops + random similarity jitter, inter-ocular NME",
    "nme", False, False, _OURS)
SYNTHETIC_PARSING = BenchmarkProtocol(
    "synthetic/parsing-9/f1-crop", 1, "procedural faces, our 9 regions in the aligned crop, mean F1 without background",
    "mean_f1", True, False, _OURS)
SYNTHETIC_VERIFICATION = BenchmarkProtocol(
    "synthetic/verification/roc-auc", 1, "procedural faces, identity-disjoint splits, same/different pairs, ROC AUC",
    "roc_auc", True, False, _OURS)
LFW_SUBSET_FACES = BenchmarkProtocol(
    "skimage-lfw-subset/face-vs-nonface/acc", 1, "scikit-image lfw_subset, faces vs non-faces, fixed 100/40/60 split",
    "accuracy", True, False, _OURS)

CELEBA = BenchmarkProtocol(
    "celeba/official-test/mean-acc-40", 1,
    "CelebA official partition, 40 binary attributes, mean accuracy on the test split",
    "mean_accuracy", True, True, "CelebA (Liu et al., ICCV 2015) official partition; the metric FaRL and MCF report")
LFW_10FOLD = BenchmarkProtocol(
    "lfw/view2-10fold/acc", 1,
    "LFW View 2, 10 folds, unrestricted with labeled outside data: threshold chosen on 9 folds, accuracy on the "
    "10th, mean +- sd over folds (and ROC AUC)",
    "accuracy", True, True,
    "LFW View 2 (Huang et al. 2007; Huang and Learned-Miller 2014 update): 10-fold cross-validation; "
    "'unrestricted, labeled outside data' since the encoder was pre-trained on outside faces and the probe uses "
    "the identity labels of the 9 training folds")
RAFDB = BenchmarkProtocol(
    "raf-db/basic-test/acc", 1, "RAF-DB basic, 7 expressions, overall accuracy on the official test list",
    "accuracy", True, True, "RAF-DB (Li et al., CVPR 2017) basic emotion test list; the metric FaRL and MCF report")
W300_BOX = BenchmarkProtocol(
    "300w/box-crop/nme-io", 1,
    "300W, 68 points, box crop (no roll removed), inter-ocular NME on the full test set (common + challenging)",
    "nme", False, True, _HRNET_BOX, subsets=("common", "challenging"))
W300_ALIGNED = BenchmarkProtocol(
    "300w/gt-aligned/nme-io", 1,
    "300W, 68 points, test faces aligned by their ground-truth landmarks (+ jitter), inter-ocular NME",
    "nme", False, False, _OURS + "; roll and scale come from the ground truth, so it is easier than the box crop",
    subsets=("common", "challenging"))
WFLW_BOX = BenchmarkProtocol(
    "wflw/box-crop/nme-io", 1,
    "WFLW, 98 points, box crop (no roll removed), inter-ocular NME on the test set and its six subsets",
    "nme", False, True, _HRNET_BOX,
    subsets=("pose", "expression", "illumination", "make_up", "occlusion", "blur"))
WFLW_ALIGNED = BenchmarkProtocol(
    "wflw/gt-aligned/nme-io", 1,
    "WFLW, 98 points, test faces aligned by their ground-truth landmarks (+ jitter), inter-ocular NME",
    "nme", False, False, _OURS + "; roll and scale come from the ground truth, so it is easier than the box crop",
    subsets=("pose", "expression", "illumination", "make_up", "occlusion", "blur"))
LAPA_NATIVE = BenchmarkProtocol(
    "lapa/native-11/f1-original", 1,
    "LaPa, its 11 classes, predictions warped back to the original image, F1 per class, mean over the 10 "
    "non-background classes", "mean_f1", True, True, _FARL_PARSING)
LAPA_REGIONS = BenchmarkProtocol(
    "lapa/regions-9/f1-crop", 1, "LaPa mapped onto our 9 regions, scored in the aligned crop, mean F1 without background",
    "mean_f1", True, False, _OURS)
CELEBAMASK_NATIVE = BenchmarkProtocol(
    "celebamask-hq/native-19/f1-512", 1,
    "CelebAMask-HQ, its 19 classes painted in FaRL's order, predictions resized back to the 512 x 512 masks, F1 per "
    "class, mean over the 18 non-background classes", "mean_f1", True, True, _FARL_PARSING)
CELEBAMASK_REGIONS = BenchmarkProtocol(
    "celebamask-hq/regions-9/f1-crop", 1,
    "CelebAMask-HQ mapped onto our 9 regions, scored at the crop size, mean F1 without background",
    "mean_f1", True, False, _OURS)
# No adapter reads AFLW-19 yet; the protocol is named so that published numbers can say what they are.
AFLW19_BOX = BenchmarkProtocol(
    "aflw-19/box-crop/nme-diag", 1, "AFLW-19 full test set, NME by the box diagonal", "nme_diag", False, True,
    "FaRL / HRNet AFLW-19 protocol (no adapter in this project)")

ALL: tuple[BenchmarkProtocol, ...] = (
    SYNTHETIC_ATTRIBUTES, SYNTHETIC_EXPRESSION, SYNTHETIC_LANDMARKS, SYNTHETIC_PARSING, SYNTHETIC_VERIFICATION,
    LFW_SUBSET_FACES, CELEBA, LFW_10FOLD, RAFDB, W300_BOX, W300_ALIGNED, WFLW_BOX, WFLW_ALIGNED, LAPA_NATIVE,
    LAPA_REGIONS, CELEBAMASK_NATIVE, CELEBAMASK_REGIONS, AFLW19_BOX,
)
BY_KEY: dict[str, BenchmarkProtocol] = {p.key: p for p in ALL}
