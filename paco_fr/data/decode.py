"""Reading and decoding one image file into an RGB array, or a :class:`Rejection` saying why not.

Two steps, so that the curation loop can recognise an exact duplicate from the file hash before
paying for decoding: :func:`read_image_bytes` (size limits, I/O errors) and :func:`decode_image`
(header checks, pixel decoding, EXIF orientation, mode conversion).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from paco_fr.data.reasons import Reason, Rejection

# Pillow plugins the decoder may use. Restricting them keeps hostile inputs away from plugins that
# shell out (EPS runs Ghostscript) and from formats nobody stores photos in. MPO is how Pillow
# opens multi-picture JPEGs from cameras.
_WANTED_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "BMP", "DIB", "TIFF", "GIF")
Image.init()  # register every plugin, so that the formats below can be looked up
ALLOWED_FORMATS = tuple(f for f in _WANTED_FORMATS if f in Image.OPEN)

# Transparent pixels are composited on mid grey: neither black nor white, so they do not pass for
# shadows or highlights in the exposure checks.
ALPHA_BACKGROUND = (128, 128, 128)


@dataclass
class DecodedImage:
    rgb: np.ndarray          # (H, W, 3) uint8, EXIF orientation applied
    pixel_sha256: str        # hash of the decoded RGB pixels and their shape
    source_format: str       # Pillow format name, e.g. "JPEG"
    source_mode: str         # Pillow mode before conversion, e.g. "I;16"
    exif_transposed: bool    # whether an EXIF orientation tag changed the pixels

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def read_image_bytes(path: str | os.PathLike[str], max_file_bytes: int) -> bytes:
    """The file's bytes; rejects empty, oversized and unreadable files without reading them whole."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size == 0:
            raise Rejection(Reason.EMPTY_FILE, "0 bytes")
        if size > max_file_bytes:
            raise Rejection(Reason.FILE_TOO_LARGE, f"{size} bytes > max_file_bytes={max_file_bytes}")
        with open(path, "rb") as handle:
            # Read one byte more than allowed: a file that grew after stat() must not slip through.
            data = handle.read(max_file_bytes + 1)
    except Rejection:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Rejection(Reason.LINK_LOOP, str(exc)) from exc
        raise Rejection(Reason.UNREADABLE, f"{type(exc).__name__}: {exc.strerror or exc}") from exc
    if not data:
        raise Rejection(Reason.EMPTY_FILE, "0 bytes")
    if len(data) > max_file_bytes:
        raise Rejection(Reason.FILE_TOO_LARGE, f"more than max_file_bytes={max_file_bytes} bytes")
    return data


def decode_image(data: bytes, *, max_image_pixels: int, min_image_side: int = 1) -> DecodedImage:
    """Decode image bytes to RGB. Raises :class:`Rejection` with too_large, corrupt, truncated,
    unsupported_mode or too_small_image."""
    try:
        with warnings.catch_warnings():
            # Our own limit below is the guard; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise Rejection(Reason.TOO_LARGE, str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise Rejection(Reason.CORRUPT, "not a recognised image (JPEG, PNG, WebP, BMP, TIFF or GIF)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise Rejection(_decode_failure_reason(exc), f"{type(exc).__name__}: {exc}") from exc

    with image:
        width, height = image.size
        # Header-only check: nothing has been decoded yet, so a bomb costs only its header.
        if width * height > max_image_pixels:
            raise Rejection(Reason.TOO_LARGE,
                            f"{width}x{height} = {width * height} pixels > max_image_pixels={max_image_pixels}")
        source_format = image.format or "unknown"
        source_mode = image.mode
        try:
            image.seek(0)  # first frame of an animated GIF or multi-page TIFF
            image.load()
        except Image.DecompressionBombError as exc:
            raise Rejection(Reason.TOO_LARGE, str(exc)) from exc
        except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
            raise Rejection(_decode_failure_reason(exc), f"{type(exc).__name__}: {exc}") from exc
        oriented, transposed = _exif_transpose(image)
        rgb = to_rgb_array(oriented)

    if min(rgb.shape[:2]) < min_image_side:
        raise Rejection(Reason.TOO_SMALL_IMAGE,
                        f"{rgb.shape[1]}x{rgb.shape[0]}: shorter side < min_image_side={min_image_side}")
    return DecodedImage(
        rgb=rgb,
        pixel_sha256=pixel_hash(rgb),
        source_format=source_format,
        source_mode=source_mode,
        exif_transposed=transposed,
    )


def pixel_hash(rgb: np.ndarray) -> str:
    digest = hashlib.sha256(np.asarray(rgb.shape, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(rgb).tobytes())
    return digest.hexdigest()


def _decode_failure_reason(exc: BaseException) -> Reason:
    message = str(exc).lower()
    if isinstance(exc, EOFError) or "truncated" in message or "end of file" in message:
        return Reason.TRUNCATED
    return Reason.CORRUPT


_EXIF_ORIENTATION = 0x0112


def _exif_transpose(image: Image.Image) -> tuple[Image.Image, bool]:
    """The image rotated/flipped as its EXIF Orientation says, and whether that changed anything.
    A malformed EXIF block is ignored rather than costing a good photo."""
    try:
        orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
        if orientation not in (2, 3, 4, 5, 6, 7, 8):
            return image, False
        return ImageOps.exif_transpose(image), True
    except Exception:  # noqa: BLE001 - EXIF parsers raise many types on broken metadata
        return image, False


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB from any Pillow mode: palette and alpha modes are composited on a grey
    background; 16-bit and float greyscale are rescaled to 8 bits."""
    mode = image.mode
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
        mode = image.mode
    if mode == "RGB":
        return np.array(image, dtype=np.uint8)
    if mode in ("LA", "La", "RGBA", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
        return np.array(Image.alpha_composite(background, rgba).convert("RGB"), dtype=np.uint8)
    if mode in ("1", "L", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        return np.array(image.convert("RGB"), dtype=np.uint8)
    if mode.startswith("I") or mode == "F":
        grey = _to_uint8_grey(np.asarray(image), mode)
        return np.repeat(grey[:, :, None], 3, axis=2)
    try:
        return np.array(image.convert("RGB"), dtype=np.uint8)
    except (ValueError, OSError) as exc:
        raise Rejection(Reason.UNSUPPORTED_MODE, f"mode {mode!r}: {exc}") from exc


def _to_uint8_grey(values: np.ndarray, mode: str) -> np.ndarray:
    """Integer images are taken as 8- or 16-bit by their range; floats as [0, 1] or [0, 255]."""
    values = values.astype(np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise Rejection(Reason.CORRUPT, f"mode {mode}: no finite pixel values")
    low, high = float(finite.min()), float(finite.max())
    if mode == "F":
        if low >= 0.0 and high <= 1.0:
            values = values * 255.0
        elif not (low >= 0.0 and high <= 255.0):
            values = (values - low) / max(high - low, 1e-12) * 255.0
    elif mode.startswith("I;16") or (low >= 0 and high > 255 and high <= 65535):
        values = values / 257.0
    elif not (low >= 0 and high <= 255):
        values = (values - low) / max(high - low, 1e-12) * 255.0
    values = np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)
