"""Versions that never change and cost only what changed; grants that end with their token.

- ``sessions.client_key``: the job a session belongs to (one session per job);
  ``sessions.version`` becomes NULL while a session is open (numbers are given at commit,
  in commit order) — sessions open at upgrade time give their reserved number back;
- ``carries``: files a session will take from committed versions instead of uploading;
  ``files.verified``: the hub checked that file"s bytes at commit (only those are carried);
  ``versions.new_bytes``: what a version"s upload added;
- ``grants.user_id`` / ``grants.token_id``: who minted a grant, so revoking the token (or
  the dataset turning private) revokes it.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sessions_0001() -> sa.Table:
    """The sessions table as revision 0001 left it: SQLite rebuilds a table to change a
    column's nullability, and ``--sql`` (no database to reflect) needs its definition."""
    return sa.Table(
        "sessions", sa.MetaData(),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("dataset_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("uploader", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=200), nullable=False),
        sa.Column("location", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.Index("ix_sessions_dataset_id", "dataset_id"),
        sa.Index("ix_sessions_state_expires", "state", "expires_at"),
    )


def upgrade() -> None:
    op.create_table("carries",
    sa.Column("session_id", sa.String(length=36), nullable=False),
    sa.Column("path", sa.String(length=1024).with_variant(sa.String(length=1024, collation="C"), "postgresql"), nullable=False),
    sa.Column("source_version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("source_path", sa.String(length=1024).with_variant(sa.String(length=1024, collation="C"), "postgresql"), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("md5", sa.String(length=32), nullable=True),
    sa.Column("blake3", sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], ondelete="CASCADE"),
    sa.ForeignKeyConstraint(["source_version_id"], ["versions.id"], ondelete="CASCADE"),
    sa.PrimaryKeyConstraint("session_id", "path")
    )
    with op.batch_alter_table("carries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_carries_source_version_id"), ["source_version_id"], unique=False)

    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("verified", sa.Boolean(), nullable=True))

    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("token_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_grants_token_id"), ["token_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_grants_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("sessions", schema=None, copy_from=_sessions_0001()) as batch_op:
        batch_op.add_column(sa.Column("client_key", sa.String(length=64), nullable=True))
        batch_op.alter_column("version",
               existing_type=sa.INTEGER(),
               nullable=True)
        batch_op.create_index(batch_op.f("ix_sessions_client_key"), ["client_key"], unique=False)
    # An open session of an older hub reserved a number; it now gets one at commit.
    op.execute(sa.text("UPDATE sessions SET version = NULL WHERE state = 'open'"))

    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("new_bytes", sa.BigInteger(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.drop_column("new_bytes")

    op.execute(sa.text("UPDATE sessions SET version = 0 WHERE version IS NULL"))
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_client_key"))
        batch_op.alter_column("version",
               existing_type=sa.INTEGER(),
               nullable=False)
        batch_op.drop_column("client_key")

    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_grants_user_id"))
        batch_op.drop_index(batch_op.f("ix_grants_token_id"))
        batch_op.drop_column("token_id")
        batch_op.drop_column("user_id")

    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_column("verified")

    with op.batch_alter_table("carries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_carries_source_version_id"))

    op.drop_table("carries")
