"""SQLAlchemy models: banks, their entries, the change log and import checkpoints.

Only ``safestream.store`` talks SQL; the rest of the code receives plain
dataclasses from :mod:`safestream.banks.service`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite has no 64-bit autoincrement type of its own: INTEGER PRIMARY KEY is the
# rowid, which is already 64-bit, so BigInteger maps to Integer there.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; safestream stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of all safestream tables."""


class BankRow(Base):
    """A named, versioned list of known-content signals."""

    __tablename__ = "banks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(200), default="internal")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    is_allow_list: Mapped[bool] = mapped_column(Boolean, default=False)
    pdq_threshold: Mapped[int] = mapped_column(Integer, default=31)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BankEntryRow(Base):
    """One known-content signal in a bank, with its provenance."""

    __tablename__ = "bank_entries"
    __table_args__ = (
        UniqueConstraint("bank_id", "signal_type", "value", name="uq_entry_bank_signal_value"),
        Index("ix_entry_signal_value", "signal_type", "value"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"), index=True)
    signal_type: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(128))
    source: Mapped[str | None] = mapped_column(String(200), nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The import that added the entry (None when added one by one).
    import_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)


class EntryChangeRow(Base):
    """Append-only log of entry additions and removals.

    Matchers in other processes poll it (``seq > last_seen``) to update their
    in-memory indexes incrementally instead of rebuilding them.
    """

    __tablename__ = "entry_changes"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(BigInteger, index=True)
    bank_id: Mapped[int] = mapped_column(BigInteger)
    op: Mapped[str] = mapped_column(String(8))  # "add" or "remove"
    signal_type: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(128))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ImportRow(Base):
    """A hash-list import: its checkpoint while it runs, its outcome afterwards."""

    __tablename__ = "imports"
    __table_args__ = (Index("ix_import_bank_digest", "bank_id", "content_sha256"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    bank_id: Mapped[int] = mapped_column(ForeignKey("banks.id", ondelete="CASCADE"))
    source_name: Mapped[str] = mapped_column(Text)
    content_sha256: Mapped[str] = mapped_column(String(64))
    list_format: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # staging, done, failed
    lines_done: Mapped[int] = mapped_column(BigInteger, default=0)
    entries_staged: Mapped[int] = mapped_column(BigInteger, default=0)
    entries_added: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StagedEntryRow(Base):
    """Entries of an import not yet published; invisible to matching."""

    __tablename__ = "staged_entries"
    __table_args__ = (Index("ix_staged_import_value", "import_id", "signal_type", "value"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("imports.id", ondelete="CASCADE"))
    line_number: Mapped[int] = mapped_column(BigInteger)
    signal_type: Mapped[str] = mapped_column(String(32))
    value: Mapped[str] = mapped_column(String(128))
    source: Mapped[str | None] = mapped_column(String(200), nullable=True)
    external_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    labels: Mapped[list[str]] = mapped_column(JSON, default=list)


class StoreMetaRow(Base):
    """Key/value facts about this database (e.g. its random instance id)."""

    __tablename__ = "store_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ApiKeyRow(Base):
    """An API key: only its SHA-256 is stored; the key is shown once at creation."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    prefix: Mapped[str] = mapped_column(String(32))
    key_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CheckRow(Base):
    """The record of one check: hashes, context, verdict; never the content itself."""

    __tablename__ = "checks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    content_id: Mapped[str] = mapped_column(String(36), unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    account_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    username: Mapped[str | None] = mapped_column(String(200), nullable=True)
    profile_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    ip_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source_port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    client_timestamp: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    surface: Mapped[str | None] = mapped_column(String(64), nullable=True)
    api_key_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    signals: Mapped[dict[str, Any]] = mapped_column(JSON)
    matches: Mapped[list[Any]] = mapped_column(JSON)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    #: Classifier category scores (None: no classifier ran).
    scores: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class JobRow(Base):
    """A background job: a webhook delivery, a bank import or a batch scan.

    Workers claim a queued row (or one whose lease expired) and hold it under a
    lease: a worker killed mid-job loses nothing, the row is claimed again once
    the lease runs out. ``idempotency_key`` is unique, so enqueueing the same
    job twice gives one row, and receivers can dedupe deliveries by it.
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_run_after", "status", "run_after"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: queued, running, done or dead (moved to the dead-letter table).
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: What the job produced (import counts, scan summary), or its progress while it runs.
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class DeadLetterRow(Base):
    """A job that failed for good: kept for inspection and replay."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    dead_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    replayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ReviewItemRow(Base):
    """An incident waiting for a reviewer: one or more checks of one account.

    Flood control: repeated matches of one account inside the policy's window
    update one open item (``match_count``) instead of creating one each.
    """

    __tablename__ = "review_items"
    __table_args__ = (Index("ix_review_account_last_seen", "account_id", "last_seen_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    verdict: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str | None] = mapped_column(String(200), nullable=True)
    match_count: Mapped[int] = mapped_column(Integer, default=1)
    first_content_id: Mapped[str] = mapped_column(String(36))
    last_content_id: Mapped[str] = mapped_column(String(36))
    #: Content ids of the checks in the incident (the first 1000).
    content_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    matches: Mapped[list[Any]] = mapped_column(JSON, default=list)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScanResultRow(Base):
    """The result of one file of a batch-scan job.

    Unique per job and path (by the path's SHA-256, since paths can be longer
    than a PostgreSQL index entry allows), so a resumed job skips the files it
    already did and a file is never recorded twice.
    """

    __tablename__ = "scan_results"
    __table_args__ = (
        UniqueConstraint("job_id", "path_sha256", name="uq_scan_result_job_path"),
        Index("ix_scan_result_job_outcome", "job_id", "outcome", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)
    path_sha256: Mapped[str] = mapped_column(String(64))
    #: match, no_match, suppressed or error.
    outcome: Mapped[str] = mapped_column(String(16))
    #: The file's scan record (matches, reasons, signals, or the error).
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    scanned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# -- law-enforcement requests, evidence custody, audit chain (migration 0007) ------


class AuditEventRow(Base):
    """One append-only, hash-chained audit event (see ``safestream.evidence.audit``).

    ``seq`` is assigned by the appender under a lock on :class:`AuditHeadRow`, so
    the chain has no gaps and no forks even with many writers.
    """

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """The single row naming the chain's last event; locked by every append."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))


class EvidenceRow(Base):
    """A preserved object: its ciphertext lives in a file, its metadata is encrypted here."""

    __tablename__ = "evidence_objects"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(100))
    #: Identifier the object belongs to (an account), for response packages.
    account_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    source: Mapped[str] = mapped_column(String(200))
    #: Nonce + AES-GCM ciphertext of the metadata JSON, base64.
    metadata_ct: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class EvidenceHoldRow(Base):
    """A preservation hold: while one is active (not released, not expired) no purge."""

    __tablename__ = "evidence_holds"
    __table_args__ = (Index("ix_hold_evidence_expires", "evidence_id", "expires_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    evidence_id: Mapped[str] = mapped_column(ForeignKey("evidence_objects.id", ondelete="CASCADE"))
    basis: Mapped[str] = mapped_column(String(32))
    legal_basis: Mapped[str] = mapped_column(Text)
    request_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    renewals: Mapped[int] = mapped_column(Integer, default=0)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LERequestRow(Base):
    """A law-enforcement request with its deadline and workflow status."""

    __tablename__ = "le_requests"
    __table_args__ = (Index("ix_le_status_deadline", "status", "deadline_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    request_type: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str] = mapped_column(String(200), default="")
    agency: Mapped[str] = mapped_column(String(300))
    officer: Mapped[dict[str, Any]] = mapped_column(JSON)
    verification: Mapped[str] = mapped_column(String(16))
    legal_basis: Mapped[str] = mapped_column(Text)
    jurisdiction: Mapped[str] = mapped_column(String(64))
    preset: Mapped[str] = mapped_column(String(64))
    identifiers: Mapped[list[str]] = mapped_column(JSON)
    data_categories: Mapped[list[str]] = mapped_column(JSON)
    non_disclosure: Mapped[bool] = mapped_column(Boolean, default=False)
    emergency: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    rejection_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Escalation levels already fired ("0.5", "overdue", ...): fired once, across restarts.
    escalations: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# -- cases and law-enforcement reports (migration 0008) -----------------------------


class CaseRow(Base):
    """An incident under review: detections of one account in one incident window."""

    __tablename__ = "cases"
    __table_args__ = (Index("ix_case_account_status_last", "account_id", "status", "last_seen_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: new, in_review, confirmed, dismissed or reported.
    status: Mapped[str] = mapped_column(String(16), default="new", index=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reason_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decision_note: Mapped[str | None] = mapped_column(Text, nullable=True)


class CaseEventRow(Base):
    """One detection (check) in a case; files are its events deduplicated by SHA-256."""

    __tablename__ = "case_events"
    __table_args__ = (Index("ix_case_event_case_sha", "case_id", "sha256"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    #: The check's content id: a check joins at most one case.
    content_id: Mapped[str] = mapped_column(String(36), unique=True)
    #: known (bank match), new (classifier only) or live (live surface).
    kind: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The check record's context, hashes, matches and scores (never content).
    record: Mapped[dict[str, Any]] = mapped_column(JSON)


class ReportRow(Base):
    """A law-enforcement report built from a confirmed case (the model as JSON)."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# -- CyberTipline submissions (migration 0009) -----------------------------------


class ReportSubmissionRow(Base):
    """The state of one report's CyberTipline submission: remote id and finished steps.

    One row per report: re-running a submission resumes from here, and a
    ``finished`` row refuses another submission.
    """

    __tablename__ = "report_submissions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    report_id: Mapped[int] = mapped_column(
        ForeignKey("reports.id", ondelete="CASCADE"), unique=True
    )
    #: pending, in_progress, finished or retracted.
    status: Mapped[str] = mapped_column(String(16))
    #: The hotline's report id of the current attempt (None before /submit).
    remote_report_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: Finished per-file steps of the current attempt, keyed by file index.
    steps: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Remote report ids retracted after failed attempts.
    retracted: Mapped[list[str]] = mapped_column(JSON, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: A running submission holds the row until ``claimed_until`` (a crashed one expires).
    claimed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReportExchangeRow(Base):
    """One HTTP request to the hotline and its response, stored as sent and received.

    Credentials are never stored; an upload's file bytes are replaced by their
    size and SHA-256 (the content lives encrypted in the evidence store only).
    """

    __tablename__ = "report_exchanges"
    __table_args__ = (Index("ix_report_exchange_report", "report_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: None for calls that belong to no report (``/xsd``, ``/status``).
    report_id: Mapped[int | None] = mapped_column(
        ForeignKey("reports.id", ondelete="CASCADE"), nullable=True
    )
    step: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(8))
    url: Mapped[str] = mapped_column(String(2048))
    request_headers: Mapped[dict[str, Any]] = mapped_column(JSON)
    request_body: Mapped[str] = mapped_column(Text)
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_headers: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: A connection error instead of a response.
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
