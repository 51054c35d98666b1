"""PDQ, Meta's 256-bit perceptual image hash, compared by Hamming distance.

Two ways to compute it live here:

* :func:`pdq_from_rgb` and :func:`pdq_dihedral_from_rgb` call ``pdqhash`` (Meta's C++
  reference, the code path HMA uses) on a full-resolution RGB array.  Their output is
  bit-identical to ``pdqhash.compute``; this is the ``exact`` mode.
* :func:`fast_pdq_from_pixels` is a numpy re-implementation of the same pipeline
  (luma, two passes of Jarosz box filters, decimation to 64x64, 16x16 DCT, median
  threshold) written as two small matrix products.  Because the blur-and-decimate is
  linear, its weights can be folded onto a *reduced* image whose pixels are block means
  of the full one (a JPEG decoded with DCT scaling): the result then approximates what
  the reference computes on the full image, within a few bits, without ever decoding
  the full image.  This is the ``fast`` mode.
"""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

import numpy as np
import numpy.typing as npt
import pdqhash

from safestream.errors import ImageError
from safestream.signals.base import SignalType, register

#: Hotlines and HMA treat PDQ hashes of quality below this as unreliable.
DEFAULT_MIN_QUALITY = 50
#: Inclusive Hamming distance threshold recommended by Meta.
DEFAULT_PDQ_THRESHOLD = 31

#: Order of :func:`pdq_dihedral_from_rgb`'s hashes (pdqhash's order).
DIHEDRAL_NAMES = ("original", "rot90", "rot180", "rot270", "flipx", "flipy", "flip+1", "flip-1")

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_DOWNSAMPLE = 64
#: The reference returns an all-zero hash of quality 0 below this many rows or columns.
_MIN_HASHABLE_DIM = 5


@register
class PDQSignal(SignalType):
    """PDQ hash: 64 hex characters, Hamming distance, threshold 31."""

    name: ClassVar[str] = "pdq"
    distance_metric: ClassVar[str] = "hamming"
    hash_length_bits: ClassVar[int] = 256
    default_threshold: ClassVar[int] = DEFAULT_PDQ_THRESHOLD

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        """Hamming distance between two canonical PDQ hex strings."""
        return (int(a, 16) ^ int(b, 16)).bit_count()


def bits_to_hex(bits: npt.NDArray[np.generic]) -> str:
    """Pack pdqhash's 256-element bit vector into 64 lower-case hex characters."""
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()


