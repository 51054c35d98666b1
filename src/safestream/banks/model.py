"""Bank and entry records as the rest of safestream sees them (no SQL here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

#: Bank names: letters, digits and ``._-``; used in CLI arguments and URLs.
BANK_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


@dataclass(frozen=True)
class Bank:
    """A named, versioned list of known-content signals with its settings."""

    id: int
    name: str
    description: str
    source: str
    enabled: bool
    is_allow_list: bool
    pdq_threshold: int
    version: int
    created_at: datetime
    updated_at: datetime
    entry_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "enabled": self.enabled,
            "is_allow_list": self.is_allow_list,
            "pdq_threshold": self.pdq_threshold,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "entry_count": self.entry_count,
        }


@dataclass(frozen=True)
class BankEntry:
    """One known-content signal in a bank."""

    id: int
    bank_id: int
    bank_name: str
    signal_type: str
    value: str
    source: str | None
    external_id: str | None
    labels: tuple[str, ...]
    added_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "id": self.id,
            "bank": self.bank_name,
            "signal_type": self.signal_type,
            "value": self.value,
            "source": self.source,
            "external_id": self.external_id,
            "labels": list(self.labels),
            "added_at": self.added_at.isoformat(),
        }


@dataclass(frozen=True)
class EntryChange:
    """One row of the entry change log."""

    seq: int
    entry_id: int
    bank_id: int
    op: str
    signal_type: str
    value: str


@dataclass(frozen=True)
class ImportResult:
    """Outcome of a hash-list import."""

    import_id: int
    bank: str
    source_name: str
    list_format: str
    lines_read: int
    entries_added: int
    duplicates: int
    resumed_from_line: int
    errors: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "import_id": self.import_id,
            "bank": self.bank,
            "source": self.source_name,
            "format": self.list_format,
            "lines_read": self.lines_read,
            "entries_added": self.entries_added,
            "duplicates": self.duplicates,
            "resumed_from_line": self.resumed_from_line,
            "errors": list(self.errors),
        }
