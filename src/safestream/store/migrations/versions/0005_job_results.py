"""Job results (import counts, scan summaries) and per-file batch-scan results.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from safestream.store.models import BigId, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("result", sa.JSON, nullable=True))
    op.create_table(
        "scan_results",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "job_id", sa.BigInteger, sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("path_sha256", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
        sa.Column("scanned_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("job_id", "path_sha256", name="uq_scan_result_job_path"),
    )
    op.create_index("ix_scan_result_job_outcome", "scan_results", ["job_id", "outcome", "id"])


def downgrade() -> None:
    op.drop_table("scan_results")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("result")
