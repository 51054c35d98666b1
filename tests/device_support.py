"""Helpers shared by the device tests: synthetic known images, bank entries, a guard."""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from safestream.demo import synthetic_image
from safestream.device import DeviceGuard, DeviceServer, FileFilterSource, LocalEvaluator
from safestream.signals.hashing import hash_bytes

KNOWN_SEEDS = (101, 102, 103, 104, 105)
UNRELATED_SEEDS = tuple(range(900, 930))


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class Known:
    """A known (bank) image: its bytes and the list holder's hashes (exact PDQ)."""

    seed: int
    image: Image.Image
    data: bytes
    pdq: str
    md5: str
    sha256: str


def known_images() -> list[Known]:
    out = []
    for seed in KNOWN_SEEDS:
        img = synthetic_image(seed, (800, 600))
        data = jpeg(img)
        h = hash_bytes(data, mode="exact")
        assert h.pdq is not None
        out.append(Known(seed, img, data, h.pdq, h.md5, h.sha256))
    return out


def bank_entries(items: list[Known]) -> list[tuple[str, str]]:
    entries: list[tuple[str, str]] = []
    for k in items:
        entries += [("pdq", k.pdq), ("md5", k.md5), ("sha256", k.sha256)]
    return entries


def make_guard(server: DeviceServer, **options: object) -> DeviceGuard:
    return DeviceGuard(
        FileFilterSource(server.directory / server.FILTER),
        LocalEvaluator(server, "test-device"),
        server.public_key(),
        **options,  # type: ignore[arg-type]
    )
