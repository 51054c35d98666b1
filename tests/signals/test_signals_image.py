"""Decoding: every Pillow mode, EXIF orientation, animations and bad input."""

from __future__ import annotations

import io
import struct
import warnings
import zlib

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageOps
from signals_media import encode

from safestream.errors import (
    CorruptImageError,
    DecompressionBombError,
    EmptyFileError,
    ImageError,
    InputError,
    NotAnImageError,
)
from safestream.signals.hashing import hash_bytes
from safestream.signals.image import (
    BACKGROUND,
    DEFAULT_MAX_PIXELS,
    decode_rgb,
    decode_scaled,
    iter_frames_rgb,
    open_image,
    to_rgb,
)
from safestream.signals.pdq import PDQSignal, pdq_from_rgb
from safestream.signals.synthetic import photo_like

MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "I", "I;16", "F", "YCbCr", "LAB", "HSV"]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a size in its header and has (almost) no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\x00"))
        + _chunk(b"IEND", b"")
    )


# --- modes ------------------------------------------------------------------


def _in_mode(photo: npt.NDArray[np.uint8], mode: str) -> Image.Image:
    im = Image.fromarray(photo)
    if mode == "I;16":
        grey = np.asarray(im.convert("L"), dtype=np.uint16) * 257
        return Image.fromarray(grey)  # Pillow gives I;16 for uint16
    if mode == "PA":
        return im.convert("RGBA").convert("PA")
    return im.convert(mode)


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_decodes_to_rgb(photo: npt.NDArray[np.uint8], mode: str) -> None:
    im = _in_mode(photo, mode)
    assert im.mode == mode
    rgb = to_rgb(im)
    assert rgb.dtype == np.uint8 and rgb.shape == (photo.shape[0], photo.shape[1], 3)
    if mode not in ("1", "LA", "PA", "RGBA"):
        # Opaque modes hash close to the photo they came from.
        assert PDQSignal.distance(pdq_from_rgb(rgb)[0], pdq_from_rgb(photo)[0]) <= 16


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("1", "PNG"),
        ("L", "PNG"),
        ("LA", "PNG"),
        ("P", "PNG"),
        ("PA", "TIFF"),
        ("RGBA", "PNG"),
        ("CMYK", "JPEG"),
        ("CMYK", "TIFF"),
        ("I", "TIFF"),
        ("I;16", "PNG"),
        ("F", "TIFF"),
        ("YCbCr", "TIFF"),
        ("LAB", "TIFF"),
    ],
)
def test_every_mode_hashes_from_a_file(photo: npt.NDArray[np.uint8], mode: str, fmt: str) -> None:
    data = encode(_in_mode(photo, mode), fmt)
    for decode_mode in ("exact", "fast"):
        h = hash_bytes(data, mode=decode_mode, min_quality=0)
        assert h.mode == mode and h.format == fmt
        assert h.pdq is not None and (h.width, h.height) == (320, 240)


def test_alpha_is_composited_on_white() -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = (10, 200, 30)
    rgba[:4, :, 3] = 255  # top half opaque, bottom half fully transparent
    rgba[4:6, :, 3] = 128
    rgb = to_rgb(Image.fromarray(rgba))
    assert (rgb[:4] == (10, 200, 30)).all()
    assert (rgb[6:] == BACKGROUND).all()
    assert np.abs(rgb[4].astype(int) - (132, 228, 142)).max() <= 1
    # Hidden colour under transparent pixels does not change the pixels we hash.
    rgba2 = rgba.copy()
    rgba2[6:, :, :3] = 0
    assert (to_rgb(Image.fromarray(rgba2)) == rgb).all()


def test_premultiplied_alpha() -> None:
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (50, 100, 150)
    rgba[..., 3] = 255
    rgba[2:, :, 3] = 0
    im = Image.fromarray(rgba).convert("RGBa")
    rgb = to_rgb(im)
    assert (rgb[:2] == (50, 100, 150)).all() and (rgb[2:] == BACKGROUND).all()


