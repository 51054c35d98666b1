"""The one exception hierarchy of safestream.

Every error says what was wrong and what to do about it. The API maps
:class:`InputError` and its subclasses to 4xx responses; the CLI prints the
message and exits with status 2.
"""

from __future__ import annotations


class SafestreamError(Exception):
    """Root of every error safestream raises on purpose."""


class ConfigError(SafestreamError):
    """The configuration (environment, policy file, options) is invalid."""


class InputError(SafestreamError):
    """The caller's input is invalid; nothing was changed because of it."""


class ImageError(InputError):
    """An image could not be decoded or is not acceptable."""


class EmptyFileError(ImageError):
    """The file has zero bytes."""


class NotAnImageError(ImageError):
    """The bytes are not in any image format we can read."""


class CorruptImageError(ImageError):
    """The image is truncated or corrupt."""


class DecompressionBombError(ImageError):
    """The image declares more pixels than the configured limit."""


class FileTooLargeError(ImageError):
    """The file is larger than the configured byte limit."""


class SignalValueError(InputError):
    """A signal value (hash) is malformed: wrong length, not hex, unknown type."""


class HashListError(InputError):
    """A line of a hash list could not be parsed.

    ``source`` names the file (or stream) and ``line_number`` is 1-based.
    """

    def __init__(self, message: str, *, source: str, line_number: int) -> None:
        super().__init__(f"{source}:{line_number}: {message}")
        self.source = source
        self.line_number = line_number
        self.reason = message


class NotFoundError(InputError):
    """A named object (bank, entry) does not exist."""


class ConflictError(InputError):
    """The object already exists or the change conflicts with current state."""


def error_kind(exc: BaseException) -> str:
    """A stable snake_case name for an error: ``CorruptImageError`` -> ``corrupt_image``."""
    name = type(exc).__name__
    kind = "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")
    return kind.removesuffix("_error")
