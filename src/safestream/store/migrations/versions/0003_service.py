"""API keys and check records.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from safestream.store.models import BigId, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("key_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
    )
    op.create_table(
        "checks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("content_id", sa.String(36), nullable=False, unique=True),
        sa.Column("received_at", UTCDateTime, nullable=False),
        sa.Column("account_id", sa.String(200), nullable=True),
        sa.Column("username", sa.String(200), nullable=True),
        sa.Column("profile_url", sa.Text, nullable=True),
        sa.Column("ip_address", sa.String(64), nullable=True),
        sa.Column("source_port", sa.Integer, nullable=True),
        sa.Column("client_timestamp", UTCDateTime, nullable=True),
        sa.Column("surface", sa.String(64), nullable=True),
        sa.Column("api_key_id", sa.BigInteger, nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("signals", sa.JSON, nullable=False),
        sa.Column("matches", sa.JSON, nullable=False),
        sa.Column("reasons", sa.JSON, nullable=False),
    )
    op.create_index("ix_checks_received_at", "checks", ["received_at"])
    op.create_index("ix_checks_account_id", "checks", ["account_id"])


def downgrade() -> None:
    op.drop_table("checks")
    op.drop_table("api_keys")
