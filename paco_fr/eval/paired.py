"""Paired comparison of two encoders on the same test items.

Two reports of one benchmark (same data version, hence the same test items) can be compared item
by item: a bootstrap that draws the *same* resample of test items for both encoders gives an
interval for the difference of their primary metrics. It is narrower than comparing the two
separate intervals, because what is hard or easy about an item is shared by both encoders.

Each report keeps what its primary metric needs per test item in ``test_items.npz``:

- ``values`` (n,): a per-item quantity whose mean is the metric (attribute accuracy per face,
  correct/incorrect per image, NME per face);
- or ``confusion`` (n, C, C) and ``exclude`` (parsing: mean F1 of the summed confusion);
- or ``scores`` and ``same`` per pair (verification: ROC AUC);

plus ``item_ids`` (test image indices in the benchmark), which must match between the two.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from paco_fr.eval import metrics as M

ITEMS_FILE = "test_items.npz"


def save_items(directory: str | os.PathLike[str], items: dict[str, np.ndarray]) -> Path:
    path = Path(directory) / ITEMS_FILE
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **items)
    return path


def load_items(directory: str | os.PathLike[str]) -> dict[str, np.ndarray] | None:
    """The per-item arrays of a report folder, or None for a report written without them."""
    path = Path(directory) / ITEMS_FILE
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _n_items(items: dict[str, np.ndarray]) -> int:
    for key in ("values", "confusion", "scores"):
        if key in items:
            return len(items[key])
    raise ValueError(f"per-item arrays have none of values/confusion/scores: {sorted(items)}")


def metric_on(items: dict[str, np.ndarray], idx: np.ndarray) -> float:
    """The primary metric computed on the test items `idx` (indices into the stored arrays)."""
    if "values" in items:
        return float(items["values"][idx].mean())
    if "confusion" in items:
        exclude = tuple(int(c) for c in items.get("exclude", np.zeros(0, dtype=np.int64)))
        return float(M.mean_f1(items["confusion"][idx].sum(0), exclude=exclude))
    if "scores" in items:
        return float(M.roc_auc(items["scores"][idx], items["same"][idx]))  # NaN when one class only
    raise ValueError(f"per-item arrays have none of values/confusion/scores: {sorted(items)}")


def check_pairable(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    """Raise ValueError unless `a` and `b` describe the same test items in the same order."""
    kinds = [k for k in ("values", "confusion", "scores") if k in a]
    if kinds != [k for k in ("values", "confusion", "scores") if k in b]:
        raise ValueError("the two reports store different kinds of per-item data (different tasks?)")
    if _n_items(a) != _n_items(b):
        raise ValueError(f"different numbers of test items: {_n_items(a)} vs {_n_items(b)}")
    if not np.array_equal(a.get("item_ids"), b.get("item_ids")):
        raise ValueError("the two reports were computed on different test items")
    if "same" in a and not np.array_equal(a["same"], b["same"]):
        raise ValueError("the two verification reports use different pairs")


def paired_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray], *, higher_is_better: bool,
                      n_resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Gain of `a` over `b` on the same test items, oriented so that positive means `a` is better
    (b - a for a lower-is-better metric), with a 95 % percentile interval from a paired bootstrap.
    ``better`` / ``worse``: the interval excludes 0 on that side."""
    check_pairable(a, b)
    sign = 1.0 if higher_is_better else -1.0
    gain = M.with_ci(lambda idx: sign * (metric_on(a, idx) - metric_on(b, idx)), _n_items(a),
                     n_resamples=n_resamples, seed=seed)
    return {"gain": gain.value, "ci_low": gain.ci_low, "ci_high": gain.ci_high, "n": gain.n,
            "better": bool(gain.ci_low > 0), "worse": bool(gain.ci_high < 0), "n_resamples": n_resamples}
