"""Law-enforcement requests, encrypted evidence with holds, and the audit chain.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from safestream.store.models import BigId, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("occurred_at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(64), nullable=False),
        sa.Column("object_id", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_events_action", "audit_events", ["action"])
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "last_seq": 0, "last_hash": GENESIS}])
    op.create_table(
        "evidence_objects",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("path", sa.String(300), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("media_type", sa.String(100), nullable=False),
        sa.Column("account_id", sa.String(200), nullable=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("metadata_ct", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("purged_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_evidence_objects_account_id", "evidence_objects", ["account_id"])
    op.create_table(
        "evidence_holds",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "evidence_id",
            sa.String(36),
            sa.ForeignKey("evidence_objects.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("basis", sa.String(32), nullable=False),
        sa.Column("legal_basis", sa.Text, nullable=False),
        sa.Column("request_id", sa.BigInteger, nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("renewals", sa.Integer, nullable=False),
        sa.Column("released_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_hold_evidence_expires", "evidence_holds", ["evidence_id", "expires_at"])
    op.create_table(
        "le_requests",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("request_type", sa.String(32), nullable=False),
        sa.Column("reference", sa.String(200), nullable=False),
        sa.Column("agency", sa.String(300), nullable=False),
        sa.Column("officer", sa.JSON, nullable=False),
        sa.Column("verification", sa.String(16), nullable=False),
        sa.Column("legal_basis", sa.Text, nullable=False),
        sa.Column("jurisdiction", sa.String(64), nullable=False),
        sa.Column("preset", sa.String(64), nullable=False),
        sa.Column("identifiers", sa.JSON, nullable=False),
        sa.Column("data_categories", sa.JSON, nullable=False),
        sa.Column("non_disclosure", sa.Boolean, nullable=False),
        sa.Column("emergency", sa.Boolean, nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("deadline_at", UTCDateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("rejection_reason", sa.Text, nullable=True),
        sa.Column("responded_at", UTCDateTime, nullable=True),
        sa.Column("escalations", sa.JSON, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_le_status_deadline", "le_requests", ["status", "deadline_at"])


def downgrade() -> None:
    op.drop_table("le_requests")
    op.drop_table("evidence_holds")
    op.drop_table("evidence_objects")
    op.drop_table("audit_head")
    op.drop_table("audit_events")
