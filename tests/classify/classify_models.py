"""Tiny ONNX models built in the tests themselves (no weights from anywhere).

The "redness" model averages each channel over the image and scores
``softmax([0, 10 * (mean_red - mean_blue)])``: label ``red`` is near 1 on a red
image, 0.5 on grey, near 0 on blue. It stands in for a partner's model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

from safestream.classify.bundled import BUNDLED, package_file
from safestream.classify.errors import MissingExtraError, ModelNotFoundError


def redness_model(
    path: Path,
    *,
    layout: str = "NCHW",
    size: tuple[int, int] | None = (32, 32),
    softmax: bool = True,
    n_labels: int = 2,
    channels: int = 3,
) -> Path:
    """Write the redness model to ``path``; ``size`` (width, height) None = dynamic."""
    h: Any = size[1] if size else "height"
    w: Any = size[0] if size else "width"
    shape = ["batch", channels, h, w] if layout == "NCHW" else ["batch", h, w, channels]
    nodes = []
    source = "pixels"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", ["pixels"], ["nchw"], perm=[0, 3, 1, 2]))
        source = "nchw"
    weights = np.zeros((channels, n_labels), dtype=np.float32)
    weights[0, 1] = 10.0
    weights[min(2, channels - 1), 1] -= 10.0
    initializers = [
        numpy_helper.from_array(weights, "weights"),
        numpy_helper.from_array(np.zeros(n_labels, dtype=np.float32), "bias"),
    ]
    nodes += [
        helper.make_node("GlobalAveragePool", [source], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "weights"], ["logits0"]),
        helper.make_node("Add", ["logits0", "bias"], ["logits" if softmax else "scores"]),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["scores"], axis=1))
    graph = helper.make_graph(
        nodes,
        "redness",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", n_labels])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def two_input_model(path: Path) -> Path:
    """A model with two inputs (not a classifier of one image)."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])],
        "two",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 2]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 2]),
        ],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def card_dict(model_file: str = "redness.onnx", /, **overrides: Any) -> dict[str, Any]:
    """A valid card for the redness model (overrides replace or, with None, drop keys)."""
    card: dict[str, Any] = {
        "name": "partner-redness",
        "model": model_file,
        "input_size": [32, 32],
        "layout": "NCHW",
        "pixel_range": 1.0,
        "labels": ["other", "red"],
        "output": "probabilities",
        "categories": {"red": "minor_likely"},
        "thresholds": {"minor_likely": 0.9},
        "licence": "test model, built in the test",
    }
    for key, value in overrides.items():
        if value is None:
            card.pop(key, None)
        else:
            card[key] = value
    return card


def write_card(directory: Path, card: dict[str, Any], name: str = "card.json") -> Path:
    """Write ``card`` as JSON (``.json``) or TOML (``.toml``, simple values only)."""
    path = directory / name
    if name.endswith(".json"):
        path.write_text(json.dumps(card))
        return path
    lines = []
    tables = {k: v for k, v in card.items() if isinstance(v, dict)}
    for key, value in card.items():
        if key not in tables:
            lines.append(f"{key} = {json.dumps(value)}")
    for key, table in tables.items():
        lines.append(f"[{key}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def solid(colour: tuple[int, int, int], width: int = 64, height: int = 48) -> npt.NDArray[np.uint8]:
    """A solid-colour RGB frame."""
    return np.full((height, width, 3), colour, dtype=np.uint8)


def installed(name: str) -> bool:
    """True when the bundled model ``name`` is installed."""
    cls = BUNDLED[name]
    try:
        package_file(cls.package, cls.filename, cls.extra)
    except (MissingExtraError, ModelNotFoundError):
        return False
    return True
