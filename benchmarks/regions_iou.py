"""Accuracy of derived region maps on procedural faces: per-class IoU against the generator's ground truth.

    .venv/bin/python benchmarks/regions_iou.py [--n 200] [--seed 0] [--crop 112] [--preview PNG]

Each face is aligned as curation aligns it (ground-truth keypoints5, ArcFace template, zoom 0.8) and
its ground-truth label map is warped with it. Region maps are then derived four ways:

  mediapipe/selfie1  face mesh run on the crop + selfie segmentation model 1 (the stage's default path)
  mediapipe/selfie0  same mesh, selfie segmentation model 0 (general)
  ibug68/selfie1     the generator's own 68 landmarks (no landmark error: polygon conventions only)
  keypoints5/selfie1 the 5-keypoint fallback

The MediaPipe rows are averaged over the faces where the mesh finds a face (detection rate reported);
the others over all faces. Writes benchmarks/results/regions_iou.json; `--preview` also draws the
first faces with each variant's regions (docs/img/regions_preview.png).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")

from paco_fr.data.align import align_face, transform_points, warp_image  # noqa: E402
from paco_fr.data.synthetic import generate_faces  # noqa: E402
from paco_fr.masks.accuracy import class_iou, mean_class_iou  # noqa: E402
from paco_fr.masks.landmark_polygons import (polygons_from_ibug68, polygons_from_keypoints5,  # noqa: E402
                                             polygons_from_mediapipe478)
from paco_fr.masks.mediapipe_models import FaceMeshOnCrop, PersonSegmenter  # noqa: E402
from paco_fr.masks.preview import overlay  # noqa: E402
from paco_fr.masks.raster import rasterise  # noqa: E402
from paco_fr.masks.regions_def import REGIONS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "regions_iou.json"
VARIANTS = ("mediapipe/selfie1", "mediapipe/selfie0", "ibug68/selfie1", "keypoints5/selfie1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--render", type=int, default=192, help="generator render size")
    parser.add_argument("--crop", type=int, default=112)
    parser.add_argument("--zoom", type=float, default=0.8)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--preview", type=Path, default=None)
    parser.add_argument("--preview-faces", type=int, default=6)
    args = parser.parse_args()

    ious: dict[str, list[np.ndarray]] = {v: [] for v in VARIANTS}
    shown: list[dict[str, np.ndarray]] = []
    found, mp_seconds = 0, 0.0
    with FaceMeshOnCrop() as mesh, PersonSegmenter(model_selection=0) as seg0, \
            PersonSegmenter(model_selection=1) as seg1:
        for face in generate_faces(args.n, seed=args.seed, size=args.render):
            aligned = align_face(face.image, face.keypoints5, args.crop, args.zoom)
            truth = warp_image(face.label_map, aligned.matrix, args.crop, nearest=True)
            crop = aligned.crop
            start = time.perf_counter()  # the stage's default path: selfie model 1 + mesh + rasterise
            person1 = seg1.person_mask(crop)
            points = mesh.landmarks(crop)
            polygons = polygons_from_mediapipe478(points) if points is not None else None
            derived = rasterise(polygons, args.crop, person=person1) if polygons is not None else None
            mp_seconds += time.perf_counter() - start
            person0 = seg0.person_mask(crop)
            if derived is not None:
                found += 1
                ious["mediapipe/selfie1"].append(class_iou(derived, truth))
                ious["mediapipe/selfie0"].append(class_iou(rasterise(polygons, args.crop, person=person0), truth))
            landmarks68 = transform_points(face.landmarks68, aligned.matrix)
            from68 = rasterise(polygons_from_ibug68(landmarks68), args.crop, person=person1)
            ious["ibug68/selfie1"].append(class_iou(from68, truth))
            fallback = rasterise(polygons_from_keypoints5(aligned.keypoints5), args.crop, person=person1)
            ious["keypoints5/selfie1"].append(class_iou(fallback, truth))
            if len(shown) < args.preview_faces and derived is not None:
                shown.append({"crop": crop, "ground truth": truth, "mediapipe/selfie1": derived,
                              "ibug68/selfie1": from68, "keypoints5/selfie1": fallback})

    table = {v: mean_class_iou(ious[v]) for v in VARIANTS}
    detection_rate = found / args.n
    print(f"{args.n} procedural faces (seed {args.seed}), {args.crop} px crops, zoom {args.zoom}; "
          f"mesh found {found} ({detection_rate:.0%})")
    header = f"{'class':<12}" + "".join(f"{v:>20}" for v in VARIANTS)
    print(header)
    for name in (*REGIONS, "mean"):
        cells = "".join(f"{'-' if table[v][name] is None else f'{table[v][name]:.3f}':>20}" for v in VARIANTS)
        print(f"{name:<12}{cells}")
    per_face_ms = 1000 * mp_seconds / args.n
    print(f"default mediapipe path (selfie segmentation + mesh + rasterise): {per_face_ms:.1f} ms/face")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "regions_iou",
        "config": {"n": args.n, "seed": args.seed, "render": args.render, "crop": args.crop, "zoom": args.zoom},
        "mesh_detection_rate": detection_rate,
        "faces_found": found,
        "mean_iou": table,
        "mediapipe_ms_per_face": per_face_ms,
        "machine": {"python": platform.python_version(), "processor": platform.processor() or platform.machine()},
    }, indent=2) + "\n")
    print(f"wrote {args.out}")
    if args.preview is not None:
        write_preview(args.preview, shown)


def write_preview(path: Path, shown: list[dict[str, np.ndarray]]) -> None:
    """Rows: ground truth and derived variants; columns: faces."""
    from PIL import Image, ImageDraw

    rows = ["ground truth", "mediapipe/selfie1", "ibug68/selfie1", "keypoints5/selfie1"]
    tile, pad, label_w = 2 * shown[0]["crop"].shape[0], 4, 120
    canvas = Image.new("RGB", (label_w + len(shown) * (tile + pad) + pad, len(rows) * (tile + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for r, name in enumerate(rows):
        y = pad + r * (tile + pad)
        draw.text((4, y + tile // 2 - 6), name, fill=(0, 0, 0))
        for c, face in enumerate(shown):
            canvas.paste(Image.fromarray(overlay(face["crop"], face[name], patch_size=8)),
                         (label_w + pad + c * (tile + pad), y))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="PNG")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
