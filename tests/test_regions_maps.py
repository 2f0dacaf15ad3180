"""Region maps from landmarks: rasterisation, the three landmark providers, MediaPipe on real photos."""

from __future__ import annotations

import functools

import matplotlib.cbook
import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from paco_fr.data.align import align_face, transform_points, warp_image
from paco_fr.masks import FLIP_PERMUTATION, REGION_INDEX, REGIONS
from paco_fr.masks.accuracy import class_iou, mean_class_iou
from paco_fr.masks.config import RegionsConfig
from paco_fr.masks.landmark_polygons import (polygons_from_ibug68, polygons_from_keypoints5,
                                             polygons_from_mediapipe478)
from paco_fr.masks.mediapipe_models import FaceMeshOnCrop, PersonSegmenter
from paco_fr.masks.raster import edges_to_loop, paint_regions, polygon_coverage, rasterise
from paco_fr.masks.regions import CorpusFace, FaceInputError, RegionMapBuilder

CROP = 112


# --- shared real and procedural faces ------------------------------------------------------------

@functools.cache
def _mesh() -> FaceMeshOnCrop:
    return FaceMeshOnCrop()


def _photo(name: str) -> np.ndarray:
    if name == "astronaut":
        return skdata.astronaut()
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        return np.asarray(Image.open(handle).convert("RGB"))


@functools.cache
def aligned_photo(name: str):
    """(crop, keypoints5 in crop pixels, mesh landmarks in crop pixels) of a real photo."""
    image = _photo(name)
    points = _mesh().landmarks(image)
    assert points is not None, f"MediaPipe found no face in {name}"
    keypoints = points[[468, 473, 1, 61, 291]]
    aligned = align_face(image, keypoints, CROP, zoom=0.8)
    return aligned.crop, aligned.keypoints5, transform_points(points, aligned.matrix)


@functools.cache
def procedural_faces(n: int = 8, seed: int = 11):
    from paco_fr.data.synthetic import generate_faces

    out = []
    for face in generate_faces(n, seed=seed, size=192):
        aligned = align_face(face.image, face.keypoints5, CROP, zoom=0.8)
        out.append((aligned.crop, warp_image(face.label_map, aligned.matrix, CROP, nearest=True),
                    transform_points(face.landmarks68, aligned.matrix), aligned.keypoints5))
    return out


def label_at(labels: np.ndarray, point) -> str:
    x, y = point
    return REGIONS[labels[int(y), int(x)]]


# --- rasterisation -------------------------------------------------------------------------------

def test_polygon_coverage_is_exact_for_pixel_aligned_and_half_pixel_squares():
    square = np.array([[2, 2], [6, 2], [6, 6], [2, 6]], dtype=float)
    cov = polygon_coverage(square, 8, supersample=4)
    assert cov[2:6, 2:6].min() == 1.0 and cov.sum() == 16.0
    shifted = polygon_coverage(square + 0.5, 8, supersample=4)
    assert shifted[3, 3] == 1.0 and shifted[2, 3] == pytest.approx(0.5) and shifted[2, 2] == pytest.approx(0.25)


def test_supersampled_triangle_area_is_close_to_the_true_area():
    triangle = np.array([[3.3, 4.1], [40.7, 9.9], [17.2, 36.6]])
    x, y = triangle.T
    area = 0.5 * abs(x[0] * (y[1] - y[2]) + x[1] * (y[2] - y[0]) + x[2] * (y[0] - y[1]))
    assert abs(polygon_coverage(triangle, 48, supersample=8).sum() - area) < 0.01 * area
    assert abs(polygon_coverage(triangle, 48, supersample=1).sum() - area) < 0.05 * area


def test_features_are_painted_over_skin_and_the_oval_cuts_head_other():
    oval = np.array([[10, 10], [30, 10], [30, 30], [10, 30]], dtype=float)
    eye = np.array([[14, 14], [18, 14], [18, 18], [14, 18]], dtype=float)
    person = np.zeros((40, 40), dtype=bool)
    person[5:35, 5:35] = True
    labels = rasterise({"face_oval": oval, "left_eye": eye}, 40, person=person)
    assert labels[15, 15] == REGION_INDEX["left_eye"]
    assert labels[20, 20] == REGION_INDEX["skin"]
    assert labels[7, 7] == REGION_INDEX["head_other"]
    assert labels[1, 1] == REGION_INDEX["background"]
    assert labels[36, 20] == REGION_INDEX["background"]
    with pytest.raises(ValueError, match="cannot paint"):
        paint_regions({"lips": person}, 40)


