"""Start-up: the registry of every built-in behaviour, and the services of a process.

The web app, the CLI and Celery workers all start here, so each process runs exactly the same
hooks, consumers and tasks. Nothing registers itself on import: this is the one list.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine

from metacrm.platform.clock import utcnow
from metacrm.platform.db import make_engine
from metacrm.platform.settings import Settings
from metacrm.platform.tasks import TaskQueue
from metacrm.runtime import automation_jobs, event_dispatch, jobs, notification_email, webhooks
from metacrm.runtime.approvals import ApprovalHook
from metacrm.runtime.assignment import AssignmentHook
from metacrm.runtime.automations import AutomationHook
from metacrm.runtime.pipelines import StageMoves
from metacrm.runtime.registry import RuntimeRegistry
from metacrm.runtime.services import Services
from metacrm.runtime.webhooks import DeliveryPolicy


def build_registry(*, delivery: DeliveryPolicy | None = None) -> RuntimeRegistry:
    """Every built-in hook, consumer and task; `delivery` sets how webhooks are retried."""
    registry = RuntimeRegistry()
    # Write hooks run in this order: the lock before a change; before a write, assignment rules
    # (so that automations, gates, stage actions and approvals see the record's assignee), then
    # automations' set_fields, then pipeline gates (which judge a stage an automation set like
    # one sent); after it, automations' related writes, stage history and actions, then
    # auto-submitted approvals (which see the stage).
    registry.write_hook(AssignmentHook())
    registry.write_hook(AutomationHook())
    registry.write_hook(StageMoves())
    registry.write_hook(ApprovalHook())
    event_dispatch.register(registry)
    webhooks.register(registry, delivery)
    notification_email.register(registry)
    jobs.register(registry)
    automation_jobs.register(registry)
    return registry


def build_services(
    settings: Settings,
    engine: Engine | None = None,
    *,
    registry: RuntimeRegistry | None = None,
    clock: Callable[[], datetime] = utcnow,
    queue: TaskQueue | None = None,
) -> Services:
    """The services of a process: the built-in registry unless one is given (tests)."""
    return Services(
        settings,
        engine or make_engine(settings.database_url),
        registry or build_registry(),
        clock=clock,
        queue=queue,
    )
