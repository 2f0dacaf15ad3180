"""How face-like are the procedural faces? Run MediaPipe's real detector and face mesh on them and
compare their keypoints with the generator's ground truth.

    python -m paco_fr.data.synthetic.mediapipe_check [n] [size] [max_yaw] [max_roll_deg]

Errors are Euclidean distances divided by the ground-truth inter-ocular distance (IOD).
"""

from __future__ import annotations

import json
import sys

import numpy as np

from .api import generate_params, render_face

# face mesh (refine_landmarks=True) indices of the 5 keypoints: iris centres, nose tip, mouth corners
MESH_KP5 = (468, 473, 1, 61, 291)


def mediapipe_agreement(n: int = 30, *, size: int = 192, seed: int = 2024, max_yaw: float = 0.35,
                        max_roll_deg: float = 20.0, model_selection: int = 0,
                        min_score: float = 0.5) -> dict:
    import mediapipe as mp  # heavy import, only when asked

    detector = mp.solutions.face_detection.FaceDetection(model_selection=model_selection,
                                                         min_detection_confidence=min_score)
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1,
                                           min_detection_confidence=min_score)
    detected, meshed, det_err, mesh_err = 0, 0, [], []
    try:
        for p in generate_params(n, seed=seed, max_yaw=max_yaw, max_roll_deg=max_roll_deg):
            f = render_face(p, size)
            iod = float(np.linalg.norm(f.keypoints5[1] - f.keypoints5[0]))
            res = detector.process(f.image)
            if res.detections:
                detected += 1
                k = max(res.detections, key=lambda d: d.score[0]).location_data.relative_keypoints
                # BlazeFace keypoints: 0 image-left eye, 1 image-right eye, 2 nose tip, 3 mouth centre
                pred = np.array([[k[j].x * size - 0.5, k[j].y * size - 0.5] for j in range(4)])
                gt = np.stack([f.keypoints5[0], f.keypoints5[1], f.keypoints5[2], f.keypoints5[3:].mean(0)])
                det_err.append(np.linalg.norm(pred - gt, axis=1) / iod)
            m = mesh.process(f.image)
            if m.multi_face_landmarks:
                meshed += 1
                lm = m.multi_face_landmarks[0].landmark
                pred = np.array([[lm[j].x * size - 0.5, lm[j].y * size - 0.5] for j in MESH_KP5])
                mesh_err.append(np.linalg.norm(pred - f.keypoints5, axis=1) / iod)
    finally:
        detector.close()
        mesh.close()
    det_err_a = np.array(det_err).reshape(-1, 4)
    mesh_err_a = np.array(mesh_err).reshape(-1, 5)
    return {
        "n": n, "size": size, "seed": seed, "max_yaw": max_yaw, "max_roll_deg": max_roll_deg,
        "detection_rate": detected / n if n else 0.0,
        "mesh_rate": meshed / n if n else 0.0,
        "detector_error_iod": det_err_a.mean(axis=0).round(3).tolist() if len(det_err_a) else None,
        "mesh_error_iod": mesh_err_a.mean(axis=0).round(3).tolist() if len(mesh_err_a) else None,
        "mesh_error_iod_median": float(np.median(mesh_err_a)) if len(mesh_err_a) else None,
        "mesh_eye_error_iod_median": float(np.median(mesh_err_a[:, :2])) if len(mesh_err_a) else None,
        "mesh_worst_point_p90": float(np.percentile(mesh_err_a.max(axis=1), 90)) if len(mesh_err_a) else None,
        "detector_error_iod_median": float(np.median(det_err_a)) if len(det_err_a) else None,
        "detector_eyes_nose_error_iod_median": float(np.median(det_err_a[:, :3])) if len(det_err_a) else None,
        "_mesh_errors": mesh_err_a, "_detector_errors": det_err_a,
    }


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:]]
    n, size = int(args[0]) if args else 100, int(args[1]) if len(args) > 1 else 192
    yaw, roll = (args[2] if len(args) > 2 else 0.35), (args[3] if len(args) > 3 else 20.0)
    out = mediapipe_agreement(n, size=size, seed=0, max_yaw=yaw, max_roll_deg=roll)
    print(json.dumps({k: v for k, v in out.items() if not k.startswith("_")}))
