"""The closed set of reasons why an input, or one face in it, is not in the corpus.

Every row of `rejected.parquet` carries one of these codes (column `reason`) and a free-text
`detail`. The set is closed: code that rejects something must name a member of :class:`Reason`,
and docs/curation.md lists each with its meaning (a test keeps the two in sync).
"""

from __future__ import annotations

from enum import Enum


class Reason(str, Enum):
    """A rejection reason; the value is the code stored in rejected.parquet."""

    description: str
    stage: str

    def __new__(cls, code: str, stage: str, description: str) -> "Reason":
        obj = str.__new__(cls, code)
        obj._value_ = code
        obj.stage = stage
        obj.description = description
        return obj

    def __str__(self) -> str:
        return self.value

    # discovery: what the path is, before it is opened
    UNSUPPORTED_FORMAT = ("unsupported_format", "discovery",
                          "the file's extension is not an image type the folder source reads")
    NOT_A_FILE = ("not_a_file", "discovery",
                  "not a regular file: a directory named like an image, a FIFO, socket or device")
    DIRECTORY_LINK = ("directory_link", "discovery",
                      "a symbolic link to a directory; not followed, so that links cannot make cycles")
    BROKEN_LINK = ("broken_link", "discovery", "a symbolic link whose target does not exist")
    LINK_LOOP = ("link_loop", "discovery", "a symbolic link that points, directly or not, to itself")
    UNREADABLE = ("unreadable", "discovery", "the file or directory cannot be read (permissions, I/O error)")
    ORPHAN_SIDECAR = ("orphan_sidecar", "discovery",
                      "an annotation file (.pts, .gt.json, .labels.png) with no image of the same stem beside it")
    # decoding
    EMPTY_FILE = ("empty_file", "decode", "the file has zero bytes")
    FILE_TOO_LARGE = ("file_too_large", "decode", "the file is larger than curation.max_file_bytes")
    TOO_LARGE = ("too_large", "decode",
                 "the image header declares more pixels than curation.max_image_pixels (decompression-bomb "
                 "guard; checked before any pixel is decoded)")
    TRUNCATED = ("truncated", "decode", "the image data ends before the image is complete")
    CORRUPT = ("corrupt", "decode", "the bytes are not a decodable image (random bytes, text, broken chunks)")
    UNSUPPORTED_MODE = ("unsupported_mode", "decode", "the image decodes to a pixel mode that cannot be made RGB")
    TOO_SMALL_IMAGE = ("too_small_image", "decode",
                       "the image's shorter side is below curation.min_image_side pixels")
    # duplicates
    DUPLICATE = ("duplicate", "dedup",
                 "an exact duplicate (same file bytes, or same decoded pixels) of an earlier input in sorted "
                 "path order; the earlier one is kept")
    NEAR_DUPLICATE = ("near_duplicate", "dedup",
                      "the face's perceptual hash is within curation.near_duplicate.face_bits of an earlier "
                      "accepted face, or its image's within curation.near_duplicate.image_bits of an earlier "
                      "accepted image, in sorted path order")
    # annotations and landmarks
    BAD_ANNOTATION = ("bad_annotation", "landmarks",
                      "a sidecar annotation (.gt.json, .pts, .labels.png) is malformed or does not fit the image")
    NO_FACE = ("no_face", "landmarks", "the face detector found no face")
    LOW_SCORE = ("low_score", "landmarks",
                 "faces were detected, but none with a score of at least curation.detector.min_score")
    ALIGNMENT_FAILED = ("alignment_failed", "align",
                        "the keypoints are degenerate (coincident, non-finite) so no similarity transform exists")
    # quality of the aligned crop
    FACE_TOO_SMALL = ("face_too_small", "quality", "face_size_px is below curation.quality.min_face_px")
    BLURRY = ("blurry", "quality", "sharpness (variance of the Laplacian) is below curation.quality.min_sharpness")
    TOO_DARK = ("too_dark", "quality", "mean luma of the face is below curation.quality.min_brightness")
    TOO_BRIGHT = ("too_bright", "quality", "mean luma of the face is above curation.quality.max_brightness")
    LOW_CONTRAST = ("low_contrast", "quality", "luma standard deviation of the face is below curation.quality.min_contrast")
    # anything else
    WORKER_CRASH = ("worker_crash", "any",
                    "the worker process died (a crash inside a decoder or the detector, an out-of-memory kill) "
                    "twice while this input was in hand, the second time with no other input in hand")
    PROCESSING_ERROR = ("processing_error", "any",
                        "an unexpected error while processing this input (a bug: the detail holds the exception); "
                        "the run continues with the next input")


REASON_CODES: frozenset[str] = frozenset(r.value for r in Reason)


class Rejection(Exception):
    """Raised inside the curation path to reject the current input (or face) with a reason."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


def describe_reasons() -> list[dict[str, str]]:
    """The reason table as plain data, in declaration order (used by docs and summary.json)."""
    return [{"code": r.value, "stage": r.stage, "description": r.description} for r in Reason]
