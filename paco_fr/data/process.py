"""Curating one chunk of inputs inside a worker process: every decision that depends on one input
alone (read, hash, decode, faces, alignment, quality, perceptual hashes, shard members).

Decisions that compare inputs (exact and near duplicates, splits, shard order) are the merge's
(paco_fr.data.merge), made in one canonical order, so a chunk's output depends only on its inputs
and the settings: the same whatever worker, partition count or resume produced it.

Three kinds of work overlap inside the process: reading, hashing and decoding of the next inputs and
PNG encoding of accepted crops (two I/O threads; codecs, hashlib and zlib release the GIL), and
MediaPipe (one thread of its own, fed a few inputs ahead; its graphs release the GIL while they
infer). A *careful* pass (a chunk retried after its worker died) runs one input at a time, so a
crash names the input that caused it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from paco_fr.data.align import align_face
from paco_fr.data.config import CurationConfig
from paco_fr.data.decode import DecodedImage
from paco_fr.data.dedup import face_hash, image_hash
from paco_fr.data.inputs import LoadedInput, load_input
from paco_fr.data.landmarks import DetectedFace, LandmarkProvider, MediaPipeLandmarks
from paco_fr.data.quality import FaceQuality, crop_measures, face_size_px, quality_failures
from paco_fr.data.reasons import Reason, Rejection
from paco_fr.data.records import attach_ground_truth, encode_members, face_id_for
from paco_fr.data.sources import SourceItem

log = logging.getLogger(__name__)

LOOKAHEAD = 4
IO_THREADS = 2
# Test fault injector (off unless set): a worker that starts loading an input whose relative path
# ends with this value kills itself with SIGKILL, as a segfaulting decoder or an OOM kill would.
# With PACO_FR_TEST_FAULT_KILL_ONCE=<file> it does so only while <file> does not exist (and creates it).
FAULT_KILL_ENV = "PACO_FR_TEST_FAULT_KILL_WORKER_ON"
FAULT_ONCE_ENV = "PACO_FR_TEST_FAULT_KILL_ONCE"


@dataclass
class FaceOut:
    row: dict[str, Any]
    members: Future | dict[str, bytes]  # -> {extension: bytes}


@dataclass
class InputOut:
    """One input's partition-local outcome: a row of inputs.parquet and its candidate faces."""

    row: dict[str, Any]
    faces: list[FaceOut]


# Events a chunk reports to its worker loop: ("risk", position) when work on an input starts (a crash
# from then on may be its fault) and ("done", position, outcome) once it is written.
Report = Callable[..., None]


def _maybe_inject_fault(item: SourceItem) -> None:
    target = os.environ.get(FAULT_KILL_ENV)
    if not target or not item.rel_path.endswith(target):
        return
    once = os.environ.get(FAULT_ONCE_ENV)
    if once:
        if os.path.exists(once):
            return
        open(once, "w").close()
    os.kill(os.getpid(), signal.SIGKILL)


