"""Landmark providers: MediaPipe for real on real photos (indices and left/right order verified),
the 300-W .pts parser and its errors, and ground truth from the generator's sidecars."""

from __future__ import annotations

import json

import numpy as np
import pytest

from curation_testdata import gt_record, photo, synthetic_faces, write_pts
from paco_fr.data.landmarks import (MESH_KEYPOINTS5, DetectedFace, GroundTruthLandmarks, Ibug68Landmarks,
                                    LandmarkProvider, MediaPipeLandmarks, PtsFormatError,
                                    keypoints5_from_ibug68, read_pts)
from paco_fr.data.reasons import Reason, Rejection


@pytest.fixture(scope="module")
def detector():
    with MediaPipeLandmarks() as provider:
        yield provider


def _check_upright_order(face: DetectedFace) -> None:
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.keypoints5
    assert lx < rx and mlx < mrx, "image-left first"
    assert max(ly, ry) < ny < min(mly, mry), "eyes above the nose tip above the mouth"
    assert lx < nx < rx


@pytest.mark.parametrize("name, left_eye", [("astronaut", (204, 101)), ("grace_hopper", (222, 191))])
def test_mediapipe_finds_the_face_in_real_photos(detector, name, left_eye):
    image = photo(name)
    faces = detector.detect(image)
    assert len(faces) == 1
    face = faces[0]
    assert 0.8 < face.score <= 1.0
    assert face.scheme == "mediapipe478" and face.landmarks.shape == (478, 2)
    _check_upright_order(face)
    np.testing.assert_allclose(face.keypoints5[0], left_eye, atol=6)
    x0, y0, x1, y1 = face.box
    assert (face.keypoints5 >= [x0, y0]).all() and (face.keypoints5 <= [x1, y1]).all()


def test_mesh_indices_are_the_iris_centres_nose_tip_and_mouth_corners(detector):
    import mediapipe as mp

    face = detector.detect(photo("astronaut"))[0]
    mesh = face.landmarks
    connections = mp.solutions.face_mesh_connections
    for centre, ring in ((468, connections.FACEMESH_RIGHT_IRIS), (473, connections.FACEMESH_LEFT_IRIS)):
        ring_points = sorted({i for edge in ring for i in edge})
        assert centre not in ring_points
        np.testing.assert_allclose(mesh[centre], mesh[ring_points].mean(axis=0), atol=2.0)
    lips = {i for edge in connections.FACEMESH_LIPS for i in edge}
    assert {61, 291} <= lips
    lip_x = mesh[sorted(lips)][:, 0]
    assert mesh[61, 0] == pytest.approx(lip_x.min(), abs=1.0) and mesh[291, 0] == pytest.approx(lip_x.max(), abs=1.0)
    np.testing.assert_array_equal(face.keypoints5[:2], mesh[[MESH_KEYPOINTS5[0], MESH_KEYPOINTS5[1]]])


def test_a_mirrored_photo_gives_mirrored_keypoints_in_the_same_order(detector):
    image = photo("astronaut")
    width = image.shape[1]
    plain = detector.detect(image)[0].keypoints5
    mirrored = detector.detect(np.ascontiguousarray(image[:, ::-1]))[0].keypoints5
    _check_upright_order(DetectedFace(box=(0, 0, width, width), score=1, keypoints5=mirrored))
    # mirroring swaps left and right: mirrored left eye = width - original right eye
    expected = np.stack([width - plain[[1, 0, 2, 4, 3], 0], plain[[1, 0, 2, 4, 3], 1]], axis=1)
    np.testing.assert_allclose(mirrored, expected, atol=5)


def test_rolled_face_keeps_anatomical_order(detector):
    rotated = np.ascontiguousarray(np.rot90(photo("astronaut")))  # 90 degrees counter-clockwise
    face = detector.detect(rotated)[0]
    (lx, ly), (rx, ry) = face.keypoints5[:2]
    # upright image-left eye (the subject's right) is now at the bottom
    assert ly > ry and abs(lx - rx) < abs(ly - ry)


def test_no_face_in_noise_or_black(detector):
    rng = np.random.default_rng(0)
    assert detector.detect(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)) == []
    assert detector.detect(np.zeros((256, 256, 3), np.uint8)) == []
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(np.zeros((64, 64), np.float32))


def test_mediapipe_agrees_with_generator_ground_truth(detector):
    faces = synthetic_faces(12, seed=5)
    errors = []
    for face in faces:
        found = detector.detect(face.image)
        if not found or found[0].scheme is None:
            continue
        eye_distance = np.linalg.norm(face.keypoints5[1] - face.keypoints5[0])
        errors.append(np.linalg.norm(found[0].keypoints5 - face.keypoints5, axis=1).mean() / eye_distance)
    assert len(errors) >= 9, "MediaPipe finds most procedural faces"
    assert np.median(errors) < 0.1, "same keypoints, same order, within a tenth of the eye distance"


