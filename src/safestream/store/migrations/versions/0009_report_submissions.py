"""CyberTipline submissions: per-report state and the request/response log.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from safestream.store.models import BigId, UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_submissions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "report_id",
            BigId,
            sa.ForeignKey("reports.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("remote_report_id", sa.String(64), nullable=True),
        sa.Column("steps", sa.JSON, nullable=False),
        sa.Column("retracted", sa.JSON, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        sa.Column("claimed_until", UTCDateTime, nullable=True),
        sa.Column("submitted_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "report_exchanges",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "report_id", BigId, sa.ForeignKey("reports.id", ondelete="CASCADE"), nullable=True
        ),
        sa.Column("step", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("request_headers", sa.JSON, nullable=False),
        sa.Column("request_body", sa.Text, nullable=False),
        sa.Column("response_status", sa.Integer, nullable=True),
        sa.Column("response_headers", sa.JSON, nullable=True),
        sa.Column("response_body", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("sent_at", UTCDateTime, nullable=False),
        sa.Column("received_at", UTCDateTime, nullable=True),
    )
    op.create_index("ix_report_exchange_report", "report_exchanges", ["report_id", "id"])


def downgrade() -> None:
    op.drop_table("report_exchanges")
    op.drop_table("report_submissions")
