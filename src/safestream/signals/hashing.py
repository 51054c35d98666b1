"""The public hashing API: image bytes or a file in, PDQ and cryptographic hashes out.

``mode="exact"`` decodes the full image with Pillow and hashes it with ``pdqhash``
(bit-identical to the path HMA uses).  ``mode="fast"`` decodes JPEGs with DCT scaling
straight to luma (other formats: full decode, then a box reduction) and hashes the
reduced image with weights folded from the reference filter (see
:mod:`safestream.signals.pdq`); hashes stay within a few bits of ``exact`` (0-6 in
``bench/hashing.py``) and large JPEGs hash 8-20x faster.  Frames of animations are
hashed at full resolution in both modes.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from safestream.errors import ConfigError, FileTooLargeError, InputError
from safestream.signals.crypto import MD5Signal, SHA1Signal, SHA256Signal
from safestream.signals.image import (
    DEFAULT_MAX_FRAMES,
    check_max_pixels,
    decode_rgb,
    decode_scaled,
    iter_frames_rgb,
    open_image,
)
from safestream.signals.pdq import (
    DEFAULT_MIN_QUALITY,
    fast_pdq_from_pixels,
    pdq_dihedral_from_rgb,
    pdq_from_rgb,
)

logger = logging.getLogger(__name__)

DecodeMode = Literal["exact", "fast"]
#: Files larger than this are refused before being read (a scan must not load a
#: multi-gigabyte file into memory); no real image under the pixel limit needs more.
DEFAULT_MAX_FILE_BYTES = 512 * 1024 * 1024
MODES: tuple[str, ...] = ("exact", "fast")


class HashOptionError(ConfigError, InputError):
    """A hashing option (mode, min_quality, max_pixels) is invalid.

    Both a :class:`ConfigError` (it is an option) and an :class:`InputError` (the API
    and CLI pass callers' options through, and map it to 4xx / exit status 2).
    """


class FrameHash(NamedTuple):
    """PDQ of one frame of an animation; ``pdq`` is None below the quality cut-off."""

    frame_index: int
    pdq: str | None
    pdq_quality: int


@dataclass(frozen=True)
class ImageHashes:
    """Every signal computed from one image file."""

    md5: str
    sha1: str
    sha256: str
    #: 64 lower-case hex characters, or None when ``pdq_quality`` < min_quality.
    pdq: str | None
    pdq_quality: int
    width: int
    height: int
    #: Pillow's format name ("JPEG", "PNG", ...).
    format: str
    #: Pillow's mode of the stored image, before conversion ("RGB", "P", "I;16"...).
    mode: str
    decode_mode: str
    #: 8 hashes in pdqhash's order when asked for and quality is ok, else ().
    pdq_dihedral: tuple[str, ...] = ()
    #: Per-frame PDQ when all frames were asked for, else ().
    frames: tuple[FrameHash, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return {
            "md5": self.md5,
            "sha1": self.sha1,
            "sha256": self.sha256,
            "pdq": self.pdq,
            "pdq_quality": self.pdq_quality,
            "pdq_dihedral": list(self.pdq_dihedral),
            "frames": [f._asdict() for f in self.frames],
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "mode": self.mode,
            "decode_mode": self.decode_mode,
        }


def _check_options(mode: str, min_quality: int, max_pixels: int | None) -> None:
    if mode not in MODES:
        raise HashOptionError(f"mode must be 'exact' or 'fast', got {mode!r}")
    if isinstance(min_quality, bool) or not isinstance(min_quality, int):
        raise HashOptionError(f"min_quality must be an integer 0..100, got {min_quality!r}")
    if not 0 <= min_quality <= 100:
        raise HashOptionError(f"min_quality must be between 0 and 100, got {min_quality}")
    try:
        check_max_pixels(max_pixels)
    except ConfigError as exc:
        raise HashOptionError(str(exc)) from None


def hash_bytes(
    data: bytes,
    *,
    mode: DecodeMode | str = "exact",
    min_quality: int = DEFAULT_MIN_QUALITY,
    dihedral: bool = False,
    all_frames: bool = False,
    max_pixels: int | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
    animated_frames: bool = False,
) -> ImageHashes:
    """Hash image bytes: MD5/SHA-1/SHA-256 of the bytes and PDQ of the pixels.

    Raises an :class:`~safestream.errors.ImageError` subclass for bad images and
    :class:`HashOptionError` for bad options.  ``max_pixels`` defaults to Pillow's
    default limit (89,478,485); ``max_frames`` bounds ``all_frames``.
    ``animated_frames`` hashes every frame of an animation (GIF, WebP, APNG...) but
    not of a still image: checks use it, so that a known picture as any frame of an
    animation is found (more than ``max_frames`` frames is refused, as a bomb).
    """
    _check_options(mode, min_quality, max_pixels)
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InputError(f"expected image bytes, got {type(data).__name__}")
    data = bytes(data)
    started = time.perf_counter()

    if mode == "exact":
        info, rgb = decode_rgb(data, max_pixels=max_pixels)
        if dihedral:
            hashes, quality = pdq_dihedral_from_rgb(rgb)
            pdq_hex = hashes[0]
        else:
            pdq_hex, quality = pdq_from_rgb(rgb)
            hashes = ()
    else:
        info, scaled = decode_scaled(data, max_pixels=max_pixels)
        pdq_hex, quality, hashes = fast_pdq_from_pixels(
            scaled.pixels,
            full_shape=scaled.full_shape,
            block=scaled.block,
            reversed_axes=scaled.reversed_axes,
            dihedral=dihedral,
        )

    frames: tuple[FrameHash, ...] = ()
    if all_frames or (animated_frames and _is_animated(data, max_pixels)):
        frames = _hash_frames(
            data, mode=mode, min_quality=min_quality, max_pixels=max_pixels, max_frames=max_frames
        )

    ok = quality >= min_quality
    result = ImageHashes(
        md5=MD5Signal.hash_bytes(data),
        sha1=SHA1Signal.hash_bytes(data),
        sha256=SHA256Signal.hash_bytes(data),
        pdq=pdq_hex if ok else None,
        pdq_quality=quality,
        pdq_dihedral=hashes if ok else (),
        frames=frames,
        width=info.width,
        height=info.height,
        format=info.format,
        mode=info.mode,
        decode_mode=mode,
    )
    # Never the content or its hashes at INFO: only sizes and timings.
    logger.debug(
        "hashed image",
        extra={
            "image_format": info.format,
            "image_width": info.width,
            "image_height": info.height,
            "decode_mode": mode,
            "pdq_quality": quality,
            "hash_ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )
    return result


def _is_animated(data: bytes, max_pixels: int | None) -> bool:
    """More than one frame (the header says; no frame is decoded)."""
    im = open_image(data, max_pixels=max_pixels)
    try:
        return bool(getattr(im, "is_animated", False)) or int(getattr(im, "n_frames", 1)) > 1
    finally:
        im.close()


def _hash_frames(
    data: bytes, *, mode: str, min_quality: int, max_pixels: int | None, max_frames: int
) -> tuple[FrameHash, ...]:
    _, frames = iter_frames_rgb(data, max_pixels=max_pixels, max_frames=max_frames)
    out = []
    for index, rgb in enumerate(frames):
        if mode == "exact":
            pdq_hex, quality = pdq_from_rgb(rgb)
        else:
            pdq_hex, quality, _ = fast_pdq_from_pixels(rgb)
        out.append(FrameHash(index, pdq_hex if quality >= min_quality else None, quality))
    return tuple(out)


def hash_file(
    path: str | os.PathLike[str],
    *,
    mode: DecodeMode | str = "exact",
    min_quality: int = DEFAULT_MIN_QUALITY,
    dihedral: bool = False,
    all_frames: bool = False,
    max_pixels: int | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    animated_frames: bool = False,
) -> ImageHashes:
    """Read the file at ``path`` and :func:`hash_bytes` it.

    A missing file, a directory or an unreadable file raises :class:`InputError`;
    a file over ``max_file_bytes`` raises :class:`FileTooLargeError` unread.
    """
    _check_options(mode, min_quality, max_pixels)
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > max_file_bytes:
            raise FileTooLargeError(
                f"{p}: {size} bytes is over the limit of {max_file_bytes} bytes for an image"
            )
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{p}: no such file; check the path") from None
    except IsADirectoryError:
        raise InputError(f"{p}: is a directory, not an image file; pass a file") from None
    except PermissionError:
        raise InputError(f"{p}: permission denied; check the file's permissions") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot be read ({exc.strerror or exc})") from None
    return hash_bytes(
        data,
        mode=mode,
        min_quality=min_quality,
        dihedral=dihedral,
        all_frames=all_frames,
        max_pixels=max_pixels,
        max_frames=max_frames,
        animated_frames=animated_frames,
    )


__all__ = ["MODES", "FrameHash", "HashOptionError", "ImageHashes", "hash_bytes", "hash_file"]
