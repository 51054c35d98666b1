"""The engine end to end: bytes -> hashes -> index -> verdict, with bank settings."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageOps

from safestream.banks.formats import HashRecord
from safestream.demo import synthetic_image
from safestream.engine import ContentContext, Engine, EngineOptions
from safestream.errors import ImageError, InputError, SignalValueError
from safestream.signals.hashing import hash_bytes
from safestream.store.banks import BankRepository


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def jpeg(img: Image.Image, quality: int = 70) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture
def known() -> Image.Image:
    return synthetic_image(1)


@pytest.fixture
def banked(repo: BankRepository, known: Image.Image) -> BankRepository:
    h = hash_bytes(png(known))
    assert h.pdq is not None
    repo.create_bank("known", source="test")
    repo.add_entries(
        "known",
        [HashRecord("pdq", h.pdq, "ext-1", "unit", ("l",)), HashRecord("md5", h.md5)],
    )
    return repo


def test_exact_copy_matches_md5_and_pdq(banked: BankRepository, known: Image.Image) -> None:
    engine = Engine(banked)
    ctx = ContentContext(account_id="a1", ip_address="203.0.113.5", source_port=40123)
    verdict = engine.check_bytes(png(known), ctx)
    assert verdict.outcome == "match" and verdict.matched
    kinds = {m.signal_type: m for m in verdict.matches}
    assert kinds["md5"].distance_bits == 0
    assert kinds["pdq"].distance_bits == 0
    assert kinds["pdq"].external_id == "ext-1" and kinds["pdq"].labels == ("l",)
    assert verdict.context == ctx
    assert verdict.to_dict()["context"]["source_port"] == 40123


def test_reencoded_copy_matches_pdq_only(banked: BankRepository, known: Image.Image) -> None:
    verdict = Engine(banked).check_bytes(jpeg(known.resize((320, 240))))
    assert verdict.outcome == "match"
    assert [m.signal_type for m in verdict.matches] == ["pdq"]
    assert 0 < verdict.matches[0].distance_bits <= 31


def test_unrelated_image_does_not_match(banked: BankRepository) -> None:
    verdict = Engine(banked).check_bytes(png(synthetic_image(2)))
    assert verdict.outcome == "no_match"
    assert verdict.matches == ()
    assert verdict.reasons == ("no bank entry within threshold",)


def test_rotation_needs_dihedral(banked: BankRepository, known: Image.Image) -> None:
    rotated = png(known.rotate(90, expand=True))
    assert Engine(banked).check_bytes(rotated).outcome == "no_match"
    verdict = Engine(banked, EngineOptions(dihedral=True)).check_bytes(rotated)
    assert verdict.outcome == "match"
    assert verdict.matches[0].variant != "original"
    flipped = png(ImageOps.mirror(known))
    assert Engine(banked, EngineOptions(dihedral=True)).check_bytes(flipped).matched


def test_disabled_bank_and_threshold(banked: BankRepository, known: Image.Image) -> None:
    data = jpeg(known.resize((320, 240)), quality=40)
    engine = Engine(banked)
    distance = engine.check_bytes(data).matches[0].distance_bits
    assert distance > 0
    banked.update_bank("known", pdq_threshold=distance - 1)
    engine.refresh()
    assert engine.check_bytes(data).outcome == "no_match"
    banked.update_bank("known", pdq_threshold=31, enabled=False)
    engine.refresh()
    assert engine.check_bytes(png(known)).outcome == "no_match"


def test_allow_list_suppresses_perceptual_not_exact(
    banked: BankRepository, known: Image.Image
) -> None:
    engine = Engine(banked)
    copy = jpeg(known)
    h = hash_bytes(copy)
    banked.create_bank("fp", is_allow_list=True)
    banked.add_entries("fp", [HashRecord("pdq", str(h.pdq))])
    engine.refresh()
    verdict = engine.check_bytes(copy)
    assert verdict.outcome == "suppressed"
    assert [m.bank for m in verdict.allow_matches] == ["fp"]
    assert [m.bank for m in verdict.suppressed] == ["known"]
    # the original file: its MD5 match is never suppressed by a PDQ allow-list hit
    original = engine.check_bytes(png(known))
    assert original.outcome == "match"
    assert [m.signal_type for m in original.matches] == ["md5"]
    assert any("suppresses perceptual matches" in r for r in original.reasons)


def test_new_entry_matchable_after_refresh_and_removal(repo: BankRepository) -> None:
    repo.create_bank("b")
    engine = Engine(repo)
    img = png(synthetic_image(5))
    assert engine.check_bytes(img).outcome == "no_match"
    h = hash_bytes(img)
    ids, _ = repo.add_entries("b", [HashRecord("pdq", str(h.pdq))])
    assert engine.refresh() == 1
    assert engine.check_bytes(img).matches[0].entry_id == ids[0]
    repo.remove_entries("b", entry_ids=ids)
    engine.refresh()
    assert engine.check_bytes(img).outcome == "no_match"


def test_low_quality_skips_pdq_but_checks_md5(repo: BankRepository) -> None:
    flat = png(Image.new("RGB", (200, 200), (120, 120, 120)))
    h = hash_bytes(flat)
    assert h.pdq is None and h.pdq_quality < 50
    repo.create_bank("b")
    repo.add_entries("b", [HashRecord("md5", h.md5)])
    verdict = Engine(repo).check_bytes(flat)
    assert verdict.outcome == "match"
    assert any("quality" in r for r in verdict.reasons)


def test_lookup(banked: BankRepository, known: Image.Image) -> None:
    engine = Engine(banked)
    h = hash_bytes(png(known))
    assert [m.bank for m in engine.lookup("pdq", str(h.pdq).upper())] == ["known"]
    flipped = f"{int(str(h.pdq), 16) ^ ((1 << 40) - 1):064x}"  # 40 bits away
    assert engine.lookup("pdq", flipped) == []
    assert [m.distance_bits for m in engine.lookup("pdq", flipped, radius=40)] == [40]
    assert [m.signal_type for m in engine.lookup("md5", h.md5)] == ["md5"]
    with pytest.raises(SignalValueError):
        engine.lookup("pdq", "abc")
    with pytest.raises(SignalValueError, match="unknown signal type"):
        engine.lookup("photodna", "00")


def test_bad_images_raise_clear_errors(banked: BankRepository) -> None:
    engine = Engine(banked)
    with pytest.raises(ImageError):
        engine.check_bytes(b"")
    with pytest.raises(ImageError):
        engine.check_bytes(b"hello, not an image")
    with pytest.raises(ImageError):
        engine.check_bytes(png(synthetic_image(3))[:300])


def test_options_are_validated() -> None:
    with pytest.raises(InputError, match="mode"):
        EngineOptions(mode="turbo")
    with pytest.raises(InputError, match="min_quality"):
        EngineOptions(min_quality=101)
