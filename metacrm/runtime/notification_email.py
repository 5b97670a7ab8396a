"""Notifications by email, when SMTP is configured (`METACRM_SMTP_URL`).

A periodic job sends what the inbox received and has not been emailed yet. A notification is
marked emailed before it is sent, in its own transaction, and only the run whose mark took
sends it, so two workers never send it twice; a send that fails clears the mark so the next run
tries again.
"""

from __future__ import annotations

import smtplib
from datetime import timedelta
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from sqlalchemy import select, update

from metacrm.platform.db import writing
from metacrm.platform.registry import Registry
from metacrm.platform.settings import Settings
from metacrm.platform.systables import notifications, users
from metacrm.platform.tasks import TaskHost

EMAIL_TASK = "notifications.email"
EMAIL_EVERY_SECONDS = 15.0
# Older notifications are not emailed (a server that just got SMTP doesn't flood inboxes).
MAX_AGE = timedelta(days=1)
BATCH = 100


def register(registry: Registry) -> None:
    registry.task(EMAIL_TASK, send_pending, every=EMAIL_EVERY_SECONDS)


def send_pending(host: TaskHost) -> None:
    settings = host.settings
    if not settings.smtp_url:
        return
    now = host.clock()
    with writing(host.engine) as conn:
        found = conn.execute(
            select(notifications.c.id, notifications.c.title, notifications.c.body, users.c.email)
            .join(users, users.c.id == notifications.c.user_id)
            .where(
                notifications.c.emailed_at.is_(None),
                notifications.c.created_at > now - MAX_AGE,
                users.c.is_active.is_(True),
            )
            .order_by(notifications.c.created_at, notifications.c.id)
            .limit(BATCH)
        ).all()
        # Only what this run marked is sent: another worker may have marked some since the
        # select (PostgreSQL re-checks emailed_at under the row lock).
        claimed = set()
        if found:
            claimed = set(
                conn.execute(
                    update(notifications)
                    .where(
                        notifications.c.id.in_([n.id for n in found]),
                        notifications.c.emailed_at.is_(None),
                    )
                    .values(emailed_at=now)
                    .returning(notifications.c.id)
                ).scalars()
            )
    due = [n for n in found if n.id in claimed]
    failed = []
    for item in due:
        try:
            send_email(settings, item.email, item.title, item.body)
        except (OSError, smtplib.SMTPException):
            failed.append(item.id)
    if failed:
        with writing(host.engine) as conn:
            conn.execute(
                update(notifications).where(notifications.c.id.in_(failed)).values(emailed_at=None)
            )


def send_email(settings: Settings, to: str, subject: str, body: str) -> None:
    url = urlsplit(settings.smtp_url or "")
    secure = url.scheme == "smtps"
    port = url.port or (465 if secure else 25)
    client_class = smtplib.SMTP_SSL if secure else smtplib.SMTP
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body or subject)
    with client_class(url.hostname or "localhost", port, timeout=10) as client:
        if url.username:
            client.login(unquote(url.username), unquote(url.password or ""))
        client.send_message(message)
