"""Evaluation metrics and percentile-bootstrap confidence intervals.

Every metric takes plain numpy arrays and is checked against hand-computed cases in
tests/test_metrics.py. Conventions (also in docs/evaluation.md):

- Accuracy-type metrics are fractions in [0, 1]; NME and failure rate are fractions too (0.05 = 5 %).
- F1 per class is computed from counts accumulated over the whole test set (dataset-level, as LaPa
  and CelebAMask-HQ evaluations do). A class with no ground truth and no prediction has an
  undefined F1 (NaN) and is left out of the mean; a class with no ground truth but some predicted
  pixels gets F1 = 0.
- ROC AUC is the Mann-Whitney statistic with average ranks, so tied scores count 1/2.
- TAR@FAR: the ROC is evaluated at every distinct score threshold (tied scores move together); the
  reported TAR is the largest TAR among thresholds whose FAR <= the target (the ROC step function,
  no interpolation between operating points, so it never claims an operating point that no
  threshold achieves).
- Bootstrap: B resamples of the test items with replacement (pairs for verification), fixed seed,
  95 % percentile interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

# iBUG 68-point layout: outer eye corners (the standard 300W "inter-ocular" normalisation).
IBUG68_OUTER_EYE_CORNERS = (36, 45)
# WFLW 98-point layout: outer eye corners.
WFLW98_OUTER_EYE_CORNERS = (60, 72)


@dataclass(frozen=True)
class MetricValue:
    value: float
    ci_low: float
    ci_high: float
    n: int
    # Cross-validated metrics (LFW's 10 folds): the standard deviation over folds and each fold's value.
    sd: float | None = None
    per_fold: tuple[float, ...] | None = None

    def as_dict(self) -> dict[str, float | int | list | None]:
        out: dict[str, float | int | list | None] = {
            "value": _finite_or_none(self.value), "ci_low": _finite_or_none(self.ci_low),
            "ci_high": _finite_or_none(self.ci_high), "n": int(self.n)}
        if self.sd is not None:
            out["sd"] = _finite_or_none(self.sd)
        if self.per_fold is not None:
            out["per_fold"] = [_finite_or_none(v) for v in self.per_fold]
        return out


def _finite_or_none(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


# --- classification -----------------------------------------------------------------------------

def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    _same_length(y_true, y_pred)
    if y_true.size == 0:
        return float("nan")
    return float(np.mean(y_true == y_pred))


def per_attribute_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """(N, A) boolean arrays -> (A,) accuracy of each attribute."""
    y_true, y_pred = np.asarray(y_true, dtype=bool), np.asarray(y_pred, dtype=bool)
    if y_true.shape != y_pred.shape or y_true.ndim != 2:
        raise ValueError(f"expected two (N, A) arrays of equal shape, got {y_true.shape} and {y_pred.shape}")
    return (y_true == y_pred).mean(axis=0)


def mean_attribute_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """The CelebA convention: accuracy of each attribute, averaged over attributes."""
    return float(per_attribute_accuracy(y_true, y_pred).mean())


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) int64 counts, rows = true class, columns = predicted class."""
    y_true, y_pred = np.asarray(y_true, dtype=np.int64).ravel(), np.asarray(y_pred, dtype=np.int64).ravel()
    _same_length(y_true, y_pred)
    if y_true.size and (min(y_true.min(), y_pred.min()) < 0 or max(y_true.max(), y_pred.max()) >= n_classes):
        raise ValueError(f"labels must lie in [0, {n_classes})")
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def f1_from_confusion(cm: np.ndarray) -> np.ndarray:
    """Per-class F1 from a (C, C) confusion matrix; NaN where the class is absent from both the
    ground truth and the prediction (F1 undefined)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    denom = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), np.nan)


def parsing_confusion(pred: np.ndarray, gt: np.ndarray, n_classes: int) -> np.ndarray:
    """(n, H, W) x2 -> (n, C, C) per-image confusion matrices (summable for the dataset)."""
    idx = gt.reshape(len(gt), -1).astype(np.int64) * n_classes + pred.reshape(len(pred), -1).astype(np.int64)
    return np.stack([np.bincount(row, minlength=n_classes * n_classes) for row in idx]).reshape(-1, n_classes, n_classes)


def confusion(pred: np.ndarray, gt: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) confusion of one label map of any shape (rows true, columns predicted)."""
    idx = gt.reshape(-1).astype(np.int64) * n_classes + pred.reshape(-1).astype(np.int64)
    return np.bincount(idx, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def mean_f1(cm: np.ndarray, exclude: Sequence[int] = (0,)) -> float:
    """Mean of the defined per-class F1s, leaving out `exclude` (background by default)."""
    f1 = f1_from_confusion(cm)
    keep = np.ones(len(f1), dtype=bool)
    keep[list(exclude)] = False
    vals = f1[keep]
    vals = vals[np.isfinite(vals)]
    return float(vals.mean()) if vals.size else float("nan")


# --- landmarks ----------------------------------------------------------------------------------

def nme_per_image(pred: np.ndarray, gt: np.ndarray, norm_indices: tuple[int, int]) -> np.ndarray:
    """Mean point-to-point error over the K points of each image divided by the distance between
    two ground-truth points (outer eye corners for inter-ocular NME). (N, K, 2) x2 -> (N,)."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[2] != 2:
        raise ValueError(f"expected two (N, K, 2) arrays of equal shape, got {pred.shape} and {gt.shape}")
    i, j = norm_indices
    norm = np.linalg.norm(gt[:, i] - gt[:, j], axis=1)
    if np.any(norm <= 0):
        raise ValueError("normalising distance is zero for some image (coincident reference points)")
    return np.linalg.norm(pred - gt, axis=2).mean(axis=1) / norm


def failure_rate(nme: np.ndarray, threshold: float = 0.10) -> float:
    """Fraction of images whose NME exceeds `threshold` (strictly)."""
    nme = np.asarray(nme, dtype=np.float64)
    return float(np.mean(nme > threshold)) if nme.size else float("nan")


def ced_curve(nme: np.ndarray, max_error: float = 0.10, n_steps: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution: thresholds t in [0, max_error] and the fraction of images
    with NME <= t."""
    nme = np.sort(np.asarray(nme, dtype=np.float64))
    thresholds = np.linspace(0.0, max_error, n_steps)
    fraction = np.searchsorted(nme, thresholds, side="right") / max(len(nme), 1)
    return thresholds, fraction


def auc_at(nme: np.ndarray, max_error: float = 0.10) -> float:
    """Area under the CED curve up to `max_error`, divided by `max_error` (1 = every image exact).
    Exact for the step-shaped CED: the mean over images of max(0, 1 - nme/max_error)."""
    nme = np.asarray(nme, dtype=np.float64)
    return float(np.mean(np.clip(1.0 - nme / max_error, 0.0, 1.0))) if nme.size else float("nan")


# --- verification -------------------------------------------------------------------------------

def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative) + 1/2 P(tie)."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    _same_length(scores, labels)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    # Ranks 1..n; each run of equal values gets the mean of its positions.
    boundaries = np.flatnonzero(np.diff(sorted_x)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(x)]])
    avg = (starts + ends + 1) / 2.0
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(far, tar, thresholds): one operating point per distinct score (accept when score >=
    threshold), from (0, 0) at threshold +inf to (1, 1)."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    _same_length(scores, labels)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC needs at least one positive and one negative pair")
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last_of_run]
    fps = np.cumsum(~y)[last_of_run]
    far = np.r_[0.0, fps / n_neg]
    tar = np.r_[0.0, tps / n_pos]
    thresholds = np.r_[np.inf, s[last_of_run]]
    return far, tar, thresholds


