"""Helpers for the case and report tests: check records of synthetic images.

Accounts, IPs and URLs are documentation values (203.0.113.0/24, 2001:db8::/32,
example.com); images are ``safestream.demo.synthetic_image``.
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import update

from safestream.demo import synthetic_image
from safestream.signals.hashing import hash_bytes
from safestream.store.db import Store
from safestream.store.models import CheckRow
from safestream.store.service import CheckRepository

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@cache
def hashes(seed: int) -> dict[str, Any]:
    """Hashes of a synthetic image."""
    buf = io.BytesIO()
    synthetic_image(seed, (256, 192)).save(buf, "PNG")
    return hash_bytes(buf.getvalue()).to_dict()


def record_check(
    store: Store,
    *,
    seed: int,
    account: str | None = "acct-1",
    outcome: str = "match",
    surface: str = "upload",
    at: datetime = T0,
    ip: str | None = "203.0.113.7",
    port: int | None = 51234,
    scores: dict[str, float | None] | None = None,
    bank: str = "known",
) -> str:
    """Record a check as the API would, received at ``at``; return its content id."""
    content_id = str(uuid.uuid4())
    matches = (
        [{"bank": bank, "signal_type": "pdq", "distance_bits": 0}] if outcome == "match" else []
    )
    CheckRepository(store).record(
        content_id=content_id,
        account_id=account,
        username=f"user-{account}" if account else None,
        profile_url=f"https://example.com/u/{account}" if account else None,
        ip_address=ip,
        source_port=port,
        client_timestamp=at - timedelta(seconds=1),
        surface=surface,
        outcome=outcome,
        signals=hashes(seed),
        matches=matches,
        reasons=[],
        scores=scores,
    )
    with store.session() as s:
        s.execute(update(CheckRow).where(CheckRow.content_id == content_id).values(received_at=at))
    return content_id


def record_live(
    store: Store,
    *,
    stream_id: str = "cam-1",
    account: str = "acct-live",
    started: datetime = T0,
    sample_times_s: tuple[float, ...] = (12.0, 13.0),
    at: datetime = T0 + timedelta(seconds=15),
) -> str:
    """A live detection written as the live monitor's ``open_case`` does; its content id."""
    from safestream.live.cases import LiveCaseWriter
    from safestream.live.ingest import StreamContext
    from safestream.live.monitor import ActionRequest

    ctx = StreamContext(
        stream_id,
        account_id=account,
        username=f"user-{account}",
        profile_url=f"https://example.com/u/{account}",
        ip_address="203.0.113.9",
        source_port=40123,
        started_at=started,
    )
    request = ActionRequest(
        action="open_case",
        verdict="flagged",
        context=ctx,
        source="synthetic:testsrc2",
        sample_times_s=sample_times_s,
        matches=(),
        frame_pdqs=tuple(hashes(int(t))["pdq"] for t in sample_times_s),
        frame_scores=tuple({"nudity": 0.99} for _ in sample_times_s),
        detected_at=at,
    )
    content_id = LiveCaseWriter(CheckRepository(store)).write(request).content_id
    with store.session() as s:
        s.execute(update(CheckRow).where(CheckRow.content_id == content_id).values(received_at=at))
    return content_id
