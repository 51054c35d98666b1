"""A law-enforcement request with synthetic, plausible fields, for tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from safestream.requests.model import NewRequest, RequestType


def new_request(received_at: datetime | None = None, **overrides: Any) -> NewRequest:
    """A production order naming ``acct-1`` (override any field)."""
    fields: dict[str, Any] = {
        "request_type": RequestType.PRODUCTION_ORDER,
        "agency": "Example Police Service",
        "officer": {"name": "Det. A. Example", "email": "a.example@police.example"},
        "legal_basis": "Production order 2026/17",
        "jurisdiction": "us",
        "identifiers": ["acct-1"],
        "data_categories": ["subscriber"],
        "received_at": received_at or datetime.now(UTC),
    }
    fields.update(overrides)
    return NewRequest(**fields)
