"""Evaluation metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paco_fr.eval import metrics as M


def test_accuracy_and_attribute_accuracy():
    assert M.accuracy([0, 1, 2, 2], [0, 1, 1, 2]) == 0.75
    assert math.isnan(M.accuracy([], []))
    y = np.array([[1, 0], [1, 1], [0, 0], [0, 1]], dtype=bool)
    p = np.array([[1, 1], [1, 1], [1, 0], [0, 0]], dtype=bool)
    # attribute 0: 3/4 right, attribute 1: 2/4 right -> mean 0.625
    np.testing.assert_allclose(M.per_attribute_accuracy(y, p), [0.75, 0.5])
    assert M.mean_attribute_accuracy(y, p) == pytest.approx(0.625)
    with pytest.raises(ValueError):
        M.accuracy([0, 1], [0])


def test_confusion_matrix_rows_are_truth():
    cm = M.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    with pytest.raises(ValueError):
        M.confusion_matrix([0, 3], [0, 0], 3)


def test_f1_per_class_with_empty_classes():
    # rows = truth, columns = prediction; 4 classes.
    cm = np.array([
        [5, 1, 0, 0],   # class 0: TP 5, FN 1
        [2, 3, 0, 0],   # class 1: TP 3, FN 2
        [0, 0, 0, 0],   # class 2: absent from truth and prediction -> undefined
        [0, 0, 0, 0],   # class 3: absent from truth ...
    ])
    cm[1, 3] = 1        # ... but predicted once (a true class-1 pixel called 3) -> F1 = 0
    f1 = M.f1_from_confusion(cm)
    # class 0: TP 5, FP 2, FN 1 -> 10 / (10 + 3); class 1: TP 3, FP 1, FN 3 -> 6 / 10
    assert f1[0] == pytest.approx(10 / 13)
    assert f1[1] == pytest.approx(6 / 10)
    assert math.isnan(f1[2])
    assert f1[3] == 0.0
    # mean over defined classes, background (0) excluded: (0.6 + 0) / 2
    assert M.mean_f1(cm) == pytest.approx(0.3)
    assert M.mean_f1(cm, exclude=()) == pytest.approx((10 / 13 + 0.6 + 0.0) / 3)


def test_nme_inter_ocular_and_failure_rate():
    gt = np.zeros((2, 3, 2))
    gt[:, 0] = [0, 0]
    gt[:, 1] = [10, 0]        # normalising pair (0, 1): distance 10
    gt[:, 2] = [5, 5]
    pred = gt.copy()
    pred[0, 2] += [3, 4]      # image 0: errors 0, 0, 5 -> mean 5/3 -> NME 1/6
    pred[1] += [1, 0]         # image 1: every point off by 1 -> NME 0.1
    nme = M.nme_per_image(pred, gt, (0, 1))
    np.testing.assert_allclose(nme, [1 / 6, 0.1])
    # strictly greater than the threshold fails: 0.1 itself is not a failure
    assert M.failure_rate(nme, 0.10) == 0.5
    assert M.failure_rate(np.array([0.1, 0.1]), 0.10) == 0.0
    with pytest.raises(ValueError, match="zero"):
        M.nme_per_image(pred, np.zeros_like(gt), (0, 1))


def test_ced_and_auc():
    nme = np.array([0.0, 0.05, 0.2])
    thresholds, fraction = M.ced_curve(nme, 0.10, n_steps=3)
    np.testing.assert_allclose(thresholds, [0.0, 0.05, 0.10])
    np.testing.assert_allclose(fraction, [1 / 3, 2 / 3, 2 / 3])
    # per image: 1 - nme/0.1 clipped -> 1, 0.5, 0 -> mean 0.5; equals the CED integral / 0.1
    assert M.auc_at(nme, 0.10) == pytest.approx(0.5)
    t, f = M.ced_curve(nme, 0.10, n_steps=100001)
    assert np.trapezoid(f, t) / 0.10 == pytest.approx(0.5, abs=1e-4)


def test_roc_auc_counts_ties_as_half():
    scores = np.array([0.8, 0.5, 0.5, 0.2])
    labels = np.array([True, True, False, False])
    # positive-negative pairs: (.8,.5)=1 (.8,.2)=1 (.5,.5)=0.5 (.5,.2)=1 -> 3.5 / 4
    assert M.roc_auc(scores, labels) == pytest.approx(0.875)
    assert M.roc_auc(np.ones(4), labels) == pytest.approx(0.5)
    assert math.isnan(M.roc_auc(scores, np.ones(4, dtype=bool)))


@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=30))
@settings(max_examples=60, deadline=None)
def test_roc_auc_matches_pair_counting(items):
    scores = np.array([s for s, _ in items], dtype=float)
    labels = np.array([y for _, y in items])
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return
    expected = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert M.roc_auc(scores, labels) == pytest.approx(expected)


def test_roc_curve_and_tar_at_far_step_rule():
    # 4 genuine, 5 impostor pairs.
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.85, 0.6, 0.5, 0.5, 0.1])
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0], dtype=bool)
    far, tar, thr = M.roc_curve(scores, labels)
    # thresholds descending over distinct scores; tied 0.5s move together (FAR 1/5 -> 3/5)
    np.testing.assert_allclose(thr[1:], [0.9, 0.85, 0.8, 0.7, 0.6, 0.5, 0.3, 0.1])
    np.testing.assert_allclose(far, [0, 0, .2, .2, .2, .4, .8, .8, 1.0])
    np.testing.assert_allclose(tar, [0, .25, .25, .5, .75, .75, .75, 1.0, 1.0])
    assert M.tar_at_far(scores, labels, 0.0) == 0.25      # threshold 0.9: no impostor accepted
    assert M.tar_at_far(scores, labels, 0.2) == 0.75      # FAR exactly 0.2 is allowed
    assert M.tar_at_far(scores, labels, 0.5) == 0.75      # 0.5 would need to split the tie: not allowed
    assert M.tar_at_far(scores, labels, 1.0) == 1.0


def test_bootstrap_is_seeded_and_brackets_the_value():
    rng = np.random.default_rng(0)
    values = rng.normal(1.0, 1.0, size=200)
    stat = lambda idx: float(values[idx].mean())  # noqa: E731
    a = M.bootstrap_ci(stat, len(values), n_resamples=300, seed=7)
    b = M.bootstrap_ci(stat, len(values), n_resamples=300, seed=7)
    assert a == b
    assert a[0] < values.mean() < a[1]
    # roughly +- 1.96 standard errors
    se = values.std() / np.sqrt(len(values))
    assert a[1] - a[0] == pytest.approx(2 * 1.96 * se, rel=0.25)
    low, high = M.bootstrap_mean_ci(values, n_resamples=300, seed=7)
    assert low < values.mean() < high and (high - low) == pytest.approx(a[1] - a[0], rel=0.25)
    # a constant statistic gives a degenerate interval; per-column form
    lo2, hi2 = M.bootstrap_mean_ci(np.c_[np.ones(10), np.arange(10.0)], n_resamples=50, seed=0)
    assert lo2[0] == hi2[0] == 1.0 and lo2[1] < 4.5 < hi2[1]


def test_with_ci_and_undefined_values():
    mv = M.with_ci(lambda idx: float(np.mean(np.arange(10)[idx])), 10, n_resamples=100, seed=0)
    assert mv.value == 4.5 and mv.n == 10 and mv.ci_low <= 4.5 <= mv.ci_high
    nan = M.MetricValue(float("nan"), float("nan"), 1.0, 3).as_dict()
    assert nan == {"value": None, "ci_low": None, "ci_high": 1.0, "n": 3}
    # resamples where the statistic is undefined are dropped, not averaged in
    labels = np.array([True] + [False] * 9)
    scores = np.linspace(1, 0, 10)
    lo, hi = M.bootstrap_ci(lambda idx: M.roc_auc(scores[idx], labels[idx]), 10, n_resamples=200, seed=1)
    assert lo == hi == 1.0


# --- standard protocols: LFW 10-fold accuracy, parsing on the original image, box crops -----------

def test_best_threshold_by_hand():
    # scores 0.1 (diff), 0.35 (diff), 0.4 (same), 0.8 (same): accepting above 0.375 is right 4/4;
    # above 0.225: 3/4; above 0.6: 3/4; everything or nothing: 2/4.
    t = M.best_threshold([0.1, 0.4, 0.35, 0.8], [False, True, False, True])
    assert t == pytest.approx(0.375)
    # ties go to the smallest threshold: every cut between 0.2 and 0.5 is right 3/4 of the time
    assert M.best_threshold([0.2, 0.5, 0.6, 0.1], [True, False, True, False]) == pytest.approx(0.15)


def test_kfold_verification_chooses_each_threshold_on_the_other_folds():
    # three folds, two pairs each: (score, same)
    #   fold 0: (0.9, T) (0.2, F)   fold 1: (0.6, T) (0.5, F)   fold 2: (0.3, T) (0.1, F)
    scores = np.array([0.9, 0.2, 0.6, 0.5, 0.3, 0.1])
    same = np.array([True, False, True, False, True, False])
    fold = np.array([0, 0, 1, 1, 2, 2])
    res = M.kfold_verification(scores, same, fold)
    # fold 0 from folds 1+2 {0.6T 0.5F 0.3T 0.1F}: best cut 0.2 (3/4; first of the ties) -> fold 0: 0.9 > 0.2
    # right, 0.2 > 0.2 false -> right: 1.0. fold 1 from folds 0+2 {0.9T 0.2F 0.3T 0.1F}: cut 0.25 (4/4)
    # -> 0.6 right, 0.5 accepted, wrong: 0.5. fold 2 from folds 0+1 {0.9T 0.2F 0.6T 0.5F}: cut 0.55 ->
    # 0.3 rejected (wrong), 0.1 rejected (right): 0.5.
    np.testing.assert_allclose(res.thresholds, [0.2, 0.25, 0.55])
    np.testing.assert_allclose(res.accuracy, [1.0, 0.5, 0.5])
    np.testing.assert_array_equal(res.correct, [True, True, True, False, False, True])
    np.testing.assert_allclose(res.auc, [1.0, 1.0, 1.0])
    # (P, K) scores: fold k's column is what fold k's model gives every pair
    per_model = np.repeat(scores[:, None], 3, axis=1)
    per_model[:, 1] = [0.9, 0.2, 0.6, 0.7, 0.3, 0.1]  # model 1 ranks fold 1's negative above its positive
    assert M.kfold_verification(per_model, same, fold).auc[1] == 0.0
    with pytest.raises(ValueError, match="folds 0..K-1"):
        M.kfold_verification(scores, same, np.array([0, 0, 1, 1, 3, 3]))


def test_repeat_summary_t_interval_by_hand():
    s = M.repeat_summary([0.70, 0.74, 0.72])
    # mean 0.72, sd sqrt((0.02^2 + 0.02^2) / 2) = 0.02, half-width t(0.975, 2) * 0.02 / sqrt(3)
    half = 4.303 * 0.02 / math.sqrt(3)
    assert s["mean"] == pytest.approx(0.72) and s["sd"] == pytest.approx(0.02) and s["n"] == 3
    assert (s["ci_low"], s["ci_high"]) == (pytest.approx(0.72 - half), pytest.approx(0.72 + half))
    one = M.repeat_summary([0.5])
    assert one["sd"] is None and one["ci_low"] is None and one["mean"] == 0.5


def test_t_quantiles_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in range(1, 31):
        assert M.t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=6e-4)
    assert M.t_quantile_975(100) == M.t_quantile_975(30) >= stats.t.ppf(0.975, 100)


def test_confusion_of_one_map_and_per_image_confusions():
    gt = np.array([[0, 1], [1, 2]])
    pred = np.array([[0, 1], [2, 2]])
    np.testing.assert_array_equal(M.confusion(pred, gt, 3), [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    stack = M.parsing_confusion(np.stack([pred, gt]), np.stack([gt, gt]), 3)
    np.testing.assert_array_equal(stack[0], M.confusion(pred, gt, 3))
    np.testing.assert_array_equal(stack[1], np.diag([1, 2, 1]))


def test_warp_back_scores_on_the_original_grid_by_hand():
    from paco_fr.eval.adapters.parsing import resize_matrix
    from paco_fr.eval.dense import maps_to_labels, warp_back_labels

    # An 8 x 8 label image whose crop is its 4 x 4 resize; the score map says class 1 on the crop's
    # left half. Original column u sits at crop x = 0.5 u - 0.25: columns 0-3 (x <= 1.25) score
    # class 1 at >= 0.75, columns 4-7 at <= 0.25.
    maps = np.zeros((2, 4, 4), np.float32)
    maps[1, :, :2] = 1.0
    maps[0, :, 2:] = 1.0
    labels = warp_back_labels(maps, 4, resize_matrix((8, 8), 4), (8, 8))
    np.testing.assert_array_equal(labels, np.tile([1, 1, 1, 1, 0, 0, 0, 0], (8, 1)))
    # F1 of class 1 against a truth whose left 3 columns are class 1: tp 24, fp 8, fn 0 -> 48 / 56
    truth = np.zeros((8, 8), int)
    truth[:, :3] = 1
    assert M.f1_from_confusion(M.confusion(labels, truth, 2))[1] == pytest.approx(48 / 56)
    # With the crop covering the original one to one, warping back is the crop's own prediction.
    same = warp_back_labels(maps, 4, np.array([[1.0, 0, 0], [0, 1.0, 0]]), (4, 4))
    np.testing.assert_array_equal(same, maps_to_labels(maps[None], 4)[0])
    # Pixels the crop never saw are background: shift by 2, the crop covers original columns 2-5.
    shifted = warp_back_labels(maps, 4, np.array([[1.0, 0, -2.0], [0, 1.0, 0]]), (4, 8), background=0)
    assert (shifted[:, :2] == 0).all() and (shifted[:, 6:] == 0).all()
    np.testing.assert_array_equal(shifted[:, 2:6], np.tile([1, 1, 0, 0], (4, 1)))
    # the prior correction scales each class's score before the arg-max
    favoured = warp_back_labels(maps * 0.4 + 0.3, 4, resize_matrix((8, 8), 4), (8, 8),
                                class_scale=np.array([10.0, 1.0]))
    assert (favoured == 0).all()


def test_box_crop_matrix_by_hand():
    from paco_fr.eval.build import box_crop_matrix

    # points spanning (10, 10)-(30, 20): box side 20 x 1.25 = 25 centred at (20, 15), onto 50 px:
    # scale 2, the box's edge (7.5, 2.5) at the crop's edge -0.5.
    m = box_crop_matrix(np.array([[10.0, 10.0], [30.0, 20.0]]), 50)
    np.testing.assert_allclose(m, [[2.0, 0.0, -15.5], [0.0, 2.0, -5.5]])
    # NME does not change under the crop's scale and shift: it is the NME in the original image
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 100, size=(3, 68, 2))
    pred = gt + rng.normal(size=gt.shape)
    crop = lambda p: p @ m[:, :2].T + m[:, 2]  # noqa: E731
    np.testing.assert_allclose(M.nme_per_image(crop(pred), crop(gt), (36, 45)), M.nme_per_image(pred, gt, (36, 45)))
