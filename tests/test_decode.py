"""Decoding: every Pillow mode becomes RGB with the right values; bad bytes become reasons, cheaply."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from curation_testdata import encode, exif_rotated_jpeg, palette_bomb_png, photo
from paco_fr.data.decode import ALPHA_BACKGROUND, decode_image, pixel_hash, read_image_bytes
from paco_fr.data.reasons import Reason, Rejection

LIMIT = 64_000_000


def decode(data: bytes, **kw):
    return decode_image(data, max_image_pixels=kw.pop("max_image_pixels", LIMIT), **kw)


def rejection(data: bytes, **kw) -> Rejection:
    with pytest.raises(Rejection) as info:
        decode(data, **kw)
    return info.value


def test_rgb_round_trips_exactly():
    image = photo("astronaut")
    decoded = decode(encode(image))
    assert decoded.rgb.dtype == np.uint8 and decoded.rgb.shape == image.shape
    np.testing.assert_array_equal(decoded.rgb, image)
    assert decoded.source_format == "PNG" and decoded.source_mode == "RGB" and not decoded.exif_transposed


def test_grey_modes_are_replicated_to_three_channels():
    grey = np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) % 256
    out = decode(encode(Image.fromarray(grey.astype(np.uint8), "L"))).rgb
    np.testing.assert_array_equal(out, np.repeat(grey.astype(np.uint8)[:, :, None], 3, axis=2))
    bilevel = Image.fromarray((grey > 127).astype(np.uint8) * 255).convert("1")
    out = decode(encode(bilevel)).rgb
    assert set(np.unique(out)) == {0, 255}


@pytest.mark.parametrize("stored, expected", [(0, 0), (257 * 100, 100), (65535, 255)])
def test_sixteen_bit_grey_is_scaled_to_eight_bits(stored, expected):
    image = Image.fromarray(np.full((40, 40), stored, np.uint16))
    decoded = decode(encode(image))
    assert decoded.source_mode.startswith("I")
    assert (decoded.rgb == expected).all()


def test_float_and_int32_images_are_scaled():
    floats = Image.fromarray(np.linspace(0, 1, 40 * 40, dtype=np.float32).reshape(40, 40), "F")
    out = decode(encode(floats, "TIFF")).rgb
    assert out.min() == 0 and out.max() == 255
    ints = Image.fromarray(np.full((40, 40), 1000, np.int32), "I")
    assert (decode(encode(ints, "TIFF")).rgb == round(1000 / 257)).all()


def test_alpha_is_composited_on_grey():
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 255            # red ...
    rgba[:20, :, 3] = 255         # ... opaque on the top half, transparent below
    out = decode(encode(Image.fromarray(rgba, "RGBA"))).rgb
    assert tuple(out[5, 5]) == (255, 0, 0)
    assert tuple(out[30, 5]) == ALPHA_BACKGROUND
    la = Image.fromarray(np.stack([np.full((40, 40), 200, np.uint8), np.zeros((40, 40), np.uint8)], -1), "LA")
    assert tuple(decode(encode(la)).rgb[0, 0]) == ALPHA_BACKGROUND


def test_palette_images_with_and_without_transparency():
    image = Image.fromarray(photo("astronaut")).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    out = decode(encode(image)).rgb
    np.testing.assert_array_equal(out, np.asarray(image.convert("RGB")))
    image.info["transparency"] = int(np.asarray(image)[0, 0])
    transparent = decode(encode(image, transparency=image.info["transparency"])).rgb
    assert tuple(transparent[0, 0]) == ALPHA_BACKGROUND


def test_cmyk_jpeg_becomes_rgb():
    image = Image.fromarray(photo("astronaut")).convert("CMYK")
    decoded = decode(encode(image, "JPEG", quality=95))
    assert decoded.source_mode == "CMYK"
    assert np.abs(decoded.rgb.astype(int) - photo("astronaut").astype(int)).mean() < 12


def test_exif_orientation_is_applied():
    original = photo("grace_hopper")
    decoded = decode(exif_rotated_jpeg(original))
    assert decoded.exif_transposed
    assert decoded.rgb.shape == original.shape
    assert np.abs(decoded.rgb.astype(int) - original.astype(int)).mean() < 4  # JPEG loss only


def test_animated_gif_gives_its_first_frame():
    frames = [Image.fromarray(np.full((40, 40, 3), value, np.uint8)) for value in (10, 200, 90)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    out = decode(buffer.getvalue()).rgb
    assert abs(int(out.mean()) - 10) <= 2


def test_other_formats_decode():
    image = photo("camera")
    for fmt in ("BMP", "TIFF", "WEBP"):
        params = {"lossless": True} if fmt == "WEBP" else {}
        np.testing.assert_array_equal(decode(encode(Image.fromarray(image), fmt, **params)).rgb, image)


def test_bombs_are_rejected_from_the_header_without_decoding():
    bomb = palette_bomb_png(20000, 20000)
    assert len(bomb) < 2_000_000
    started = time.perf_counter()
    rej = rejection(bomb)
    assert rej.reason is Reason.TOO_LARGE and "400000000" in rej.detail
    assert time.perf_counter() - started < 1.0
    # Below Pillow's own guard but above ours: our limit, named in the detail.
    rej = rejection(palette_bomb_png(9000, 9000))
    assert rej.reason is Reason.TOO_LARGE and "max_image_pixels" in rej.detail


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "BMP", "GIF"])
def test_truncated_files_are_truncated(fmt):
    data = encode(photo("astronaut"), fmt)
    assert rejection(data[: len(data) // 2]).reason is Reason.TRUNCATED


@pytest.mark.parametrize("data", [b"hello, I am text\n", bytes(range(256)) * 8, b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_non_images_are_corrupt(data):
    assert rejection(data).reason is Reason.CORRUPT


def test_formats_outside_the_allowed_set_are_not_opened():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"
    assert rejection(eps).reason is Reason.CORRUPT


def test_tiny_images_are_too_small():
    rej = rejection(encode(np.zeros((1, 1, 3), np.uint8)), min_image_side=32)
    assert rej.reason is Reason.TOO_SMALL_IMAGE and "1x1" in rej.detail
    assert decode(encode(np.zeros((32, 40, 3), np.uint8)), min_image_side=32).rgb.shape == (32, 40, 3)


def test_file_size_limits(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(Rejection) as info:
        read_image_bytes(empty, 1000)
    assert info.value.reason is Reason.EMPTY_FILE
    big = tmp_path / "big.png"
    big.write_bytes(encode(photo("astronaut")))
    with pytest.raises(Rejection) as info:
        read_image_bytes(big, 1000)
    assert info.value.reason is Reason.FILE_TOO_LARGE and "max_file_bytes=1000" in info.value.detail
    assert read_image_bytes(big, 10**8) == big.read_bytes()
    with pytest.raises(Rejection) as info:
        read_image_bytes(tmp_path / "missing.png", 1000)
    assert info.value.reason is Reason.UNREADABLE


def test_pixel_hash_depends_on_values_and_shape():
    a = np.zeros((4, 6, 3), np.uint8)
    assert pixel_hash(a) == pixel_hash(a.copy())
    assert pixel_hash(a) != pixel_hash(a.reshape(6, 4, 3))
    b = a.copy()
    b[0, 0, 0] = 1
    assert pixel_hash(a) != pixel_hash(b)
