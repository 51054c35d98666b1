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


#: One axis's weights: for each of the 64 samples, the first index it reads and the
#: weights from there on (sparse: each sample reads ~1/64 of the axis, so a sliver
#: image millions of pixels long costs O(length) memory, not 64x that).
AxisWeights = tuple[tuple[int, npt.NDArray[np.float32]], ...]


def _tent_rows(n: int) -> list[tuple[int, npt.NDArray[np.float64]]]:
    """(box after box) at PDQ's 64 decimation points along an axis of ``n`` pixels.

    Two passes of the reference box filter along one axis compose to a tent; PDQ
    then keeps one sample per cell at ``int((i + 0.5) * n / 64)``.
    """
    window = (n + 2 * _DOWNSAMPLE - 1) // (2 * _DOWNSAMPLE)
    lo, hi = _box_windows(n, window)
    inv = 1.0 / (hi - lo + 1)
    rows = []
    for i in range(_DOWNSAMPLE):
        s = int(((i + 0.5) * n) / _DOWNSAMPLE)
        outputs = np.arange(lo[s], hi[s] + 1)
        start, stop = int(lo[outputs[0]]), int(hi[outputs[-1]]) + 1
        # Sum of the box indicators of every output in the window: a difference array.
        diff = np.zeros(stop - start + 1, dtype=np.float64)
        coef = inv[s] * inv[outputs]
        np.add.at(diff, lo[outputs] - start, coef)
        np.add.at(diff, hi[outputs] + 1 - start, -coef)
        rows.append((start, np.cumsum(diff[:-1])))
    return rows


def _axis_weights(full: int, reduced: int, block: int, reverse: bool) -> AxisWeights:
    """Weights for an axis; cached for ordinary sizes (a few per photo size)."""
    if full <= _CACHED_AXIS_MAX:
        return _cached_axis_weights(full, reduced, block, reverse)
    # Huge axes are rare and their weights big: do not let them pile up in a cache.
    return _compute_axis_weights(full, reduced, block, reverse)


#: Axes up to this many pixels have their weights cached (<= 64 KiB each).
_CACHED_AXIS_MAX = 16_384


@lru_cache(maxsize=128)
def _cached_axis_weights(full: int, reduced: int, block: int, reverse: bool) -> AxisWeights:
    return _compute_axis_weights(full, reduced, block, reverse)


