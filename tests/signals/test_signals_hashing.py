"""The public hashing API: hash_bytes / hash_file / ImageHashes."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pdqhash
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from signals_media import encode

from safestream.errors import ConfigError, InputError
from safestream.signals.hashing import HashOptionError, ImageHashes, hash_bytes, hash_file
from safestream.signals.pdq import PDQSignal, bits_to_hex
from safestream.signals.synthetic import photo_like


def test_crypto_digests_are_of_the_original_bytes(photo_jpeg: bytes) -> None:
    h = hash_bytes(photo_jpeg)
    assert h.md5 == hashlib.md5(photo_jpeg).hexdigest()
    assert h.sha1 == hashlib.sha1(photo_jpeg).hexdigest()
    assert h.sha256 == hashlib.sha256(photo_jpeg).hexdigest()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF"])
def test_exact_pdq_is_bit_identical_to_pdqhash(photo: npt.NDArray[np.uint8], fmt: str) -> None:
    data = encode(photo, fmt)
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    bits, quality = pdqhash.compute(rgb)
    h = hash_bytes(data, mode="exact")
    assert h.pdq == bits_to_hex(bits) and h.pdq_quality == quality
    assert h.decode_mode == "exact" and h.format == fmt and h.mode == "RGB"
    assert (h.width, h.height) == (320, 240)


def test_exact_on_a_large_jpeg(photo_jpeg: bytes) -> None:
    rgb = np.asarray(Image.open(io.BytesIO(photo_jpeg)).convert("RGB"))
    bits, _ = pdqhash.compute(rgb)
    assert hash_bytes(photo_jpeg).pdq == bits_to_hex(bits)


def test_fast_is_close_to_exact_on_a_large_jpeg(photo_jpeg: bytes) -> None:
    exact = hash_bytes(photo_jpeg, mode="exact")
    fast = hash_bytes(photo_jpeg, mode="fast")
    assert fast.decode_mode == "fast"
    assert exact.pdq is not None and fast.pdq is not None
    assert PDQSignal.distance(exact.pdq, fast.pdq) <= 6
    assert abs(exact.pdq_quality - fast.pdq_quality) <= 5
    assert (fast.md5, fast.width, fast.height) == (exact.md5, exact.width, exact.height)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 1000),
    width=st.integers(520, 1100),
    height=st.integers(520, 1100),
    quality=st.integers(60, 95),
)
def test_fast_vs_exact_distance_is_small(seed: int, width: int, height: int, quality: int) -> None:
    data = encode(photo_like(seed, width, height), "JPEG", quality=quality)
    exact = hash_bytes(data, mode="exact")
    fast = hash_bytes(data, mode="fast")
    assert exact.pdq is not None and fast.pdq is not None
    assert PDQSignal.distance(exact.pdq, fast.pdq) <= 10


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_low_quality_gives_no_pdq_but_crypto(mode: str) -> None:
    flat = encode(np.full((200, 300, 3), 90, np.uint8), "PNG")
    h = hash_bytes(flat, mode=mode, dihedral=True)
    assert h.pdq is None and h.pdq_quality == 0 and h.pdq_dihedral == ()
    assert h.sha256 == hashlib.sha256(flat).hexdigest()
    forced = hash_bytes(flat, mode=mode, min_quality=0)
    assert forced.pdq is not None and forced.pdq_quality == 0


def test_gradient_is_below_the_default_cut_off() -> None:
    ramp = np.repeat(np.linspace(0, 255, 400, dtype=np.float32)[None, :], 300, axis=0)
    rgb = np.repeat(ramp[..., None], 3, axis=2).astype(np.uint8)
    h = hash_bytes(encode(rgb, "PNG"))
    assert 0 < h.pdq_quality < 50 and h.pdq is None


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_dihedral(photo: npt.NDArray[np.uint8], mode: str) -> None:
    original = hash_bytes(encode(photo, "PNG"), mode=mode, dihedral=True)
    assert len(original.pdq_dihedral) == 8 and original.pdq_dihedral[0] == original.pdq
    rotated = hash_bytes(encode(np.ascontiguousarray(np.rot90(photo)), "PNG"), mode=mode)
    assert original.pdq is not None and rotated.pdq is not None
    assert PDQSignal.distance(rotated.pdq, original.pdq) > 31
    assert min(PDQSignal.distance(rotated.pdq, d) for d in original.pdq_dihedral) <= 2
    assert hash_bytes(encode(photo, "PNG"), mode=mode).pdq_dihedral == ()


def test_result_is_frozen_and_json_ready(photo_png: bytes) -> None:
    h = hash_bytes(photo_png, dihedral=True, all_frames=True)
    assert isinstance(h, ImageHashes)
    with pytest.raises(dataclasses.FrozenInstanceError):
        h.pdq = None  # type: ignore[misc]
    d = json.loads(json.dumps(h.to_dict()))
    assert d["pdq"] == h.pdq and d["decode_mode"] == "exact" and len(d["pdq_dihedral"]) == 8
    assert d["frames"] == [{"frame_index": 0, "pdq": h.pdq, "pdq_quality": h.pdq_quality}]
    assert set(d) >= {"md5", "sha1", "sha256", "width", "height", "format", "mode"}


@pytest.mark.parametrize(
    "options",
    [
        {"mode": "turbo"},
        {"mode": "EXACT"},
        {"min_quality": 101},
        {"min_quality": -1},
        {"max_pixels": 0},
        {"max_pixels": -5},
    ],
)
def test_bad_options(photo_png: bytes, options: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(HashOptionError) as info:
        hash_bytes(photo_png, **options)  # type: ignore[arg-type]
    assert isinstance(info.value, InputError) and isinstance(info.value, ConfigError)
    (tmp_path / "a.png").write_bytes(photo_png)
    with pytest.raises(HashOptionError):
        hash_file(tmp_path / "a.png", **options)  # type: ignore[arg-type]


def test_hash_file_matches_hash_bytes(tmp_path: Path, photo_png: bytes) -> None:
    # The name says JPEG, the content is PNG: detection is by content.
    path = tmp_path / "photo.jpg"
    path.write_bytes(photo_png)
    assert hash_file(path) == hash_bytes(photo_png)
    assert hash_file(str(path), mode="fast") == hash_bytes(photo_png, mode="fast")


def test_hash_file_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        hash_file(tmp_path / "nope.png")
    with pytest.raises(InputError, match="directory"):
        hash_file(tmp_path)


def test_hash_file_text_with_image_name(tmp_path: Path) -> None:
    from safestream.errors import NotAnImageError

    path = tmp_path / "notes.png"
    path.write_text("not a picture\n")
    with pytest.raises(NotAnImageError):
        hash_file(path)


def test_bytes_like_inputs(photo_png: bytes) -> None:
    assert hash_bytes(bytearray(photo_png)) == hash_bytes(photo_png)
    assert hash_bytes(memoryview(photo_png)) == hash_bytes(photo_png)
    with pytest.raises(InputError):
        hash_bytes("not bytes")  # type: ignore[arg-type]


def test_threads_give_the_same_results(photo_jpeg: bytes, photo_png: bytes) -> None:
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(photo_jpeg, "fast"), (photo_png, "exact"), (photo_jpeg, "exact"), (photo_png, "fast")]
    expected = [hash_bytes(d, mode=m) for d, m in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda job: hash_bytes(job[0], mode=job[1]), jobs * 4))
    assert got == expected * 4


def test_hash_file_refuses_files_over_the_byte_limit(tmp_path: Path) -> None:
    from safestream.errors import FileTooLargeError

    path = tmp_path / "big.bin"
    path.write_bytes(b"\0" * 2048)
    with pytest.raises(FileTooLargeError, match="over the limit of 1024 bytes"):
        hash_file(path, max_file_bytes=1024)