class ChunkProcessor:
    """Curates inputs one chunk at a time; one per worker process (it owns a MediaPipe graph)."""

    def __init__(self, cfg: CurationConfig) -> None:
        self.cfg = cfg
        self._detector: MediaPipeLandmarks | None = None
        self._pool = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="curate-io")
        self._detect_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="curate-detect")

    def close(self) -> None:
        self._detect_pool.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    # -- a chunk ------------------------------------------------------------------------------ #
    def run(self, items: list[SourceItem], write: Callable[[InputOut], None], report: Report, *,
            careful: bool = False, poisoned: dict[int, str] | None = None) -> None:
        """Process `items` in order; `write` receives each outcome in order (members resolved)."""
        poisoned = poisoned or {}
        lookahead = 1 if careful else LOOKAHEAD
        loads: deque[tuple[Future, Future]] = deque()
        unwritten: deque[tuple[int, InputOut]] = deque()
        next_load = 0
        for position, item in enumerate(items):
            while next_load < len(items) and len(loads) < lookahead:
                load = self._pool.submit(self._load, next_load, items[next_load], report, next_load in poisoned)
                loads.append((load, self._detect_pool.submit(self._detect_ahead, load)))
                next_load += 1
            load, detection = loads.popleft()
            if position in poisoned:
                outcome = InputOut(_input_row(item, Reason.WORKER_CRASH, poisoned[position], {}), [])
            else:
                outcome = self._process(item, load, detection)
            unwritten.append((position, outcome))
            while unwritten and (careful or len(unwritten) > lookahead):
                self._flush(*unwritten.popleft(), write, report)
        while unwritten:
            self._flush(*unwritten.popleft(), write, report)

    def _flush(self, position: int, outcome: InputOut, write: Callable[[InputOut], None], report: Report) -> None:
        for face in outcome.faces:
            if isinstance(face.members, Future):
                face.members = face.members.result()
        write(outcome)
        report("done", position, outcome)

    def _load(self, position: int, item: SourceItem, report: Report, poisoned: bool) -> LoadedInput:
        report("risk", position)
        if poisoned:
            return LoadedInput()
        _maybe_inject_fault(item)
        return load_input(item, self.cfg)

    def _detect_ahead(self, load: Future) -> list[DetectedFace] | None:
        """On the detector thread: MediaPipe's faces for an input that needs them, else None. An
        exception stays in the future and is raised where a sequential pass would raise it."""
        loaded: LoadedInput = load.result()
        if (loaded.image is None or loaded.read_error or loaded.decode_error or loaded.annotation_error
                or self._uses_ground_truth(loaded)):
            return None
        return self._mediapipe().detect(loaded.image.rgb)

    def _uses_ground_truth(self, loaded: LoadedInput) -> bool:
        return self.cfg.use_ground_truth and (loaded.truth is not None or loaded.pts is not None)

    def _mediapipe(self) -> MediaPipeLandmarks:
        """Created on first use, on the detector thread (the only one that runs it)."""
        if self._detector is None:
            det = self.cfg.detector
            self._detector = MediaPipeLandmarks(min_score=det.min_score, model_selection=det.model_selection,
                                                max_faces=det.max_faces, detection_floor=det.detection_floor,
                                                context=det.mesh_context)
        return self._detector

    # -- one input ---------------------------------------------------------------------------- #
    def _process(self, item: SourceItem, load: Future, detection: Future) -> InputOut:
        known: dict[str, Any] = {}
        try:
            if item.rejection is not None:
                raise Rejection(*item.rejection)
            return self._process_image(item, load.result(), detection, known)
        except Rejection as rej:
            return InputOut(_input_row(item, rej.reason, rej.detail, known), [])
        except Exception as exc:  # noqa: BLE001 - one bad input must not end a long run
            log.warning("unexpected error on %s: %s: %s", item.rel_path, type(exc).__name__, exc,
                        exc_info=log.isEnabledFor(logging.DEBUG))
            return InputOut(_input_row(item, Reason.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}", known), [])

    def _process_image(self, item: SourceItem, loaded: LoadedInput, detection: Future,
                       known: dict[str, Any]) -> InputOut:
        cfg = self.cfg
        if loaded.read_error is not None:
            raise loaded.read_error
        known["source_sha256"] = loaded.file_sha
        if loaded.decode_error is not None:
            raise loaded.decode_error
        image = loaded.image
        assert image is not None
        known["pixel_sha256"] = image.pixel_sha256
        if loaded.annotation_error is not None:
            raise loaded.annotation_error
        known["image_phash"] = image_hash(image.rgb)

        provider: LandmarkProvider
        if self._uses_ground_truth(loaded):
            provider = loaded.truth if loaded.truth is not None else loaded.pts
            faces = provider.detect(image.rgb)
        else:
            faces = detection.result()
            provider = self._mediapipe()
        if loaded.truth is not None and provider is not loaded.truth:
            attach_ground_truth(faces, loaded.truth.detect(image.rgb))
        if not faces:
            raise Rejection(Reason.NO_FACE, f"{provider.name} found no face")
        candidates = [(rank, f) for rank, f in enumerate(faces) if f.score >= cfg.detector.min_score]
        if not candidates:
            best = max(f.score for f in faces)
            raise Rejection(Reason.LOW_SCORE, f"best detector score {best:.3f} < min_score={cfg.detector.min_score} "
                                              f"({len(faces)} detections)")
        if cfg.detector.keep == "largest":
            candidates = [max(candidates, key=lambda rf: (rf[1].box_area, -rf[0]))]

        accepted: list[FaceOut] = []
        failures: list[tuple[int, str, str]] = []
        for rank, face in candidates:
            try:
                accepted.append(self._face(item, image, loaded.labels, provider.name, rank, len(faces), face,
                                           known))
            except Rejection as rej:
                failures.append((rank, rej.reason.value, rej.detail))
        if not accepted:
            raise Rejection(Reason(failures[0][1]), compose_detail(failures))
        row = _input_row(item, None, "", known)
        row["face_failures"] = json.dumps(failures)
        return InputOut(row, accepted)

    def _face(self, item: SourceItem, image: DecodedImage, labels: np.ndarray | None, provider_name: str,
              rank: int, n_faces: int, face: DetectedFace, known: dict[str, Any]) -> FaceOut:
        cfg = self.cfg
        try:
            size = face_size_px(face.keypoints5)
            aligned = align_face(image.rgb, face.keypoints5, cfg.crop_size, cfg.template_zoom)
        except ValueError as exc:
            raise Rejection(Reason.ALIGNMENT_FAILED, str(exc)) from exc
        sharpness, brightness, contrast = crop_measures(aligned.crop)
        failed = quality_failures(FaceQuality(size, sharpness, brightness, contrast), cfg.quality)
        if failed:
            raise Rejection(failed[0][0], ", ".join(text for _, text in failed))
        file_sha = known["source_sha256"]
        notes = face.annotations
        identity = notes.get("identity")
        face_id = face_id_for(file_sha, rank)
        kp_crop = aligned.keypoints5.astype(np.float64)
        attributes = notes.get("attributes")
        row: dict[str, Any] = {
            "face_id": face_id,
            "source_path": item.rel_path,
            "source_sha256": file_sha,
            "pixel_sha256": image.pixel_sha256,
            "face_index": rank,
            "n_faces": n_faces,
            "synthetic": bool(notes.get("synthetic", False)),
            "identity": None if identity is None else str(identity),
            "expression": notes.get("expression"),
            "attributes": json.dumps(attributes, sort_keys=True) if attributes is not None else None,
            "landmark_source": provider_name,
            "landmark_scheme": face.scheme,
            "det_score": float(face.score),
            "box_x0": face.box[0], "box_y0": face.box[1], "box_x1": face.box[2], "box_y1": face.box[3],
            **{f"kp{i}_{axis}": float(kp_crop[i, j]) for i in range(5) for j, axis in enumerate("xy")},
            "face_size_px": size,
            "sharpness": sharpness,
            "brightness": brightness,
            "contrast": contrast,
            "phash": face_hash(aligned.crop),
            "image_phash": known["image_phash"],
            "width": image.width,
            "height": image.height,
            "crop_size": cfg.crop_size,
            "has_labels": labels is not None,
            "sidecar_paths": list(item.sidecar_rel_paths),
        }
        members = self._pool.submit(encode_members, aligned.crop, aligned.matrix, labels, face_id, face, kp_crop, row)
        return FaceOut(row=row, members=members)


def compose_detail(failures: list[tuple[int, str, str]]) -> str:
    """The detail of an image none of whose faces survived: every face, in rank order."""
    return "; ".join(f"face {rank}: {reason}: {text}" for rank, reason, text in sorted(failures))


def _input_row(item: SourceItem, reason: Reason | None, detail: str, known: dict[str, Any]) -> dict[str, Any]:
    return {"source_path": item.rel_path, "reason": None if reason is None else reason.value, "detail": detail,
            "source_sha256": known.get("source_sha256"), "pixel_sha256": known.get("pixel_sha256"),
            "image_phash": known.get("image_phash"), "sidecar_paths": list(item.sidecar_rel_paths),
            "face_failures": None}
