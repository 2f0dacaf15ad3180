"""The Great Expectations suite that a face corpus must pass, and its report.

`validate_manifest(manifest_df, cfg)` runs the suite in an ephemeral GX context on the manifest
plus three derived columns, and returns a plain :class:`ValidationReport`. `curate` writes it to
`validation.json` and raises :class:`CorpusValidationError` when it fails; Dagster's blocking asset
check calls the same function.

Derived columns (computed here, never stored in the manifest; one expectation on a derived column
is much cheaper than one per source column, and its unexpected values still name the culprit):

- ``_null_required``: the names of the required columns that are null (or absent) in the row; must
  be empty.
- ``_kp_min`` / ``_kp_max``: the smallest and largest of the row's 10 keypoint coordinates; both
  must lie within [0, crop_size].
- ``_is_val`` / ``_is_test``: 1.0 for rows of that split. Their sums are the split sizes: at least
  the target (paco_fr.data.splits.split_targets) and less than the target plus the largest split
  unit (the last unit taken is kept whole).
- ``_splits_per_unit``: how many different splits the rows of the same split unit fall in; must be
  1 (no identity or image leaks across splits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from paco_fr.data.config import CurationConfig
from paco_fr.data.manifest import MANIFEST_REQUIRED
from paco_fr.data.splits import split_targets

SPLITS = ("train", "val", "test")
LANDMARK_SOURCES = ("mediapipe", "ground_truth", "ibug68")
LANDMARK_SCHEMES = ("mediapipe478", "ibug68")
SUITE_NAME = "face_corpus_manifest"


@dataclass
class ExpectationOutcome:
    expectation: str
    kwargs: dict[str, Any]
    success: bool
    observed: Any = None
    unexpected_count: int | None = None
    unexpected_examples: list[Any] = field(default_factory=list)

    def describe(self) -> str:
        target = self.kwargs.get("column") or self.kwargs.get("column_list") or ""
        bits = [f"{self.expectation}({target})" if target else self.expectation]
        if self.observed is not None:
            bits.append(f"observed={self.observed!r}")
        if self.unexpected_count:
            bits.append(f"unexpected={self.unexpected_count} e.g. {self.unexpected_examples[:3]!r}")
        limits = {k: v for k, v in self.kwargs.items() if k in ("min_value", "max_value", "value_set", "regex")}
        if limits:
            bits.append(f"expected {limits}")
        return " ".join(bits)


@dataclass
class ValidationReport:
    success: bool
    n_rows: int
    outcomes: list[ExpectationOutcome]
    suite: str = SUITE_NAME
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def to_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "success": self.success,
            "n_rows": self.n_rows,
            "n_expectations": len(self.outcomes),
            "n_failed": len(self.failures),
            "failed": [o.describe() for o in self.failures],
            "notes": list(self.notes),
            "results": [
                {"expectation": o.expectation, "kwargs": _jsonable(o.kwargs), "success": o.success,
                 "observed": _jsonable(o.observed), "unexpected_count": o.unexpected_count,
                 "unexpected_examples": _jsonable(o.unexpected_examples[:10])}
                for o in self.outcomes
            ],
        }


class CorpusValidationError(RuntimeError):
    """The manifest failed the suite; the message lists every failing expectation."""

    def __init__(self, report: ValidationReport, where: str = "") -> None:
        self.report = report
        lines = "\n".join(f"  - {o.describe()}" for o in report.failures)
        super().__init__(f"face corpus{(' ' + where) if where else ''} failed validation "
                         f"({len(report.failures)} of {len(report.outcomes)} expectations):\n{lines}")


def split_units(df: pd.DataFrame) -> pd.Series:
    """The key each row was split by: its identity when known, else its source image."""
    identity = df["identity"] if "identity" in df else pd.Series([None] * len(df), index=df.index)
    source = df["source_sha256"] if "source_sha256" in df else pd.Series(["?"] * len(df), index=df.index)
    return ("identity:" + identity.astype("string")).fillna("source:" + source.astype("string"))


KEYPOINT_COLUMNS = [f"kp{i}_{axis}" for i in range(5) for axis in ("x", "y")]


def _derived_frame(df: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    frame = df.drop(columns=[c for c in ("sidecar_paths",) if c in df]).copy()
    required = [c for c in MANIFEST_REQUIRED if c != "sidecar_paths"]
    nulls = pd.DataFrame({c: (frame[c].isna() if c in frame else pd.Series(True, index=frame.index))
                          for c in required}, index=frame.index)
    # Names of the null columns, per row, without a Python call per row (2M rows at scale).
    named = pd.DataFrame(np.where(nulls.to_numpy(), np.array([c + "," for c in required], dtype=object), ""),
                         index=frame.index, columns=required)
    frame["_null_required"] = named.sum(axis=1).str.rstrip(",") if len(frame) else pd.Series([], dtype="str")
    keypoints = frame.reindex(columns=KEYPOINT_COLUMNS).astype(float)
    # A missing coordinate counts as outside the crop.
    frame["_kp_min"] = keypoints.fillna(-np.inf).min(axis=1)
    frame["_kp_max"] = keypoints.fillna(np.inf).max(axis=1)
    if "split" in frame:
        frame["_is_val"] = (frame["split"] == "val").astype(float)
        frame["_is_test"] = (frame["split"] == "test").astype(float)
        units = split_units(frame)
        frame["_splits_per_unit"] = frame.groupby(units)["split"].transform("nunique").astype(float)
        largest_unit = int(units.value_counts().max()) if len(units) else 0
    else:
        largest_unit = 0
    return frame, largest_unit


def build_expectations(cfg: CurationConfig, n_rows: int, largest_unit: int) -> tuple[list[Any], list[str]]:
    import great_expectations as gx  # noqa: PLC0415 - slow import; only when validating

    E = gx.expectations
    q = cfg.quality
    out: list[Any] = [
        E.ExpectTableRowCountToBeBetween(min_value=1),
        E.ExpectColumnValuesToBeUnique(column="face_id"),
        E.ExpectColumnValuesToMatchRegex(column="face_id", regex=r"^[0-9a-f]{16}$"),
        E.ExpectColumnValuesToMatchRegex(column="source_sha256", regex=r"^[0-9a-f]{64}$"),
        E.ExpectColumnValuesToMatchRegex(column="phash", regex=r"^[0-9a-f]{64}$"),
        E.ExpectColumnValuesToMatchRegex(column="image_phash", regex=r"^[0-9a-f]{64}$"),
        E.ExpectCompoundColumnsToBeUnique(column_list=["source_sha256", "face_index"]),
    ]
    out += [
        E.ExpectColumnValuesToBeInSet(column="_null_required", value_set=[""]),
        E.ExpectColumnValuesToBeBetween(column="_kp_min", min_value=0.0, max_value=float(cfg.crop_size)),
        E.ExpectColumnValuesToBeBetween(column="_kp_max", min_value=0.0, max_value=float(cfg.crop_size)),
        E.ExpectColumnValuesToBeInSet(column="crop_size", value_set=[cfg.crop_size]),
        E.ExpectColumnValuesToBeBetween(column="det_score", min_value=cfg.detector.min_score, max_value=1.0),
        E.ExpectColumnValuesToBeBetween(column="face_size_px", min_value=float(q.min_face_px)),
        E.ExpectColumnValuesToBeBetween(column="sharpness", min_value=q.min_sharpness),
        E.ExpectColumnValuesToBeBetween(column="brightness", min_value=q.min_brightness, max_value=q.max_brightness),
        E.ExpectColumnValuesToBeBetween(column="contrast", min_value=q.min_contrast, max_value=128.0),
        E.ExpectColumnValuesToBeBetween(column="width", min_value=cfg.min_image_side),
        E.ExpectColumnValuesToBeBetween(column="height", min_value=cfg.min_image_side),
        E.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
        E.ExpectColumnValuesToBeOfType(column="synthetic", type_="bool"),
        E.ExpectColumnValuesToBeInSet(column="landmark_source", value_set=list(LANDMARK_SOURCES)),
        E.ExpectColumnValuesToBeInSet(column="landmark_scheme", value_set=list(LANDMARK_SCHEMES)),
        E.ExpectColumnValuesToBeBetween(column="_splits_per_unit", min_value=1.0, max_value=1.0),
    ]
    notes = []
    val_target, test_target = split_targets(n_rows, cfg.split)
    for column, target in (("_is_val", val_target), ("_is_test", test_target)):
        top = target + max(largest_unit - 1, 0) if target else 0
        out.append(E.ExpectColumnSumToBeBetween(column=column, min_value=float(min(target, n_rows)),
                                                max_value=float(top)))
    return out, notes


def validate_manifest(manifest_df: pd.DataFrame, cfg: CurationConfig) -> ValidationReport:
    """Run the suite on a manifest DataFrame. Missing columns fail their expectations (they do
    not raise), so a broken manifest always yields a report."""
    import great_expectations as gx  # noqa: PLC0415
    from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: PLC0415

    frame, largest_unit = _derived_frame(manifest_df)
    expectations, notes = build_expectations(cfg, len(manifest_df), largest_unit)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("face_corpus")
    asset = source.add_dataframe_asset("manifest")
    batch = asset.add_batch_definition_whole_dataframe("whole_manifest")
    suite = context.suites.add(gx.ExpectationSuite(name=SUITE_NAME))
    for expectation in expectations:
        suite.add_expectation(expectation)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{SUITE_NAME}_validation", data=batch, suite=suite))
    result = definition.run(batch_parameters={"dataframe": frame})
    outcomes = []
    for res in result.results:
        config = res.expectation_config
        details = res.result or {}
        exception = (res.exception_info or {}).get("exception_message") if res.exception_info else None
        observed = details.get("observed_value")
        if exception and not res.success:
            observed = f"error: {exception}"
        outcomes.append(ExpectationOutcome(
            expectation=config.type,
            kwargs={k: v for k, v in config.kwargs.items() if k not in ("batch_id",)},
            success=bool(res.success),
            observed=observed,
            unexpected_count=details.get("unexpected_count"),
            unexpected_examples=list(details.get("partial_unexpected_list") or []),
        ))
    return ValidationReport(success=bool(result.success), n_rows=len(manifest_df), outcomes=outcomes, notes=notes)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
