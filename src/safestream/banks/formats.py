"""Hash-list formats: parse and write the lists hotlines and tools exchange.

Formats (``HashListFormat`` plug-ins, registered in :data:`FORMATS`):

- ``te``: python-threatexchange's one-per-line ``"<signal_type> <value>"``;
- ``csv``: CSV with a header row; ``signal_type`` and ``value`` columns are
  required (``hash`` is accepted for ``value``), ``external_id``, ``source``
  and ``labels`` (separated by ``;``) are optional;
- ``md5``, ``sha1``, ``sha256``, ``pdq``: plain lists, one value per line.

In every text format blank lines and lines starting with ``#`` are skipped.
Parsing is a generator of :class:`ParsedLine` or :class:`LineError` items,
so an import can stop at the first error or collect them all.
"""

from __future__ import annotations

import csv
import io
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar, TextIO

from safestream.errors import HashListError, InputError, SignalValueError
from safestream.signals.base import get_signal_type


@dataclass(frozen=True)
class HashRecord:
    """One entry of a hash list, value canonicalised."""

    signal_type: str
    value: str
    external_id: str | None = None
    source: str | None = None
    labels: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ParsedLine:
    """A successfully parsed line."""

    line_number: int
    record: HashRecord


@dataclass(frozen=True)
class LineError:
    """A line that could not be parsed, with the reason."""

    line_number: int
    reason: str

    def to_error(self, source: str) -> HashListError:
        """The error to raise for this line of ``source``."""
        return HashListError(self.reason, source=source, line_number=self.line_number)


ParseItem = ParsedLine | LineError

#: Longest line we accept; a longer one is hostile or not a hash list.
MAX_LINE_CHARS = 4096


def _record(
    signal_type: str,
    value: str,
    *,
    external_id: str | None = None,
    source: str | None = None,
    labels: Iterable[str] = (),
) -> HashRecord:
    st = get_signal_type(signal_type)
    return HashRecord(
        signal_type=st.name,
        value=st.parse(value),
        external_id=external_id or None,
        source=source or None,
        labels=tuple(label.strip() for label in labels if label.strip()),
    )


class HashListFormat(ABC):
    """Reads and writes one hash-list format."""

    name: ClassVar[str]
    description: ClassVar[str]

    @abstractmethod
    def parse(self, stream: TextIO) -> Iterator[ParseItem]:
        """Yield one item per meaningful line of ``stream``."""

    @abstractmethod
    def write(self, records: Iterable[HashRecord], out: TextIO) -> int:
        """Write ``records`` to ``out``; return how many were written."""


def _text_lines(stream: TextIO) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(stream, start=1):
        line = raw.strip().lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        yield number, line


class ThreatExchangeFormat(HashListFormat):
    """``<signal_type> <value>`` per line (python-threatexchange's local_file)."""

    name: ClassVar[str] = "te"
    description: ClassVar[str] = "'<signal_type> <value>' per line (python-threatexchange)"

    def parse(self, stream: TextIO) -> Iterator[ParseItem]:
        for number, line in _text_lines(stream):
            if len(line) > MAX_LINE_CHARS:
                yield LineError(number, f"line is longer than {MAX_LINE_CHARS} characters")
                continue
            parts = line.split()
            if len(parts) != 2:
                yield LineError(
                    number,
                    f"expected '<signal_type> <value>', got {len(parts)} field(s): {line[:80]!r}",
                )
                continue
            try:
                yield ParsedLine(number, _record(parts[0], parts[1]))
            except SignalValueError as exc:
                yield LineError(number, str(exc))

    def write(self, records: Iterable[HashRecord], out: TextIO) -> int:
        count = 0
        for record in records:
            out.write(f"{record.signal_type} {record.value}\n")
            count += 1
        return count


