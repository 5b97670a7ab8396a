"""The platform's own tables: users, API tokens, metadata documents and versions, record history,
autonumber sequences and settings. Entity tables are built by the runtime, not here."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

ID = String(26)
NAME = String(63)

system_metadata = MetaData()

settings_table = Table(
    "mc_settings",
    system_metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)

users = Table(
    "mc_users",
    system_metadata,
    Column("id", ID, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False, default=""),
    Column("password_hash", Text, nullable=False),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("org_unit_id", ID, ForeignKey("mc_org_units.id"), nullable=True, index=True),
    # The reporting line: everyone below a user, transitively, is a subordinate.
    Column("manager_id", ID, ForeignKey("mc_users.id"), nullable=True, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# A user's roles (role documents are metadata, named here).
user_roles = Table(
    "mc_user_roles",
    system_metadata,
    Column("user_id", ID, ForeignKey("mc_users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", NAME, primary_key=True, index=True),
)

# The org tree: departments and business units; every user belongs to at most one.
org_units = Table(
    "mc_org_units",
    system_metadata,
    Column("id", ID, primary_key=True),
    Column("name", NAME, nullable=False, unique=True),
    Column("label", String(200), nullable=False),
    Column("parent_id", ID, ForeignKey("mc_org_units.id"), nullable=True, index=True),
    # No foreign key: users point at units, and a unit's head is a user.
    Column("head_user_id", ID, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# A record shared with a user, a role or an org unit (and the units below it).
record_shares = Table(
    "mc_record_shares",
    system_metadata,
    Column("id", ID, primary_key=True),
    Column("entity", NAME, nullable=False),
    Column("record_id", ID, nullable=False),
    Column("principal_type", String(16), nullable=False),
    Column("principal", String(320), nullable=False),
    Column("access", String(8), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", ID, nullable=True),
    Index("ix_mc_record_shares_record", "entity", "record_id"),
    Index("ix_mc_record_shares_principal", "entity", "principal_type", "principal", "record_id"),
)

api_tokens = Table(
    "mc_api_tokens",
    system_metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", ID, ForeignKey("mc_users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# The current document of every metadata item (entities now; pipelines, roles … later).
meta_documents = Table(
    "mc_meta_documents",
    system_metadata,
    Column("kind", String(32), primary_key=True),
    Column("name", NAME, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("document", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", ID, nullable=True),
)

# Every version ever stored, with who, when, and what changed.
meta_versions = Table(
    "mc_meta_versions",
    system_metadata,
    Column("kind", String(32), primary_key=True),
    Column("name", NAME, primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("action", String(16), nullable=False),
    Column("document", JSON, nullable=False),
    Column("diff", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", ID, nullable=True),
)

# One row; bumped in the same transaction as any metadata change. Every process compares it
# with the stamp its cache was built from.
meta_stamp = Table(
    "mc_meta_stamp",
    system_metadata,
    Column("id", Integer, primary_key=True),
    Column("stamp", BigInteger, nullable=False),
)

record_history = Table(
    "mc_record_history",
    system_metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("entity", NAME, nullable=False),
    Column("record_id", ID, nullable=False),
    Column("version", Integer, nullable=False),
    Column("action", String(16), nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("changed_by", ID, nullable=True),
    Column("changes", JSON, nullable=False),
    Index("ix_mc_record_history_record", "entity", "record_id", "id"),
)

autonumbers = Table(
    "mc_autonumbers",
    system_metadata,
    Column("entity", NAME, primary_key=True),
    Column("field", NAME, primary_key=True),
    Column("period", String(16), primary_key=True),
    Column("value", BigInteger, nullable=False),
)
