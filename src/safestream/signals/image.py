"""Decoding image bytes into pixels for hashing, safely.

Everything Pillow can open is accepted and turned into RGB uint8 the same way:

* alpha (RGBA, LA, PA, P with transparency, premultiplied RGBa/La) is composited on
  a fixed **white** background (:data:`BACKGROUND`), so that hidden colour under
  transparent pixels cannot change the hash;
* 16-bit grey (``I;16*``) is scaled by 1/257; 32-bit integer ``I`` is taken as 8-bit
  when it lies in 0..255, as 16-bit when it lies in 0..65535, and otherwise stretched
  from its min..max; float ``F`` is taken as 0..1 when it lies there, as 0..255 when it
  lies there, and otherwise stretched (NaN and infinities become 0).  PDQ bits barely
  change under such affine rescaling (only through rounding); the quality score does;
* the EXIF orientation is applied (as ``ImageOps.exif_transpose`` does);
* the first frame of an animation is used, or every frame on request.

Bad input raises one of :mod:`safestream.errors`' image errors, never a Pillow or
numpy exception.  The pixel limit is checked from the header, before any decoding.
Pillow's global settings (``MAX_IMAGE_PIXELS``, ``LOAD_TRUNCATED_IMAGES``) are read,
never written, so this module is safe to call from many threads (an application that
sets ``ImageFile.LOAD_TRUNCATED_IMAGES = True`` gets truncated files hashed as decoded so far,
instead of :class:`CorruptImageError`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, JpegImagePlugin, UnidentifiedImageError

from safestream.errors import (
    ConfigError,
    CorruptImageError,
    DecompressionBombError,
    EmptyFileError,
    ImageError,
    InputError,
    NotAnImageError,
)

logger = logging.getLogger(__name__)

#: Default pixel limit: Pillow's default ``Image.MAX_IMAGE_PIXELS`` (a 1024 MiB
#: 24-bit image, about 89.5 megapixels), fixed here so that a change to Pillow's
#: global elsewhere does not silently change ours.
DEFAULT_MAX_PIXELS = 89_478_485
#: Most frames decoded when all frames are asked for; more is refused as a bomb
#: (a small GIF can declare hundreds of thousands of frames and pin a CPU).
DEFAULT_MAX_FRAMES = 1000
#: Colour that alpha is composited on.
BACKGROUND = (255, 255, 255)
#: In fast mode, JPEGs are DCT-scaled by 1/2, 1/4 or 1/8 but the shorter side is kept
#: at least this long (at least 4 reduced pixels per PDQ cell); measured in
#: bench/hashing.py to keep hashes within a few bits of the full decode.
FAST_MIN_SIDE = 256

# Pillow's ImageOps.exif_transpose mapping, as (transpose axes, flip rows, flip cols)
# applied to a (rows, cols) array in that order, and as Pillow transpose methods.
_ORIENTATION_ARRAY_OPS = {
    2: (False, False, True),
    3: (False, True, True),
    4: (False, True, False),
    5: (True, False, False),
    6: (True, False, True),
    7: (True, True, True),
    8: (True, True, False),
}
_ORIENTATION_PIL = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# Signatures of formats Pillow reads: bytes that start like an image but do not
# open are reported as corrupt, not as "not an image".
_MAGIC = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF little-endian
    b"MM\x00*",  # TIFF big-endian
    b"\x00\x00\x01\x00",  # ICO
    b"\x00\x00\x00\x0cjP  ",  # JPEG 2000
    b"\xff\x4f\xff\x51",  # JPEG 2000 codestream
)


@dataclass(frozen=True)
class ImageInfo:
    """What the header says: displayed size, format, mode, frames, orientation."""

    width: int
    height: int
    format: str
    mode: str
    n_frames: int
    orientation: int


@dataclass(frozen=True)
class ScaledPixels:
    """Pixels ready for :func:`safestream.signals.pdq.fast_pdq_from_pixels`.

    ``pixels`` is in display orientation (possibly a strided view); each pixel stands
    for a ``block`` x ``block`` square of the full image of ``full_shape``;
    ``reversed_axes`` says per axis whether that block grid starts at the far end.
    """

    pixels: npt.NDArray[np.generic]
    full_shape: tuple[int, int]
    block: int
    reversed_axes: tuple[bool, bool]


def check_max_pixels(max_pixels: int | None) -> int:
    """Validate a pixel limit (None means :data:`DEFAULT_MAX_PIXELS`)."""
    if max_pixels is None:
        return DEFAULT_MAX_PIXELS
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels <= 0:
        raise ConfigError(f"max_pixels must be a positive integer or None, got {max_pixels!r}")
    return max_pixels


def _looks_like_image(data: bytes) -> bool:
    if data.startswith(_MAGIC):
        return True
    # RIFF....WEBP, and ISO-BMFF (AVIF/HEIF) "ftyp" boxes.
    return (data[:4] == b"RIFF" and data[8:12] == b"WEBP") or data[4:8] == b"ftyp"


def open_image(data: bytes, *, max_pixels: int | None = None) -> Image.Image:
    """Open ``data`` lazily (header only) and check its pixel count against the limit.

    Raises :class:`EmptyFileError`, :class:`NotAnImageError`,
    :class:`CorruptImageError` or :class:`DecompressionBombError`.  A ``max_pixels``
    above twice Pillow's global ``Image.MAX_IMAGE_PIXELS`` is capped by Pillow's own
    refusal at open, which is not overridden: changing that global is not thread-safe.
    """
    limit = check_max_pixels(max_pixels)
    if len(data) == 0:
        raise EmptyFileError("the file is empty (0 bytes); check the upload or the path")
    try:
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        # Pillow's own refusal (over twice its global limit) happens before ours.
        raise DecompressionBombError(
            f"Pillow refused the image as a decompression bomb ({exc}); "
            "it declares far more pixels than any real photo"
        ) from None
    except UnidentifiedImageError:
        if _looks_like_image(data):
            raise CorruptImageError(
                "the bytes start like an image but the header cannot be read; the file "
                "is truncated or corrupt: send it again or obtain an intact copy"
            ) from None
        raise NotAnImageError(
            "the bytes are not in any image format we can read (detected by content, "
            "not by file name); send a JPEG, PNG, GIF, WebP, TIFF or BMP file"
        ) from None
    except Exception as exc:  # Pillow raises many kinds on bad headers.
        raise CorruptImageError(f"the image header is corrupt: {exc}") from None
    width, height = im.size
    if width <= 0 or height <= 0:
        raise CorruptImageError(f"the image declares an empty size {width}x{height}")
    if width * height > limit:
        raise DecompressionBombError(
            f"the image declares {width}x{height} = {width * height:,} pixels, over the "
            f"limit of {limit:,}; refuse it, or raise max_pixels if the source is trusted"
        )
    return im


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # Broken EXIF must not make a readable image unreadable.
        logger.debug("unreadable EXIF block; orientation ignored")
        return 1
    return value if isinstance(value, int) and value in _ORIENTATION_PIL else 1


def _n_frames(im: Image.Image) -> int:
    try:
        return int(getattr(im, "n_frames", 1))
    except Exception as exc:
        raise CorruptImageError(f"the animation's frames cannot be counted: {exc}") from None


def image_info(im: Image.Image, *, count_frames: bool = False) -> ImageInfo:
    """Header facts of an opened image (``n_frames`` is 1 unless ``count_frames``)."""
    orientation = _orientation(im)
    width, height = im.size
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return ImageInfo(
        width=width,
        height=height,
        format=str(im.format or ""),
        mode=im.mode,
        n_frames=_n_frames(im) if count_frames else 1,
        orientation=orientation,
    )


def _composite(rgb: npt.NDArray[np.uint8], alpha: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    a = alpha.astype(np.float32)[..., None] / 255.0
    bg = np.array(BACKGROUND, dtype=np.float32)
    out = rgb.astype(np.float32) * a + bg * (1.0 - a)
    result: npt.NDArray[np.uint8] = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return result


def _scale_to_uint8(values: npt.NDArray[np.generic], *, is_float: bool) -> npt.NDArray[np.uint8]:
    v = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 0.0)
    if is_float and lo >= 0.0 and hi <= 1.0:
        v = v * 255.0
    elif lo >= 0.0 and hi <= 255.0:
        pass
    elif not is_float and lo >= 0.0 and hi <= 65535.0:
        v = v / 257.0
    elif hi > lo:
        v = (v - lo) * (255.0 / (hi - lo))
    else:
        v = np.zeros_like(v)
    return np.clip(np.rint(v), 0, 255).astype(np.uint8)


def to_rgb(im: Image.Image) -> npt.NDArray[np.uint8]:
    """Any Pillow mode to an (H, W, 3) uint8 RGB array (see the module docstring)."""
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im, dtype=np.uint8)
    if mode.startswith("I;16"):
        grey = _scale_to_uint8(np.asarray(im), is_float=False)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode in ("I", "F"):
        grey = _scale_to_uint8(np.asarray(im), is_float=mode == "F")
        return np.repeat(grey[..., None], 3, axis=2)
    if mode in ("RGBa", "La"):
        # Premultiplied: composite over the background is colour + (1 - alpha) * bg.
        arr = np.asarray(im).astype(np.float32)
        colour = arr[..., :3] if mode == "RGBa" else np.repeat(arr[..., :1], 3, axis=2)
        a = arr[..., -1:] / 255.0
        out = colour + (1.0 - a) * np.array(BACKGROUND, dtype=np.float32)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    if im.has_transparency_data:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8)
        return _composite(rgba[..., :3], rgba[..., 3])
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _transpose(im: Image.Image, orientation: int) -> Image.Image:
    method = _ORIENTATION_PIL.get(orientation)
    return im if method is None else im.transpose(method)


def _decode_error(exc: Exception) -> ImageError:
    if isinstance(exc, ImageError):
        return exc
    if isinstance(exc, Image.DecompressionBombError):
        return DecompressionBombError(f"Pillow refused a frame as a decompression bomb: {exc}")
    if isinstance(exc, MemoryError):
        return DecompressionBombError(
            "not enough memory to decode the image; lower max_pixels or refuse the file"
        )
    return CorruptImageError(
        f"the image could not be decoded ({type(exc).__name__}: {exc}); the file is "
        "truncated or corrupt: send it again or obtain an intact copy"
    )


def decode_rgb(
    data: bytes, *, max_pixels: int | None = None
) -> tuple[ImageInfo, npt.NDArray[np.uint8]]:
    """Fully decode the first frame of ``data`` to display-oriented RGB uint8."""
    im = open_image(data, max_pixels=max_pixels)
    info = image_info(im)
    try:
        im.load()
        rgb = to_rgb(_transpose(im, info.orientation))
    except InputError:
        raise
    except Exception as exc:
        raise _decode_error(exc) from None
    return info, rgb


def iter_frames_rgb(
    data: bytes, *, max_pixels: int | None = None, max_frames: int = DEFAULT_MAX_FRAMES
) -> tuple[ImageInfo, Iterator[npt.NDArray[np.uint8]]]:
    """Header facts and an iterator over every frame as display-oriented RGB uint8.

    Refuses (:class:`DecompressionBombError`) animations of more than ``max_frames``
    frames, before decoding any of them.
    """
    im = open_image(data, max_pixels=max_pixels)
    info = image_info(im, count_frames=True)
    if info.n_frames > max_frames:
        raise DecompressionBombError(
            f"the animation declares {info.n_frames:,} frames, over the limit of "
            f"{max_frames:,}; hash its first frame only, or raise max_frames if trusted"
        )

    def frames() -> Iterator[npt.NDArray[np.uint8]]:
        for index in range(info.n_frames):
            try:
                im.seek(index)
                im.load()
                yield to_rgb(_transpose(im, info.orientation))
            except InputError:
                raise
            except Exception as exc:
                raise _decode_error(exc) from None

    return info, frames()


def _fast_block(width: int, height: int, min_side: int) -> int:
    short = min(width, height)
    for block in (8, 4, 2):
        if short // block >= min_side:
            return block
    return 1


def turned(pixels: npt.NDArray[Any], ops: tuple[bool, bool, bool]) -> npt.NDArray[Any]:
    """``pixels`` (rows first) with ``(transpose, flip rows, flip columns)`` applied, as
    views (EXIF orientations here, video display matrices in ``signals.video``)."""
    transpose, flip_rows, flip_cols = ops
    if transpose:
        pixels = pixels.swapaxes(0, 1)
    if flip_rows:
        pixels = pixels[::-1]
    if flip_cols:
        pixels = pixels[:, ::-1]
    return pixels


def decode_scaled(
    data: bytes, *, max_pixels: int | None = None, min_side: int = FAST_MIN_SIDE
) -> tuple[ImageInfo, ScaledPixels]:
    """Decode the first frame for the fast path.

    JPEGs in RGB/YCbCr or grey are decoded with libjpeg's DCT scaling (1/2, 1/4 or 1/8,
    keeping the shorter side >= ``min_side``) straight to luma, which JPEG stores as
    Y = 0.299 R + 0.587 G + 0.114 B, PDQ's own luma.  Other images are decoded in full;
    opaque RGB and grey ones are then box-reduced by the same factor (exact block
    means).  The EXIF orientation is applied as array views, not copies.
    """
    im = open_image(data, max_pixels=max_pixels)
    info = image_info(im)
    stored_w, stored_h = im.size
    block = 1
    try:
        if isinstance(im, JpegImagePlugin.JpegImageFile) and im.mode in ("RGB", "L"):
            block = _fast_block(stored_w, stored_h, min_side)
            if block > 1:
                im.draft("L", (stored_w // block, stored_h // block))
                # Pillow picks the scale; derive the one it used from the new size.
                block = -(-stored_w // im.size[0])
                if -(-stored_w // block) != im.size[0] or -(-stored_h // block) != im.size[1]:
                    raise CorruptImageError("unexpected size after DCT-scaled decoding")
            im.load()
            pixels: npt.NDArray[np.generic] = np.asarray(im, dtype=np.uint8)
        else:
            im.load()
            if im.mode in ("RGB", "L") and not im.has_transparency_data:
                # The full decode cannot be avoided, but Pillow's box reduction gives
                # the exact block means the fast weights assume, and is cheaper than
                # copying the full image out of Pillow (19 ms vs 100 ms at 12 MP).
                block = _fast_block(stored_w, stored_h, min_side)
                reduced = im.reduce(block) if block > 1 else im
                pixels = np.asarray(reduced, dtype=np.uint8)
            else:
                pixels = to_rgb(im)
    except InputError:
        raise
    except Exception as exc:
        raise _decode_error(exc) from None
    ops = _ORIENTATION_ARRAY_OPS.get(info.orientation, (False, False, False))
    pixels = turned(pixels, ops)
    _, flip_rows, flip_cols = ops
    return info, ScaledPixels(
        pixels=pixels,
        full_shape=(info.height, info.width),
        block=block,
        reversed_axes=(flip_rows, flip_cols),
    )


__all__ = [
    "BACKGROUND",
    "DEFAULT_MAX_FRAMES",
    "DEFAULT_MAX_PIXELS",
    "FAST_MIN_SIDE",
    "ImageInfo",
    "ScaledPixels",
    "check_max_pixels",
    "decode_rgb",
    "decode_scaled",
    "image_info",
    "iter_frames_rgb",
    "open_image",
    "to_rgb",
]