def test_sixteen_bit_and_float_are_scaled_not_clipped(photo: npt.NDArray[np.uint8]) -> None:
    grey = np.asarray(Image.fromarray(photo).convert("L"))
    expected = np.repeat(grey[..., None], 3, axis=2)
    sixteen = Image.fromarray(grey.astype(np.uint16) * 257)
    assert sixteen.mode == "I;16"
    assert (to_rgb(sixteen) == expected).all()
    as_int = Image.fromarray(grey.astype(np.int32) * 257)  # mode I, 16-bit range
    assert (to_rgb(as_int) == expected).all()
    assert (to_rgb(Image.fromarray(grey.astype(np.int32))) == expected).all()  # 8-bit range
    unit = Image.fromarray(grey.astype(np.float32) / 255.0)
    assert np.abs(to_rgb(unit).astype(int) - expected).max() <= 1
    assert (to_rgb(Image.fromarray(grey.astype(np.float32))) == expected).all()
    wide = Image.fromarray(grey.astype(np.float32) * 1000.0 - 5000.0)  # stretched
    assert PDQSignal.distance(pdq_from_rgb(to_rgb(wide))[0], pdq_from_rgb(expected)[0]) <= 2
    nan = np.full((10, 10), np.nan, np.float32)
    assert (to_rgb(Image.fromarray(nan)) == 0).all()


# --- EXIF orientation --------------------------------------------------------


def _with_orientation(rgb: npt.NDArray[np.uint8], orientation: int, fmt: str = "JPEG") -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(
        Image.fromarray(rgb), fmt, exif=exif, **({"quality": 95} if fmt == "JPEG" else {})
    )


def test_orientation_6_hashes_like_the_rotated_image(photo: npt.NDArray[np.uint8]) -> None:
    rotated = np.ascontiguousarray(np.rot90(photo, k=-1))  # what a viewer shows for 6
    tagged = hash_bytes(_with_orientation(photo, 6, "PNG"))
    plain = hash_bytes(encode(rotated, "PNG"))
    assert (tagged.width, tagged.height) == (240, 320)
    assert tagged.pdq == plain.pdq
    jpeg = hash_bytes(_with_orientation(photo, 6))
    assert jpeg.pdq is not None and plain.pdq is not None
    assert PDQSignal.distance(jpeg.pdq, plain.pdq) <= 8


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exact_orientation_is_exif_transpose(orientation: int) -> None:
    rgb = photo_like(orientation, 96, 64)
    data = _with_orientation(rgb, orientation, "PNG")
    info, decoded = decode_rgb(data)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert info.orientation == orientation
    assert (decoded == expected).all()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_fast_orientation_matches_exact_on_scaled_images(orientation: int, fmt: str) -> None:
    # Odd sizes: scaling leaves a partial block at the far edge of each axis, which
    # flips and rotations move; the fast weights must follow it.
    data = _with_orientation(photo_like(100 + orientation, 1283, 963), orientation, fmt)
    _, scaled = decode_scaled(data)
    assert scaled.block == 2
    exact = hash_bytes(data, mode="exact")
    fast = hash_bytes(data, mode="fast")
    assert exact.pdq is not None and fast.pdq is not None
    assert (fast.width, fast.height) == (exact.width, exact.height)
    assert PDQSignal.distance(exact.pdq, fast.pdq) <= 6


def test_fast_keeps_full_resolution_for_alpha(photo: npt.NDArray[np.uint8]) -> None:
    rgba = np.dstack([photo_like(3, 1100, 900), np.full((900, 1100), 200, np.uint8)])
    _, scaled = decode_scaled(encode(Image.fromarray(rgba), "PNG"))
    assert scaled.block == 1 and scaled.pixels.shape == (900, 1100, 3)


# --- animations ----------------------------------------------------------------