def tar_at_far(scores: np.ndarray, labels: np.ndarray, far_target: float) -> float:
    """Largest TAR over thresholds whose FAR <= far_target (see the module docstring)."""
    far, tar, _ = roc_curve(scores, labels)
    ok = far <= far_target + 1e-12
    return float(tar[ok].max())


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold t maximising the accuracy of "same when score > t": candidates are the
    midpoints between consecutive distinct scores and one value beyond each end (accept all,
    reject all); ties go to the smallest t."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool)
    _same_length(scores, labels)
    if scores.size == 0:
        raise ValueError("no pairs to choose a threshold on")
    u = np.unique(scores)
    candidates = np.r_[u[0] - 1.0, (u[:-1] + u[1:]) / 2.0, u[-1] + 1.0]
    order = np.sort(scores[labels]), np.sort(scores[~labels])
    # correct = positives above t + negatives at or below t
    above_pos = len(order[0]) - np.searchsorted(order[0], candidates, side="right")
    below_neg = np.searchsorted(order[1], candidates, side="right")
    return float(candidates[int(np.argmax(above_pos + below_neg))])


@dataclass(frozen=True)
class FoldAccuracy:
    accuracy: np.ndarray      # (K,) accuracy of each fold at its threshold
    thresholds: np.ndarray    # (K,) chosen on the other folds
    correct: np.ndarray       # (P,) bool: each pair judged by its own fold's model and threshold
    auc: np.ndarray           # (K,) ROC AUC of each fold's pairs