def test_provider_protocol():
    assert isinstance(GroundTruthLandmarks([]), LandmarkProvider)
    assert isinstance(Ibug68Landmarks(np.zeros((68, 2))), LandmarkProvider)


# ---- .pts ---------------------------------------------------------------------------------- #


def test_read_pts_round_trip(tmp_path):
    points = np.random.default_rng(0).uniform(0, 300, (68, 2))
    np.testing.assert_allclose(read_pts(write_pts(tmp_path / "a.pts", points)), points, atol=1e-3)


@pytest.mark.parametrize("text, message", [
    ("version: 1\nn_points: 2\n{\n1 2\n3 4\n", "no '}'"),
    ("version: 1\nn_points: 2\n1 2\n", "expected 'key: value'"),
    ("version: 1\n{\n1 2\n}\n", "no 'n_points'"),
    ("version: 1\nn_points: 3\n{\n1 2\n3 4\n}\n", "n_points=3 but 2"),
    ("version: 1\nn_points: 2\n{\n1 2\n3 four\n}\n", ":5: not numbers"),
    ("version: 1\nn_points: 2\n{\n1 2 3\n3 4\n}\n", ":4: expected 'x y'"),
    ("version: 2\nn_points: 1\n{\n1 2\n}\n", "unsupported version"),
    ("version: 1\nn_points: 1\n{\nnan 2\n}\n", "non-finite"),
])
def test_read_pts_errors_say_where(tmp_path, text, message):
    path = tmp_path / "bad.pts"
    path.write_text(text)
    with pytest.raises(PtsFormatError, match=message) as info:
        read_pts(path)
    assert "bad.pts" in str(info.value)


def test_ibug68_keypoints(tmp_path):
    face = synthetic_faces(1, seed=3)[0]
    provider = Ibug68Landmarks.from_pts(write_pts(tmp_path / "f.pts", face.landmarks68))
    found = provider.detect(face.image)
    assert len(found) == 1 and found[0].scheme == "ibug68" and found[0].score == 1.0
    points = face.landmarks68.astype(np.float64)
    np.testing.assert_allclose(found[0].keypoints5[0], points[36:42].mean(axis=0), atol=1e-3)
    np.testing.assert_allclose(found[0].keypoints5[2:], points[[30, 48, 54]], atol=1e-3)
    np.testing.assert_allclose(keypoints5_from_ibug68(points)[1], points[42:48].mean(axis=0))
    (tmp_path / "short.pts").write_text("version: 1\nn_points: 2\n{\n1 2\n3 4\n}\n")
    with pytest.raises(Rejection) as info:
        Ibug68Landmarks.from_pts(tmp_path / "short.pts")
    assert info.value.reason is Reason.BAD_ANNOTATION and "68" in info.value.detail


# ---- generator ground truth ------------------------------------------------------------------ #


def test_ground_truth_sidecar(tmp_path):
    face = synthetic_faces(1, seed=3)[0]
    (tmp_path / "f.gt.json").write_text(json.dumps(gt_record(face)))
    found = GroundTruthLandmarks.from_sidecar(tmp_path / "f.gt.json").detect(face.image)
    assert len(found) == 1
    np.testing.assert_allclose(found[0].keypoints5, face.keypoints5, atol=1e-3)
    assert found[0].annotations["identity"] == face.identity and found[0].annotations["synthetic"] is True
    assert found[0].landmarks.shape == (68, 2) and found[0].scheme == "ibug68"


@pytest.mark.parametrize("record, message", [
    ("[1, 2", "not readable JSON"),
    ('{"identity": 1}', "missing 'keypoints5'"),
    ('{"keypoints5": [[1, 2], [3, 4]]}', "shape"),
    ('{"keypoints5": [[1, 2], [3, 4], [5, 6], [7, 8], [9, "a"]]}', "not numeric"),
    ('{"keypoints5": [[1, 2], [3, 4], [5, 6], [7, 8], [900, 10]]}', "outside the 64x64 image"),
    ('"a string"', "expected an object"),
])
def test_bad_ground_truth_is_a_bad_annotation(tmp_path, record, message):
    (tmp_path / "f.gt.json").write_text(record)
    with pytest.raises(Rejection) as info:
        GroundTruthLandmarks.from_sidecar(tmp_path / "f.gt.json").detect(np.zeros((64, 64, 3), np.uint8))
    assert info.value.reason is Reason.BAD_ANNOTATION
    assert message in info.value.detail
