"""The curation stage: a folder of raw images -> an aligned, validated face corpus.

    curate(cfg, source, out_dir) -> CurationResult

For every input in sorted path order: read, hash, drop exact duplicates, decode, find faces
(ground-truth sidecars, else MediaPipe), align each face to the 5-point template, measure quality,
drop near duplicates, assign a split, and stream accepted faces into tar shards. Every input ends
in exactly one of `manifest.parquet` (it gave at least one face) or `rejected.parquet` (a reason).

Resume: whenever a shard is complete (a boundary between inputs), its tar is renamed into place and
a journal (`.curate-work/journal-NNNNNN.json`: the shard's manifest rows, the rejections since the
previous journal, the input cursor) is written after it. A killed run started again reuses every
journaled shard, rebuilds the duplicate indexes from the journals, deletes anything unjournaled
and continues from the cursor, producing the same bytes as an uninterrupted run. The final files
(tables, summary, preview, validation) are written only at the end.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sys
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from paco_fr.data.align import align_face
from paco_fr.data.config import CurationConfig
from paco_fr.data.decode import DecodedImage
from paco_fr.data.dedup import ExactIndex, NearDuplicateIndex
from paco_fr.data.inputs import LoadedInput, load_input
from paco_fr.data.journal import (SHARD_DIR, WORK_DIR, prepare_out_dir, run_fingerprint, write_journal)
from paco_fr.data.landmarks import (DetectedFace, GroundTruthLandmarks, Ibug68Landmarks, LandmarkProvider,
                                    MediaPipeLandmarks)
from paco_fr.data.manifest import (MANIFEST_FILE, MANIFEST_SCHEMA, REJECTED_FILE, REJECTED_SCHEMA,
                                   parquet_appender, table_from_rows)
from paco_fr.data.preview import write_preview
from paco_fr.data.quality import FaceQuality, crop_measures, face_size_px, phash64, phash_hex, quality_failures
from paco_fr.data.reasons import Reason, Rejection
from paco_fr.data.records import assign_split, attach_ground_truth, encode_members, face_id_for
from paco_fr.data.shards import ShardWriter
from paco_fr.data.sources import SourceItem, discover
from paco_fr.data.validation import CorpusValidationError, ValidationReport, validate_manifest
from paco_fr.io import write_json_atomic

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
PREVIEW_FILE = "preview.png"
VALIDATION_FILE = "validation.json"
FINAL_FILES = (MANIFEST_FILE, REJECTED_FILE, SUMMARY_FILE, PREVIEW_FILE, VALIDATION_FILE)
# Facts about the run rather than the corpus (where it ran, how long, what it resumed): kept in
# CurationResult.summary and the provenance record, left out of summary.json so that the same input
# gives the same corpus bytes, hence the same DVC and lineage version.
RUN_KEYS = ("source", "corpus", "resumed_from_journals", "timing")
# Inputs read and decoded ahead of the one being processed, and outcomes whose PNGs are still being
# encoded, on worker threads (file I/O, zlib and image codecs release the GIL, so this overlaps the
# detector). Bounds the memory held in flight to a few decoded images.
LOOKAHEAD = 4
IO_THREADS = 2
# MediaPipe runs on one thread of its own (its graphs are not shared between threads), in input
# order, ahead of the main thread: the graphs release the GIL while they infer, so alignment,
# quality, hashing and shard writing for input i overlap the detector on input i + 1 (on 2 cores
# the detector alone keeps one core busy).


@dataclass
class CurationResult:
    out_dir: Path
    manifest_path: Path
    rejected_path: Path
    summary: dict[str, Any]
    preview_path: Path
    validation_path: Path


@dataclass
class _AcceptedFace:
    row: dict[str, Any]
    members: Future  # -> dict: extension -> bytes in the shard (encoded on a worker thread)


@dataclass
class _Outcome:
    accepted: list[_AcceptedFace]
    rejected: dict[str, Any] | None
    face_rejections: list[str]      # reason codes of faces dropped inside an accepted image
    phashes: list[tuple[int, int]]  # (hash, face key) of accepted faces, for the near-duplicate index


# --------------------------------------------------------------------------------------------- #
# public entry point


def curate(cfg: CurationConfig, source: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
           resume: bool = True, progress: bool = True, raw_dir: str | os.PathLike[str] | None = None) -> CurationResult:
    """Curate `source` (a folder, or ``"builtin"``: the builtin corpus is first materialised into
    `raw_dir`, default ``data/raw``) into `out_dir`. Raises :class:`CorpusValidationError` (after
    writing every output, validation.json included) when the manifest fails the suite."""
    started = time.perf_counter()
    if str(source) == "builtin":
        from paco_fr.data.builtin import write_builtin_raw  # noqa: PLC0415

        source = write_builtin_raw(cfg.builtin, Path(raw_dir) if raw_dir is not None else Path("data/raw"),
                                   progress=progress)
    root = Path(source)
    out_dir = Path(out_dir)
    _check_locations(root, out_dir)
    items = discover(root)
    run_id = run_fingerprint(cfg, items)

    work = out_dir / WORK_DIR
    journals = prepare_out_dir(out_dir, run_id, resume=resume, final_files=FINAL_FILES)
    state = _RunState(cfg, root, out_dir, items)
    for journal in journals:
        state.replay(journal)
    resumed_from = len(journals)
    cursor = journals[-1]["cursor"] if journals else 0
    if resumed_from:
        log.info("resuming %s at input %d of %d (%d journaled shards)", out_dir, cursor, len(items), resumed_from)

    loop_started = time.perf_counter()
    try:
        state.run(cursor, progress=progress)
    finally:
        state.close()
    state.timing["prepare_s"] = loop_started - started
    state.timing["loop_s"] = time.perf_counter() - loop_started

    result = _finalise(state, out_dir, root, started=started, resumed_from=resumed_from)
    shutil.rmtree(work, ignore_errors=True)
    return result


# --------------------------------------------------------------------------------------------- #
# run state


def _face_key(item_index: int, face_index: int) -> int:
    """One int per face for the near-duplicate index: input position and face rank (< 65536)."""
    return (item_index << 16) | face_index


class _RunState:
    def __init__(self, cfg: CurationConfig, root: Path, out_dir: Path, items: list[SourceItem]) -> None:
        self.cfg = cfg
        self.root = root
        self.out_dir = out_dir
        self.items = items
        self.work = out_dir / WORK_DIR
        self.files = ExactIndex()
        self.pixels = ExactIndex()
        self.near = NearDuplicateIndex(cfg.quality.near_duplicate_hamming)
        self.writer = ShardWriter(out_dir / SHARD_DIR)
        self.n_journals = 0
        self._detector: MediaPipeLandmarks | None = None
        # rows since the last journal
        self.pending_manifest: list[dict[str, Any]] = []
        self.pending_rejected: list[dict[str, Any]] = []
        self.pending_face_rejections: Counter[str] = Counter()
        self.counts = Counter()  # accepted/rejected inputs and faces, for the progress bar
        self.timing: dict[str, float] = {}

    # -- resume ------------------------------------------------------------------------------- #
    def replay(self, journal: dict[str, Any]) -> None:
        """Rebuild the duplicate indexes exactly as the original run left them at this journal."""
        events = sorted([*journal["manifest"], *journal["rejected"]], key=lambda r: (r["_item"], r.get("face_index") or 0))
        for row in events:
            path = row["source_path"]
            if row.get("source_sha256"):
                self.files.add(row["source_sha256"], path)
            if row.get("pixel_sha256"):
                self.pixels.add(row["pixel_sha256"], path)
            if "face_id" in row:
                self.near.add(int(row["phash"], 16), _face_key(row["_item"], row["face_index"]))
        if journal["shard"] is not None:
            self.writer.index += 1
        self.n_journals += 1
        self.counts["faces"] += len(journal["manifest"])
        self.counts["rejected"] += len(journal["rejected"])

    # -- main loop ---------------------------------------------------------------------------- #
    def run(self, cursor: int, *, progress: bool) -> None:
        from tqdm.auto import tqdm  # noqa: PLC0415

        bar = tqdm(total=len(self.items), initial=cursor, desc="curate", unit="img", disable=not progress,
                   file=sys.stderr, dynamic_ncols=True)
        pool = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="curate-io")
        detect_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="curate-detect")
        self._pool = pool
        loads: deque[tuple[Future, Future]] = deque()
        unwritten: deque[_Outcome] = deque()
        next_load = cursor
        faces_in_shard = 0
        try:
            for index in range(cursor, len(self.items)):
                while next_load < len(self.items) and len(loads) < LOOKAHEAD:
                    load = pool.submit(load_input, self.items[next_load], self.cfg)
                    loads.append((load, detect_pool.submit(self._detect_ahead, load)))
                    next_load += 1
                outcome = self._process(index, self.items[index], *loads.popleft())
                self._register(outcome)
                unwritten.append(outcome)
                faces_in_shard += len(outcome.accepted)
                if faces_in_shard >= self.cfg.shard_size:
                    while unwritten:
                        self._write(unwritten.popleft())
                    self.checkpoint(index + 1)
                    faces_in_shard = 0
                elif len(unwritten) > LOOKAHEAD:
                    self._write(unwritten.popleft())
                bar.update(1)
                bar.set_postfix(faces=self.counts["faces"], rejected=self.counts["rejected"], refresh=False)
            while unwritten:
                self._write(unwritten.popleft())
            self.checkpoint(len(self.items))
        except BaseException:
            self.writer.abort()
            raise
        finally:
            detect_pool.shutdown(wait=True, cancel_futures=True)
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()

    def close(self) -> None:
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    def _register(self, outcome: _Outcome) -> None:
        """State the next input's decisions depend on: updated at once, in input order."""
        for value, label in outcome.phashes:
            self.near.add(value, label)
        self.counts["faces"] += len(outcome.accepted)
        self.counts["rejected"] += outcome.rejected is not None

    def _write(self, outcome: _Outcome) -> None:
        """Append an outcome's faces to the shard and its rows to the next journal, in input order."""
        for face in outcome.accepted:
            face.row["shard"] = f"{SHARD_DIR}/{self.writer.name}"
            self.writer.add(face.row["face_id"], face.members.result())
            self.pending_manifest.append(face.row)
        if outcome.rejected is not None:
            self.pending_rejected.append(outcome.rejected)
        self.pending_face_rejections.update(outcome.face_rejections)

    def checkpoint(self, cursor: int) -> None:
        """Complete the current shard (if any) and journal everything since the last journal."""
        if not (self.writer.samples or self.pending_rejected or self.pending_face_rejections):
            return
        shard = None
        shard_bytes = None
        if self.writer.samples:
            path = self.writer.finish()
            assert path is not None
            shard = f"{SHARD_DIR}/{path.name}"
            shard_bytes = path.stat().st_size
        # After the shard's rename: a journal always describes a complete shard.
        write_journal(self.work, self.n_journals, {
            "cursor": cursor,
            "shard": shard,
            "shard_bytes": shard_bytes,
            "manifest": self.pending_manifest,
            "rejected": self.pending_rejected,
            "face_rejections": dict(self.pending_face_rejections),
        })
        self.n_journals += 1
        self.pending_manifest, self.pending_rejected = [], []
        self.pending_face_rejections = Counter()

    # -- one input ---------------------------------------------------------------------------- #
    def _detect_ahead(self, load: Future) -> list[DetectedFace] | None:
        """On the detector thread: MediaPipe's faces for an input that will need them, else None.
        Runs before the main thread's order-dependent checks, so it also sees inputs that turn out
        to be exact duplicates (wasted work, never a different result); an exception is kept in
        the future and raised only where a sequential pass would have raised it."""
        loaded: LoadedInput = load.result()
        if (loaded.image is None or loaded.read_error or loaded.decode_error or loaded.annotation_error
                or self._uses_ground_truth(loaded.truth, loaded.pts)):
            return None
        return self._mediapipe().detect(loaded.image.rgb)

    def _process(self, index: int, item: SourceItem, load: Future, detection: Future) -> _Outcome:
        known: dict[str, Any] = {}
        try:
            if item.rejection is not None:
                raise Rejection(*item.rejection)
            return self._process_image(index, item, load.result(), detection, known)
        except Rejection as rej:
            return _Outcome([], self._rejected_row(index, item, rej.reason, rej.detail, known), [], [])
        except Exception as exc:  # noqa: BLE001 - one bad input must not end a long run
            log.warning("unexpected error on %s: %s: %s", item.rel_path, type(exc).__name__, exc,
                        exc_info=log.isEnabledFor(logging.DEBUG))
            return _Outcome([], self._rejected_row(index, item, Reason.PROCESSING_ERROR,
                                                   f"{type(exc).__name__}: {exc}", known), [], [])

    def _rejected_row(self, index: int, item: SourceItem, reason: Reason, detail: str,
                      known: dict[str, Any]) -> dict[str, Any]:
        return {"source_path": item.rel_path, "reason": reason.value, "detail": detail,
                "source_sha256": known.get("source_sha256"), "pixel_sha256": known.get("pixel_sha256"),
                "sidecar_paths": list(item.sidecar_rel_paths), "_item": index}

    def _process_image(self, index: int, item: SourceItem, loaded: LoadedInput, detection: Future,
                       known: dict[str, Any]) -> _Outcome:
        cfg = self.cfg
        if loaded.read_error is not None:
            raise loaded.read_error
        file_sha = loaded.file_sha
        assert file_sha is not None
        known["source_sha256"] = file_sha
        first = self.files.first(file_sha)
        if first is not None:
            raise Rejection(Reason.DUPLICATE, f"same file bytes as {first}")
        self.files.add(file_sha, item.rel_path)
        if loaded.decode_error is not None:
            raise loaded.decode_error
        image = loaded.image
        assert image is not None
        known["pixel_sha256"] = image.pixel_sha256
        first = self.pixels.first(image.pixel_sha256)
        if first is not None:
            raise Rejection(Reason.DUPLICATE, f"same decoded pixels as {first}")
        self.pixels.add(image.pixel_sha256, item.rel_path)
        if loaded.annotation_error is not None:
            raise loaded.annotation_error

        truth, labels = loaded.truth, loaded.labels
        provider: LandmarkProvider
        if self._uses_ground_truth(truth, loaded.pts):
            provider = truth if truth is not None else loaded.pts
            faces = provider.detect(image.rgb)
        else:
            faces = detection.result()
            provider = self._mediapipe()  # created by the detector thread by now
        if truth is not None and provider is not truth:
            attach_ground_truth(faces, truth.detect(image.rgb))
        if not faces:
            raise Rejection(Reason.NO_FACE, f"{provider.name} found no face")
        ranked = list(enumerate(faces))
        candidates = [(rank, f) for rank, f in ranked if f.score >= cfg.detector.min_score]
        if not candidates:
            best = max(f.score for f in faces)
            raise Rejection(Reason.LOW_SCORE, f"best detector score {best:.3f} < min_score={cfg.detector.min_score} "
                                              f"({len(faces)} detections)")
        if cfg.detector.keep == "largest":
            candidates = [max(candidates, key=lambda rf: (rf[1].box_area, -rf[0]))]

        accepted: list[_AcceptedFace] = []
        phashes: list[tuple[int, int]] = []
        failures: list[tuple[int, Reason, str]] = []
        for rank, face in candidates:
            try:
                accepted.append(self._face(index, item, image, labels, provider.name, rank, len(faces), face,
                                           file_sha, phashes))
            except Rejection as rej:
                failures.append((rank, rej.reason, rej.detail))
        if not accepted:
            rank, reason, _ = failures[0]
            detail = "; ".join(f"face {r}: {why.value}: {text}" for r, why, text in failures)
            raise Rejection(reason, detail)
        return _Outcome(accepted, None, [why.value for _, why, _ in failures], phashes)

    def _uses_ground_truth(self, truth: GroundTruthLandmarks | None, pts: Ibug68Landmarks | None) -> bool:
        return self.cfg.use_ground_truth and (truth is not None or pts is not None)

    def _mediapipe(self) -> MediaPipeLandmarks:
        """The detector, created on first use (on the detector thread, the only one that runs it)."""
        if self._detector is None:
            det = self.cfg.detector
            self._detector = MediaPipeLandmarks(min_score=det.min_score, model_selection=det.model_selection,
                                                max_faces=det.max_faces, detection_floor=det.detection_floor,
                                                context=det.mesh_context)
        return self._detector

    def _face(self, index: int, item: SourceItem, image: DecodedImage, labels: np.ndarray | None,
              provider_name: str, rank: int, n_faces: int, face: DetectedFace, file_sha: str,
              phashes: list[tuple[int, int]]) -> _AcceptedFace:
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
        value = phash64(aligned.crop)
        near = self.near.nearest(value)
        if near is None:
            for earlier, key in phashes:  # faces accepted earlier in this same image
                if (earlier ^ value).bit_count() <= cfg.quality.near_duplicate_hamming:
                    near = (key, (earlier ^ value).bit_count())
                    break
        if near is not None:
            key, distance = near
            raise Rejection(Reason.NEAR_DUPLICATE, f"perceptual hash within {distance} bits of "
                                                   f"{self.items[key >> 16].rel_path}#{key & 0xFFFF}")
        phashes.append((value, _face_key(index, rank)))

        notes = face.annotations
        identity = notes.get("identity")
        identity = None if identity is None else str(identity)
        face_id = face_id_for(file_sha, rank)
        split = assign_split(identity, file_sha, cfg.split.salt, cfg.split.val, cfg.split.test)
        kp_crop = aligned.keypoints5.astype(np.float64)
        attributes = notes.get("attributes")
        row: dict[str, Any] = {
            "face_id": face_id,
            "source_path": item.rel_path,
            "source_sha256": file_sha,
            "pixel_sha256": image.pixel_sha256,
            "face_index": rank,
            "n_faces": n_faces,
            "shard": None,
            "split": split,
            "synthetic": bool(notes.get("synthetic", False)),
            "identity": identity,
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
            "phash": phash_hex(value),
            "width": image.width,
            "height": image.height,
            "crop_size": cfg.crop_size,
            "has_labels": labels is not None,
            "sidecar_paths": list(item.sidecar_rel_paths),
            "_item": index,
        }
        # Serialising (PNG, landmark JSON, label warp) is off the main thread; `row` is not changed
        # again before the worker reads it (only "shard", which the JSON does not contain).
        members = self._pool.submit(encode_members, aligned.crop, aligned.matrix, labels, face_id, face, kp_crop, row)
        return _AcceptedFace(row=row, members=members)


