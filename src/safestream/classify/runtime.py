"""onnxruntime sessions: loaded with clear errors and explicit thread settings.

onnxruntime is imported here only, lazily, so that ``import safestream.classify``
works without the ``classify`` extra and says which extra to install when a model
is asked for.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from safestream.classify.errors import (
    MissingExtraError,
    ModelLoadError,
    ModelNotFoundError,
    ModelShapeError,
)

#: Threads per session. One: a process classifies one frame per core and scales out
#: by running one session per worker (the live monitor samples many streams), which
#: measured faster per core than one session over several threads (bench/classify.py).
DEFAULT_THREADS = 1


def import_onnxruntime() -> Any:
    """The onnxruntime module, or :class:`MissingExtraError` naming the extra."""
    try:
        import onnxruntime
    except ImportError:
        raise MissingExtraError(
            "classifiers need onnxruntime: pip install 'safestream[classify]'"
        ) from None
    return onnxruntime


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class TensorInfo:
    """Name, shape (None for a dynamic axis) and element type of a model input/output."""

    name: str
    shape: tuple[int | None, ...]
    type: str


def _dims(shape: Any) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) and d > 0 else None for d in shape)


class OnnxSession:
    """One onnxruntime session on the CPU, with one float input."""

    def __init__(
        self, path: Path, *, threads: int = DEFAULT_THREADS, sha256: str | None = None
    ) -> None:
        ort = import_onnxruntime()
        if not path.is_file():
            raise ModelNotFoundError(
                f"model file {path} does not exist; check the path (a model card's "
                "'model' is relative to the card's folder)"
            )
        if sha256 is not None:
            actual = sha256_file(path)
            if actual != sha256.lower():
                raise ModelLoadError(
                    f"model file {path} has SHA-256 {actual}, expected {sha256.lower()}: "
                    "the file is corrupt or not the expected model; reinstall it"
                )
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
            raise ModelLoadError(f"threads must be an integer >= 0 (0: all cores), got {threads!r}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception kinds
            raise ModelLoadError(
                f"onnxruntime cannot load {path} ({type(exc).__name__}: "
                f"{str(exc).strip()[:300]}); the file is corrupt or not an ONNX model"
            ) from None
        self.path = path
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelShapeError(
                f"model {path} has {len(inputs)} inputs; classifiers take one image tensor"
            )
        self.input = TensorInfo(inputs[0].name, _dims(inputs[0].shape), str(inputs[0].type))
        if self.input.type != "tensor(float)":
            raise ModelShapeError(
                f"model {path} takes {self.input.type}; classifiers need a float32 input"
            )
        self.outputs = tuple(
            TensorInfo(o.name, _dims(o.shape), str(o.type)) for o in self._session.get_outputs()
        )
        meta = self._session.get_modelmeta()
        self.metadata: dict[str, str] = dict(meta.custom_metadata_map)

    def run(
        self, batch: npt.NDArray[np.float32], output: str | None = None
    ) -> npt.NDArray[np.float32]:
        """Run on one input batch; return the named (or first) output as float32."""
        name = output or self.outputs[0].name
        try:
            (result,) = self._session.run([name], {self.input.name: batch})
        except Exception as exc:
            raise ModelShapeError(
                f"model {self.path} failed on an input of shape {batch.shape} "
                f"({type(exc).__name__}: {str(exc).strip()[:300]}); its input shape does "
                "not match the declared size or layout"
            ) from None
        return np.asarray(result, dtype=np.float32)


__all__ = ["DEFAULT_THREADS", "OnnxSession", "TensorInfo", "import_onnxruntime", "sha256_file"]
