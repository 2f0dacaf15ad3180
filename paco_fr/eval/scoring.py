"""Test-set metrics with 95 % bootstrap intervals, per task, from a protocol's predictions.

Each task has one primary metric (the one the comparison table shows) and secondary ones. All
intervals resample test items (images; pairs for verification) with the eval seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from paco_fr.eval import metrics as M
from paco_fr.eval.benchmark_protocols import BenchmarkProtocol
from paco_fr.eval.data import TEST, BenchmarkData, original_label
from paco_fr.eval.dense import warp_back_labels
from paco_fr.eval.metrics import parsing_confusion
from paco_fr.eval.paired import metric_on
from paco_fr.eval.protocol_types import ProtocolOutput

FAILURE_THRESHOLD = 0.10
FAR_TARGET = 1e-2

# task -> (primary metric, higher is better) when no benchmark protocol says otherwise
PRIMARY: dict[str, tuple[str, bool]] = {
    "attributes": ("mean_accuracy", True),
    "expression": ("accuracy", True),
    "classification": ("accuracy", True),
    "landmarks": ("nme", False),
    "parsing": ("mean_f1", True),
    "verification": ("roc_auc", True),
}


@dataclass
class Scores:
    metrics: dict[str, M.MetricValue]
    primary: str
    higher_is_better: bool
    details: dict[str, Any] = field(default_factory=dict)   # confusion matrices, curves (for plots)
    # What the primary metric needs per test item, for paired comparisons (paco_fr.eval.paired).
    items: dict[str, np.ndarray] = field(default_factory=dict)

    def metrics_dict(self) -> dict[str, dict[str, float | int | None]]:
        return {k: v.as_dict() for k, v in self.metrics.items()}


def _mean_metric(values: np.ndarray, n_resamples: int, seed: int) -> M.MetricValue:
    low, high = M.bootstrap_mean_ci(values, n_resamples=n_resamples, seed=seed)
    return M.MetricValue(float(np.mean(values)), low, high, len(values))


def score(data: BenchmarkData, out: ProtocolOutput, *, n_resamples: int, seed: int,
          protocol: BenchmarkProtocol | None = None) -> Scores:
    """Test metrics of `out`; the primary metric is the benchmark protocol's (else the task's)."""
    task = data.task
    te = out.test_index
    p = out.predictions
    metrics: dict[str, M.MetricValue] = {}
    details: dict[str, Any] = {}
    items: dict[str, np.ndarray] = {"item_ids": np.asarray(te, dtype=np.int64)}
    if task == "attributes":
        gt = data.targets["attributes"][te]
        correct = (gt == p["attributes"]).astype(np.float64)  # (n, A)
        items["values"] = correct.mean(axis=1)
        metrics["mean_accuracy"] = _mean_metric(items["values"], n_resamples, seed)
        low, high = M.bootstrap_mean_ci(correct, n_resamples=n_resamples, seed=seed)
        for a, name in enumerate(data.meta["attribute_names"]):
            metrics[f"accuracy/{name}"] = M.MetricValue(float(correct[:, a].mean()), float(low[a]), float(high[a]), len(te))
        details["positive_rate"] = {name: float(gt[:, a].mean()) for a, name in enumerate(data.meta["attribute_names"])}
    elif task in ("expression", "classification"):
        gt = data.targets["label"][te]
        names = data.meta["class_names"]
        items["values"] = (gt == p["label"]).astype(np.float64)
        metrics["accuracy"] = _mean_metric(items["values"], n_resamples, seed)
        cm = M.confusion_matrix(gt, p["label"], len(names))
        details["confusion_matrix"] = cm.tolist()
        details["class_names"] = list(names)
        recall = np.diag(cm) / np.maximum(cm.sum(axis=1), 1)
        pred = p["label"]

        def mean_recall(idx: np.ndarray) -> float:
            c = M.confusion_matrix(gt[idx], pred[idx], len(names))
            present = c.sum(axis=1) > 0
            return float(np.mean(np.diag(c)[present] / c.sum(axis=1)[present]))

        metrics["mean_class_recall"] = M.with_ci(mean_recall, len(te), n_resamples=n_resamples, seed=seed)
        details["per_class_recall"] = {n: float(r) for n, r in zip(names, recall)}
    elif task == "landmarks":
        gt = data.targets["landmarks"][te]
        norm = tuple(data.meta["norm_indices"])
        nme = M.nme_per_image(p["landmarks"], gt, norm)
        items["values"] = nme
        metrics["nme"] = _mean_metric(nme, n_resamples, seed)
        metrics["failure_rate@0.10"] = _mean_metric((nme > FAILURE_THRESHOLD).astype(np.float64), n_resamples, seed)
        metrics["auc@0.10"] = _mean_metric(np.clip(1 - nme / FAILURE_THRESHOLD, 0, 1), n_resamples, seed)
        if "subset_flags" in data.targets:
            flags = data.targets["subset_flags"][te]
            for j, name in enumerate(data.meta.get("subset_names", [])):
                if flags[:, j].any():
                    metrics[f"nme/{name}"] = _mean_metric(nme[flags[:, j]], n_resamples, seed)
        thresholds, fraction = M.ced_curve(nme, FAILURE_THRESHOLD)
        details["ced"] = {"thresholds": thresholds.tolist(), "fraction": fraction.tolist()}
        details["nme_per_image"] = nme.tolist()
    elif task == "parsing":
        gt = data.targets["label_map"][te]
        names = data.meta["class_names"]
        ignore = tuple(data.meta.get("ignore_in_mean", [0]))
        crop_cms = parsing_confusion(p["label_map"], gt, len(names))  # (n, C, C) in the aligned crop
        cms = _original_confusions(data, out) if "score_maps" in p else crop_cms
        items["confusion"], items["exclude"] = cms, np.asarray(ignore, dtype=np.int64)
        metrics["mean_f1"] = M.with_ci(lambda idx: metric_on(items, idx), len(te), n_resamples=n_resamples, seed=seed)
        f1_all = M.f1_from_confusion(cms.sum(0))
        boot = _bootstrap_rows(lambda idx: M.f1_from_confusion(cms[idx].sum(0)), len(te), n_resamples, seed)
        for c, name in enumerate(names):
            lo, hi = _nan_percentiles(boot[:, c])
            metrics[f"f1/{name}"] = M.MetricValue(float(f1_all[c]), lo, hi, len(te))
        if cms is not crop_cms:  # the same predictions scored in the crop, for comparison with our protocols
            metrics["mean_f1@crop"] = M.with_ci(lambda idx: M.mean_f1(crop_cms[idx].sum(0), exclude=ignore), len(te),
                                                n_resamples=n_resamples, seed=seed)
        details["confusion_matrix"] = cms.sum(0).tolist()
        details["class_names"] = list(names)
        details["excluded_from_mean"] = [names[i] for i in ignore]
        details["scored_on"] = data.meta.get("scored_on", "aligned crop")
    elif task == "verification" and "fold_scores" in p:
        _score_folds(p, metrics, details, items, n_resamples, seed)
    elif task == "verification":
        scores, same = p["pair_scores"], p["pair_same"]
        items["scores"], items["same"] = np.asarray(scores, dtype=np.float64), np.asarray(same, dtype=bool)
        metrics["roc_auc"] = M.with_ci(lambda idx: metric_on(items, idx), len(scores), n_resamples=n_resamples,
                                       seed=seed)

        def tar(idx: np.ndarray) -> float:
            s, y = scores[idx], same[idx]
            return M.tar_at_far(s, y, FAR_TARGET) if y.any() and (~y).any() else float("nan")

        metrics["tar@far=1e-2"] = M.with_ci(tar, len(scores), n_resamples=n_resamples, seed=seed)
        _roc_details(scores, same, details)
    else:
        raise ValueError(f"no scoring for task {task!r}")
    details["reference"] = no_feature_reference(data)
    primary, higher = (protocol.primary, protocol.higher_is_better) if protocol is not None else PRIMARY[task]
    if primary not in metrics:
        raise ValueError(f"the benchmark protocol's primary metric {primary!r} was not computed (have {sorted(metrics)})")
    return Scores(metrics=metrics, primary=primary, higher_is_better=higher, details=details, items=items)


def _original_confusions(data: BenchmarkData, out: ProtocolOutput) -> np.ndarray:
    """(n_test, C, C) confusions on the original label maps: each test item's class-score map is
    warped back from the crop (paco_fr.eval.dense.warp_back_labels)."""
    p = out.predictions
    n_classes = len(data.meta["class_names"])
    scale = p.get("class_scale")
    cms = np.empty((len(out.test_index), n_classes, n_classes), dtype=np.int64)
    for j, i in enumerate(out.test_index):
        gt = original_label(data, int(i))
        pred = warp_back_labels(p["score_maps"][j], data.crop_size, data.targets["orig_to_crop"][i], gt.shape, scale)
        cms[j] = M.confusion(pred, gt, n_classes)
    return cms


def _score_folds(p: dict[str, np.ndarray], metrics: dict, details: dict, items: dict, n_resamples: int,
                 seed: int) -> None:
    """LFW's 10-fold protocol: accuracy at each fold's threshold (chosen on the other folds), mean
    and sd over folds; ROC AUC per fold, mean and sd. Intervals: bootstrap over pairs with the
    thresholds fixed. Per-pair correctness is the paired-comparison item."""
    scores, same, fold = p["fold_scores"], np.asarray(p["pair_same"], dtype=bool), p["pair_fold"]
    res = M.kfold_verification(scores, same, fold)
    own = scores[np.arange(len(same)), fold]  # each pair under its own fold's model
    items["values"] = res.correct.astype(np.float64)
    low, high = M.bootstrap_mean_ci(items["values"], n_resamples=n_resamples, seed=seed)
    metrics["accuracy"] = M.MetricValue(float(res.accuracy.mean()), low, high, len(same),
                                        sd=float(res.accuracy.std(ddof=1)) if len(res.accuracy) > 1 else None,
                                        per_fold=tuple(float(a) for a in res.accuracy))

    def mean_fold_auc(idx: np.ndarray) -> float:
        aucs = [M.roc_auc(own[idx][fold[idx] == k], same[idx][fold[idx] == k]) for k in range(scores.shape[1])]
        return float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan")

    auc_low, auc_high = M.bootstrap_ci(mean_fold_auc, len(same), n_resamples=n_resamples, seed=seed)
    metrics["roc_auc"] = M.MetricValue(float(res.auc.mean()), auc_low, auc_high, len(same),
                                       sd=float(res.auc.std(ddof=1)) if len(res.auc) > 1 else None,
                                       per_fold=tuple(float(a) for a in res.auc))
    details["fold_thresholds"] = res.thresholds.tolist()
    details["folds"] = int(scores.shape[1])
    _roc_details(own, same, details)


def _roc_details(scores: np.ndarray, same: np.ndarray, details: dict) -> None:
    far, tar_curve, _ = M.roc_curve(scores, same)
    keep = np.unique(np.linspace(0, len(far) - 1, min(len(far), 400)).round().astype(int))
    details["roc"] = {"far": far[keep].tolist(), "tar": tar_curve[keep].tolist()}
    details["n_positive_pairs"] = int(same.sum())
    details["n_negative_pairs"] = int((~same).sum())


def no_feature_reference(data: BenchmarkData) -> dict[str, Any]:
    """The primary metric of a predictor that never looks at the test image, fitted on train+val:
    the majority class (per attribute), the mean shape, the per-pixel majority label map of the
    aligned faces, or chance for verification. Features must beat this to mean anything."""
    from paco_fr.eval.data import TRAIN, VAL

    fit = np.flatnonzero((data.split == TRAIN) | (data.split == VAL))
    te = data.indices(TEST)
    task = data.task
    if task == "attributes":
        y = data.targets["attributes"]
        majority = y[fit].mean(axis=0) >= 0.5
        value = M.mean_attribute_accuracy(y[te], np.broadcast_to(majority, y[te].shape))
        return {"name": "majority per attribute", "value": value}
    if task in ("expression", "classification"):
        y = data.targets["label"]
        majority = np.bincount(y[fit]).argmax()
        return {"name": "majority class", "value": M.accuracy(y[te], np.full(len(te), majority))}
    if task == "landmarks":
        lm = data.targets["landmarks"]
        mean_shape = lm[fit].mean(axis=0)
        nme = M.nme_per_image(np.broadcast_to(mean_shape, lm[te].shape), lm[te], tuple(data.meta["norm_indices"]))
        return {"name": "mean shape", "value": float(nme.mean())}
    if task == "parsing":
        maps = data.targets["label_map"]
        n_classes = len(data.meta["class_names"])
        counts = np.zeros((n_classes, *maps.shape[1:]), dtype=np.int32)
        for c in range(n_classes):
            counts[c] = (maps[fit] == c).sum(axis=0)
        prior_map = counts.argmax(axis=0).astype(np.uint8)
        ignore = tuple(data.meta.get("ignore_in_mean", [0]))
        if "orig_label_flat" in data.targets:  # scored like the predictions: warped back to the original
            onehot = np.eye(n_classes, dtype=np.float32)[prior_map].transpose(2, 0, 1)  # (C, S, S)
            cm = sum(M.confusion(warp_back_labels(onehot, data.crop_size, data.targets["orig_to_crop"][i],
                                                  original_label(data, int(i)).shape),
                                 original_label(data, int(i)), n_classes) for i in te)
        else:
            cm = parsing_confusion(np.broadcast_to(prior_map, maps[te].shape), maps[te], n_classes).sum(0)
        return {"name": "per-pixel majority map", "value": M.mean_f1(cm, exclude=ignore)}
    return {"name": "chance", "value": 0.5}


def _bootstrap_rows(stat, n: int, n_resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = [stat(rng.integers(0, n, size=n)) for _ in range(n_resamples)]
    return np.asarray(rows, dtype=np.float64)


def _nan_percentiles(values: np.ndarray) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if not values.size:
        return float("nan"), float("nan")
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


__all__ = ["Scores", "score", "no_feature_reference", "PRIMARY"]
