"""Paired comparisons of two encoders on the same test items (paco_fr.eval.paired)."""

from __future__ import annotations

import numpy as np
import pytest

from paco_fr.eval import metrics as M
from paco_fr.eval.paired import load_items, metric_on, paired_difference, save_items


def _values(values, ids=None):
    values = np.asarray(values, dtype=np.float64)
    return {"values": values, "item_ids": np.arange(len(values)) if ids is None else np.asarray(ids)}


def test_a_constant_shift_gives_that_gain_with_a_zero_width_interval():
    base = np.random.default_rng(0).uniform(0, 1, 200)
    d = paired_difference(_values(base + 0.1), _values(base), higher_is_better=True, n_resamples=200)
    assert d["gain"] == pytest.approx(0.1)
    assert d["ci_low"] == pytest.approx(0.1) and d["ci_high"] == pytest.approx(0.1)
    assert d["better"] and not d["worse"] and d["n"] == 200


def test_lower_is_better_metrics_are_oriented_so_positive_means_better():
    nme = np.random.default_rng(1).uniform(0.05, 0.1, 100)
    d = paired_difference(_values(nme - 0.01), _values(nme), higher_is_better=False, n_resamples=100)
    assert d["gain"] == pytest.approx(0.01) and d["better"]
    worse = paired_difference(_values(nme + 0.01), _values(nme), higher_is_better=False, n_resamples=100)
    assert worse["gain"] == pytest.approx(-0.01) and worse["worse"] and not worse["better"]


def test_identical_encoders_are_neither_better_nor_worse():
    correct = (np.arange(50) % 3 == 0).astype(float)
    d = paired_difference(_values(correct), _values(correct), higher_is_better=True, n_resamples=100)
    assert (d["gain"], d["ci_low"], d["ci_high"], d["better"], d["worse"]) == (0.0, 0.0, 0.0, False, False)


def test_pairing_removes_the_shared_item_difficulty():
    """Items differ a lot in difficulty; the encoders differ a little and consistently. Separate
    intervals overlap, the paired one clears zero."""
    rng = np.random.default_rng(2)
    difficulty = rng.uniform(0, 1, 300)
    a = difficulty + 0.02 + rng.normal(0, 0.01, 300)
    b = difficulty
    ci_a = M.bootstrap_mean_ci(a, n_resamples=500, seed=0)
    ci_b = M.bootstrap_mean_ci(b, n_resamples=500, seed=0)
    assert ci_a[0] < ci_b[1], "separately, the intervals overlap"
    d = paired_difference(_values(a), _values(b), higher_is_better=True, n_resamples=500)
    assert d["better"] and d["ci_high"] - d["ci_low"] < 0.01


def test_reports_on_different_items_are_refused():
    with pytest.raises(ValueError, match="different test items"):
        paired_difference(_values([1, 0, 1], ids=[0, 1, 2]), _values([1, 0, 1], ids=[0, 1, 3]), higher_is_better=True)
    with pytest.raises(ValueError, match="different numbers"):
        paired_difference(_values([1, 0, 1]), _values([1, 0]), higher_is_better=True)
    with pytest.raises(ValueError, match="different kinds"):
        paired_difference(_values([1, 0]), {"scores": np.zeros(2), "same": np.array([True, False]),
                                            "item_ids": np.arange(2)}, higher_is_better=True)


def test_parsing_and_verification_items_recompute_their_metric(tmp_path):
    rng = np.random.default_rng(3)
    confusion = rng.integers(0, 50, size=(20, 4, 4))
    parsing = {"confusion": confusion, "exclude": np.array([0]), "item_ids": np.arange(20)}
    idx = np.arange(20)
    assert metric_on(parsing, idx) == pytest.approx(M.mean_f1(confusion.sum(0), exclude=(0,)))
    scores = rng.normal(size=40)
    same = np.arange(40) % 2 == 0
    verification = {"scores": scores, "same": same, "item_ids": np.arange(10)}
    assert metric_on(verification, np.arange(40)) == pytest.approx(M.roc_auc(scores, same))
    assert np.isnan(metric_on(verification, np.zeros(40, dtype=int))), "one class only: undefined, not 0"
    save_items(tmp_path, parsing)
    loaded = load_items(tmp_path)
    assert set(loaded) == set(parsing) and np.array_equal(loaded["confusion"], confusion)
    assert load_items(tmp_path / "nowhere") is None
