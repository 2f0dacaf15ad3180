"""Probe estimators and the protocols built on them, on small data made here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from paco_fr.eval import probes as P
from paco_fr.eval import protocols
from paco_fr.eval.data import TEST, TRAIN, VAL, BenchmarkData
from paco_fr.eval.protocols import ProtocolSettings

torch.set_num_threads(1)


def test_standardizer_uses_training_rows_and_keeps_constant_columns():
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    std = P.Standardizer.fit(x)
    np.testing.assert_allclose(std(x), [[-1, 0], [1, 0]])
    np.testing.assert_allclose(std(np.array([[5.0, 7.0]])), [[3, 2]])


def test_logistic_regression_fits_and_regularisation_shrinks():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    weak = P.fit_logistic(x, y, 1e-3, n_classes=2)
    strong = P.fit_logistic(x, y, 10.0, n_classes=2)
    assert np.mean(weak(x).argmax(1) == y) > 0.95
    assert np.abs(strong.weight).sum() < np.abs(weak.weight).sum()
    # the warm-started path reaches the same solutions as cold starts
    path = P.fit_logistic_path(x, y, (1e-2, 1.0), n_classes=2, max_iter=300)
    cold = P.fit_logistic(x, y, 1e-2, n_classes=2, max_iter=300)
    np.testing.assert_allclose(path[1e-2].weight, cold.weight, atol=2e-3)


def test_multilabel_logistic_learns_each_output():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = np.c_[x[:, 0] > 0, x[:, 1] < 0].astype(np.float32)
    model = P.fit_logistic(x, y, 1e-3, multilabel=True)
    assert np.mean((model(x) > 0) == (y > 0.5)) > 0.95


@pytest.mark.parametrize("n,d", [(50, 8), (8, 50)])  # primal and dual
def test_ridge_path_matches_the_closed_form(n, d):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(n, 3))
    path = P.RidgePath(x, y)
    assert path.dual == (d > n)
    alpha = 0.3
    lam = alpha * path.scale
    xc, yc = x - x.mean(0), y - y.mean(0)
    w = np.linalg.solve(xc.T @ xc + lam * np.eye(d), xc.T @ yc)
    model = path.model(alpha)
    np.testing.assert_allclose(model.weight, w, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model(x), xc @ w + y.mean(0), rtol=1e-4, atol=1e-4)


def test_knn_vote_weights_by_similarity():
    train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = np.eye(2)[[0, 0, 1]]
    out = P.knn_vote(train, labels, np.array([[1.0, 0.05], [0.0, 2.0]]), k=1)
    np.testing.assert_allclose(out, [[1, 0], [0, 1]])
    soft = P.knn_vote(train, labels, np.array([[0.7, 0.7]]), k=3, temperature=1e3)
    np.testing.assert_allclose(soft, [[2 / 3, 1 / 3]], atol=1e-3)  # huge temperature: plain vote


def test_lda_separates_identities_a_nuisance_direction_would_hide():
    rng = np.random.default_rng(3)
    ids = np.repeat(np.arange(30), 5)
    centres = rng.normal(size=(30, 8))                       # identity lives in all 8 dimensions
    nuisance = rng.normal(size=(150, 8)) * np.r_[np.full(4, 4.0), np.full(4, 0.3)]  # pose/light swamp dims 0-3
    x = centres[ids] + nuisance
    proj = P.fit_lda(x, ids, shrinkage=0.1)
    z = proj(x)
    pairs = np.array([(i, j) for i in range(150) for j in range(i + 1, 150)])
    same = ids[pairs[:, 0]] == ids[pairs[:, 1]]
    from paco_fr.eval.metrics import roc_auc

    assert roc_auc(P.cosine_pair_scores(z, pairs), same) > roc_auc(P.cosine_pair_scores(x, pairs), same) + 0.1


def _reference_lda(x, ids, shrinkage):
    """Textbook Fisher LDA: eigh of the shrunk Sw, then eigh of the whitened Sb (D x D)."""
    classes, inverse = np.unique(ids, return_inverse=True)
    d, mean = x.shape[1], x.mean(axis=0)
    means = np.stack([x[inverse == c].mean(axis=0) for c in range(len(classes))])
    counts = np.bincount(inverse).astype(float)
    within = x - means[inverse]
    sw = within.T @ within / len(x)
    sw = (1 - shrinkage) * sw + shrinkage * np.trace(sw) / d * np.eye(d)
    sb = sum(n / len(x) * np.outer(m - mean, m - mean) for n, m in zip(counts, means))
    evals, evecs = np.linalg.eigh(sw)
    whiten = evecs / np.sqrt(evals)
    m_evals, m_evecs = np.linalg.eigh(whiten.T @ sb @ whiten)
    order = np.argsort(m_evals)[::-1][: len(classes) - 1]
    return lambda z: (z - mean) @ whiten @ m_evecs[:, order]


def test_lda_path_matches_textbook_lda_for_every_shrinkage():
    rng = np.random.default_rng(5)
    ids = np.repeat(np.arange(12), 4)
    x = rng.normal(size=(12, 40))[ids] + rng.normal(size=(48, 40)) * rng.uniform(0.2, 3.0, 40)
    pairs = np.array([(i, j) for i in range(48) for j in range(i + 1, 48)])
    path = P.fit_lda_path(x, ids, (0.1, 0.5, 0.9))
    for shrinkage, proj in path.items():
        assert proj.matrix.shape == (40, 11)
        np.testing.assert_allclose(P.cosine_pair_scores(proj(x), pairs),
                                   P.cosine_pair_scores(_reference_lda(x, ids, shrinkage)(x), pairs), atol=1e-9)
        np.testing.assert_allclose(P.fit_lda(x, ids, shrinkage).matrix, proj.matrix)


def test_lda_with_more_dimensions_than_samples_is_solved_in_their_span_exactly():
    # 30 samples of 10 identities in 200 dimensions (like grid or HOG features on a few hundred faces):
    # the reduced solve must give the textbook full-space scores, also for samples it was not fitted on.
    rng = np.random.default_rng(6)
    ids = np.repeat(np.arange(10), 3)
    centres = rng.normal(size=(10, 200))
    x = centres[ids] + rng.normal(size=(30, 200))
    held_out = centres[np.arange(10)] + rng.normal(size=(10, 200))
    pairs = np.array([(i, j) for i in range(10) for j in range(i + 1, 10)])
    for shrinkage, proj in P.fit_lda_path(x, ids, (0.1, 0.6)).items():
        assert proj.matrix.shape == (200, 9)
        reference = _reference_lda(x, ids, shrinkage)
        for z in (x, held_out):
            np.testing.assert_allclose(P.cosine_pair_scores(proj(z), pairs),
                                       P.cosine_pair_scores(reference(z), pairs), atol=1e-8)


def test_parsing_targets_and_prediction_round_trip():
    rng = np.random.default_rng(4)
    # labels constant on 2x2 cells of 8x8 patches in a 16x16 image (sub-grid 4 -> 2x2-pixel cells)
    coarse = rng.integers(0, 3, size=(2, 8, 8))
    maps = coarse.repeat(2, axis=1).repeat(2, axis=2).astype(np.uint8)
    targets = protocols.parsing_targets(maps, 3, patch=8, sub=4)
    assert targets.shape == (2 * 4, 4 * 4 * 3)
    np.testing.assert_allclose(targets.reshape(-1, 3).sum(1), 1.0)
    pred = protocols.parsing_predict(targets * 10.0, n=2, g=2, sub=4, n_classes=3, size=16)
    # bilinear upsampling of exact one-hot cell scores recovers the cell labels away from ties
    assert np.mean(pred == maps) > 0.9
    assert protocols.subgrid_for(8, 4) == 4 and protocols.subgrid_for(14, 4) == 2 and protocols.subgrid_for(7, 4) == 1


def _global_data(n_per=(60, 30, 60), noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    n = sum(n_per)
    labels = rng.integers(0, 3, size=n)
    split = np.repeat([TRAIN, VAL, TEST], n_per).astype(np.int8)
    data = BenchmarkData(task="expression", images=np.zeros((n, 8, 8, 3), np.uint8), split=split,
                         targets={"label": labels}, meta={"class_names": ["a", "b", "c"]})
    signal = np.eye(3)[labels] * 2.0
    feats = {"cls": (rng.normal(size=(n, 6)) * noise).astype(np.float32),
             "mean": np.c_[signal, rng.normal(size=(n, 3))].astype(np.float32) + rng.normal(size=(n, 6)).astype(np.float32) * noise}
    return data, feats


@pytest.mark.parametrize("protocol", ["linear", "knn"])
def test_global_protocol_learns_and_chooses_on_val_only(protocol):
    data, feats = _global_data()
    settings = ProtocolSettings(protocol=protocol)
    out = protocols.run(data, feats, settings, patch_size=8)
    te = data.indices(TEST)
    assert np.mean(out.predictions["label"] == data.targets["label"][te]) > 0.9
    assert out.protocol["chosen"]["feature"] in ("mean", "cls+mean")  # the informative feature
    # scrambling the test labels cannot change what was chosen: only val is looked at
    scrambled = BenchmarkData(task=data.task, images=data.images, split=data.split,
                              targets={"label": np.where(data.split == TEST, (data.targets["label"] + 1) % 3,
                                                         data.targets["label"])}, meta=data.meta)
    again = protocols.run(scrambled, feats, settings, patch_size=8)
    assert again.protocol["chosen"] == out.protocol["chosen"]
    assert again.protocol["val_scores"] == out.protocol["val_scores"]


def test_parsing_falls_back_to_linear_for_knn_and_says_so():
    rng = np.random.default_rng(5)
    n = 12
    maps = np.zeros((n, 16, 16), np.uint8)
    maps[:, :, 8:] = 1
    tokens = np.zeros((n, 4, 4), np.float32)
    tokens[:, [1, 3], 0] = 1.0  # right-hand patches say "class 1"
    tokens += rng.normal(size=tokens.shape).astype(np.float32) * 0.01
    data = BenchmarkData(task="parsing", images=np.zeros((n, 16, 16, 3), np.uint8),
                         split=np.array([0] * 6 + [1] * 3 + [2] * 3, np.int8), targets={"label_map": maps},
                         meta={"class_names": ["bg", "x"], "ignore_in_mean": [0]})
    out = protocols.run(data, {"patch": tokens}, ProtocolSettings(protocol="knn"), patch_size=8)
    assert out.protocol["name"] == "linear" and out.protocol["requested"] == "knn" and "note" in out.protocol
    assert np.mean(out.predictions["label_map"] == maps[data.indices(TEST)]) > 0.95


def test_unknown_protocol_is_rejected():
    data, feats = _global_data()
    with pytest.raises(ValueError, match="unknown protocol"):
        protocols.run(data, feats, ProtocolSettings(protocol="svm"), patch_size=8)


def test_finetune_head_trains_on_frozen_features_and_keeps_best_val_epoch():
    data, feats = _global_data(noise=0.2)
    out = protocols.run(data, feats, ProtocolSettings(protocol="finetune", finetune_epochs=15, finetune_lr=1e-2,
                                                     finetune_batch_size=16),
                        patch_size=8)
    te = data.indices(TEST)
    assert np.mean(out.predictions["label"] == data.targets["label"][te]) > 0.85
    history = out.protocol["val_scores"]
    best = max(history, key=lambda h: h["val_score"])
    assert out.protocol["chosen"]["epoch"] == best["epoch"] and out.protocol["chosen"]["encoder"] == "frozen"


def test_no_feature_references_by_hand():
    from paco_fr.eval.scoring import no_feature_reference

    split = np.array([TRAIN, TRAIN, VAL, TEST, TEST], np.int8)
    imgs = np.zeros((5, 4, 4, 3), np.uint8)
    attrs = np.array([[1, 0], [1, 0], [0, 0], [1, 1], [0, 0]], bool)  # majority (fit rows): [1, 0]
    ref = no_feature_reference(BenchmarkData("attributes", imgs, split, {"attributes": attrs}, {}))
    assert ref["value"] == pytest.approx(0.5)  # each attribute: 1 of the 2 test rows right
    labels = np.array([2, 2, 1, 2, 0])
    ref = no_feature_reference(BenchmarkData("expression", imgs, split, {"label": labels}, {}))
    assert ref["name"] == "majority class" and ref["value"] == 0.5
    lm = np.zeros((5, 3, 2), np.float32)
    lm[:, 1, 0] = 10.0                        # normalising pair (0, 1) 10 apart
    lm[3, 2, 1] = 2.0                         # test image 3: point 2 moved by 2 -> NME (0 + 0 + 2) / 3 / 10
    ref = no_feature_reference(BenchmarkData("landmarks", imgs, split, {"landmarks": lm}, {"norm_indices": [0, 1]}))
    assert ref["value"] == pytest.approx((2 / 30 + 0.0) / 2)
    maps = np.zeros((5, 4, 4), np.uint8)
    maps[:3, :, 2:] = 1                       # prior map: right half class 1
    maps[3, :, 2:] = 1                        # test image 3 matches the prior, image 4 has no class 1
    ref = no_feature_reference(BenchmarkData("parsing", imgs, split, {"label_map": maps},
                                             {"class_names": ["bg", "x"], "ignore_in_mean": [0]}))
    # class 1 over both test images: TP 8, FP 8, FN 0 -> F1 = 16 / 24
    assert ref["value"] == pytest.approx(2 / 3)


def test_grid_edge_flags_values_at_the_ends_of_grids_of_three_or_more():
    edges = protocols._grid_edges({"l2": 1e-4, "k": 5, "ridge_alpha": 0.1},
                                  {"l2": (1e-4, 1e-3, 1e-2), "k": (1, 5, 10), "ridge_alpha": (0.1, 1.0)})
    assert edges == ["l2"]


def test_limit_threads_caps_and_restores_blas_and_torch():
    from paco_fr.eval.threads import blas_threads, limit_threads

    torch_before, blas_before = torch.get_num_threads(), blas_threads()
    with limit_threads(1):
        assert torch.get_num_threads() == 1
        if blas_before is not None:  # numpy's OpenBLAS found (Linux wheels)
            assert blas_threads() == 1
    assert torch.get_num_threads() == torch_before and blas_threads() == blas_before
    with limit_threads(0):
        assert torch.get_num_threads() == torch_before