class PlainListFormat(HashListFormat):
    """One value of a fixed signal type per line."""

    description: ClassVar[str] = "one value per line"

    def __init__(self, signal_type: str) -> None:
        self.signal_type = get_signal_type(signal_type).name

    @property
    def list_name(self) -> str:
        """The format's name (same as its signal type)."""
        return self.signal_type

    def parse(self, stream: TextIO) -> Iterator[ParseItem]:
        for number, line in _text_lines(stream):
            if len(line) > MAX_LINE_CHARS:
                yield LineError(number, f"line is longer than {MAX_LINE_CHARS} characters")
                continue
            # Some published MD5 lists carry a file name after the digest
            # (md5sum output); take the first field only.
            value = line.split()[0]
            try:
                yield ParsedLine(number, _record(self.signal_type, value))
            except SignalValueError as exc:
                yield LineError(number, str(exc))

    def write(self, records: Iterable[HashRecord], out: TextIO) -> int:
        count = 0
        for record in records:
            if record.signal_type == self.signal_type:
                out.write(record.value + "\n")
                count += 1
        return count


class CSVFormat(HashListFormat):
    """CSV with a header row."""

    name: ClassVar[str] = "csv"
    description: ClassVar[str] = "CSV with header: signal_type,value[,external_id,source,labels]"
    COLUMNS: ClassVar[tuple[str, ...]] = ("signal_type", "value", "external_id", "source", "labels")

    def parse(self, stream: TextIO) -> Iterator[ParseItem]:
        reader = csv.reader(stream)
        header: list[str] | None = None
        try:
            for row in reader:
                number = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if header is None:
                    header = [c.strip().lower().lstrip("\ufeff") for c in row]
                    header = ["value" if c == "hash" else c for c in header]
                    missing = {"signal_type", "value"} - set(header)
                    if missing:
                        yield LineError(
                            number,
                            "CSV header must name the columns signal_type and value "
                            f"(missing: {', '.join(sorted(missing))}); got {row!r}",
                        )
                        return
                    continue
                if len(row) != len(header):
                    yield LineError(
                        number, f"expected {len(header)} columns as in the header, got {len(row)}"
                    )
                    continue
                cells = dict(zip(header, row, strict=True))
                if any(len(c) > MAX_LINE_CHARS for c in row):
                    yield LineError(number, f"a cell is longer than {MAX_LINE_CHARS} characters")
                    continue
                try:
                    yield ParsedLine(
                        number,
                        _record(
                            cells["signal_type"],
                            cells["value"],
                            external_id=cells.get("external_id", "").strip(),
                            source=cells.get("source", "").strip(),
                            labels=cells.get("labels", "").split(";"),
                        ),
                    )
                except SignalValueError as exc:
                    yield LineError(number, str(exc))
        except csv.Error as exc:
            yield LineError(reader.line_num, f"malformed CSV: {exc}")
        if header is None:
            yield LineError(1, "CSV file is empty: expected a header row")

    def write(self, records: Iterable[HashRecord], out: TextIO) -> int:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.COLUMNS)
        count = 0
        for r in records:
            writer.writerow(
                [r.signal_type, r.value, r.external_id or "", r.source or "", ";".join(r.labels)]
            )
            count += 1
        return count


FORMATS: dict[str, HashListFormat] = {
    "te": ThreatExchangeFormat(),
    "csv": CSVFormat(),
    "md5": PlainListFormat("md5"),
    "sha1": PlainListFormat("sha1"),
    "sha256": PlainListFormat("sha256"),
    "pdq": PlainListFormat("pdq"),
}


def get_format(name: str) -> HashListFormat:
    """The registered format called ``name``."""
    try:
        return FORMATS[name.strip().lower()]
    except KeyError:
        raise InputError(
            f"unknown hash-list format {name!r}; use one of: {', '.join(FORMATS)}"
        ) from None


def detect_format(sample: str, filename: str = "") -> str:
    """Guess the format of a hash list from its name and first meaningful line."""
    if filename.lower().endswith(".csv"):
        return "csv"
    for _, line in _text_lines(io.StringIO(sample)):
        parts = line.split(",") if "," in line else line.split()
        if "," in line:
            return "csv"
        if len(parts) == 2 and not all(c in "0123456789abcdefABCDEF" for c in parts[0]):
            return "te"
        token = parts[0]
        by_length = {32: "md5", 40: "sha1"}
        if len(token) in by_length:
            return by_length[len(token)]
        if len(token) == 64:
            raise InputError(
                "cannot tell a PDQ list from a SHA-256 list (both are 64 hex characters): "
                "give the format explicitly (--format pdq or --format sha256)"
            )
        break
    raise InputError("cannot detect the hash-list format: give it explicitly with --format")
