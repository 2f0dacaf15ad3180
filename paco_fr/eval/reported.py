"""Numbers reported in the literature, shown beside ours in the comparison table for the paper's
benchmarks. They are ViT-B/16-scale models fine-tuned at high resolution on the full official
datasets (and, for parsing, on the datasets' own class sets), so they are context, not a target
our CPU-scale probes are expected to reach. None means "not found in a source we could check";
the table shows "n/a" for it, never a guess.

Units are those of the source: percent for accuracies and F1, percent of the normalising
distance for NME.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reported:
    value: float | None
    metric: str
    source: str


# FaRL: FacePerceiver/FaRL README.md, "Performance" table, "Score (Paper/Rep)", the Paper value
# for FaRL-Base-Patch16-LAIONFace20M-ep16 ("used in paper"), ViT-B/16 fine-tuned at 448 px.
_FARL_README = "FacePerceiver/FaRL README.md, Performance table (paper column, LAIONFace20M-ep16)"
# CelebA and RAF-DB are not in the README; the numbers below are the ones a results aggregator lists
# for FaRL's paper (arXiv 2112.03109): https://www.wizwand.com/paper/68fa6c301e209131cea32b41
# ("Facial Attribute Classification, CelebA (test), Average Acc 91.88"; "Facial Expression
# Recognition, RAF-DB (test), Accuracy 88.31"). Secondary source: flagged as such in the table.
_FARL_AGGREGATOR = "wizwand.com listing of arXiv 2112.03109 (secondary source)"

FARL: dict[str, Reported] = {
    "LaPa": Reported(93.88, "F1-mean (11 LaPa classes)", _FARL_README),
    "CelebAMask-HQ": Reported(89.56, "F1-mean (CelebAMask-HQ classes)", _FARL_README),
    "AFLW-19": Reported(0.943, "NME_diag (full)", _FARL_README),
    "300W": Reported(2.93, "NME inter-ocular (full)", _FARL_README),
    "WFLW": Reported(3.96, "NME inter-ocular (full)", _FARL_README),
    "CelebA": Reported(91.88, "mean attribute accuracy", _FARL_AGGREGATOR),
    "RAF-DB": Reported(88.31, "accuracy", _FARL_AGGREGATOR),
}

# PaCo-FR: only the abstract of arXiv 2508.09691 could be checked (stored copies of
# https://arxiv.org/html/2508.09691v1 and v2 searched); it states "state-of-the-art performance
# across several facial analysis tasks with just 2 million unlabeled images" and gives no numbers.
_PACO_ABSTRACT = "arXiv 2508.09691 abstract (no numbers)"
PACO_FR: dict[str, Reported] = {
    name: Reported(None, "-", _PACO_ABSTRACT)
    for name in ("LaPa", "CelebAMask-HQ", "AFLW-19", "300W", "WFLW", "CelebA", "RAF-DB")
}

PAPER_BENCHMARKS = tuple(PACO_FR)
LABEL_SUFFIX = "reported, ViT-B/16 scale"
