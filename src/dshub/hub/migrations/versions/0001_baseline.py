"""Baseline: the schema of the last release before migrations.

What ``Base.metadata.create_all`` plus the hand-kept added columns (``files.blake3``) made.
A database from that release has these tables and no ``alembic_version``: the hub stamps
it with this revision (after adding any missing added column) instead of running it.
Timestamps are plain DateTime here: the hub's UTCDateTime only converts in Python.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table("users",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("name", sa.String(length=64), nullable=False),
    sa.Column("is_admin", sa.Boolean(), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("name")
    )
    op.create_table("datasets",
    sa.Column("id", sa.String(length=36), nullable=False),
    sa.Column("owner_id", sa.Integer(), nullable=False),
    sa.Column("name", sa.String(length=100), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("tags", sa.JSON(), nullable=False),
    sa.Column("license", sa.String(length=100), nullable=True),
    sa.Column("visibility", sa.String(length=16), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="CASCADE"),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("owner_id", "name", name="uq_dataset_owner_name")
    )
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_datasets_owner_id"), ["owner_id"], unique=False)

    op.create_table("tokens",
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("public_id", sa.String(length=32), nullable=False),
    sa.Column("secret_hash", sa.String(length=64), nullable=False),
    sa.Column("user_id", sa.Integer(), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("last_used_at", sa.DateTime(), nullable=True),
    sa.Column("revoked_at", sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("public_id")
    )
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tokens_user_id"), ["user_id"], unique=False)

    op.create_table("sessions",
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
    sa.PrimaryKeyConstraint("id")
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sessions_dataset_id"), ["dataset_id"], unique=False)
        batch_op.create_index("ix_sessions_state_expires", ["state", "expires_at"], unique=False)

    op.create_table("versions",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("dataset_id", sa.String(length=36), nullable=False),
    sa.Column("number", sa.Integer(), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("file_count", sa.BigInteger(), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("uploader", sa.String(length=64), nullable=False),
    sa.Column("prefix", sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("dataset_id", "number", name="uq_version_number")
    )
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_versions_dataset_id"), ["dataset_id"], unique=False)

    op.create_table("dirs",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("path", sa.String(length=1024).with_variant(sa.String(length=1024, collation="C"), "postgresql"), nullable=False),
    sa.Column("parent_dir", sa.String(length=1024).with_variant(sa.String(length=1024, collation="C"), "postgresql"), nullable=False),
    sa.Column("name", sa.String(length=1024).with_variant(sa.String(length=1024, collation="C"), "postgresql"), nullable=False),
    sa.Column("file_count", sa.BigInteger(), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(["version_id"], ["versions.id"], ondelete="CASCADE"),
    sa.PrimaryKeyConstraint("id")
    )
    with op.batch_alter_table("dirs", schema=None) as batch_op:
        batch_op.create_index("ix_dirs_version_parent_name", ["version_id", "parent_dir", "name"], unique=False)
        batch_op.create_index("ix_dirs_version_path", ["version_id", "path"], unique=True)

    op.create_table("files",
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
    sa.Column("version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("path", sa.String(length=1024).with_variant(sa.String(length=1024, collation="C"), "postgresql"), nullable=False),
    sa.Column("parent_dir", sa.String(length=1024).with_variant(sa.String(length=1024, collation="C"), "postgresql"), nullable=False),
    sa.Column("name", sa.String(length=1024).with_variant(sa.String(length=1024, collation="C"), "postgresql"), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("md5", sa.String(length=32), nullable=True),
    sa.Column("blake3", sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(["version_id"], ["versions.id"], ondelete="CASCADE"),
    sa.PrimaryKeyConstraint("id")
    )
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.create_index("ix_files_version_parent_name", ["version_id", "parent_dir", "name"], unique=False)
        batch_op.create_index("ix_files_version_path", ["version_id", "path"], unique=True)

    op.create_table("grants",
    sa.Column("id", sa.String(length=36), nullable=False),
    sa.Column("kind", sa.String(length=16), nullable=False),
    sa.Column("session_id", sa.String(length=36), nullable=True),
    sa.Column("version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
    sa.Column("prefix", sa.String(length=200), nullable=False),
    sa.Column("access", sa.String(length=8), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("expires_at", sa.DateTime(), nullable=False),
    sa.Column("revoked_at", sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], ondelete="CASCADE"),
    sa.ForeignKeyConstraint(["version_id"], ["versions.id"], ondelete="CASCADE"),
    sa.PrimaryKeyConstraint("id")
    )
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.create_index("ix_grants_live", ["revoked_at", "expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_grants_session_id"), ["session_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_grants_version_id"), ["version_id"], unique=False)



def downgrade() -> None:
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_grants_version_id"))
        batch_op.drop_index(batch_op.f("ix_grants_session_id"))
        batch_op.drop_index("ix_grants_live")

    op.drop_table("grants")
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index("ix_files_version_path")
        batch_op.drop_index("ix_files_version_parent_name")

    op.drop_table("files")
    with op.batch_alter_table("dirs", schema=None) as batch_op:
        batch_op.drop_index("ix_dirs_version_path")
        batch_op.drop_index("ix_dirs_version_parent_name")

    op.drop_table("dirs")
    with op.batch_alter_table("versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_versions_dataset_id"))

    op.drop_table("versions")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_sessions_state_expires")
        batch_op.drop_index(batch_op.f("ix_sessions_dataset_id"))

    op.drop_table("sessions")
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tokens_user_id"))

    op.drop_table("tokens")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_datasets_owner_id"))

    op.drop_table("datasets")
    op.drop_table("users")
