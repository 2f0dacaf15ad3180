"""Numbers reported in the literature, each tied to the benchmark protocol it was measured under
(paco_fr.eval.benchmark_protocols). The comparison table prints one beside ours only where the
report's protocol (id and version) is the same and the whole official test split was scored.

They are ViT-B/16-scale models fine-tuned at high resolution on the full official datasets, so they
are context, not a target our CPU-scale probes are expected to reach. A value of None means "not
found in a source we could check": the table shows "n/a", never a guess.

Units are those of the source: percent for accuracies and F1, percent of the normalising distance
for NME (NME_diag for AFLW-19 is a percent too).
"""

from __future__ import annotations

from dataclasses import dataclass

from paco_fr.eval import benchmark_protocols as BP


@dataclass(frozen=True)
class Reported:
    method: str
    value: float | None
    metric: str
    protocol: str            # BenchmarkProtocol.key of the protocol the number was measured under
    source: str
    secondary: bool = False  # taken from an aggregator's listing, not from the authors


# FaRL: FacePerceiver/FaRL README.md, "Performance" table, "Score (Paper/Rep)", the Paper value for
# FaRL-Base-Patch16-LAIONFace20M-ep16 ("used in paper"), ViT-B/16 fine-tuned at 448 px. The
# evaluation code in the same repository (farl/experiments/face_parsing/scorer.py, scorers/*.yaml;
# face_alignment/scorers/*.yaml) is what the parsing and alignment protocols follow.
_FARL_README = "FacePerceiver/FaRL README.md, Performance table (paper column, LAIONFace20M-ep16)"
# CelebA and RAF-DB are not in the README; the numbers below are the ones a results aggregator lists
# for FaRL's paper (arXiv 2112.03109): https://www.wizwand.com/paper/68fa6c301e209131cea32b41
_FARL_AGGREGATOR = "wizwand.com listing of arXiv 2112.03109 (secondary source)"
# MCF (Wang et al., ACM MM 2023, arXiv 2309.03575): the abstract in nomewang/MCF README.md states
# "0.932 NME_diag for AFLW-19 face alignment and 93.96 F1 score for LaPa face parsing"; the other
# numbers are an aggregator's listing of the paper: https://www.wizwand.com/paper/68fa707d1e209131cea4b6f6
_MCF_README = "nomewang/MCF README.md (abstract)"
_MCF_AGGREGATOR = "wizwand.com listing of arXiv 2309.03575 (secondary source)"
# PaCo-FR: only the abstract of arXiv 2508.09691 could be checked (stored copies of
# https://arxiv.org/html/2508.09691v1 and v2 searched); it gives no numbers.
_PACO_ABSTRACT = "arXiv 2508.09691 abstract (no numbers)"

REFERENCES: tuple[Reported, ...] = (
    Reported("FaRL", 93.88, "F1 mean, 10 non-background LaPa classes", BP.LAPA_NATIVE.key, _FARL_README),
    Reported("FaRL", 89.56, "F1 mean, 18 non-background CelebAMask-HQ classes", BP.CELEBAMASK_NATIVE.key,
             _FARL_README),
    Reported("FaRL", 0.943, "NME_diag (full)", BP.AFLW19_BOX.key, _FARL_README),
    Reported("FaRL", 2.93, "NME inter-ocular (full)", BP.W300_BOX.key, _FARL_README),
    Reported("FaRL", 3.96, "NME inter-ocular (test)", BP.WFLW_BOX.key, _FARL_README),
    Reported("FaRL", 91.88, "mean attribute accuracy", BP.CELEBA.key, _FARL_AGGREGATOR, secondary=True),
    Reported("FaRL", 88.31, "accuracy", BP.RAFDB.key, _FARL_AGGREGATOR, secondary=True),
    Reported("MCF", 93.96, "F1 (the abstract does not name the class averaging)", BP.LAPA_NATIVE.key, _MCF_README),
    Reported("MCF", 0.932, "NME_diag", BP.AFLW19_BOX.key, _MCF_README),
    Reported("MCF", 4.16, "NME (test set)", BP.WFLW_BOX.key, _MCF_AGGREGATOR, secondary=True),
    Reported("MCF", 91.33, "accuracy", BP.CELEBA.key, _MCF_AGGREGATOR, secondary=True),
    Reported("MCF", 86.86, "accuracy", BP.RAFDB.key, _MCF_AGGREGATOR, secondary=True),
    *(Reported("PaCo-FR", None, "-", p.key, _PACO_ABSTRACT)
      for p in (BP.LAPA_NATIVE, BP.CELEBAMASK_NATIVE, BP.AFLW19_BOX, BP.W300_BOX, BP.WFLW_BOX, BP.CELEBA, BP.RAFDB)),
)
METHODS: tuple[str, ...] = ("PaCo-FR", "FaRL", "MCF")
LABEL_SUFFIX = "reported, ViT-B/16 scale"


def lookup(method: str, protocol_key: str) -> Reported | None:
    """The number `method` published under `protocol_key`, if any."""
    return next((r for r in REFERENCES if r.method == method and r.protocol == protocol_key), None)
