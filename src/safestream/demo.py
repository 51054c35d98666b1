"""The demo: a synthetic corpus, a bank built from part of it, and a scan of copies.

Everything here is generated (shapes, gradients, noise, text). No real
material of any kind is used or referenced.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps
from rich.console import Console
from rich.table import Table

from safestream.banks.formats import HashRecord
from safestream.banks.importer import import_file
from safestream.engine.check import Engine, EngineOptions
from safestream.scan import ScanRecord, scan
from safestream.signals.hashing import hash_file
from safestream.store.banks import BankRepository
from safestream.store.db import Store


def synthetic_image(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A deterministic synthetic picture: gradient, noise, shapes and text."""
    rng = np.random.default_rng(seed)
    w, h = size
    # A smooth random field gives PDQ enough structure (quality well above 50).
    coarse = rng.random((6, 8, 3)) * 255
    base = Image.fromarray(coarse.astype(np.uint8), "RGB").resize((w, h), Image.Resampling.BICUBIC)
    noise = rng.normal(0, 6, (h, w, 3))
    arr = np.clip(np.asarray(base, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(6, 14))):
        x0, y0 = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        x1 = x0 + int(rng.integers(30, w // 2))
        y1 = y0 + int(rng.integers(30, h // 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        elif shape == 1:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(3, 12)))
    draw.text((10, h - 20), f"synthetic #{seed}", fill=(255, 255, 255))
    return img


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _watermark(img: Image.Image) -> Image.Image:
    """A semi-transparent text mark in a corner, as sites stamp re-posted images."""
    base = img.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    w, h = base.size
    draw.text((w - 110, h - 24), "example.com", fill=(255, 255, 255, 160))
    return Image.alpha_composite(base, layer).convert("RGB")


def _crop(img: Image.Image, fraction: float) -> Image.Image:
    w, h = img.size
    dx, dy = int(w * fraction / 2), int(h * fraction / 2)
    return img.crop((dx, dy, w - dx, h - dy))


#: Transform name -> (function, file extension). Each yields a copy of an image.
TRANSFORMS: dict[str, tuple[Callable[[Image.Image], Image.Image], str]] = {
    "resize-50%": (lambda im: im.resize((im.width // 2, im.height // 2)), "png"),
    "jpeg-q50": (lambda im: im, "jpg50"),
    "crop-2%": (lambda im: _crop(im, 0.02), "png"),
    "crop-5%": (lambda im: _crop(im, 0.05), "png"),
    "watermark": (_watermark, "png"),
    "blur": (lambda im: im.filter(ImageFilter.GaussianBlur(1.5)), "png"),
    "rotate-90": (lambda im: im.rotate(90, expand=True), "png"),
    "flip": (ImageOps.mirror, "png"),
}


def _save(img: Image.Image, path: Path, ext: str) -> Path:
    if ext == "jpg50":
        path = path.with_suffix(".jpg")
        path.write_bytes(_jpeg(img, 50))
    else:
        path = path.with_suffix("." + ext)
        img.save(path)
    return path


def run_demo(directory: Path, *, console: Console | None = None, workers: int | None = None) -> int:
    """Build the demo corpus in ``directory``, bank part of it, scan copies.

    Returns the number of false matches on unrelated images (0 expected).
    """
    out = console or Console()
    if directory.exists():
        shutil.rmtree(directory)
    originals, copies = directory / "originals", directory / "copies"
    originals.mkdir(parents=True)
    copies.mkdir()
    store = Store.open(data_dir=directory / "data")
    repo = BankRepository(store)

    out.rule("[bold]safestream demo[/bold] — synthetic images only")
    banked = list(range(1, 9))
    unbanked = list(range(101, 111))
    for seed in banked + unbanked:
        synthetic_image(seed).save(originals / f"img-{seed:03d}.png")
    out.print(f"1. Generated {len(banked) + len(unbanked)} synthetic images in {originals}")

    # A hash list in python-threatexchange's format, imported like a hotline list.
    hash_list = directory / "known-hashes.txt"
    lines = ["# demo hash list: PDQ and MD5 of synthetic images"]
    for seed in banked:
        h = hash_file(originals / f"img-{seed:03d}.png")
        lines += [f"pdq {h.pdq}", f"md5 {h.md5}"]
    hash_list.write_text("\n".join(lines) + "\n")
    repo.create_bank("demo-known", source="demo", description="hashes of synthetic images 1-8")
    result = import_file(repo, "demo-known", hash_list)
    out.print(
        f"2. Bank 'demo-known': imported {result.entries_added} entries "
        f"(PDQ + MD5 of images 1-8) from {hash_list.name}"
    )

    expected: dict[str, bool] = {}
    for seed in banked:
        src = Image.open(originals / f"img-{seed:03d}.png")
        exact_copy = copies / f"img-{seed:03d}-identical.png"
        shutil.copy(originals / f"img-{seed:03d}.png", exact_copy)
        expected[exact_copy.name] = True
        for name, (fn, ext) in TRANSFORMS.items():
            saved = _save(fn(src), copies / f"img-{seed:03d}-{name}", ext)
            expected[saved.name] = True
    for seed in unbanked:
        saved = _save(synthetic_image(seed), copies / f"img-{seed:03d}-unrelated", "jpg50")
        expected[saved.name] = False
    broken = copies / "broken-truncated.jpg"
    broken.write_bytes(_jpeg(synthetic_image(999))[:2000])
    not_image = copies / "notes.jpg"
    not_image.write_text("this is text with an image extension\n")

    # An allow-list bank suppresses a known false positive: here the exact
    # file img-008-watermark.png stands in for a reviewed, benign look-alike.
    repo.create_bank("demo-allow", source="demo", is_allow_list=True)
    allowed = hash_file(copies / "img-008-watermark.png")
    repo.add_entries("demo-allow", [HashRecord("md5", allowed.md5)])
    out.print(
        f"3. Made {len(expected)} copies (transforms: {', '.join(TRANSFORMS)}; unrelated "
        "images; one truncated file; one text file named .jpg) and an allow-list bank"
    )

    engine = Engine.open(store, EngineOptions(dihedral=True))
    records: list[ScanRecord] = []
    summary = scan(engine, [copies], workers=workers, on_record=records.append)
    table = Table(title="4. Scan of the copies (PDQ dihedral matching on)")
    table.add_column("file", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    table.add_column("why")
    false_matches = 0
    found: dict[str, list[int]] = {}
    for rec in sorted(records, key=lambda r: r.path):
        name = Path(rec.path).name
        if rec.verdict is None:
            table.add_row(name, "[yellow]error[/yellow]", str(rec.error_kind))
            continue
        best = (rec.verdict.matches or rec.verdict.suppressed or (None,))[0]
        colour = {"match": "red", "suppressed": "cyan", "no_match": "green"}[rec.outcome]
        why = ""
        if best is not None:
            why = f"{best.bank}: {best.signal_type} at {best.distance_bits} bits"
            if best.variant != "original":
                why += f" ({best.variant})"
        if rec.outcome == "suppressed":
            why += f"; allow-list {rec.verdict.allow_matches[0].bank}"
        table.add_row(name, f"[{colour}]{rec.outcome}[/{colour}]", why)
        hit = rec.outcome in ("match", "suppressed")
        if expected.get(name):
            transform = name[len("img-000-") :].rsplit(".", 1)[0]
            found.setdefault(transform, [0, 0])
            found[transform][0] += int(hit)
            found[transform][1] += 1
        if expected.get(name) is False and hit:
            false_matches += 1
    out.print(table)
    recall = Table(title="5. Found, by transform")
    recall.add_column("transform")
    recall.add_column("found")
    for transform, (hits, total) in sorted(found.items()):
        recall.add_row(transform, f"{hits}/{total}")
    out.print(recall)
    banked_copies = sum(expected.values())
    total_found = sum(h for h, _ in found.values())
    out.print(
        f"Summary: {summary.files} files; {summary.matched} matched, "
        f"{summary.outcomes.get('suppressed', 0)} suppressed by the allow-list, "
        f"{summary.outcomes.get('no_match', 0)} no match, {summary.errors} rejected "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(summary.error_kinds.items()))}).\n"
        f"Copies of banked images found: {total_found}/{banked_copies}; "
        f"false matches on unrelated images: {false_matches}/{len(unbanked)}."
    )
    out.print(
        "Rotated and flipped copies match through the dihedral PDQ variants (off by "
        "default: `safestream scan --dihedral`). PDQ is not robust to cropping: a few "
        "percent can move a hash past 31 bits, as the crop row shows."
    )
    store.dispose()
    return false_matches
