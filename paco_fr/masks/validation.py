"""The quality gate of face_regions: a Great Expectations suite over regions.parquet.

Per face: an id that is present and unique, a known provider, every coverage within [0, 1] and the
coverages summing to 1, and a non-empty skin region (failures listed by face id). Per class: the mean
coverage within `RegionsConfig.coverage` (DEFAULT_COVERAGE for classes it leaves out; head_other is
not checked when `segment_head` is off). `validate_regions` is what the stage and Dagster's blocking
asset check call.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from paco_fr.masks.config import CoverageRange, RegionsConfig
from paco_fr.masks.regions import PROVIDERS
from paco_fr.masks.regions_def import REGIONS

# Allowed mean share of crop pixels per class over a corpus of aligned crops. Measured means at
# template_zoom 0.8 (docs/masks.md): ground truth of 300 procedural faces, MediaPipe-derived maps of
# the same faces, and two photos; each range spans about 0.4x to 2.5x of those means, which also
# covers zoom 0.7-1.0 (feature areas scale with the square of the zoom).
DEFAULT_COVERAGE: dict[str, CoverageRange] = {
    "background": CoverageRange(0.10, 0.70),
    "head_other": CoverageRange(0.10, 0.65),
    "skin": CoverageRange(0.12, 0.60),
    "left_brow": CoverageRange(0.001, 0.012),
    "right_brow": CoverageRange(0.001, 0.012),
    "left_eye": CoverageRange(0.001, 0.010),
    "right_eye": CoverageRange(0.001, 0.010),
    "nose": CoverageRange(0.005, 0.045),
    "mouth": CoverageRange(0.004, 0.035),
}

SUITE_NAME = "face_regions"
_MAX_LISTED = 200  # face ids listed per failing expectation


class RegionsValidationError(RuntimeError):
    """The region maps failed the quality gate; `report` holds every failing expectation."""

    def __init__(self, report: "RegionsValidationReport") -> None:
        self.report = report
        super().__init__(report.describe_failures())


def coverage_column(name: str) -> str:
    return f"coverage_{name}"


def coverage_ranges(cfg: RegionsConfig) -> dict[str, CoverageRange]:
    return {name: cfg.coverage.get(name, DEFAULT_COVERAGE[name]) for name in REGIONS}


@dataclass
class ExpectationOutcome:
    expectation: str
    column: str | None
    success: bool
    observed: Any = None
    failing_face_ids: list[str] = field(default_factory=list)
    n_failing: int = 0

    def __str__(self) -> str:
        where = f" {self.column}" if self.column else ""
        if self.n_failing:
            listed = ", ".join(self.failing_face_ids[:20]) + (" ..." if self.n_failing > 20 else "")
            return f"{self.expectation}{where}: {self.n_failing} faces: {listed}"
        return f"{self.expectation}{where}: observed {self.observed}"


@dataclass
class RegionsValidationReport:
    success: bool
    n_faces: int
    expectations: list[ExpectationOutcome]
    suite: str = SUITE_NAME

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [e for e in self.expectations if not e.success]

    @property
    def evaluated(self) -> int:
        return len(self.expectations)

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "success": self.success, "n_faces": self.n_faces,
                "n_expectations": len(self.expectations), "n_failed": len(self.failures),
                "failures": [asdict(e) for e in self.failures],
                "expectations": [asdict(e) for e in self.expectations]}

    def describe_failures(self) -> str:
        lines = [f"face_regions failed {len(self.failures)} of {len(self.expectations)} expectations "
                 f"({self.n_faces} faces):"]
        lines += [f"  - {e}" for e in self.failures]
        return "\n".join(lines)


def validate_regions(df, cfg: RegionsConfig) -> RegionsValidationReport:
    """Run the suite on a regions table (a pandas DataFrame with face_id, provider, coverage_<class>)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx  # noqa: PLC0415 - heavy; GPU machines do not have it
    import great_expectations.expectations as gxe  # noqa: PLC0415

    missing = [c for c in ("face_id", "provider", *map(coverage_column, REGIONS)) if c not in df.columns]
    if missing:
        raise ValueError(f"regions table lacks columns {missing}")
    if len(df) == 0:
        raise ValueError("regions table is empty: nothing to validate")
    table = df.copy()
    table["coverage_total"] = table[[coverage_column(n) for n in REGIONS]].sum(axis=1)

    expectations: list[Any] = [
        gxe.ExpectColumnValuesToNotBeNull(column="face_id"),
        gxe.ExpectColumnValuesToBeUnique(column="face_id"),
        gxe.ExpectColumnValuesToBeInSet(column="provider", value_set=list(PROVIDERS)),
        gxe.ExpectColumnValuesToBeBetween(column="coverage_skin", min_value=0.0, strict_min=True),
        gxe.ExpectColumnValuesToBeBetween(column="coverage_total", min_value=0.999, max_value=1.001),
    ]
    for name in REGIONS:
        expectations.append(gxe.ExpectColumnValuesToBeBetween(column=coverage_column(name),
                                                              min_value=0.0, max_value=1.0))
    for name, allowed in coverage_ranges(cfg).items():
        if name == "head_other" and not cfg.segment_head:
            continue
        expectations.append(gxe.ExpectColumnMeanToBeBetween(column=coverage_column(name),
                                                            min_value=allowed.min, max_value=allowed.max))

    context = gx.get_context(mode="ephemeral")
    _quiet(context)
    batch = (context.data_sources.add_pandas("regions")
             .add_dataframe_asset("regions_table")
             .add_batch_definition_whole_dataframe("all_faces"))
    suite = context.suites.add(gx.ExpectationSuite(name=SUITE_NAME))
    for expectation in expectations:
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{SUITE_NAME}_check", data=batch, suite=suite))
    result = definition.run(batch_parameters={"dataframe": table},
                            result_format={"result_format": "COMPLETE",
                                           "unexpected_index_column_names": ["face_id"]})
    outcomes = [_outcome(r.to_json_dict()) for r in result.results]
    return RegionsValidationReport(success=bool(result.success), n_faces=len(table), expectations=outcomes)


def _outcome(result: dict[str, Any]) -> ExpectationOutcome:
    config = result["expectation_config"]
    details = result.get("result") or {}
    failing = [str(row.get("face_id")) for row in details.get("unexpected_index_list") or []
               if isinstance(row, dict)]
    observed = details.get("observed_value")
    return ExpectationOutcome(
        expectation=config["type"],
        column=config.get("kwargs", {}).get("column"),
        success=bool(result["success"]),
        observed=float(observed) if isinstance(observed, (int, float)) else observed,
        failing_face_ids=sorted(set(failing))[:_MAX_LISTED],
        n_failing=int(details.get("unexpected_count") or 0),
    )


def _quiet(context: Any) -> None:
    """No per-metric progress bars in logs (the stage has its own)."""
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: PLC0415

        context.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # noqa: BLE001 - cosmetic only; an API change here must not fail validation
        pass