def test_edges_to_loop_orders_a_cycle_and_rejects_anything_else():
    assert edges_to_loop([(3, 1), (1, 2), (2, 4), (4, 3)]) in ([1, 2, 4, 3], [1, 3, 4, 2])
    assert edges_to_loop([(1, 2), (2, 3)]) is None                    # open path
    assert edges_to_loop([(1, 2), (2, 3), (3, 1), (4, 5), (5, 6), (6, 4)]) is None  # two cycles


# --- MediaPipe on real photos: the left/right convention ----------------------------------------

def test_mediapipe_left_eye_is_the_image_right_eye_and_we_map_it_to_right_eye():
    from mediapipe.python.solutions import face_mesh_connections as fmc

    crop, keypoints, points = aligned_photo("astronaut")
    subject_left = points[sorted({i for e in fmc.FACEMESH_LEFT_EYE for i in e})].mean(0)
    subject_right = points[sorted({i for e in fmc.FACEMESH_RIGHT_EYE for i in e})].mean(0)
    assert subject_left[0] > subject_right[0], "MediaPipe's LEFT_EYE is the subject's left = image right"
    polygons = polygons_from_mediapipe478(points)
    assert polygons["left_eye"][:, 0].mean() == pytest.approx(subject_right[0])
    labels = rasterise(polygons, CROP)
    assert label_at(labels, keypoints[0]) == "left_eye"   # keypoints5[0] is the image-left eye centre
    assert label_at(labels, keypoints[1]) == "right_eye"
    assert polygons["left_brow"][:, 0].mean() < polygons["right_brow"][:, 0].mean()
    assert label_at(labels, keypoints[2]) == "nose"
    mouth_y, mouth_x = np.nonzero(labels == REGION_INDEX["mouth"])
    iod = keypoints[1, 0] - keypoints[0, 0]
    assert keypoints[3, 0] < mouth_x.mean() < keypoints[4, 0]
    assert abs(mouth_y.mean() - keypoints[3:, 1].mean()) < 0.3 * iod  # a smile lifts the corners


@pytest.mark.parametrize("photo", ["astronaut", "grace_hopper"])
def test_mirrored_photo_gives_the_mirrored_region_map(photo):
    crop, _, _ = aligned_photo(photo)
    builder_cfg = RegionsConfig(provider="mediapipe", keypoints5_fallback=False)
    with RegionMapBuilder(builder_cfg) as builder:
        labels = builder.build(CorpusFace("a", crop)).labels
        mirrored = builder.build(CorpusFace("b", np.ascontiguousarray(crop[:, ::-1]))).labels
    unmirrored = np.asarray(FLIP_PERMUTATION, dtype=np.uint8)[mirrored[:, ::-1]]
    iou = class_iou(unmirrored, labels)
    # a left/right mix-up would give ~0 for the paired classes; brows are 2 px thin, hence the margin
    for name in ("left_eye", "right_eye", "left_brow", "right_brow", "nose", "mouth", "skin"):
        assert iou[REGION_INDEX[name]] > 0.35, (name, iou)


@pytest.mark.parametrize("model", [0, 1])
def test_both_selfie_segmentation_models_work_on_112_px_crops(model):
    crop, keypoints, _ = aligned_photo("astronaut")
    with PersonSegmenter(model_selection=model) as segmenter:
        person = segmenter.person_mask(crop)
    assert person.shape == (CROP, CROP) and person.dtype == bool
    for x, y in keypoints:
        assert person[int(y), int(x)]
    assert 0.4 < person.mean() < 0.95  # head, hair and shoulders but not the whole crop
    assert not person[:8, :8].any()    # the astronaut's top-left corner is backdrop


def test_the_stage_builder_maps_real_photos_with_head_other_around_the_face():
    with RegionMapBuilder(RegionsConfig(provider="mediapipe")) as builder:
        for photo in ("astronaut", "grace_hopper"):
            crop, keypoints, _ = aligned_photo(photo)
            result = builder.build(CorpusFace(photo, crop))
            assert (result.provider, result.source) == ("mediapipe", "mesh_on_crop")
            present = set(np.unique(result.labels))
            assert present == set(range(len(REGIONS))), f"{photo}: classes missing"
            top_centre = result.labels[20:30, 48:64]  # between the crop top and the forehead
            assert (top_centre == REGION_INDEX["head_other"]).mean() > 0.5  # hair / cap above the forehead


