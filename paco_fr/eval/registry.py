"""The benchmark registry: name -> what it measures, how it is loaded, and how it is scored.

Embedded benchmarks run offline with nothing but the installed packages; standard ones read an
official dataset layout from ``--data-root``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from paco_fr.eval import embedded
from paco_fr.eval.build import BuildContext
from paco_fr.eval.data import BenchmarkData
from paco_fr.eval.scoring import PRIMARY

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
    default_protocol: str = "linear"

    @property
    def primary_metric(self) -> str:
        return PRIMARY[self.task][0]

    @property
    def higher_is_better(self) -> bool:
        return PRIMARY[self.task][1]

    @property
    def metrics(self) -> tuple[str, ...]:
        return _METRICS[self.task]


_METRICS = {
    "attributes": ("mean_accuracy", "accuracy/<attribute>"),
    "expression": ("accuracy", "mean_class_recall"),
    "classification": ("accuracy", "mean_class_recall"),
    "landmarks": ("nme", "failure_rate@0.10", "auc@0.10"),
    "parsing": ("mean_f1", "f1/<class>"),
    "verification": ("roc_auc", "tar@far=1e-2"),
}


def _lazy(module: str, function: str = "build") -> Callable[[BuildContext], BenchmarkData]:
    def load(ctx: BuildContext) -> BenchmarkData:
        import importlib

        return getattr(importlib.import_module(module), function)(ctx)

    load.__qualname__ = f"{module}.{function}"
    return load


_ALL = (
    Benchmark("synthetic_attributes", "attributes", embedded.build_synthetic_attributes, True, False, None,
              "procedural faces: binary attributes, mean accuracy over attributes"),
    Benchmark("synthetic_expression", "expression", embedded.build_synthetic_expression, True, False, None,
              "procedural faces: expression classes, accuracy"),
    Benchmark("synthetic_landmarks", "landmarks", embedded.build_synthetic_landmarks, True, False, None,
              "procedural faces: 68 landmarks, inter-ocular NME"),
    Benchmark("synthetic_parsing", "parsing", embedded.build_synthetic_parsing, True, False, None,
              "procedural faces: region maps, mean F1 without background"),
    Benchmark("synthetic_verification", "verification", embedded.build_synthetic_verification, True, False, None,
              "procedural faces: same/different identity pairs, ROC AUC"),
    Benchmark("lfw_subset_faces", "classification", embedded.build_lfw_subset_faces, False, False, None,
              "scikit-image lfw_subset: 100 faces vs 100 non-faces, accuracy"),
    Benchmark("celeba_attributes", "attributes", _lazy("paco_fr.eval.adapters.celeba"), False, True, "CelebA",
              "CelebA: 40 attributes, mean accuracy (official partition)"),
    Benchmark("lfw_verification", "verification", _lazy("paco_fr.eval.adapters.lfw"), False, True, None,
              "LFW View 2 pairs: ROC AUC (folds 0-6 train, 7 val, 8-9 test)"),
    Benchmark("rafdb_expression", "expression", _lazy("paco_fr.eval.adapters.rafdb"), False, True, "RAF-DB",
              "RAF-DB basic: 7 expressions, accuracy"),
    Benchmark("300w_landmarks", "landmarks", _lazy("paco_fr.eval.adapters.ibug300w"), False, True, "300W",
              "300W: 68 landmarks, inter-ocular NME (full = common + challenging)"),
    Benchmark("wflw_landmarks", "landmarks", _lazy("paco_fr.eval.adapters.wflw"), False, True, "WFLW",
              "WFLW: 98 landmarks, inter-ocular NME"),
    Benchmark("lapa_parsing", "parsing", _lazy("paco_fr.eval.adapters.parsing", "build_lapa"), False, True, "LaPa",
              "LaPa: parsing mapped to our 9 regions, mean F1 without background"),
    Benchmark("celebamask_hq_parsing", "parsing", _lazy("paco_fr.eval.adapters.parsing", "build_celebamask_hq"),
              False, True, "CelebAMask-HQ",
              "CelebAMask-HQ: parsing mapped to our 9 regions, mean F1 without background"),
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
    rows = [("name", "task", "data", "paper", "primary metric", "description")]
    for b in _ALL:
        data = "synthetic" if b.synthetic else ("--data-root" if b.needs_data_root else "embedded, real")
        rows.append((b.name, b.task, data, b.paper_name or "-",
                     f"{b.primary_metric} ({'higher' if b.higher_is_better else 'lower'} is better)", b.description))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows)
