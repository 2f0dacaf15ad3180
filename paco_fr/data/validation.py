"""The Great Expectations suite that a face corpus must pass, and its report.

`validate_manifest(manifest_df, cfg)` runs the suite in an ephemeral GX context on the manifest
plus three derived columns, and returns a plain :class:`ValidationReport`. `curate` writes it to
`validation.json` and raises :class:`CorpusValidationError` when it fails; Dagster's blocking asset
check calls the same function.

`validate_manifest_file(path, cfg, batch_rows=N)` runs the same suite on a manifest.parquet read N
rows at a time, so that memory does not grow with the corpus, and gives the report the whole table
would give. A first pass collects what no chunk can know alone, from hashed keys (two 64-bit hashes
per key): the row count, the largest split unit, the splits of every unit (``_splits_per_unit``),
which face ids and (source_sha256, face_index) pairs occur more than once. The second pass runs GX
on each chunk with the table-wide thresholds and combines the outcomes: counts and sums add up,
unexpected values are kept in row order (the first 20, as GX keeps), and the two uniqueness
expectations are answered from the first pass when there is more than one chunk.

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

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

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


def _derived_frame(df: pd.DataFrame, splits_per_unit: np.ndarray | None) -> pd.DataFrame:
    """The rows of `df` plus the derived columns; `splits_per_unit` (one per row) comes from the
    whole table (_TableFacts)."""
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
    if "split" in frame and splits_per_unit is not None:
        frame["_is_val"] = (frame["split"] == "val").astype(float)
        frame["_is_test"] = (frame["split"] == "test").astype(float)
        frame["_splits_per_unit"] = pd.Series(splits_per_unit, index=frame.index, dtype=float)
    return frame


_HASH_KEYS = ("paco-fr-gx-key-1", "paco-fr-gx-key-2")  # two independent 64-bit hashes: 128 bits a key


def _hashed(values: pd.Series | pd.DataFrame) -> np.ndarray:
    """(n, 2) uint64: a 128-bit hash per value (per row of a frame), NA hashing like any other value."""
    hashes = [pd.util.hash_pandas_object(values, index=False, hash_key=key).to_numpy() for key in _HASH_KEYS]
    return np.stack(hashes, axis=1) if len(values) else np.zeros((0, 2), np.uint64)


def _group_ids(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids of the (n, 2) keys and the size of each group."""
    if not len(keys):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    _, ids, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    return ids.ravel(), counts


class _TableFacts:
    """What the suite needs of the whole table, collected chunk by chunk from hashed keys."""

    COLUMNS = ["face_id", "source_sha256", "face_index", "identity", "split"]

    def __init__(self) -> None:
        self.n_rows = 0
        self.n_chunks = 0
        self.has_split = False
        self._units: list[np.ndarray] = []      # (n, 2) hash of each row's split unit
        self._unit_na: list[np.ndarray] = []    # its unit key is NA (groupby leaves the row out)
        self._splits: list[np.ndarray] = []     # (n, 2) hash of its split; NA split: not counted
        self._split_na: list[np.ndarray] = []
        self._face_ids: list[np.ndarray] = []   # (n, 2), NA rows left out by GX: flagged
        self._face_id_na: list[np.ndarray] = []
        self._pairs: list[np.ndarray] = []      # (source_sha256, face_index)
        self._pair_na: list[np.ndarray] = []    # both missing: GX ignores the row

    def add(self, chunk: pd.DataFrame) -> None:
        self.n_rows += len(chunk)
        self.n_chunks += 1
        if "split" in chunk:
            self.has_split = True
            units = split_units(chunk)
            self._units.append(_hashed(units))
            self._unit_na.append(units.isna().to_numpy())
            self._splits.append(_hashed(chunk["split"]))
            self._split_na.append(chunk["split"].isna().to_numpy())
        if "face_id" in chunk:
            self._face_ids.append(_hashed(chunk["face_id"]))
            self._face_id_na.append(chunk["face_id"].isna().to_numpy())
        if "source_sha256" in chunk and "face_index" in chunk:
            pair = chunk[["source_sha256", "face_index"]]
            self._pairs.append(_hashed(pair))
            self._pair_na.append(pair.isna().all(axis=1).to_numpy())

    def finish(self) -> None:
        """Per-row `splits_per_unit`, `largest_unit` and the duplicate masks; the hashes go."""
        self.largest_unit, self.splits_per_unit = 0, None
        if self.has_split:
            units, unit_na = np.concatenate(self._units), np.concatenate(self._unit_na)
            splits, split_na = np.concatenate(self._splits), np.concatenate(self._split_na)
            ids, sizes = _group_ids(units[~unit_na])
            self.largest_unit = int(sizes.max()) if len(sizes) else 0
            counted = ~split_na[~unit_na]
            pairs = np.column_stack([ids[counted].astype(np.uint64), splits[~unit_na][counted]])
            distinct = np.unique(pairs, axis=0)[:, 0].astype(np.int64) if len(pairs) else np.zeros(0, np.int64)
            per_unit = np.bincount(distinct, minlength=len(sizes)).astype(float)
            self.splits_per_unit = np.full(len(units), np.nan)
            self.splits_per_unit[~unit_na] = per_unit[ids]
        self.face_id_dup = self._duplicated(self._face_ids, self._face_id_na)
        self.pair_dup = self._duplicated(self._pairs, self._pair_na)
        del self._units, self._unit_na, self._splits, self._split_na, self._face_ids, self._pairs

    def _duplicated(self, hashes: list[np.ndarray], ignored: list[np.ndarray]) -> np.ndarray | None:
        """pandas' duplicated(keep=False) over the rows not ignored; None when the column is absent."""
        if len(hashes) != self.n_chunks or not self.n_chunks:
            return None
        keys, skip = np.concatenate(hashes), np.concatenate(ignored)
        out = np.zeros(len(keys), bool)
        ids, counts = _group_ids(keys[~skip])
        out[~skip] = counts[ids] > 1
        return out


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
    return validate_chunks(lambda columns=None: iter([manifest_df]), cfg)