# --------------------------------------------------------------------------------------------- #
# helpers


def _check_locations(root: Path, out_dir: Path) -> None:
    if not root.exists():
        raise FileNotFoundError(f"source folder does not exist: {root}")
    if not root.is_dir():
        raise NotADirectoryError(f"source is not a folder: {root}")
    root_r, out_r = root.resolve(), out_dir.resolve()
    if out_r == root_r or root_r in out_r.parents:
        raise ValueError(f"output folder {out_dir} is inside the source folder {root}: its files would become inputs")


def _finalise(state: _RunState, out_dir: Path, root: Path, *, started: float, resumed_from: int) -> CurationResult:
    cfg = state.cfg
    journal_paths = sorted((out_dir / WORK_DIR).glob("journal-*.json"))
    rejected_by_reason: Counter[str] = Counter()
    faces_rejected: Counter[str] = Counter()
    with parquet_appender(out_dir / REJECTED_FILE, REJECTED_SCHEMA) as append_rejected, \
            parquet_appender(out_dir / MANIFEST_FILE, MANIFEST_SCHEMA) as append_manifest:
        for path in journal_paths:
            journal = json.loads(path.read_text(encoding="utf-8"))
            if journal["rejected"]:
                append_rejected(table_from_rows(journal["rejected"], REJECTED_SCHEMA))
            if journal["manifest"]:
                append_manifest(table_from_rows(journal["manifest"], MANIFEST_SCHEMA))
            rejected_by_reason.update(r["reason"] for r in journal["rejected"])
            faces_rejected.update(journal.get("face_rejections", {}))
    manifest = pd.read_parquet(out_dir / MANIFEST_FILE)

    # The preview (tar reads, PNG codecs: they release the GIL) is drawn while GX validates.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="curate-preview") as pool:
        preview = pool.submit(write_preview, out_dir, manifest, out_dir / PREVIEW_FILE, limit=cfg.preview_faces,
                              cell=max(cfg.crop_size, 64))
        report = validate_manifest(manifest, cfg)
        validation_path = write_json_atomic(out_dir / VALIDATION_FILE, report.to_dict())
        preview_path = preview.result()
    wall = time.perf_counter() - started
    summary = _summary(state, manifest, rejected_by_reason, faces_rejected, report, root, out_dir,
                       wall=wall, resumed_from=resumed_from)
    write_json_atomic(out_dir / SUMMARY_FILE, {k: v for k, v in summary.items() if k not in RUN_KEYS})
    if not report.success:
        raise CorpusValidationError(report, where=str(out_dir))
    return CurationResult(out_dir=out_dir, manifest_path=out_dir / MANIFEST_FILE, rejected_path=out_dir / REJECTED_FILE,
                          summary=summary, preview_path=preview_path, validation_path=validation_path)