def _compute_axis_weights(full: int, reduced: int, block: int, reverse: bool) -> AxisWeights:
    """Weights that map a reduced axis to PDQ's 64 samples of the full axis.

    Reduced pixel ``r`` stands for full pixels ``[r*block, (r+1)*block)`` (counted from
    the end of the axis when ``reverse``, i.e. when the stored image was flipped to
    display it).
    """
    if -(-full // block) != reduced:
        raise ImageError(
            f"internal: reduced axis has {reduced} pixels, expected {-(-full // block)}"
        )
    out = []
    for start, weights in _tent_rows(full):
        stop = start + weights.size
        if reverse:  # in stored order, the run covers full pixels [full-stop, full-start)
            start, stop, weights = full - stop, full - start, weights[::-1]
        # Sum the weights of the full pixels in each block, in stored order.
        first, last = start // block, (stop - 1) // block
        padded = np.zeros((last - first + 1) * block, dtype=np.float64)
        offset = start - first * block
        padded[offset : offset + weights.size] = weights
        reduced_w = padded.reshape(-1, block).sum(axis=1)
        if reverse:  # back to display order
            first, reduced_w = reduced - 1 - last, reduced_w[::-1]
        w32 = np.ascontiguousarray(reduced_w, dtype=np.float32)
        w32.setflags(write=False)
        out.append((first, w32))
    return tuple(out)


#: Inputs up to this many pixels take the gathered blur (two einsum calls on a copy of
#: ~2x the pixels as float32); larger ones the slab loop (1x, never a full float copy).
_GATHER_MAX_PIXELS = 1 << 20

#: One axis's weights as a dense gather: for each of the 64 samples, the indices it reads
#: (padded with the last index) and their weights (padded with 0).
AxisGather = tuple[npt.NDArray[np.intp], npt.NDArray[np.float32]]


@lru_cache(maxsize=64)
def _axis_gather(full: int, reduced: int, block: int, reverse: bool) -> AxisGather:
    weights = _cached_axis_weights(full, reduced, block, reverse)
    width = max(w.size for _, w in weights)
    idx = np.empty((_DOWNSAMPLE, width), dtype=np.intp)
    dense = np.zeros((_DOWNSAMPLE, width), dtype=np.float32)
    for i, (first, w) in enumerate(weights):
        idx[i] = np.minimum(first + np.arange(width), reduced - 1)
        dense[i, : w.size] = w
    idx.setflags(write=False)
    dense.setflags(write=False)
    return idx, dense


def _gathered_blur_decimate(
    pixels: npt.NDArray[np.generic], rows: AxisGather, cols: AxisGather
) -> npt.NDArray[np.float64]:
    """:func:`_blur_decimate` for small inputs: the same sums in two einsum calls."""
    row_idx, row_w = rows
    col_idx, col_w = cols
    gathered = pixels[row_idx].astype(np.float32)  # (64, taps, cols[, 3])
    if pixels.ndim == 3:
        partial = np.einsum("rk,rkcx->rcx", row_w, gathered)
        luma_rows = np.einsum("rcx,x->rc", partial, _LUMA)
    else:
        luma_rows = np.einsum("rk,rkc->rc", row_w, gathered)
    luma64 = luma_rows.astype(np.float64)
    out: npt.NDArray[np.float64] = np.einsum(
        "rjk,jk->rj", luma64[:, col_idx], col_w.astype(np.float64)
    )
    return out


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


def _blur_decimate(
    pixels: npt.NDArray[np.generic], row_w: AxisWeights, col_w: AxisWeights
) -> npt.NDArray[np.float64]:
    """The reference's luma + Jarosz blur + decimation, as two sparse weighted sums."""
    cols = pixels.shape[1]
    # Row pass: each of the 64 output rows is a weighted sum of a narrow slab of rows,
    # so only ~1x the pixels are read, and uint8 RGB is converted to float per slab
    # (never a full-size float copy).  einsum, not @: these are small or memory-bound
    # products, and OpenBLAS's thread hand-off made them 10x slower on a busy 2-core
    # machine (measured: 14 ms vs 1 ms for a 256x256 input).
    rgb = pixels.ndim == 3
    width = cols * 3 if rgb else cols
    partial = np.empty((_DOWNSAMPLE, width), dtype=np.float32)
    for i, (lo, w) in enumerate(row_w):
        hi = lo + w.size
        slab = pixels[lo:hi].reshape(hi - lo, width).astype(np.float32, copy=False)
        np.einsum("r,rc->c", w, slab, out=partial[i])
    if rgb:
        luma_rows = np.einsum("rck,k->rc", partial.reshape(_DOWNSAMPLE, cols, 3), _LUMA)
    else:
        luma_rows = partial
    luma64 = luma_rows.astype(np.float64)
    buffer64 = np.empty((_DOWNSAMPLE, _DOWNSAMPLE), dtype=np.float64)
    for j, (lo, w) in enumerate(col_w):
        np.einsum("rc,c->r", luma64[:, lo : lo + w.size], w, out=buffer64[:, j])
    return buffer64


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
    if rows * cols <= _GATHER_MAX_PIXELS and max(full_rows, full_cols) <= _CACHED_AXIS_MAX:
        buffer64 = _gathered_blur_decimate(
            pixels,
            _axis_gather(full_rows, rows, block, reversed_axes[0]),
            _axis_gather(full_cols, cols, block, reversed_axes[1]),
        )
        return _finish(buffer64, dihedral)
    row_w = _axis_weights(full_rows, rows, block, reversed_axes[0])
    col_w = _axis_weights(full_cols, cols, block, reversed_axes[1])
    if rows < min(cols, 4 * _DOWNSAMPLE):
        # A wide sliver: reduce the long axis first, so that the intermediate is
        # 64 x (short side), not 64 x (long side) (gigabytes for a 5 x 17M image).
        buffer64 = _blur_decimate(pixels.swapaxes(0, 1), col_w, row_w).T
    else:
        buffer64 = _blur_decimate(pixels, row_w, col_w)

    return _finish(buffer64, dihedral)


def _finish(buffer64: npt.NDArray[np.float64], dihedral: bool) -> tuple[str, int, tuple[str, ...]]:
    """Quality, 16x16 DCT and median threshold of the 64x64 buffer."""
    quality = _quality(buffer64)
    dct16 = np.einsum("il,jl->ij", np.einsum("ik,kl->il", _DCT, buffer64), _DCT)
    hashes = tuple(_dct_to_hex(d) for d in _dihedral_dcts(dct16)) if dihedral else ()
    return (hashes[0] if dihedral else _dct_to_hex(dct16)), quality, hashes
