"""Errors of the classifier plug-ins, part of the one :mod:`safestream.errors` hierarchy.

A model that cannot be used is a configuration problem (:class:`ModelError` is a
:class:`~safestream.errors.ConfigError`); an image that cannot be classified is the
caller's input problem (:class:`ClassifierInputError` is an
:class:`~safestream.errors.InputError`, mapped to 4xx / exit status 2).
"""

from __future__ import annotations

from safestream.errors import ConfigError, InputError


class ModelError(ConfigError):
    """A classifier model cannot be loaded or run."""


class MissingExtraError(ModelError):
    """An optional dependency (an extra of safestream) is not installed."""


class ModelNotFoundError(ModelError):
    """The model file (or the bundled model's package) is not there."""


class ModelLoadError(ModelError):
    """The model file exists but onnxruntime cannot load it (corrupt or not ONNX)."""


class ModelShapeError(ModelError):
    """The model's inputs or outputs do not have the shape its description promises."""


class ModelCardError(ModelError):
    """A model card file is malformed: a missing, unknown or invalid field."""


class UnknownModelError(ModelError):
    """No bundled model has the given name."""


class ClassifierInputError(InputError):
    """An image array given to a classifier is not usable (wrong dtype, shape, size)."""


__all__ = [
    "ClassifierInputError",
    "MissingExtraError",
    "ModelCardError",
    "ModelError",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelShapeError",
    "UnknownModelError",
]
