"""Region polygons from facial landmarks: MediaPipe's 478-point mesh, iBUG 68 points, or (fallback)
the 5 alignment keypoints.

Every function returns a dict with `face_oval` and the feature classes (`left_brow`, `right_brow`,
`left_eye`, `right_eye`, `nose`, `mouth`), each an (K, 2) float64 polygon in crop pixels. Left and
right are as seen in the image: of a pair, the polygon with the smaller mean x is `left_*`. This
makes every provider immune to its own naming (MediaPipe's "LEFT_EYE" is the subject's left eye, i.e.
the image right one) as long as the crop is upright, which alignment guarantees.
"""

from __future__ import annotations

import functools
from typing import Iterable

import numpy as np

from paco_fr.masks.raster import convex_hull, edges_to_loop, polygon_area

Polygons = dict[str, np.ndarray]

# iBUG 300-W 68-point layout (0-based).
IBUG_JAW = tuple(range(0, 17))
IBUG_BROWS = (tuple(range(17, 22)), tuple(range(22, 27)))
IBUG_NOSE_BRIDGE = (27, 28, 29, 30)
IBUG_NOSE_BASE = (31, 32, 33, 34, 35)
IBUG_EYES = (tuple(range(36, 42)), tuple(range(42, 48)))
IBUG_OUTER_LIP = tuple(range(48, 60))

# Shape constants for the iBUG and keypoint polygons, in units of the inter-ocular distance (IOD, eye
# centre to eye centre) unless said otherwise. Measured on MediaPipe meshes of the scikit-image
# astronaut and matplotlib's Grace Hopper (docs/masks.md has the numbers and the script).
BROW_THICKNESS = 0.073         # iBUG brow points trace the brow's upper edge; the region extends this far below
NOSE_BRIDGE_HALF_WIDTH = 0.09  # half width of the bridge at point 27
NOSE_ALA_WIDEN = 0.10          # nostril base widened by this much on each side (the alae)
FOREHEAD_LIFT = 0.23           # top of the oval above the brow line, in units of brow-line-to-chin distance


def polygons_from_mediapipe478(points: np.ndarray) -> Polygons:
    """Polygons from the MediaPipe face mesh (478 points, or 468 without iris refinement), using the
    mesh's own index sets (`mp.solutions.face_mesh_connections`)."""
    points = _check_points(points, (468, 478), "mediapipe478")
    sets = _mediapipe_index_sets()
    polygons: Polygons = {"face_oval": _contour_polygon(sets["face_oval"], points)}
    for name in ("brow", "eye"):
        a = _contour_polygon(sets[f"subject_left_{name}"], points)
        b = _contour_polygon(sets[f"subject_right_{name}"], points)
        polygons[f"left_{name}"], polygons[f"right_{name}"] = _image_left_first(a, b)
    polygons["nose"] = convex_hull(points[sorted({i for e in sets["nose"] for i in e})])
    polygons["mouth"] = _contour_polygon(sets["lips"], points)  # outer lip loop: the larger of the two
    return polygons


def polygons_from_ibug68(points: np.ndarray) -> Polygons:
    """Polygons from iBUG 68 points: brows 17-21/22-26 (their upper edge) extended downwards into
    bands, eyes 36-41/42-47, nose bridge 27 + base 31-35 widened at the alae, outer lip 48-59, and the
    face oval = jaw 0-16 closed over the forehead by a half ellipse whose top is FOREHEAD_LIFT above
    the brow line."""
    points = _check_points(points, (68,), "ibug68")
    eye_a, eye_b = (points[list(idx)] for idx in IBUG_EYES)
    iod = float(np.linalg.norm(eye_a.mean(0) - eye_b.mean(0)))
    if iod < 1e-6:
        raise ValueError("degenerate ibug68 landmarks: the two eyes coincide")
    across, down = _face_axes(eye_a.mean(0), eye_b.mean(0), points[list(IBUG_OUTER_LIP)].mean(0))
    polygons: Polygons = {"face_oval": _ibug_face_oval(points, across, down)}
    brows = [_band_below(points[list(idx)], BROW_THICKNESS * iod * down) for idx in IBUG_BROWS]
    polygons["left_brow"], polygons["right_brow"] = _image_left_first(*brows)
    polygons["left_eye"], polygons["right_eye"] = _image_left_first(eye_a, eye_b)
    top = points[IBUG_NOSE_BRIDGE[0]]
    base = points[list(IBUG_NOSE_BASE)].copy()
    base[0] -= NOSE_ALA_WIDEN * iod * across
    base[-1] += NOSE_ALA_WIDEN * iod * across
    bridge = NOSE_BRIDGE_HALF_WIDTH * iod * across
    polygons["nose"] = np.vstack([top - bridge, base, top + bridge])
    polygons["mouth"] = points[list(IBUG_OUTER_LIP)].copy()
    return polygons