def _animation(fmt: str) -> bytes:
    frames = [Image.fromarray(photo_like(s, 160, 120)) for s in (1, 2, 3)]
    params: dict[str, object] = {"save_all": True, "append_images": frames[1:], "duration": 100}
    if fmt == "WEBP":
        params["lossless"] = True
    return encode(frames[0], fmt, **params)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animation_first_frame_and_all_frames(fmt: str) -> None:
    data = _animation(fmt)
    info, frames = iter_frames_rgb(data)
    assert info.n_frames == 3
    per_frame = [pdq_from_rgb(f) for f in frames]
    assert len({p for p, _ in per_frame}) == 3
    first = hash_bytes(data)
    assert first.frames == ()
    assert first.pdq == per_frame[0][0]
    every = hash_bytes(data, all_frames=True)
    assert [f.frame_index for f in every.frames] == [0, 1, 2]
    assert [(f.pdq, f.pdq_quality) for f in every.frames] == per_frame
    fast = hash_bytes(data, all_frames=True, mode="fast")
    for a, b in zip(every.frames, fast.frames, strict=True):
        assert a.pdq is not None and b.pdq is not None
        assert PDQSignal.distance(a.pdq, b.pdq) <= 4


def test_too_many_frames_is_a_bomb() -> None:
    data = _animation("GIF")
    with pytest.raises(DecompressionBombError, match="frames"):
        hash_bytes(data, all_frames=True, max_frames=2)
    assert hash_bytes(data, max_frames=2).pdq is not None  # first frame only is fine


# --- bad input -------------------------------------------------------------------

BOTH = pytest.mark.parametrize("mode", ["exact", "fast"])


@BOTH
def test_empty(mode: str) -> None:
    with pytest.raises(EmptyFileError, match="empty"):
        hash_bytes(b"", mode=mode)


@BOTH
@pytest.mark.parametrize(
    "data",
    [
        b"hello, world\n" * 20,
        bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8)),
        b"x",
    ],
)
def test_not_an_image(mode: str, data: bytes) -> None:
    with pytest.raises(NotAnImageError, match="not in any image format"):
        hash_bytes(data, mode=mode)


@BOTH
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_truncated(mode: str, fmt: str, photo: npt.NDArray[np.uint8]) -> None:
    data = encode(photo, fmt)
    for cut in (len(data) // 2, 40):
        with pytest.raises(CorruptImageError):
            hash_bytes(data[:cut], mode=mode)


@BOTH
def test_corrupt_jpeg_body(mode: str, photo_jpeg: bytes) -> None:
    data = bytearray(photo_jpeg)
    start = len(data) // 3
    data[start : start + 2000] = b"\xff" * 2000
    with pytest.raises(ImageError):
        hash_bytes(bytes(data), mode=mode)


@BOTH
def test_header_only_png_is_corrupt(mode: str) -> None:
    with pytest.raises(CorruptImageError):
        hash_bytes(_png_header_only(100, 100), mode=mode)


@BOTH
def test_pixel_limit_is_checked_from_the_header(mode: str) -> None:
    # No pixel data at all: only a header check can say "bomb" rather than "corrupt".
    with pytest.raises(DecompressionBombError, match="over the limit"):
        hash_bytes(_png_header_only(1000, 1000), mode=mode, max_pixels=999_999)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(DecompressionBombError, match="raise max_pixels"):
            hash_bytes(_png_header_only(10_000, 10_000), mode=mode)


@BOTH
def test_pillows_own_refusal_is_ours_too(mode: str) -> None:
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(DecompressionBombError):
        hash_bytes(_png_header_only(30_000, 30_000), mode=mode, max_pixels=10**10)
    assert before == Image.MAX_IMAGE_PIXELS


def test_default_limit_is_pillows_default() -> None:
    assert DEFAULT_MAX_PIXELS == 89_478_485
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(DecompressionBombError):
            open_image(_png_header_only(9_000, 10_000))
    open_image(_png_header_only(9_000, 9_000))


def test_small_limit_refuses_real_image(photo_png: bytes) -> None:
    with pytest.raises(DecompressionBombError):
        hash_bytes(photo_png, max_pixels=320 * 240 - 1)
    assert hash_bytes(photo_png, max_pixels=320 * 240).pdq is not None


def test_errors_are_input_errors() -> None:
    for exc in (EmptyFileError, NotAnImageError, CorruptImageError, DecompressionBombError):
        assert issubclass(exc, ImageError) and issubclass(exc, InputError)