def kfold_verification(scores: np.ndarray, labels: np.ndarray, fold: np.ndarray) -> FoldAccuracy:
    """The LFW View 2 protocol: for each fold k, the threshold is chosen (:func:`best_threshold`)
    on the pairs of the other folds and applied to fold k's pairs.

    scores: (P,) one score per pair, or (P, K) the score of every pair under the model fitted
    without fold k (column k), so that fold k's threshold is chosen on what that model gives the
    other folds; labels: (P,) same identity; fold: (P,) fold index 0..K-1."""
    scores, labels, fold = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=bool), np.asarray(fold)
    folds = np.unique(fold)
    if scores.ndim == 1:
        scores = np.repeat(scores[:, None], len(folds), axis=1)
    if scores.shape != (len(labels), len(folds)) or not np.array_equal(folds, np.arange(len(folds))):
        raise ValueError(f"expected (P,) or (P, K) scores and folds 0..K-1, got {scores.shape} and folds {folds}")
    acc, thresholds, auc = np.empty(len(folds)), np.empty(len(folds)), np.empty(len(folds))
    correct = np.zeros(len(labels), dtype=bool)
    for k in folds:
        test, train = fold == k, fold != k
        thresholds[k] = best_threshold(scores[train, k], labels[train])
        correct[test] = (scores[test, k] > thresholds[k]) == labels[test]
        acc[k] = correct[test].mean()
        auc[k] = roc_auc(scores[test, k], labels[test])
    return FoldAccuracy(acc, thresholds, correct, auc)


# --- repeats (pre-training seeds) ---------------------------------------------------------------

# Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom (checked against scipy in
# tests/test_metrics.py); beyond 30 the value for 30 is used (slightly conservative).
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t_quantile_975(df: int) -> float:
    if df < 1:
        raise ValueError("a t interval needs at least two repeats")
    return T_975[min(df, len(T_975)) - 1]


def repeat_summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean, sample standard deviation (ddof 1) and the 95 % t interval of the mean over repeats
    (pre-training seeds): mean +- t(0.975, n-1) sd / sqrt(n). With one repeat sd and the interval
    are None."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no values")
    if v.size == 1:
        return {"mean": float(v[0]), "sd": None, "n": 1, "ci_low": None, "ci_high": None}
    mean, sd = float(v.mean()), float(v.std(ddof=1))
    half = t_quantile_975(v.size - 1) * sd / np.sqrt(v.size)
    return {"mean": mean, "sd": sd, "n": int(v.size), "ci_low": mean - half, "ci_high": mean + half}


# --- bootstrap ----------------------------------------------------------------------------------

def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n_items: int,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile interval of `statistic(indices)` over `n_resamples` resamples of range(n_items)
    with replacement. Resamples where the statistic is undefined (NaN) are dropped."""
    if n_items <= 0 or n_resamples <= 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.empty(n_resamples)
    for b in range(n_resamples):
        values[b] = statistic(rng.integers(0, n_items, size=n_items))
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def with_ci(
    statistic: Callable[[np.ndarray], float],
    n_items: int,
    *,
    n_resamples: int,
    seed: int,
) -> MetricValue:
    """The statistic on all items plus its bootstrap interval."""
    value = statistic(np.arange(n_items))
    low, high = bootstrap_ci(statistic, n_items, n_resamples=n_resamples, seed=seed)
    return MetricValue(float(value), low, high, int(n_items))


def _same_length(a: np.ndarray, b: np.ndarray) -> None:
    if len(a) != len(b):
        raise ValueError(f"length mismatch: {len(a)} vs {len(b)}")


def bootstrap_mean_ci(values: np.ndarray, *, n_resamples: int = 1000, seed: int = 0,
                      alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of the mean of per-item values (n,) or (n, k) (one interval per column),
    all columns resampled with the same item indices. Vectorised form of :func:`bootstrap_ci` for
    statistics that are means over items (accuracy, NME, failure indicators)."""
    values = np.asarray(values, dtype=np.float64)
    squeeze = values.ndim == 1
    if squeeze:
        values = values[:, None]
    n = len(values)
    if n == 0 or n_resamples <= 0:
        nan = np.full(values.shape[1], np.nan)
        return (nan[0], nan[0]) if squeeze else (nan, nan)
    rng = np.random.default_rng(seed)
    means = np.empty((n_resamples, values.shape[1]))
    for start in range(0, n_resamples, 100):
        stop = min(start + 100, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1)
    low, high = np.percentile(means, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
    return (float(low[0]), float(high[0])) if squeeze else (low, high)