def polygons_from_keypoints5(keypoints5: np.ndarray) -> Polygons:
    """Coarse polygons from the 5 alignment keypoints alone (the fallback when no landmarks exist and
    the mesh finds no face): ellipses and a triangle placed in the face's own frame."""
    kp = _check_points(keypoints5, (5,), "keypoints5")
    eye_l, eye_r, nose_tip, mouth_l, mouth_r = kp
    if eye_l[0] > eye_r[0]:
        eye_l, eye_r = eye_r, eye_l
    iod = float(np.linalg.norm(eye_r - eye_l))
    if iod < 1e-6:
        raise ValueError("degenerate keypoints5: the two eyes coincide")
    mouth = (mouth_l + mouth_r) / 2
    across, down = _face_axes(eye_l, eye_r, mouth)
    eye_mid = (eye_l + eye_r) / 2

    def ellipse(centre: np.ndarray, half_across: float, half_down: float, n: int = 24) -> np.ndarray:
        t = np.linspace(0, 2 * np.pi, n, endpoint=False)[:, None]
        return centre + np.cos(t) * half_across * across + np.sin(t) * half_down * down

    mouth_width = float(np.linalg.norm(mouth_r - mouth_l))
    # Extents of the MediaPipe polygons in the face frame of the astronaut and Grace Hopper crops.
    return {
        "face_oval": ellipse(eye_mid + 0.51 * iod * down, 1.1 * iod, 1.23 * iod, 48),
        "left_eye": ellipse(eye_l, 0.22 * iod, 0.075 * iod),
        "right_eye": ellipse(eye_r, 0.22 * iod, 0.075 * iod),
        "left_brow": ellipse(eye_l - 0.24 * iod * down - 0.04 * iod * across, 0.36 * iod, 0.06 * iod),
        "right_brow": ellipse(eye_r - 0.24 * iod * down + 0.04 * iod * across, 0.36 * iod, 0.06 * iod),
        "nose": np.vstack([nose_tip - 0.7 * iod * down, nose_tip - 0.33 * iod * across,
                           nose_tip + 0.07 * iod * down, nose_tip + 0.33 * iod * across]),
        "mouth": ellipse(mouth + 0.05 * iod * down, 0.5 * mouth_width, 0.15 * mouth_width),
    }


# --- helpers -------------------------------------------------------------------------------------

@functools.cache
def _mediapipe_index_sets() -> dict[str, frozenset[tuple[int, int]]]:
    from mediapipe.python.solutions import face_mesh_connections as fmc

    # FACEMESH_NOSE exists in mediapipe 0.10.x; older releases lack it.
    nose = getattr(fmc, "FACEMESH_NOSE", None) or frozenset(
        (a, b) for a, b in zip(_FALLBACK_NOSE[:-1], _FALLBACK_NOSE[1:]))
    return {
        "face_oval": frozenset(fmc.FACEMESH_FACE_OVAL),
        "subject_left_eye": frozenset(fmc.FACEMESH_LEFT_EYE),
        "subject_right_eye": frozenset(fmc.FACEMESH_RIGHT_EYE),
        "subject_left_brow": frozenset(fmc.FACEMESH_LEFT_EYEBROW),
        "subject_right_brow": frozenset(fmc.FACEMESH_RIGHT_EYEBROW),
        "lips": frozenset(fmc.FACEMESH_LIPS),
        "nose": frozenset(nose),
    }