def _check_rgb(rgb: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        raise ImageError(f"expected an (height, width, 3) RGB array, got shape {shape}")
    if rgb.dtype != np.uint8:
        raise ImageError(f"expected a uint8 RGB array, got dtype {rgb.dtype}; convert it first")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ImageError("the RGB array is empty (a dimension is 0)")
    return np.ascontiguousarray(rgb)


def pdq_from_rgb(rgb: npt.NDArray[np.uint8]) -> tuple[str, int]:
    """PDQ hash (hex) and quality (0..100) of a full-resolution RGB uint8 array.

    Bit-identical to ``pdqhash.compute`` (the reference used by HMA).
    """
    bits, quality = pdqhash.compute(_check_rgb(rgb))
    return bits_to_hex(bits), int(quality)


def pdq_dihedral_from_rgb(rgb: npt.NDArray[np.uint8]) -> tuple[tuple[str, ...], int]:
    """The 8 dihedral PDQ hashes (order of :data:`DIHEDRAL_NAMES`) and the quality."""
    hashes, quality = pdqhash.compute_dihedral(_check_rgb(rgb))
    return tuple(bits_to_hex(bits) for bits in hashes), int(quality)


# ---------------------------------------------------------------------------
# Fast path: the reference pipeline as matrices.


def _box_windows(n: int, window: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Inclusive [lo, hi] of each output of the reference ``box1DFloat``."""
    half = (window + 2) // 2
    out = np.arange(n, dtype=np.int64)
    lo = np.maximum(out + half - window, 0)
    hi = np.minimum(out + half - 1, n - 1)
    return lo, hi


@lru_cache(maxsize=256)
def _tent_rows(n: int) -> npt.NDArray[np.float64]:
    """Rows of (box after box) at PDQ's 64 decimation points, as a dense (64, n) array.

    Two passes of the reference box filter along one axis compose to a tent; PDQ
    then keeps one sample per cell at ``int((i + 0.5) * n / 64)``.
    """
    window = (n + 2 * _DOWNSAMPLE - 1) // (2 * _DOWNSAMPLE)
    lo, hi = _box_windows(n, window)
    inv = 1.0 / (hi - lo + 1)
    out = np.zeros((_DOWNSAMPLE, n), dtype=np.float64)
    for i in range(_DOWNSAMPLE):
        s = int(((i + 0.5) * n) / _DOWNSAMPLE)
        for o in range(int(lo[s]), int(hi[s]) + 1):
            out[i, lo[o] : hi[o] + 1] += inv[s] * inv[o]
    return out


@lru_cache(maxsize=256)
def _axis_weights(
    full: int, reduced: int, block: int, reverse: bool
) -> tuple[npt.NDArray[np.float32], tuple[tuple[int, int], ...]]:
    """Weights (64, reduced) that map a reduced axis to PDQ's 64 samples of the full axis.

    Reduced pixel ``r`` stands for full pixels ``[r*block, (r+1)*block)`` (counted from
    the end of the axis when ``reverse``, i.e. when the stored image was flipped to
    display it).  Also returns each row's non-zero span, so that the row pass only
    touches the rows it needs.
    """
    tent = _tent_rows(full)
    if reverse:
        tent = tent[:, ::-1]
    starts = np.arange(0, full, block)
    weights = np.add.reduceat(tent, starts, axis=1) if block > 1 else tent.copy()
    if weights.shape[1] != reduced:
        raise ImageError(
            f"internal: reduced axis has {reduced} pixels, expected {weights.shape[1]}"
        )
    if reverse:
        weights = weights[:, ::-1]
    spans = []
    for row in weights:
        nz = np.flatnonzero(row)
        spans.append((int(nz[0]), int(nz[-1]) + 1))
    result = np.ascontiguousarray(weights, dtype=np.float32)
    result.setflags(write=False)
    return result, tuple(spans)


def _dct_matrix() -> npt.NDArray[np.float64]:
    i = np.arange(1, 17, dtype=np.float64)[:, None]
    j = np.arange(64, dtype=np.float64)[None, :]
    matrix: npt.NDArray[np.float64] = np.sqrt(2.0 / 64.0) * np.cos(
        (np.pi / 2 / 64.0) * i * (2 * j + 1)
    )
    return matrix


_DCT = _dct_matrix()


def _quality(buffer64: npt.NDArray[np.float64]) -> int:
    """The reference's image-domain quality metric (sum of quantised gradients)."""
    # int() in C truncates towards zero; so does np.trunc.
    dv = np.abs(np.trunc((buffer64[:-1, :] - buffer64[1:, :]) * 100.0 / 255.0)).sum()
    dh = np.abs(np.trunc((buffer64[:, :-1] - buffer64[:, 1:]) * 100.0 / 255.0)).sum()
    return min(100, int(int(dv + dh) / 90))


def _dct_to_hex(dct16: npt.NDArray[np.float64]) -> str:
    flat = dct16.reshape(-1)
    # The reference's Torben median of 256 values is the lower median (128th smallest).
    median = np.partition(flat, 127)[127]
    return bits_to_hex((flat > median)[::-1])


def _dihedral_dcts(a: npt.NDArray[np.float64]) -> list[npt.NDArray[np.float64]]:
    """The reference's dct16OriginalTo* transforms: sign flips and transposes."""
    i = np.arange(16)[:, None]
    j = np.arange(16)[None, :]
    odd_j = np.where(j & 1, 1.0, -1.0)
    odd_i = np.where(i & 1, 1.0, -1.0)
    parity = np.where((i + j) & 1, -1.0, 1.0)
    return [
        a,
        (a * odd_j).T,  # rot90
        a * parity,  # rot180
        (a * odd_i).T,  # rot270
        a * odd_i,  # flipX
        a * odd_j,  # flipY
        a.T,  # flip+1
        (a * parity).T,  # flip-1
    ]


def fast_pdq_from_pixels(
    pixels: npt.NDArray[np.generic],
    *,
    full_shape: tuple[int, int] | None = None,
    block: int = 1,
    reversed_axes: tuple[bool, bool] = (False, False),
    dihedral: bool = False,
) -> tuple[str, int, tuple[str, ...]]:
    """Fast PDQ of a luma (2-D) or RGB (3-D uint8) array: ``(hex, quality, dihedral)``.

    ``pixels`` may be a reduced image in which each pixel is the mean of a
    ``block`` x ``block`` square of the full image of ``full_shape`` (height, width),
    e.g. a JPEG decoded with DCT scaling; the hash then approximates the reference
    hash of the full image.  ``reversed_axes`` says, per displayed axis, whether the
    block grid starts at the far end (the stored image was flipped to display it).
    Not bit-identical to :func:`pdq_from_rgb`: expect 0-2 bits of float rounding at
    ``block=1`` and a few bits more when reduced.  ``dihedral`` is empty unless asked.
    """
    if pixels.ndim not in (2, 3) or pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ImageError(f"expected a non-empty luma or RGB array, got shape {pixels.shape}")
    rows, cols = pixels.shape[0], pixels.shape[1]
    full_rows, full_cols = full_shape if full_shape is not None else (rows, cols)
    if min(full_rows, full_cols) < _MIN_HASHABLE_DIM:
        # The reference refuses to hash slivers: all-zero hash, quality 0.
        zero = "0" * 64
        return zero, 0, (zero,) * 8 if dihedral else ()
    row_w, row_spans = _axis_weights(full_rows, rows, block, reversed_axes[0])
    col_w, _ = _axis_weights(full_cols, cols, block, reversed_axes[1])

    # Row pass: each of the 64 output rows is a weighted sum of a narrow slab of rows,
    # so only ~1x the pixels are read, and uint8 RGB is converted to float per slab
    # (never a full-size float copy).
    rgb = pixels.ndim == 3
    width = cols * 3 if rgb else cols
    partial = np.empty((_DOWNSAMPLE, width), dtype=np.float32)
    for i, (lo, hi) in enumerate(row_spans):
        slab = pixels[lo:hi].reshape(hi - lo, width).astype(np.float32, copy=False)
        partial[i] = row_w[i, lo:hi] @ slab
    luma_rows = partial.reshape(_DOWNSAMPLE, cols, 3) @ _LUMA if rgb else partial
    buffer64 = luma_rows.astype(np.float64) @ col_w.T.astype(np.float64)

    quality = _quality(buffer64)
    dct16 = _DCT @ buffer64 @ _DCT.T
    hashes = tuple(_dct_to_hex(d) for d in _dihedral_dcts(dct16)) if dihedral else ()
    return (hashes[0] if dihedral else _dct_to_hex(dct16)), quality, hashes
