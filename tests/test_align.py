import numpy as np
import pytest

from paco_fr.data.align import (align_face, canonical_template, estimate_similarity, transform_points,
                                warp_image)


def _similarity(angle_deg, scale, tx, ty):
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def test_estimate_similarity_recovers_a_known_transform():
    src = canonical_template(112) + np.random.default_rng(0).normal(0, 3, (5, 2))
    truth = _similarity(17.0, 1.7, -12.0, 30.5)
    dst = transform_points(src, truth)
    np.testing.assert_allclose(estimate_similarity(src, dst), truth, atol=1e-9)


def test_estimate_similarity_never_reflects():
    src = canonical_template(112)
    mirrored = src * np.array([-1.0, 1.0])
    m = estimate_similarity(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_degenerate_keypoints_are_rejected():
    with pytest.raises(ValueError, match="degenerate"):
        estimate_similarity(np.ones((5, 2)), canonical_template(112))
    with pytest.raises(ValueError, match="NaN"):
        estimate_similarity(np.full((5, 2), np.nan), canonical_template(112))


def test_template_zoom_shrinks_about_the_centre():
    full, zoomed = canonical_template(224), canonical_template(224, zoom=0.8)
    np.testing.assert_allclose(full * 0.5, canonical_template(112) * 1.0, atol=1e-9)
    np.testing.assert_allclose(zoomed - 112, (full - 112) * 0.8, atol=1e-9)


def test_align_face_maps_keypoints_onto_the_template():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    keypoints = transform_points(canonical_template(112), _similarity(-25, 2.2, 80, 40))
    aligned = align_face(image, keypoints, 112)
    assert aligned.crop.shape == (112, 112, 3) and aligned.crop.dtype == np.uint8
    np.testing.assert_allclose(aligned.keypoints5, canonical_template(112), atol=1e-4)


def test_warp_of_a_large_downscale_keeps_the_geometry():
    # A bright square far larger than the crop must land where the matrix says, despite pre-filtering.
    image = np.zeros((2000, 2000), np.uint8)
    image[800:1200, 800:1200] = 255
    matrix = np.array([[0.05, 0.0, 0.0], [0.0, 0.05, 0.0]])
    crop = warp_image(image, matrix, 100)
    ys, xs = np.nonzero(crop > 127)
    assert abs(xs.mean() - 50) < 1.5 and abs(ys.mean() - 50) < 1.5
    assert 18 <= xs.max() - xs.min() + 1 <= 22
