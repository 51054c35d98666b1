"""Saving and loading index files: ``.npy`` arrays plus a JSON manifest, never pickle.

The manifest names the format and its version, and records each array's file,
dtype, shape and SHA-256, so that a truncated, swapped or tampered file is
refused with a clear message instead of being half-loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from safestream.errors import InputError

MANIFEST_NAME = "manifest.json"


class IndexFileError(InputError):
    """A saved index is missing, corrupt, or of an unknown format or version."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_arrays(
    directory: str | os.PathLike[str],
    *,
    format_name: str,
    version: int,
    arrays: Mapping[str, npt.NDArray[Any]],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``arrays`` as ``<name>.npy`` and then the manifest into ``directory``.

    Each file is written under a temporary name and renamed, and the manifest goes
    last, so a crash mid-save never leaves a manifest that points at half a file.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    for name, array in arrays.items():
        final = target / f"{name}.npy"
        tmp = target / f".{name}.npy.tmp"
        with tmp.open("wb") as handle:
            np.save(handle, np.ascontiguousarray(array), allow_pickle=False)
        os.replace(tmp, final)
        files[name] = {
            "file": final.name,
            "dtype": np.dtype(array.dtype).str,
            "shape": list(array.shape),
            "sha256": _sha256(final),
        }
    manifest = {"format": format_name, "version": version, "arrays": files, **(extra or {})}
    tmp_manifest = target / f".{MANIFEST_NAME}.tmp"
    tmp_manifest.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_manifest, target / MANIFEST_NAME)
    return target


def read_arrays(
    directory: str | os.PathLike[str],
    *,
    format_name: str,
    versions: frozenset[int],
    expected: Mapping[str, tuple[str, int]],
) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """Read and check the manifest and arrays written by :func:`write_arrays`.

    ``expected`` maps each array name to (dtype string, number of dimensions).
    Returns the manifest and the arrays; raises :class:`IndexFileError` on any problem.
    """
    source = Path(directory)
    manifest_path = source / MANIFEST_NAME
    if not manifest_path.is_file():
        raise IndexFileError(f"{manifest_path}: no index manifest here; was the index saved?")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexFileError(f"{manifest_path}: unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != format_name:
        raise IndexFileError(f"{manifest_path}: not a {format_name!r} index manifest")
    if manifest.get("version") not in versions:
        raise IndexFileError(
            f"{manifest_path}: format version {manifest.get('version')!r} is not supported "
            f"(supported: {sorted(versions)}); upgrade safestream or re-save the index"
        )
    listed = manifest.get("arrays")
    if not isinstance(listed, dict):
        raise IndexFileError(f"{manifest_path}: manifest has no 'arrays' table")
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name, (dtype, ndim) in expected.items():
        entry = listed.get(name)
        if not isinstance(entry, dict):
            raise IndexFileError(f"{manifest_path}: manifest does not list array {name!r}")
        path = source / f"{name}.npy"
        if entry.get("file") != path.name or not path.is_file():
            raise IndexFileError(f"{path}: index file is missing")
        if _sha256(path) != entry.get("sha256"):
            raise IndexFileError(f"{path}: checksum does not match the manifest (corrupt file)")
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise IndexFileError(f"{path}: not a valid .npy file ({exc})") from exc
        if (
            array.dtype.str != dtype
            or array.ndim != ndim
            or list(array.shape) != entry.get("shape")
        ):
            raise IndexFileError(
                f"{path}: expected dtype {dtype} with {ndim} dimension(s) as in the manifest, "
                f"found dtype {array.dtype.str} shape {array.shape}"
            )
        arrays[name] = array
    return manifest, arrays