# --- iBUG 68 and keypoints5 against the generator's ground truth --------------------------------

def test_ibug68_polygons_from_generator_landmarks_match_the_ground_truth():
    ious = []
    for crop, truth, landmarks68, keypoints in procedural_faces():
        labels = rasterise(polygons_from_ibug68(landmarks68), CROP)
        for name in ("nose", "mouth"):
            assert (labels == REGION_INDEX[name]).any()
        assert label_at(labels, keypoints[2]) in ("nose", "skin")
        ious.append(class_iou(labels, truth))
    table = mean_class_iou(ious)
    for name in ("skin", "nose", "mouth", "left_brow", "right_brow"):
        assert table[name] > 0.5, (name, table)


def test_ibug68_left_and_right_follow_the_image_even_when_indices_are_swapped():
    checked = 0
    for _, _, landmarks68, keypoints in procedural_faces():
        swapped = landmarks68.copy()
        swapped[36:42], swapped[42:48] = landmarks68[42:48], landmarks68[36:42]
        swapped[17:22], swapped[22:27] = landmarks68[22:27], landmarks68[17:22]
        a = rasterise(polygons_from_ibug68(landmarks68), CROP)
        assert np.array_equal(a, rasterise(polygons_from_ibug68(swapped), CROP))
        if (a == REGION_INDEX["left_eye"]).any() and (a == REGION_INDEX["right_eye"]).any():  # not eyes_closed
            assert label_at(a, keypoints[0]) == "left_eye" and label_at(a, keypoints[1]) == "right_eye"
            checked += 1
        left_brow_x = np.nonzero(a == REGION_INDEX["left_brow"])[1].mean()
        assert left_brow_x < np.nonzero(a == REGION_INDEX["right_brow"])[1].mean()
    assert checked >= 3


def test_keypoints5_fallback_puts_each_part_at_its_keypoint():
    ious = []
    for crop, truth, _, keypoints in procedural_faces():
        labels = rasterise(polygons_from_keypoints5(keypoints), CROP)
        assert label_at(labels, keypoints[0]) == "left_eye"
        assert label_at(labels, keypoints[1]) == "right_eye"
        assert label_at(labels, (keypoints[3] + keypoints[4]) / 2) == "mouth"
        ious.append(class_iou(labels, truth))
    assert mean_class_iou(ious)["skin"] > 0.45  # measured 0.56 over 60 faces (benchmarks/regions_iou.py)


@pytest.mark.parametrize("fn, points, match", [
    (polygons_from_ibug68, np.zeros((67, 2)), r"\(68, 2\)"),
    (polygons_from_ibug68, np.zeros((68, 2)), "degenerate"),
    (polygons_from_mediapipe478, np.full((478, 2), np.nan), "NaN"),
    (polygons_from_keypoints5, np.ones((5, 2)), "degenerate"),
])
def test_bad_landmarks_are_rejected_with_a_reason(fn, points, match):
    with pytest.raises(ValueError, match=match):
        fn(points)


# --- provider selection --------------------------------------------------------------------------

def test_auto_prefers_ground_truth_then_stored_landmarks_then_the_mesh_then_keypoints5():
    crop, truth, landmarks68, keypoints = procedural_faces()[0]
    photo_crop, photo_kp, photo_points = aligned_photo("astronaut")
    blank = np.full((CROP, CROP, 3), 90, dtype=np.uint8)
    kp_meta = {"keypoints5": keypoints.tolist()}
    with RegionMapBuilder(RegionsConfig(provider="auto")) as builder:
        cases = {
            "gt": CorpusFace("gt", crop, {**kp_meta, "landmarks": landmarks68.tolist(), "landmark_scheme": "ibug68"},
                             labels=truth),
            "stored_mp": CorpusFace("mp", photo_crop, {"keypoints5": photo_kp.tolist(),
                                                       "landmarks": photo_points.tolist(),
                                                       "landmark_scheme": "mediapipe478"}),
            "stored_68": CorpusFace("68", crop, {**kp_meta, "landmarks": None, "landmarks68": landmarks68.tolist()}),
            "mesh": CorpusFace("mesh", photo_crop, {"keypoints5": photo_kp.tolist(), "landmarks": None,
                                                    "landmark_scheme": None}),
            "fallback": CorpusFace("blank", blank, kp_meta),
        }
        got = {name: builder.build(face) for name, face in cases.items()}
    assert (got["gt"].provider, got["gt"].source) == ("ground_truth", "label_map")
    assert np.array_equal(got["gt"].labels, truth)
    assert (got["stored_mp"].provider, got["stored_mp"].source) == ("mediapipe", "stored_landmarks")
    assert (got["stored_68"].provider, got["stored_68"].source) == ("ibug68", "stored_landmarks")
    assert (got["mesh"].provider, got["mesh"].source) == ("mediapipe", "mesh_on_crop")
    assert (got["fallback"].provider, got["fallback"].source) == ("keypoints5", "keypoints5")
    # stored landmarks and the mesh run on the same crop agree
    assert mean_class_iou([class_iou(got["stored_mp"].labels, got["mesh"].labels)])["mean"] > 0.7


