"""SQL of review items, with flood control: one incident per account and window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, text, update

from safestream.errors import NotFoundError
from safestream.store.db import Store
from safestream.store.jobs import write_transaction
from safestream.store.models import ReviewItemRow, utcnow

REVIEWS = cast(Table, ReviewItemRow.__table__)

#: Content ids kept per incident; the count goes on beyond it.
MAX_CONTENT_IDS = 1000


@dataclass(frozen=True)
class ReviewItem:
    """An incident waiting for review."""

    id: int
    account_id: str | None
    status: str
    verdict: str
    rule: str | None
    match_count: int
    first_content_id: str
    last_content_id: str
    content_ids: list[str]
    matches: list[Any]
    context: dict[str, Any]
    first_seen_at: datetime
    last_seen_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "id": self.id,
            "account_id": self.account_id,
            "status": self.status,
            "verdict": self.verdict,
            "rule": self.rule,
            "match_count": self.match_count,
            "first_content_id": self.first_content_id,
            "last_content_id": self.last_content_id,
            "content_ids": self.content_ids,
            "matches": self.matches,
            "context": self.context,
            "first_seen_at": self.first_seen_at.isoformat(),
            "last_seen_at": self.last_seen_at.isoformat(),
        }


@dataclass(frozen=True)
class ReviewEnqueued:
    """What ``add`` did: the item, and whether it is new or a repeat in its window."""

    item: ReviewItem
    created: bool


def _item(row: Any) -> ReviewItem:
    m = row._mapping
    return ReviewItem(
        id=m["id"],
        account_id=m["account_id"],
        status=m["status"],
        verdict=m["verdict"],
        rule=m["rule"],
        match_count=m["match_count"],
        first_content_id=m["first_content_id"],
        last_content_id=m["last_content_id"],
        content_ids=list(m["content_ids"]),
        matches=list(m["matches"]),
        context=dict(m["context"]),
        first_seen_at=m["first_seen_at"],
        last_seen_at=m["last_seen_at"],
    )


class ReviewRepository:
    """Review items (the cases issue builds the review workflow on them)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(
        self,
        *,
        content_id: str,
        account_id: str | None,
        verdict: str,
        rule: str | None,
        matches: list[Any],
        context: dict[str, Any],
        window_s: float,
        now: datetime | None = None,
    ) -> ReviewEnqueued:
        """Open a review item, or count a repeat on the account's open item.

        A repeat is a check of the same account within ``window_s`` seconds of
        the item's last check (a sliding window: a steady flood stays one
        incident). Checks without an account are never grouped.
        """
        now = now or utcnow()
        with write_transaction(self.store) as conn:
            if account_id is not None and window_s > 0:
                if self.store.dialect == "postgresql":
                    # Two requests of one account at once must not both open an
                    # item: serialise per account for this transaction.
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                        {"k": f"safestream.review:{account_id}"},
                    )
                row = conn.execute(
                    select(REVIEWS)
                    .where(
                        REVIEWS.c.account_id == account_id,
                        REVIEWS.c.status == "open",
                        REVIEWS.c.last_seen_at >= now - timedelta(seconds=window_s),
                    )
                    .order_by(REVIEWS.c.last_seen_at.desc())
                    .limit(1)
                ).first()
                if row is not None:
                    item = _item(row)
                    ids = item.content_ids
                    if len(ids) < MAX_CONTENT_IDS:
                        ids = [*ids, content_id]
                    conn.execute(
                        update(REVIEWS)
                        .where(REVIEWS.c.id == item.id)
                        .values(
                            match_count=REVIEWS.c.match_count + 1,
                            last_content_id=content_id,
                            content_ids=ids,
                            last_seen_at=max(now, item.last_seen_at),
                        )
                    )
                    fresh = conn.execute(select(REVIEWS).where(REVIEWS.c.id == item.id)).one()
                    return ReviewEnqueued(_item(fresh), created=False)
            new_id = conn.execute(
                insert(REVIEWS)
                .values(
                    account_id=account_id,
                    status="open",
                    verdict=verdict,
                    rule=rule,
                    match_count=1,
                    first_content_id=content_id,
                    last_content_id=content_id,
                    content_ids=[content_id],
                    matches=matches,
                    context=context,
                    first_seen_at=now,
                    last_seen_at=now,
                )
                .returning(REVIEWS.c.id)
            ).scalar_one()
            fresh = conn.execute(select(REVIEWS).where(REVIEWS.c.id == new_id)).one()
            return ReviewEnqueued(_item(fresh), created=True)

    def get(self, item_id: int) -> ReviewItem:
        """One review item."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(REVIEWS).where(REVIEWS.c.id == item_id)).first()
        if row is None:
            raise NotFoundError(f"no review item with id {item_id}")
        return _item(row)

    def list(
        self, *, account_id: str | None = None, status: str | None = "open", limit: int = 100
    ) -> list[ReviewItem]:
        """Review items, most recently active first."""
        query = select(REVIEWS).order_by(REVIEWS.c.last_seen_at.desc(), REVIEWS.c.id.desc())
        if account_id is not None:
            query = query.where(REVIEWS.c.account_id == account_id)
        if status is not None:
            query = query.where(REVIEWS.c.status == status)
        with self.store.engine.connect() as conn:
            return [_item(r) for r in conn.execute(query.limit(limit))]

    def count(self) -> int:
        """How many review items exist."""
        with self.store.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(REVIEWS)).scalar_one())


__all__ = ["ReviewEnqueued", "ReviewItem", "ReviewRepository"]
