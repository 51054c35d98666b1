"""CLI command ``safestream classify`` (registered by ``cli`` from :data:`COMMANDS`).

This module must not import :mod:`safestream.cli`. It needs no store: classifiers
run on the files given, offline.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import numpy as np
from PIL import Image

from safestream.classify import (
    Classification,
    Classifier,
    combine_scores,
    load_classifier,
)
from safestream.classify.obscure import METHODS, Box, obscure
from safestream.errors import SafestreamError, error_kind
from safestream.signals.image import decode_rgb

EXIT_FLAGGED = 1
EXIT_ERROR = 2


def _boxes_to_obscure(results: list[Classification]) -> list[Box] | None:
    """Boxes of flagged detections, or None (whole frame) when a whole-image model flagged."""
    boxes: list[Box] = []
    for result in results:
        if not result.flagged:
            continue
        flagged_boxes = [d.box for d in result.detections if d.category in result.flagged]
        if not flagged_boxes:
            return None  # a whole-image score (or a detector without a box): hide it all
        boxes.extend(flagged_boxes)
    return boxes


def _output_path(directory: Path, source: Path, used: set[Path]) -> Path:
    candidate = directory / f"{source.stem}.obscured.png"
    n = 1
    while candidate in used or candidate.exists():
        candidate = directory / f"{source.stem}.obscured-{n}.png"
        n += 1
    used.add(candidate)
    return candidate


def _load(models: tuple[str, ...], cards: tuple[Path, ...], threads: int) -> list[Classifier]:
    loaded = [load_classifier(name, threads=threads) for name in models]
    loaded += [load_classifier(card=card, threads=threads) for card in cards]
    return loaded or [load_classifier(threads=threads)]


@click.command("classify")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--model",
    "models",
    multiple=True,
    help="Bundled model: opennsfw (default) or nudenet (AGPL-3.0, opt-in extra). Repeatable.",
)
@click.option(
    "--model-card",
    "cards",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="A model card (TOML or JSON) describing your own ONNX model. Repeatable.",
)
@click.option(
    "--threads",
    type=click.IntRange(0, 256),
    default=1,
    show_default=True,
    help="onnxruntime threads per model (0: all cores).",
)
@click.option(
    "--obscure",
    "obscure_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Write an obscured PNG copy of each flagged image into this folder.",
)
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default="pixelate",
    show_default=True,
    help="How to obscure (irreversible).",
)
@click.option("--warning", default=None, help="Text overlaid on obscured copies.")
@click.option("--obscure-all", is_flag=True, help="Obscure every image, flagged or not.")
@click.option(
    "--max-pixels", type=click.IntRange(1), default=None, help="Refuse larger images (bombs)."
)
@click.option("--list-models", is_flag=True, help="List the bundled models and exit.")
def classify_cmd(
    files: tuple[Path, ...],
    models: tuple[str, ...],
    cards: tuple[Path, ...],
    threads: int,
    obscure_dir: Path | None,
    method: str,
    warning: str | None,
    obscure_all: bool,
    max_pixels: int | None,
    list_models: bool,
) -> None:
    """Score images for explicit nudity and the other categories; one JSON line per file.

    Scores are per category in 0..1, or null where no loaded model assesses the
    category. Exit status: 0 nothing flagged, 1 something flagged, 2 some file or
    model could not be used (errors win).
    """
    if list_models:
        from safestream.classify.bundled import bundled_status

        click.echo(json.dumps(bundled_status(), indent=2))
        return
    if not files:
        click.echo("error: give at least one image file (or --list-models)", err=True)
        sys.exit(EXIT_ERROR)
    try:
        classifiers = _load(models, cards, threads)
        if obscure_dir is not None:
            obscure_dir.mkdir(parents=True, exist_ok=True)
    except (SafestreamError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    errors = flagged_any = False
    used: set[Path] = set()
    for path in files:
        record: dict[str, Any] = {"file": str(path)}
        try:
            data = path.read_bytes()
            _, rgb = decode_rgb(data, max_pixels=max_pixels)
            results = [c.classify(rgb) for c in classifiers]
            flagged = sorted({cat for r in results for cat in r.flagged})
            record["scores"] = {
                k: None if v is None else round(v, 6) for k, v in combine_scores(results).items()
            }
            record["flagged"] = flagged
            record["models"] = [r.to_dict() for r in results]
            flagged_any = flagged_any or bool(flagged)
            if obscure_dir is not None and (flagged or obscure_all):
                boxes = None if obscure_all and not flagged else _boxes_to_obscure(results)
                out = obscure(rgb, method, boxes, warning=warning)
                target = _output_path(obscure_dir, path, used)
                Image.fromarray(np.ascontiguousarray(out)).save(target, format="PNG")
                record["obscured"] = str(target)
        except SafestreamError as exc:
            errors = True
            record.update(error=str(exc), kind=error_kind(exc))
        except OSError as exc:
            errors = True
            record.update(error=f"cannot read or write: {exc.strerror or exc}", kind="io")
        click.echo(json.dumps(record))
    if errors:
        sys.exit(EXIT_ERROR)
    if flagged_any:
        sys.exit(EXIT_FLAGGED)


#: Commands ``safestream.cli`` adds to the ``safestream`` group.
COMMANDS = [classify_cmd]

__all__ = ["COMMANDS", "classify_cmd"]