# Bridge, tip and alae of the canonical mesh (same points as mediapipe 0.10's FACEMESH_NOSE); only
# its convex hull is used.
_FALLBACK_NOSE = (168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 97, 98, 64, 48, 115, 220, 45, 275, 440, 344, 278,
                  294, 327, 326)


def _check_points(points: np.ndarray, counts: tuple[int, ...], scheme: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] not in counts:
        raise ValueError(f"{scheme} landmarks must be ({' or '.join(map(str, counts))}, 2), got {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError(f"{scheme} landmarks contain NaN or inf")
    return points


def _image_left_first(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (a, b) if a[:, 0].mean() <= b[:, 0].mean() else (b, a)


def _face_axes(eye_left: np.ndarray, eye_right: np.ndarray, mouth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors across the face (image left to right) and down it (eyes to mouth)."""
    across = eye_right - eye_left
    if across[0] < 0:
        across = -across
    across = across / np.linalg.norm(across)
    down = np.array([-across[1], across[0]])
    if np.dot(mouth - (eye_left + eye_right) / 2, down) < 0:
        down = -down
    return across, down


def _components(edges: Iterable[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    edges = sorted(edges)
    for a, b in edges:
        parent[find(a)] = find(b)
    groups: dict[int, list[tuple[int, int]]] = {}
    for a, b in edges:
        groups.setdefault(find(a), []).append((a, b))
    return list(groups.values())


def _chain(edges: list[tuple[int, int]]) -> list[int] | None:
    """Vertices of an open path given as edges, from one end to the other; None if not a path."""
    neighbours: dict[int, list[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    ends = sorted(v for v, n in neighbours.items() if len(n) == 1)
    if len(ends) != 2 or any(len(n) > 2 for n in neighbours.values()):
        return None
    path, previous = [ends[0]], None
    while len(path) < len(neighbours):
        options = [n for n in neighbours[path[-1]] if n != previous]
        if not options:
            return None
        previous = path[-1]
        path.append(options[0])
    return path


def _contour_polygon(edges: frozenset[tuple[int, int]], points: np.ndarray) -> np.ndarray:
    """One polygon from a mesh index set: the largest closed loop (the outer lip of FACEMESH_LIPS), two
    open contours joined end to end (a brow's upper and lower edge), else the convex hull."""
    components = _components(edges)
    loops = [loop for loop in (edges_to_loop(c) for c in components) if loop is not None]
    if loops:
        return max((points[loop] for loop in loops), key=polygon_area)
    chains = [chain for chain in (_chain(c) for c in components) if chain is not None]
    if len(chains) == 2:
        first, second = (points[c] for c in chains)
        # join the first chain's end to the nearer end of the second so the outline does not cross
        if np.linalg.norm(first[-1] - second[-1]) < np.linalg.norm(first[-1] - second[0]):
            second = second[::-1]
        return np.vstack([first, second])
    return convex_hull(points[sorted({i for e in edges for i in e})])


def _band_below(line: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The band between an open polyline and its copy moved by `offset`. (2K, 2)."""
    return np.vstack([line, (line + offset)[::-1]])


def _ibug_face_oval(points: np.ndarray, across: np.ndarray, down: np.ndarray) -> np.ndarray:
    jaw = points[list(IBUG_JAW)]
    brows = points[list(IBUG_BROWS[0] + IBUG_BROWS[1])]
    chin = points[8]
    start, end = jaw[0], jaw[-1]
    centre = (start + end) / 2
    half_width = float(np.dot(end - start, across)) / 2
    brow_line = float(np.dot(brows.mean(0) - centre, down))          # negative: above the centre
    brow_to_chin = float(np.dot(chin - brows.mean(0), down))
    top = -brow_line + FOREHEAD_LIFT * brow_to_chin                   # centre to the top of the oval
    # half ellipse from the last jaw point over the forehead back to the first
    t = np.linspace(0, np.pi, 19)[1:-1, None]
    arc = centre + np.cos(t) * half_width * across - np.sin(t) * top * down
    return np.vstack([jaw, arc])
