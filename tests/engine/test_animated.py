"""Animated images: a known picture as any frame is found, in checks and scans.

Before, checks and scans hashed an animation's first frame only (every frame only with
``safestream hash --all-frames``): a GIF, WebP or APNG whose first frame was benign and
whose fifth was a banked picture passed. Synthetic pictures only.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from safestream.banks.formats import HashRecord
from safestream.demo import synthetic_image
from safestream.engine import Engine, EngineOptions
from safestream.errors import DecompressionBombError
from safestream.scan import ScanRecord, scan
from safestream.signals.hashing import hash_bytes
from safestream.signals.synthetic import photo_like
from safestream.store.banks import BankRepository

KNOWN_AT = 4


def animation(fmt: str, frames: list[Image.Image], duration_ms: int = 100) -> bytes:
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return buf.getvalue()


def frames_with_known(known: Image.Image) -> list[Image.Image]:
    filler = [Image.fromarray(photo_like(900 + i, 256, 256)) for i in range(6)]
    filler[KNOWN_AT] = known.convert("RGB").resize((256, 256))
    return filler


@pytest.fixture
def known() -> Image.Image:
    return synthetic_image(5).convert("RGB").resize((256, 256))


@pytest.fixture
def banked(repo: BankRepository, known: Image.Image) -> BankRepository:
    buf = io.BytesIO()
    known.save(buf, "PNG")
    h = hash_bytes(buf.getvalue())
    assert h.pdq is not None
    repo.create_bank("known", source="test")
    repo.add_entries("known", [HashRecord("pdq", h.pdq, "K1", "unit", ())])
    return repo


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_a_banked_picture_as_a_later_frame_is_found(
    banked: BankRepository, known: Image.Image, fmt: str, mode: str
) -> None:
    data = animation(fmt, frames_with_known(known))
    verdict = Engine(banked, EngineOptions(mode=mode)).check_bytes(data)
    assert verdict.matched, verdict.reasons
    assert verdict.matches[0].external_id == "K1"
    assert verdict.matches[0].variant == f"frame {KNOWN_AT}"
    assert len(verdict.signals["frames"]) == 6
    # What checks did before: the first frame only.
    first_only = Engine(banked, EngineOptions(mode=mode, animated_frames=False))
    assert not first_only.check_bytes(data).matched


def test_a_still_image_is_decoded_once_and_answers_as_before(
    banked: BankRepository, known: Image.Image
) -> None:
    buf = io.BytesIO()
    known.save(buf, "PNG")
    hashes = hash_bytes(buf.getvalue(), animated_frames=True)
    assert hashes.frames == ()
    verdict = Engine(banked).check_bytes(buf.getvalue())
    assert verdict.matched and verdict.matches[0].variant == "original"
    assert verdict.signals["frames"] == []


def test_an_animation_over_the_frame_limit_is_refused_clearly(banked: BankRepository) -> None:
    tiny = [Image.new("RGB", (8, 8), (i % 256, 0, 0)) for i in range(1001)]
    data = animation("GIF", tiny, duration_ms=20)
    with pytest.raises(DecompressionBombError, match="1,001 frames, over the limit of 1,000"):
        Engine(banked).check_bytes(data)


def test_a_scan_finds_a_banked_picture_in_an_animation(
    banked: BankRepository, known: Image.Image, tmp_path: Path
) -> None:
    folder = tmp_path / "uploads"
    folder.mkdir()
    (folder / "anim.gif").write_bytes(animation("GIF", frames_with_known(known)))
    (folder / "clean.gif").write_bytes(animation("GIF", frames_with_known(synthetic_image(6))))
    records: list[ScanRecord] = []
    summary = scan(Engine(banked), [folder], workers=1, on_record=records.append)
    assert summary.files == 2 and summary.matched == 1
    matched = {Path(r.path).name for r in records if r.verdict and r.verdict.matched}
    assert matched == {"anim.gif"}