def test_forced_providers_explain_what_a_face_lacks():
    blank = np.full((CROP, CROP, 3), 90, dtype=np.uint8)
    face = CorpusFace("f0", blank, {"keypoints5": [[40, 50], [70, 50], [56, 70], [44, 90], [68, 90]]})
    with RegionMapBuilder(RegionsConfig(provider="ground_truth")) as builder:
        with pytest.raises(FaceInputError, match=r"f0: provider 'ground_truth' needs a ground-truth label map"):
            builder.build(face)
    with RegionMapBuilder(RegionsConfig(provider="ibug68")) as builder:
        with pytest.raises(FaceInputError, match="68-point landmarks"):
            builder.build(face)
    with RegionMapBuilder(RegionsConfig(provider="mediapipe", keypoints5_fallback=False)) as builder:
        with pytest.raises(FaceInputError, match="a face the mesh can find"):
            builder.build(face)
    with RegionMapBuilder(RegionsConfig(provider="auto")) as builder:
        bad = CorpusFace("f1", blank, {"landmarks": [[1, 2, 3]], "landmark_scheme": "mediapipe478"})
        with pytest.raises(FaceInputError, match="f1.json landmarks"):
            builder.build(bad)
        with pytest.raises(FaceInputError, match="label map"):
            builder.build(CorpusFace("f2", blank, {}, labels=np.zeros((50, 50), np.uint8)))
        with pytest.raises(FaceInputError, match="square"):
            builder.build(CorpusFace("f3", blank[:, :100], {}))


# --- accuracy ------------------------------------------------------------------------------------

def test_class_iou_on_known_maps():
    truth = np.zeros((4, 4), np.uint8)
    truth[:2] = REGION_INDEX["skin"]
    pred = np.zeros((4, 4), np.uint8)
    pred[:1] = REGION_INDEX["skin"]
    iou = class_iou(pred, truth)
    assert iou[REGION_INDEX["skin"]] == pytest.approx(0.5)
    assert iou[REGION_INDEX["background"]] == pytest.approx(8 / 12)
    assert np.isnan(iou[REGION_INDEX["nose"]])
    table = mean_class_iou([iou, class_iou(truth, truth)])
    assert table["skin"] == pytest.approx(0.75) and table["nose"] is None


def test_mediapipe_path_finds_procedural_faces_and_matches_their_ground_truth():
    ious, found = [], 0
    with RegionMapBuilder(RegionsConfig(provider="mediapipe", keypoints5_fallback=False)) as builder:
        for i, (crop, truth, _, _) in enumerate(procedural_faces()):
            try:
                labels = builder.build(CorpusFace(str(i), crop)).labels
            except FaceInputError:
                continue
            found += 1
            ious.append(class_iou(labels, truth))
    table = mean_class_iou(ious)
    assert found >= 6  # measured: 60 of 60 with benchmarks/regions_iou.py
    assert table["mean"] > 0.5 and table["skin"] > 0.6 and table["mouth"] > 0.45, table


def test_the_documented_nose_index_set_matches_mediapipe():
    from mediapipe.python.solutions import face_mesh_connections as fmc

    from paco_fr.masks.landmark_polygons import _FALLBACK_NOSE

    assert sorted(_FALLBACK_NOSE) == sorted({i for e in fmc.FACEMESH_NOSE for i in e})
