"""Evaluation protocols: how a frozen (or lightly fine-tuned) encoder is turned into predictions
on a benchmark's test split, with every hyperparameter chosen on val only.

Protocols (``eval.protocol``):

- ``linear`` (default): a linear model on frozen features.
    * attributes / expression / classification: logistic regression (softmax, or one sigmoid per
      attribute), full-batch LBFGS; the feature (CLS, mean-pooled patch tokens, or both
      concatenated) and the L2 strength are chosen on val.
    * landmarks: ridge regression from the concatenated patch tokens (N x D values per image) to
      the 2K coordinates (closed form, dual); L2 strength chosen on val.
    * parsing: ridge regression from each patch token to the class fractions of an s x s sub-grid
      of its pixels (s = eval.parsing_subgrid), i.e. a per-patch linear classifier; its class
      scores are bilinearly upsampled to pixels and the arg-max is the prediction, after an
      optional prior correction (scores divided by the class's pixel frequency to a power 0, 0.5
      or 1: least squares favours big classes, and mean F1 weighs the small parts equally).
      L2 strength and prior power chosen on val by mean F1.
    * verification: Fisher LDA fitted on the train identities (shrinkage and feature chosen on
      val by ROC AUC), cosine similarity after the projection.
- ``knn``: cosine kNN (DINO-style exp(sim/0.07) weights), k and the feature chosen on val. For
  landmarks the prediction is the weighted mean shape of the neighbours; for verification the
  score is the cosine similarity of the standardised features (no fitting). Parsing has no kNN
  protocol: it falls back to ``linear`` and the report says so.
- ``finetune``: a light head trained a few epochs with AdamW, the encoder frozen or trained with a
  small learning rate (``eval.finetune_encoder_lr``); the epoch with the best val metric is kept
  (see paco_fr.eval.finetune).

Features are standardised with the statistics of the rows the model is fitted on. After the
choice on val, ``linear`` and ``knn`` refit on train + val with the chosen values (and
standardisation statistics of train + val) and predict test once; ``finetune`` keeps its best-val
epoch and is not refitted.

What is measured is the benchmark protocol's business (paco_fr.eval.benchmark_protocols), with two
consequences here: a verification benchmark with folds (LFW View 2) runs the probe once per test
fold (:func:`run_verification_folds`), and a parsing benchmark scored on the original image gets
the test items' class-score maps besides their labels, for scoring to warp back.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import numpy as np
import torch

from paco_fr.eval import metrics as M
from paco_fr.eval.data import TEST, TRAIN, VAL, BenchmarkData
from paco_fr.eval.dense import (SCORE_FLOOR, maps_to_labels, parsing_targets, subgrid_for,  # noqa: F401 (re-exported)
                                token_scores_to_maps)
from paco_fr.eval.finetune import run_finetune
from paco_fr.eval.metrics import parsing_confusion
from paco_fr.eval.probes import (RidgePath, Standardizer, cosine_pair_scores, fit_lda, fit_lda_path, fit_logistic,
                                 fit_logistic_path, fit_ridge, knn_vote)
from paco_fr.eval.protocol_types import ProtocolOutput, ProtocolSettings

PROTOCOLS = ("linear", "knn", "finetune")


def feature_kinds(task: str, protocol: str) -> tuple[str, ...]:
    """Which features a task needs under a protocol."""
    if protocol == "finetune":
        return ("patch",) if task in ("parsing", "landmarks") else ("cls", "mean")
    if task == "parsing":
        return ("patch",)
    if task == "landmarks":
        return ("patch",) if protocol in ("linear", "finetune") else ("cls", "mean", "grid")
    return ("cls", "mean", "grid")


def _global_candidates(features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if features["cls"] is features["mean"] or np.array_equal(features["cls"], features["mean"]):
        return {"mean": features["mean"]}  # one global feature (the pixels baseline)
    candidates = {"cls": features["cls"], "mean": features["mean"],
                  "cls+mean": np.concatenate([features["cls"], features["mean"]], axis=1)}
    if "grid" in features:  # spatially pooled patch tokens; chosen on val like the others
        candidates["grid"] = features["grid"]
    return candidates


def _pick(scores: dict[tuple, float]) -> tuple:
    """The best key; ties go to the first key in insertion order (deterministic)."""
    best_key, best = None, -np.inf
    for key, value in scores.items():
        if np.isfinite(value) and value > best:
            best_key, best = key, value
    if best_key is None:
        raise RuntimeError("no hyperparameter setting gave a finite validation score")
    return best_key


def _grid_edges(chosen: dict[str, Any], grids: dict[str, tuple]) -> list[str]:
    """Names of numeric hyperparameters whose chosen value is the smallest or largest of a grid of
    three or more: the optimum may lie outside the grid (widen it in params.yaml)."""
    return [name for name, grid in grids.items()
            if len(grid) >= 3 and name in chosen and chosen[name] in (min(grid), max(grid))]


def _scores_table(scores: dict[tuple, float], names: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{**dict(zip(names, key)), "val_score": float(v)} for key, v in scores.items()]


# --- global tasks: attributes, expression, classification ---------------------------------------

def _global_targets(data: BenchmarkData) -> tuple[np.ndarray, bool, int]:
    if data.task == "attributes":
        y = data.targets["attributes"].astype(np.float32)
        return y, True, y.shape[1]
    y = data.targets["label"]
    n_classes = len(data.meta.get("class_names", [])) or int(y.max()) + 1
    return y, False, n_classes


def _global_select_metric(multilabel: bool) -> Callable[[np.ndarray, np.ndarray], float]:
    if multilabel:
        return lambda y, p: M.mean_attribute_accuracy(y > 0.5, p)
    return M.accuracy


def run_global(data: BenchmarkData, features: dict[str, np.ndarray], s: ProtocolSettings) -> ProtocolOutput:
    y, multilabel, n_out = _global_targets(data)
    tr, va, te = data.indices(TRAIN), data.indices(VAL), data.indices(TEST)
    tv = np.concatenate([tr, va])
    select = _global_select_metric(multilabel)
    candidates = _global_candidates(features)

    def decide(scores_out: np.ndarray) -> np.ndarray:
        # logits or vote fractions -> labels
        if multilabel:
            return scores_out > (0.0 if s.protocol == "linear" else 0.5)
        return scores_out.argmax(axis=1)

    scores: dict[tuple, float] = {}
    if s.protocol == "knn":
        y_onehot = y if multilabel else np.eye(n_out)[y]
        for fname, x in candidates.items():
            std = Standardizer.fit(x[tr])
            for k in s.knn_k:
                scores[(fname, k)] = select(y[va], decide(knn_vote(std(x[tr]), y_onehot[tr], std(x[va]), k)))
        fname, k = _pick(scores)
        x = candidates[fname]
        std = Standardizer.fit(x[tv])
        out = knn_vote(std(x[tv]), y_onehot[tv], std(x[te]), k)
        chosen = {"feature": fname, "k": k, "temperature": 0.07}
        table = _scores_table(scores, ("feature", "k"))
    else:
        fitted = {}
        for fname, x in candidates.items():
            std = Standardizer.fit(x[tr])
            xtr, xva = std(x[tr]), std(x[va])
            models = fit_logistic_path(xtr, y[tr], tuple(s.l2_grid), multilabel=multilabel, n_classes=n_out)
            for l2, model in models.items():
                fitted[(fname, l2)] = model
                scores[(fname, l2)] = select(y[va], decide(model(xva)))
        fname, l2 = _pick(scores)
        x = candidates[fname]
        std = Standardizer.fit(x[tv])
        model = fit_logistic(std(x[tv]), y[tv], l2, multilabel=multilabel, n_classes=n_out, init=fitted[(fname, l2)])
        out = model(std(x[te]))
        chosen = {"feature": fname, "l2": l2}
        table = _scores_table(scores, ("feature", "l2"))
    pred = decide(out)
    preds = {"attributes": pred} if multilabel else {"label": pred, "scores": out}
    return ProtocolOutput(
        protocol={"name": s.protocol, "estimator": "cosine kNN" if s.protocol == "knn" else "logistic regression (LBFGS)",
                  "chosen": chosen, "selection_metric": "mean attribute accuracy" if multilabel else "accuracy",
                  "val_scores": table, "refit_on": "train+val",
                  "chosen_at_grid_edge": _grid_edges(chosen, {"k": s.knn_k, "l2": s.l2_grid})},
        test_index=te, predictions=preds)


# --- landmarks ------------------------------------------------------------------------------------

def _mean_nme(pred: np.ndarray, gt: np.ndarray, norm: tuple[int, int]) -> float:
    return float(M.nme_per_image(pred, gt, norm).mean())


def run_landmarks(data: BenchmarkData, features: dict[str, np.ndarray], s: ProtocolSettings) -> ProtocolOutput:
    lm = data.targets["landmarks"].astype(np.float64)
    n, k = lm.shape[:2]
    size = float(data.crop_size)
    y = lm.reshape(n, -1) / size  # coordinates as fractions of the crop
    norm = tuple(data.meta["norm_indices"])
    tr, va, te = data.indices(TRAIN), data.indices(VAL), data.indices(TEST)
    tv = np.concatenate([tr, va])
    scores: dict[tuple, float] = {}

    def to_points(flat: np.ndarray) -> np.ndarray:
        return flat.reshape(len(flat), k, 2) * size

    if s.protocol == "knn":
        candidates = _global_candidates(features)
        for fname, x in candidates.items():
            std = Standardizer.fit(x[tr])
            for kk in s.knn_k:
                pred = to_points(knn_vote(std(x[tr]), y[tr], std(x[va]), kk))
                scores[(fname, kk)] = -_mean_nme(pred, lm[va], norm)
        fname, kk = _pick(scores)
        x = candidates[fname]
        std = Standardizer.fit(x[tv])
        pred = to_points(knn_vote(std(x[tv]), y[tv], std(x[te]), kk))
        chosen = {"feature": fname, "k": kk, "temperature": 0.07}
        table = _scores_table(scores, ("feature", "k"))
        estimator = "cosine kNN (weighted mean shape)"
    else:
        x = features["patch"].reshape(n, -1)  # concatenated patch tokens
        std = Standardizer.fit(x[tr])
        path = RidgePath(std(x[tr]), y[tr])
        xva = std(x[va])
        for alpha in s.ridge_grid:
            scores[(alpha,)] = -_mean_nme(to_points(path.model(alpha)(xva)), lm[va], norm)
        (alpha,) = _pick(scores)
        std = Standardizer.fit(x[tv])
        pred = to_points(fit_ridge(std(x[tv]), y[tv], alpha)(std(x[te])))
        chosen = {"feature": "patch tokens, concatenated", "ridge_alpha": alpha}
        table = _scores_table(scores, ("ridge_alpha",))
        estimator = "ridge regression (closed form, dual)"
    return ProtocolOutput(
        protocol={"name": s.protocol, "estimator": estimator, "chosen": chosen,
                  "selection_metric": "-NME (inter-ocular)", "val_scores": table, "refit_on": "train+val",
                  "chosen_at_grid_edge": _grid_edges(chosen, {"k": s.knn_k, "ridge_alpha": s.ridge_grid})},
        test_index=te, predictions={"landmarks": pred.astype(np.float32)})


# --- parsing --------------------------------------------------------------------------------------

def parsing_predict(scores: np.ndarray, n: int, g: int, sub: int, n_classes: int, size: int,
                    batch: int = 32, class_scale: np.ndarray | None = None) -> np.ndarray:
    """(n * g * g, sub * sub * C) per-token scores -> (n, size, size) uint8 labels, by bilinear
    upsampling of the sub-cell score maps (paco_fr.eval.dense.maps_to_labels, with the prior
    correction `class_scale` of :func:`run_parsing`)."""
    return maps_to_labels(token_scores_to_maps(scores, n, g, sub, n_classes), size, class_scale, batch)


PRIOR_POWERS = (0.0, 0.5, 1.0)


def _class_prior(targets: np.ndarray, n_classes: int) -> np.ndarray:
    """Pixel frequency of each class in the fitted rows (floored so absent classes stay finite)."""
    prior = targets.reshape(-1, n_classes).mean(axis=0)
    return np.maximum(prior, 1e-6)


def run_parsing(data: BenchmarkData, features: dict[str, np.ndarray], s: ProtocolSettings,
                patch_size: int) -> ProtocolOutput:
    maps = data.targets["label_map"]
    n_classes = len(data.meta["class_names"])
    ignore = tuple(data.meta.get("ignore_in_mean", [0]))
    tokens = features["patch"]  # (n, g*g, D)
    n, n_tok, dim = tokens.shape
    g = int(round(np.sqrt(n_tok)))
    sub = subgrid_for(patch_size, s.parsing_subgrid)
    size = data.crop_size
    tr, va, te = data.indices(TRAIN), data.indices(VAL), data.indices(TEST)
    tv = np.concatenate([tr, va])

    def rows(idx: np.ndarray) -> np.ndarray:
        return tokens[idx].reshape(len(idx) * n_tok, dim)

    std = Standardizer.fit(rows(tr))
    targets_tr = parsing_targets(maps[tr], n_classes, patch_size, sub)
    prior_tr = _class_prior(targets_tr, n_classes)
    path = RidgePath(std(rows(tr)), targets_tr)
    xva = std(rows(va))
    scores: dict[tuple, float] = {}
    for alpha in s.ridge_grid:
        raw = path.model(alpha)(xva)
        for power in PRIOR_POWERS:
            pred_va = parsing_predict(raw, len(va), g, sub, n_classes, size, class_scale=prior_tr ** -power)
            scores[(alpha, power)] = M.mean_f1(parsing_confusion(pred_va, maps[va], n_classes).sum(0), exclude=ignore)
    alpha, power = _pick(scores)
    std = Standardizer.fit(rows(tv))
    targets_tv = parsing_targets(maps[tv], n_classes, patch_size, sub)
    model = fit_ridge(std(rows(tv)), targets_tv, alpha)
    class_scale = _class_prior(targets_tv, n_classes) ** -power
    test_maps = token_scores_to_maps(model(std(rows(te))), len(te), g, sub, n_classes)  # (n_te, C, g*sub, g*sub)
    predictions = {"label_map": maps_to_labels(test_maps, size, class_scale)}
    if "orig_label_flat" in data.targets:  # scored on the original image: scoring warps the maps back
        predictions.update(score_maps=test_maps.astype(np.float32), class_scale=class_scale.astype(np.float32))
    requested = s.protocol
    protocol = {"name": "linear", "estimator": "per-patch ridge classifier on patch tokens, "
                f"{sub}x{sub} sub-cells per patch, bilinear upsampling",
                "chosen": {"feature": "patch tokens", "ridge_alpha": alpha, "prior_power": power, "subgrid": sub},
                "selection_metric": "mean F1 (background excluded)",
                "val_scores": _scores_table(scores, ("ridge_alpha", "prior_power")),
                "refit_on": "train+val",
                "chosen_at_grid_edge": _grid_edges({"ridge_alpha": alpha}, {"ridge_alpha": s.ridge_grid})}
    if requested == "knn":
        protocol["note"] = "kNN is not defined for parsing; the linear protocol was used"
        protocol["requested"] = "knn"
    return ProtocolOutput(protocol=protocol, test_index=te, predictions=predictions)


# --- verification ---------------------------------------------------------------------------------

def _fit_verification(features: dict[str, np.ndarray], identity: np.ndarray, fit_tr: np.ndarray,
                      fit_all: np.ndarray, val_pairs: np.ndarray, val_same: np.ndarray,
                      s: ProtocolSettings) -> tuple[np.ndarray, dict[str, Any], list[dict[str, Any]], str]:
    """Choose the feature (and the LDA shrinkage) by the ROC AUC of `val_pairs` with models fitted on
    the images `fit_tr`, refit on the images `fit_all`. Returns the embeddings of every image (a
    pair's score is the cosine similarity of its two rows), the chosen values, the val table and
    the estimator's name."""
    candidates = _global_candidates(features)
    scores: dict[tuple, float] = {}
    if s.protocol == "knn":
        for fname, x in candidates.items():
            std = Standardizer.fit(x[fit_tr])
            scores[(fname,)] = M.roc_auc(cosine_pair_scores(std(x), val_pairs), val_same)
        (fname,) = _pick(scores)
        x = candidates[fname]
        emb = Standardizer.fit(x[fit_all])(x)
        return emb, {"feature": fname}, _scores_table(scores, ("feature",)), "cosine similarity of standardised features"
    for fname, x in candidates.items():
        z = Standardizer.fit(x[fit_tr])(x)
        for shrink, proj in fit_lda_path(z[fit_tr], identity[fit_tr], tuple(s.lda_shrinkage)).items():
            scores[(fname, shrink)] = M.roc_auc(cosine_pair_scores(proj(z), val_pairs), val_same)
    fname, shrink = _pick(scores)
    x = candidates[fname]
    z = Standardizer.fit(x[fit_all])(x)
    proj = fit_lda(z[fit_all], identity[fit_all], shrink)
    chosen = {"feature": fname, "lda_shrinkage": shrink, "components": int(proj.matrix.shape[1])}
    return proj(z), chosen, _scores_table(scores, ("feature", "lda_shrinkage")), \
        "Fisher LDA on train identities + cosine similarity"


def run_verification(data: BenchmarkData, features: dict[str, np.ndarray], s: ProtocolSettings) -> ProtocolOutput:
    pairs, same, pair_split = (data.targets["pairs"], data.targets["pair_same"], data.targets["pair_split"])
    tr, va = data.indices(TRAIN), data.indices(VAL)
    emb, chosen, table, estimator = _fit_verification(
        features, data.targets["identity"], tr, np.concatenate([tr, va]), pairs[pair_split == VAL],
        same[pair_split == VAL], s)
    return ProtocolOutput(
        protocol={"name": s.protocol, "estimator": estimator, "chosen": chosen, "selection_metric": "ROC AUC",
                  "val_scores": table, "refit_on": "train+val",
                  "chosen_at_grid_edge": _grid_edges(chosen, {"lda_shrinkage": s.lda_shrinkage})},
        test_index=data.indices(TEST),
        predictions={"pair_scores": cosine_pair_scores(emb, pairs[pair_split == TEST]),
                     "pair_same": same[pair_split == TEST]})


def run_verification_folds(data: BenchmarkData, features: dict[str, np.ndarray],
                           s: ProtocolSettings) -> ProtocolOutput:
    """LFW's 10-fold protocol. For each test fold k the probe is fitted on the other nine folds'
    images: hyperparameters chosen on the pairs of fold k - 1 with the remaining eight folds
    fitted, then refitted on all nine. That fold's model scores every pair; scoring picks fold k's
    threshold on the other folds' pairs (paco_fr.eval.metrics.kfold_verification)."""
    pairs, same, pair_fold = data.targets["pairs"], data.targets["pair_same"], data.targets["pair_fold"]
    image_fold, identity = data.targets["image_fold"], data.targets["identity"]
    n_folds = int(pair_fold.max()) + 1
    fold_scores = np.empty((len(pairs), n_folds))
    per_fold, tables, edges, estimator = [], [], set(), ""
    for k in range(n_folds):
        val_fold = (k - 1) % n_folds
        fit_all = np.flatnonzero(image_fold != k)
        fit_tr = np.flatnonzero((image_fold != k) & (image_fold != val_fold))
        val = pair_fold == val_fold
        emb, chosen, table, estimator = _fit_verification(features, identity, fit_tr, fit_all, pairs[val], same[val], s)
        fold_scores[:, k] = cosine_pair_scores(emb, pairs)
        per_fold.append({"test_fold": k, "val_fold": val_fold, **chosen})
        tables += [{"test_fold": k, **row} for row in table]
        edges.update(_grid_edges(chosen, {"lda_shrinkage": s.lda_shrinkage}))
    return ProtocolOutput(
        protocol={"name": s.protocol, "estimator": estimator, "chosen": {"per_fold": per_fold},
                  "selection_metric": "ROC AUC on the fold before the test fold", "val_scores": tables,
                  "refit_on": "the nine folds other than the test fold", "chosen_at_grid_edge": sorted(edges)},
        test_index=data.indices(TEST),
        predictions={"fold_scores": fold_scores, "pair_same": same, "pair_fold": pair_fold})


def run(data: BenchmarkData, features: dict[str, np.ndarray], settings: ProtocolSettings, *,
        patch_size: int, encoder: torch.nn.Module | None = None) -> ProtocolOutput:
    """Dispatch on protocol and task; `features` from paco_fr.eval.encoders.extract_features
    (`encoder` is only used by ``finetune`` with a non-zero encoder learning rate)."""
    if settings.protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {settings.protocol!r} (known: {', '.join(PROTOCOLS)})")
    if data.task == "verification" and "pair_fold" in data.targets:
        if settings.protocol == "finetune":
            # Ten fine-tunings per encoder are not what a light head should cost: the folds use
            # the linear probe, and the report says so.
            out = run_verification_folds(data, features, replace(settings, protocol="linear"))
            out.protocol.update(requested="finetune",
                                note="the 10-fold protocol runs the linear probe (fine-tuning is not run per fold)")
            return out
        return run_verification_folds(data, features, settings)
    if settings.protocol == "finetune":
        return run_finetune(data, features, settings, encoder=encoder, patch_size=patch_size)
    if data.task in ("attributes", "expression", "classification"):
        return run_global(data, features, settings)
    if data.task == "landmarks":
        return run_landmarks(data, features, settings)
    if data.task == "parsing":
        return run_parsing(data, features, settings, patch_size)
    if data.task == "verification":
        return run_verification(data, features, settings)
    raise ValueError(f"no protocol for task {data.task!r}")