def validate_manifest_file(path: str | os.PathLike[str], cfg: CurationConfig, *,
                           batch_rows: int = 8192) -> ValidationReport:
    """The report `validate_manifest(pd.read_parquet(path), cfg)` gives, `batch_rows` rows at a time."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    file = pq.ParquetFile(path)
    nullable = _columns_with_nulls(file)

    def chunks(columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        names = None if columns is None else [c for c in columns if c in file.schema_arrow.names]
        read = 0
        for batch in file.iter_batches(batch_size=batch_rows, columns=names):
            read += batch.num_rows
            yield _as_read(batch, nullable)
        if not read:
            schema = file.schema_arrow if names is None else file.schema_arrow.empty_table().select(names).schema
            yield schema.empty_table().to_pandas()

    return validate_chunks(chunks, cfg)


def _columns_with_nulls(file: Any) -> set[str]:
    """The columns with a null anywhere (from the row groups' statistics; read where they are missing)."""
    metadata, out = file.metadata, set()
    for j, name in enumerate(file.schema_arrow.names):
        for g in range(metadata.num_row_groups):
            stats = metadata.row_group(g).column(j).statistics
            if stats is None or not stats.has_null_count:
                if file.read(columns=[name]).column(0).null_count:
                    out.add(name)
                break
            if stats.null_count:
                out.add(name)
                break
    return out


def _as_read(batch: Any, nullable: set[str]) -> pd.DataFrame:
    """A chunk with the dtypes `pd.read_parquet` gives the whole table: an integer column with a null
    anywhere is float, a boolean one object, in every chunk (GX's verdicts and examples follow dtypes)."""
    import pyarrow as pa  # noqa: PLC0415

    frame = batch.to_pandas()
    for field_ in batch.schema:
        if field_.name in nullable:
            if pa.types.is_integer(field_.type):
                frame[field_.name] = frame[field_.name].astype(float)
            elif pa.types.is_boolean(field_.type):
                frame[field_.name] = frame[field_.name].astype(object)
    return frame


def validate_chunks(chunks: Callable[..., Iterator[pd.DataFrame]], cfg: CurationConfig) -> ValidationReport:
    """Run the suite on the table whose rows `chunks(columns)` yields (all columns when None), in order."""
    facts = _TableFacts()
    for chunk in chunks(_TableFacts.COLUMNS):
        facts.add(chunk)
    facts.finish()
    expectations, notes = build_expectations(cfg, facts.n_rows, facts.largest_unit)
    runner = _SuiteRunner(expectations)
    combined: list[ExpectationOutcome] | None = None
    examples = _DuplicateExamples(facts)
    offset = 0
    for chunk in chunks(None):
        spu = None if facts.splits_per_unit is None else facts.splits_per_unit[offset:offset + len(chunk)]
        outcomes = runner.run(_derived_frame(chunk, spu))
        combined = outcomes if combined is None else [_combine(a, b) for a, b in zip(combined, outcomes)]
        examples.add(chunk, offset)
        offset += len(chunk)
    assert combined is not None  # chunks() yields at least one (empty) frame
    if facts.n_chunks > 1:
        combined = [_table_wide(o, examples) for o in combined]
    return ValidationReport(success=all(o.success for o in combined), n_rows=facts.n_rows, outcomes=combined,
                            notes=notes)


class _SuiteRunner:
    """One ephemeral GX context and validation definition, run on one frame after another."""

    def __init__(self, expectations: list[Any]) -> None:
        import great_expectations as gx  # noqa: PLC0415
        from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: PLC0415

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        source = context.data_sources.add_pandas("face_corpus")
        asset = source.add_dataframe_asset("manifest")
        batch = asset.add_batch_definition_whole_dataframe("whole_manifest")
        suite = context.suites.add(gx.ExpectationSuite(name=SUITE_NAME))
        for expectation in expectations:
            suite.add_expectation(expectation)
        self.definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{SUITE_NAME}_validation", data=batch, suite=suite))

    def run(self, frame: pd.DataFrame) -> list[ExpectationOutcome]:
        result = self.definition.run(batch_parameters={"dataframe": frame})
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
        return outcomes


_EXAMPLES = 20  # GX's partial_unexpected_list: the first 20 unexpected values
_ADDED = ("expect_table_row_count_to_be_between", "expect_column_sum_to_be_between")
_UNIQUE = ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")


def _errored(outcome: ExpectationOutcome) -> bool:
    return isinstance(outcome.observed, str) and outcome.observed.startswith("error: ")


def _combine(a: ExpectationOutcome, b: ExpectationOutcome) -> ExpectationOutcome:
    """The outcome of rows a + rows b, in that order (success of added-up values: `_table_wide`)."""
    if _errored(a) or _errored(b):
        return a if _errored(a) else b
    if a.expectation in _ADDED:
        if a.observed is None or b.observed is None:
            return a if b.observed is None else b
        return dataclasses.replace(a, observed=a.observed + b.observed)
    if a.expectation == "expect_column_values_to_be_of_type":
        return a if not a.success or b.success else b
    count = None if a.unexpected_count is None and b.unexpected_count is None else \
        (a.unexpected_count or 0) + (b.unexpected_count or 0)
    return dataclasses.replace(a, success=a.success and b.success, unexpected_count=count,
                               unexpected_examples=(a.unexpected_examples + b.unexpected_examples)[:_EXAMPLES])


def _table_wide(outcome: ExpectationOutcome, examples: "_DuplicateExamples") -> ExpectationOutcome:
    """Verdicts that only the whole table has: bounds of sums and counts, uniqueness across chunks."""
    if _errored(outcome):
        return outcome
    if outcome.expectation in _ADDED:
        low, high = outcome.kwargs.get("min_value"), outcome.kwargs.get("max_value")
        value = outcome.observed
        return dataclasses.replace(outcome, success=(low is None or value >= low) and (high is None or value <= high))
    if outcome.expectation in _UNIQUE:
        found = examples.of(outcome.expectation)
        if found is not None:
            count, values = found
            return dataclasses.replace(outcome, success=count == 0, unexpected_count=count,
                                       unexpected_examples=values)
    return outcome


class _DuplicateExamples:
    """The first values of duplicated face ids and (source_sha256, face_index) pairs, in row order."""

    def __init__(self, facts: _TableFacts) -> None:
        self.facts = facts
        self.values: dict[str, list[Any]] = {_UNIQUE[0]: [], _UNIQUE[1]: []}

    def add(self, chunk: pd.DataFrame, offset: int) -> None:
        for kind, mask, columns in ((_UNIQUE[0], self.facts.face_id_dup, None),
                                    (_UNIQUE[1], self.facts.pair_dup, ["source_sha256", "face_index"])):
            have = self.values[kind]
            if mask is None or len(have) >= _EXAMPLES:
                continue
            rows = np.flatnonzero(mask[offset:offset + len(chunk)])[:_EXAMPLES - len(have)]
            if columns is None:
                have += chunk["face_id"].iloc[rows].tolist()
            else:
                have += chunk[columns].iloc[rows].to_dict("records")

    def of(self, kind: str) -> tuple[int, list[Any]] | None:
        mask = self.facts.face_id_dup if kind == _UNIQUE[0] else self.facts.pair_dup
        return None if mask is None else (int(mask.sum()), self.values[kind])


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