def _summary(state: _RunState, manifest: pd.DataFrame, rejected_by_reason: Counter[str],
             faces_rejected: Counter[str], report: ValidationReport, root: Path, out_dir: Path, *,
             wall: float, resumed_from: int) -> dict[str, Any]:
    n_inputs = len(state.items)
    n_rejected = sum(rejected_by_reason.values())
    synthetic = manifest["synthetic"].astype(bool) if len(manifest) else pd.Series([], dtype=bool)
    return {
        "source": str(root.resolve()),
        "corpus": str(out_dir.resolve()),
        "inputs": n_inputs,
        "accepted_inputs": n_inputs - n_rejected,
        "rejected_inputs": n_rejected,
        "faces": int(len(manifest)),
        "faces_synthetic": int(synthetic.sum()),
        "faces_real": int((~synthetic).sum()),
        "faces_by_split": {s: int((manifest["split"] == s).sum()) for s in ("train", "val", "test")},
        "faces_by_landmark_source": {str(k): int(v) for k, v in manifest["landmark_source"].value_counts().sort_index().items()},
        "rejected_by_reason": dict(sorted(rejected_by_reason.items())),
        "faces_rejected_in_accepted_inputs": dict(sorted(faces_rejected.items())),
        "shards": int(manifest["shard"].nunique()) if len(manifest) else 0,
        "validation": {"success": report.success, "failed": [o.describe() for o in report.failures]},
        "resumed_from_journals": resumed_from,
        "timing": {"wall_s": round(wall, 3),
                   **{k: round(v, 3) for k, v in state.timing.items()},
                   "finalise_s": round(wall - sum(state.timing.values()), 3),
                   "inputs_per_s": round(n_inputs / wall, 2) if wall > 0 else None,
                   "faces_per_s": round(len(manifest) / wall, 2) if wall > 0 else None},
        "config": dataclasses.asdict(state.cfg),
    }


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """One line per outcome, for the CLI."""
    lines = [f"accepted: {summary['faces']} faces from {summary['accepted_inputs']} of {summary['inputs']} inputs "
             f"({summary['faces_real']} real, {summary['faces_synthetic']} synthetic; "
             + ", ".join(f"{k} {v}" for k, v in summary["faces_by_split"].items()) + ")"]
    for reason, count in summary["rejected_by_reason"].items():
        lines.append(f"rejected: {count} {reason}")
    for reason, count in summary["faces_rejected_in_accepted_inputs"].items():
        lines.append(f"face dropped (image kept): {count} {reason}")
    validation = summary["validation"]
    lines.append("validation: passed" if validation["success"]
                 else f"validation: FAILED ({len(validation['failed'])} expectations)")
    return lines


__all__ = ["curate", "CurationResult", "CorpusValidationError", "assign_split", "summary_lines"]
