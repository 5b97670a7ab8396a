"""The platform's own tables: users, API tokens, metadata documents and versions, record history,
autonumber sequences and settings. Entity tables are built by the runtime, not here."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
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

# Numbers handed out once each, whatever is deleted later (entities' storage ids): a row per
# counter, raised atomically, so two transactions never take the same number.
counters = Table(
    "mc_counters",
    system_metadata,
    Column("name", String(63), primary_key=True),
    Column("value", BigInteger, nullable=False),
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

_AUTO_ID = BigInteger().with_variant(Integer, "sqlite")

# The event outbox: written in the transaction of the change it describes, dispatched to
# consumers (webhooks, automations, notifications) after commit. A row not yet dispatched is
# picked up again by the periodic sweep, so a process dying after commit loses nothing.
events = Table(
    "mc_events",
    system_metadata,
    Column("id", _AUTO_ID, primary_key=True, autoincrement=True),
    Column("type", String(64), nullable=False),
    Column("entity", NAME, nullable=True),
    Column("record_id", ID, nullable=True),
    Column("actor", ID, nullable=True),
    Column("payload", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("dispatched_at", DateTime(timezone=True), nullable=True),
    Index("ix_mc_events_undispatched", "dispatched_at", "id"),
)

webhooks = Table(
    "mc_webhooks",
    system_metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("url", Text, nullable=False),
    # None: every entity.
    Column("entity", NAME, nullable=True),
    # Event types, e.g. ["record.created", "stage.changed"]; "*" for all.
    Column("events", JSON, nullable=False),
    Column("condition", Text, nullable=True),
    Column("secret", String(128), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", ID, nullable=True),
)

# One delivery of one event to one webhook; unique, so dispatching twice delivers once.
webhook_deliveries = Table(
    "mc_webhook_deliveries",
    system_metadata,
    Column("id", ID, primary_key=True),
    Column("webhook_id", ID, ForeignKey("mc_webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", _AUTO_ID, ForeignKey("mc_events.id"), nullable=False),
    Column("event_type", String(64), nullable=False),
    # pending → delivered | failed (attempts used up); a replay sets it pending again.
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("response_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("webhook_id", "event_id", name="uq_mc_webhook_deliveries_event"),
    Index("ix_mc_webhook_deliveries_due", "status", "next_attempt_at"),
)

notifications = Table(
    "mc_notifications",
    system_metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", ID, ForeignKey("mc_users.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("title", String(500), nullable=False),
    Column("body", Text, nullable=False, default=""),
    Column("entity", NAME, nullable=True),
    Column("record_id", ID, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("read_at", DateTime(timezone=True), nullable=True),
    Column("emailed_at", DateTime(timezone=True), nullable=True),
    Index("ix_mc_notifications_inbox", "user_id", "created_at"),
)

# Every entry into and exit from a pipeline stage.
stage_history = Table(
    "mc_stage_history",
    system_metadata,
    Column("id", _AUTO_ID, primary_key=True, autoincrement=True),
    Column("entity", NAME, nullable=False),
    Column("record_id", ID, nullable=False),
    Column("pipeline", NAME, nullable=False),
    Column("stage", String(255), nullable=False),
    Column("entered_at", DateTime(timezone=True), nullable=False),
    Column("entered_by", ID, nullable=True),
    Column("exited_at", DateTime(timezone=True), nullable=True),
    Column("exited_by", ID, nullable=True),
    Index("ix_mc_stage_history_record", "entity", "record_id", "id"),
)

# The date a record is planned to reach a stage (the plan half of a stage timeline).
stage_plans = Table(
    "mc_stage_plans",
    system_metadata,
    Column("entity", NAME, primary_key=True),
    Column("record_id", ID, primary_key=True),
    Column("stage", String(255), primary_key=True),
    Column("planned_date", Date, nullable=False),
)

# One submission of a record to an approval process. It keeps the process document it started
# with: editing the process affects new submissions only.
approvals = Table(
    "mc_approvals",
    system_metadata,
    Column("id", ID, primary_key=True),
    Column("entity", NAME, nullable=False),
    Column("record_id", ID, nullable=False),
    Column("process", NAME, nullable=False),
    Column("process_version", Integer, nullable=False),
    Column("process_document", JSON, nullable=False),
    # pending → approved | rejected | recalled
    Column("status", String(16), nullable=False),
    Column("step", Integer, nullable=False),
    Column("submitted_by", ID, nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    # Every change bumps it: two decisions racing on one approval can't both land.
    Column("version", Integer, nullable=False),
    Index("ix_mc_approvals_record", "entity", "record_id", "status"),
)

# One approver's part in one step.
approval_tasks = Table(
    "mc_approval_tasks",
    system_metadata,
    Column("id", ID, primary_key=True),
    Column("approval_id", ID, ForeignKey("mc_approvals.id", ondelete="CASCADE"), nullable=False),
    Column("step", Integer, nullable=False),
    Column("approver_id", ID, nullable=False),
    # Whom the step named, when a delegation or an escalation gave the task to someone else.
    Column("original_approver_id", ID, nullable=True),
    # pending → approved | rejected | cancelled (the step ended without this answer)
    Column("status", String(16), nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=True),
    Column("reminded_at", DateTime(timezone=True), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("comment", Text, nullable=True),
    Index("ix_mc_approval_tasks_inbox", "approver_id", "status"),
    Index("ix_mc_approval_tasks_approval", "approval_id", "step"),
)

# The audit trail of every approval: submissions, decisions, recalls, reassignments.
approval_log = Table(
    "mc_approval_log",
    system_metadata,
    Column("id", _AUTO_ID, primary_key=True, autoincrement=True),
    Column("approval_id", ID, ForeignKey("mc_approvals.id", ondelete="CASCADE"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("by", ID, nullable=True),
    Column("action", String(32), nullable=False),
    Column("step", Integer, nullable=True),
    Column("comment", Text, nullable=True),
    Column("detail", JSON, nullable=False),
    Index("ix_mc_approval_log_approval", "approval_id", "id"),
)

# "While I'm away, my approvals go to …": a user names a delegate for a period.
delegations = Table(
    "mc_delegations",
    system_metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", ID, ForeignKey("mc_users.id", ondelete="CASCADE"), nullable=False),
    Column("delegate_id", ID, ForeignKey("mc_users.id", ondelete="CASCADE"), nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_mc_delegations_user", "user_id", "starts_at"),
)

# Plugins installed in this database: each one's version and the metadata package it shipped,
# which is the common ancestor of the three-way merge when a newer version is installed.
installed_plugins = Table(
    "mc_plugins",
    system_metadata,
    Column("name", String(63), primary_key=True),
    Column("version", String(63), nullable=False),
    Column("package", JSON, nullable=False),
    Column("installed_at", DateTime(timezone=True), nullable=False),
    Column("upgraded_at", DateTime(timezone=True), nullable=True),
)

# When each scheduled automation last ran (claimed in the transaction that runs it, so two
# schedulers never run it twice for one period).
automation_runs = Table(
    "mc_automation_runs",
    system_metadata,
    Column("name", NAME, primary_key=True),
    Column("last_run_at", DateTime(timezone=True), nullable=False),
)

# The turn of each assignment queue (a rule of an assignment rule document, or its fallback):
# whom it gave a record to last and where they stood in the queue. Its row is locked while a
# write picks the next user, so two writes at once never take the same turn.
assignment_turns = Table(
    "mc_assignment_turns",
    system_metadata,
    Column("rule", NAME, primary_key=True),
    Column("queue", String(16), primary_key=True),
    Column("last_user_id", ID, nullable=True),
    Column("position", Integer, nullable=False),
    Column("assigned", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=True),
)

# A user's own list views of an entity (the views admins share are metadata documents).
personal_views = Table(
    "mc_personal_views",
    system_metadata,
    Column("id", ID, primary_key=True),
    Column("user_id", ID, ForeignKey("mc_users.id", ondelete="CASCADE"), nullable=False),
    Column("entity", NAME, nullable=False),
    Column("document", JSON, nullable=False),
    Column("is_default", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_mc_personal_views_user", "user_id", "entity"),
)

# Signed-in browsers of the app: only the hash of the cookie's token is kept, with the token
# every state-changing form of that session must carry (CSRF).
browser_sessions = Table(
    "mc_sessions",
    system_metadata,
    Column("id", String(64), primary_key=True),
    Column("user_id", ID, ForeignKey("mc_users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("user_agent", String(300), nullable=False, default=""),
    Column("address", String(64), nullable=False, default=""),
    Index("ix_mc_sessions_user", "user_id"),
)

# What each user chose for themselves: the app's language and their time zone (IANA name).
user_preferences = Table(
    "mc_user_preferences",
    system_metadata,
    Column("user_id", ID, ForeignKey("mc_users.id", ondelete="CASCADE"), primary_key=True),
    Column("locale", String(16), nullable=True),
    Column("time_zone", String(64), nullable=True),
)
