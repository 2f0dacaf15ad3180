"""The benchmark registry: name -> what it measures (its named protocol), how it is loaded, and how
it is scored.

Embedded benchmarks run offline with nothing but the installed packages; standard ones read an
official dataset layout from ``--data-root``. Each has one benchmark protocol
(paco_fr.eval.benchmark_protocols); a dataset read under two protocols is two benchmarks
(``300w_landmarks`` with the standard box crop, ``300w_landmarks_aligned`` with ours).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from paco_fr.eval import benchmark_protocols as BP
from paco_fr.eval import embedded
from paco_fr.eval.benchmark_protocols import BenchmarkProtocol
from paco_fr.eval.build import BuildContext
from paco_fr.eval.data import BenchmarkData

TASKS = ("attributes", "expression", "landmarks", "parsing", "verification", "classification")


@dataclass(frozen=True)
class Benchmark:
    name: str
    task: str
    loader: Callable[[BuildContext], BenchmarkData]
    synthetic: bool
    needs_data_root: bool
    paper_name: str | None      # the benchmark of the PaCo-FR paper this corresponds to, if any
    description: str
    protocol: BenchmarkProtocol
    default_protocol: str = "linear"

    @property
    def primary_metric(self) -> str:
        return self.protocol.primary

    @property
    def higher_is_better(self) -> bool:
        return self.protocol.higher_is_better


def _lazy(module: str, function: str = "build") -> Callable[[BuildContext], BenchmarkData]:
    def load(ctx: BuildContext) -> BenchmarkData:
        import importlib

        return getattr(importlib.import_module(module), function)(ctx)

    load.__qualname__ = f"{module}.{function}"
    return load


_A = "paco_fr.eval.adapters."
_ALL = (
    Benchmark("synthetic_attributes", "attributes", embedded.build_synthetic_attributes, True, False, None,
              "procedural faces: binary attributes, mean accuracy over attributes", BP.SYNTHETIC_ATTRIBUTES),
    Benchmark("synthetic_expression", "expression", embedded.build_synthetic_expression, True, False, None,
              "procedural faces: expression classes, accuracy", BP.SYNTHETIC_EXPRESSION),
    Benchmark("synthetic_landmarks", "landmarks", embedded.build_synthetic_landmarks, True, False, None,
              "procedural faces: 68 landmarks, inter-ocular NME", BP.SYNTHETIC_LANDMARKS),
    Benchmark("synthetic_parsing", "parsing", embedded.build_synthetic_parsing, True, False, None,
              "procedural faces: region maps, mean F1 without background", BP.SYNTHETIC_PARSING),
    Benchmark("synthetic_verification", "verification", embedded.build_synthetic_verification, True, False, None,
              "procedural faces: same/different identity pairs, ROC AUC", BP.SYNTHETIC_VERIFICATION),
    Benchmark("lfw_subset_faces", "classification", embedded.build_lfw_subset_faces, False, False, None,
              "scikit-image lfw_subset: 100 faces vs 100 non-faces, accuracy", BP.LFW_SUBSET_FACES),
    Benchmark("celeba_attributes", "attributes", _lazy(_A + "celeba"), False, True, "CelebA",
              "CelebA: 40 attributes, mean accuracy (official partition)", BP.CELEBA),
    Benchmark("lfw_verification", "verification", _lazy(_A + "lfw"), False, True, None,
              "LFW View 2: 10-fold accuracy +- sd (threshold on 9 folds), and ROC AUC", BP.LFW_10FOLD),
    Benchmark("rafdb_expression", "expression", _lazy(_A + "rafdb"), False, True, "RAF-DB",
              "RAF-DB basic: 7 expressions, accuracy on the test list", BP.RAFDB),
    Benchmark("300w_landmarks", "landmarks", _lazy(_A + "ibug300w"), False, True, "300W",
              "300W: 68 landmarks, box crop, inter-ocular NME (full; common, challenging)", BP.W300_BOX),
    Benchmark("300w_landmarks_aligned", "landmarks", _lazy(_A + "ibug300w", "build_aligned"), False, True, None,
              "300W: 68 landmarks, ground-truth-aligned crops (ours), inter-ocular NME", BP.W300_ALIGNED),
    Benchmark("wflw_landmarks", "landmarks", _lazy(_A + "wflw"), False, True, "WFLW",
              "WFLW: 98 landmarks, box crop, inter-ocular NME (test and six subsets)", BP.WFLW_BOX),
    Benchmark("wflw_landmarks_aligned", "landmarks", _lazy(_A + "wflw", "build_aligned"), False, True, None,
              "WFLW: 98 landmarks, ground-truth-aligned crops (ours), inter-ocular NME", BP.WFLW_ALIGNED),
    Benchmark("lapa_parsing", "parsing", _lazy(_A + "parsing", "build_lapa"), False, True, "LaPa",
              "LaPa: 11 native classes, F1 on the original image, mean over 10 classes", BP.LAPA_NATIVE),
    Benchmark("lapa_parsing_regions", "parsing", _lazy(_A + "parsing", "build_lapa_regions"), False, True, None,
              "LaPa mapped to our 9 regions, F1 in the aligned crop (ours)", BP.LAPA_REGIONS),
    Benchmark("celebamask_hq_parsing", "parsing", _lazy(_A + "parsing", "build_celebamask_hq"), False, True,
              "CelebAMask-HQ", "CelebAMask-HQ: 19 native classes, F1 at 512 x 512, mean over 18 classes",
              BP.CELEBAMASK_NATIVE),
    Benchmark("celebamask_hq_parsing_regions", "parsing", _lazy(_A + "parsing", "build_celebamask_hq_regions"),
              False, True, None, "CelebAMask-HQ mapped to our 9 regions, F1 at the crop size (ours)",
              BP.CELEBAMASK_REGIONS),
)

REGISTRY: dict[str, Benchmark] = {b.name: b for b in _ALL}
EMBEDDED: tuple[str, ...] = tuple(b.name for b in _ALL if not b.needs_data_root)


def get(name: str) -> Benchmark:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown benchmark {name!r} (known: {', '.join(REGISTRY)})") from None


def describe() -> str:
    """A table of the registry for `paco-fr evaluate --list`."""
    rows = [("name", "task", "data", "paper", "protocol", "primary metric", "description")]
    for b in _ALL:
        data = "synthetic" if b.synthetic else ("--data-root" if b.needs_data_root else "embedded, real")
        rows.append((b.name, b.task, data, b.paper_name or "-",
                     b.protocol.key + (" (standard)" if b.protocol.standard else ""),
                     f"{b.primary_metric} ({'higher' if b.higher_is_better else 'lower'} is better)", b.description))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows)
