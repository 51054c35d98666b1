"""Banks, entries, change log, imports.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from safestream.store.models import BigId, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "banks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("is_allow_list", sa.Boolean, nullable=False),
        sa.Column("pdq_threshold", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "bank_entries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "bank_id", sa.BigInteger, sa.ForeignKey("banks.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("signal_type", sa.String(32), nullable=False),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("source", sa.String(200), nullable=True),
        sa.Column("external_id", sa.String(200), nullable=True),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("added_at", UTCDateTime, nullable=False),
        sa.Column("import_id", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("bank_id", "signal_type", "value", name="uq_entry_bank_signal_value"),
    )
    op.create_index("ix_bank_entries_bank_id", "bank_entries", ["bank_id"])
    op.create_index("ix_entry_signal_value", "bank_entries", ["signal_type", "value"])
    op.create_index("ix_bank_entries_import_id", "bank_entries", ["import_id"])
    op.create_table(
        "entry_changes",
        sa.Column("seq", BigId, primary_key=True, autoincrement=True),
        sa.Column("entry_id", sa.BigInteger, nullable=False),
        sa.Column("bank_id", sa.BigInteger, nullable=False),
        sa.Column("op", sa.String(8), nullable=False),
        sa.Column("signal_type", sa.String(32), nullable=False),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("changed_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_entry_changes_entry_id", "entry_changes", ["entry_id"])
    op.create_table(
        "imports",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "bank_id", sa.BigInteger, sa.ForeignKey("banks.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("source_name", sa.Text, nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("list_format", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("lines_done", sa.BigInteger, nullable=False),
        sa.Column("entries_staged", sa.BigInteger, nullable=False),
        sa.Column("entries_added", sa.BigInteger, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_import_bank_digest", "imports", ["bank_id", "content_sha256"])
    op.create_table(
        "staged_entries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "import_id",
            sa.BigInteger,
            sa.ForeignKey("imports.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("line_number", sa.BigInteger, nullable=False),
        sa.Column("signal_type", sa.String(32), nullable=False),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("source", sa.String(200), nullable=True),
        sa.Column("external_id", sa.String(200), nullable=True),
        sa.Column("labels", sa.JSON, nullable=False),
    )
    op.create_index(
        "ix_staged_import_value", "staged_entries", ["import_id", "signal_type", "value"]
    )


def downgrade() -> None:
    op.drop_table("staged_entries")
    op.drop_table("imports")
    op.drop_table("entry_changes")
    op.drop_table("bank_entries")
    op.drop_table("banks")
