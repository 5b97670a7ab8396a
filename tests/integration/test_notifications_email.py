"""Notifications by email through a real (tiny, local) SMTP server, on SQLite and PostgreSQL:
each notification is emailed once, a refused send is tried again, and who isn't emailed."""

from __future__ import annotations

import email
import socketserver
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from email.message import Message
from typing import Any

import pytest
from conftest import Api
from sqlalchemy import select, update

from metacrm.platform.clock import utcnow
from metacrm.platform.db import writing
from metacrm.platform.settings import Settings
from metacrm.platform.systables import notifications, users
from metacrm.platform.users import authenticate
from metacrm.runtime import notification_email
from metacrm.runtime.notifications import notify
from metacrm.runtime.services import Services


class SmtpServer:
    """Speaks just enough SMTP for smtplib: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT.
    `refuse` holds RCPT answers to give (e.g. 550) before accepting again."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.refuse: deque[int] = deque()
        self.lock = threading.Lock()
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self._server.server_address[1]}"

    def _handler(self) -> type[socketserver.StreamRequestHandler]:
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(f"{line}\r\n".encode())

            def handle(self) -> None:
                self.reply("220 test SMTP ready")
                while line := self.rfile.readline():
                    verb = line.decode().strip().split(" ", 1)[0].upper()
                    if verb == "EHLO":
                        self.reply("250-test\r\n250 8BITMIME")
                    elif verb == "RCPT":
                        with server.lock:
                            code = server.refuse.popleft() if server.refuse else 250
                        self.reply(f"{code} {'OK' if code == 250 else 'no such mailbox'}")
                    elif verb == "DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        self.receive_message()
                        self.reply("250 queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:  # HELO, MAIL, RSET, NOOP
                        self.reply("250 OK")

            def receive_message(self) -> None:
                lines = []
                while (line := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(line[1:] if line.startswith(b"..") else line)
                with server.lock:
                    server.messages.append(email.message_from_bytes(b"".join(lines)))

        return Handler

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.close()


def task_context(
    api: Api, smtp_url: str | None, clock: Callable[[], datetime] = utcnow
) -> Services:
    """What the email job runs with: the app's database and registry, this SMTP server."""
    settings = Settings(database_url=api.url, smtp_url=smtp_url, smtp_from="crm@example.com")
    return api.services_with(settings=settings, clock=clock)


def new_user_id(api: Api, email_address: str) -> str:
    token = api.new_user(email_address)
    with api.engine.connect() as conn:
        session = authenticate(conn, token)
    assert session is not None
    return session.user.id


def send(api: Api, user: str, title: str, body: str = "") -> str:
    with writing(api.engine) as conn:
        [made] = notify(conn, [user], "test", title, body)
    return made


def emailed_at(api: Api, notification_id: str) -> object:
    with api.engine.connect() as conn:
        return conn.execute(
            select(notifications.c.emailed_at).where(notifications.c.id == notification_id)
        ).scalar_one()


def test_each_notification_is_emailed_once_to_its_user(api: Api, smtp: SmtpServer) -> None:
    ann = new_user_id(api, "ann@example.com")
    bob = new_user_id(api, "bob@example.com")
    send(api, ann, "Deal won", "Acme signed")
    send(api, bob, "Approval needed")
    context = task_context(api, smtp.url)
    notification_email.send_pending(context)
    by_recipient = {m["To"]: m for m in smtp.messages}
    assert set(by_recipient) == {"ann@example.com", "bob@example.com"}
    ann_mail = by_recipient["ann@example.com"]
    assert ann_mail["Subject"] == "Deal won"
    assert ann_mail["From"] == "crm@example.com"
    assert ann_mail.get_payload(decode=True).decode().strip() == "Acme signed"
    assert by_recipient["bob@example.com"].get_payload(decode=True).decode().strip() == (
        "Approval needed"  # no body: the title is the text
    )
    notification_email.send_pending(context)
    assert len(smtp.messages) == 2


def test_a_refused_email_is_sent_on_a_later_run(api: Api, smtp: SmtpServer) -> None:
    ann = new_user_id(api, "ann@example.com")
    made = send(api, ann, "Deal won")
    smtp.refuse.append(550)
    context = task_context(api, smtp.url)
    notification_email.send_pending(context)
    assert smtp.messages == []
    assert emailed_at(api, made) is None  # the mark is taken back
    notification_email.send_pending(context)
    assert [m["Subject"] for m in smtp.messages] == ["Deal won"]
    assert emailed_at(api, made) is not None


def test_an_unreachable_mail_server_loses_nothing(api: Api, smtp: SmtpServer) -> None:
    made = send(api, new_user_id(api, "ann@example.com"), "Deal won")
    down = SmtpServer()
    down.close()
    notification_email.send_pending(task_context(api, down.url))
    assert emailed_at(api, made) is None
    notification_email.send_pending(task_context(api, smtp.url))
    assert len(smtp.messages) == 1


def test_inactive_users_old_notifications_and_no_smtp_mean_no_email(
    api: Api, smtp: SmtpServer
) -> None:
    gone = new_user_id(api, "gone@example.com")
    with writing(api.engine) as conn:
        conn.execute(update(users).where(users.c.id == gone).values(is_active=False))
    send(api, gone, "For someone who left")
    ann = new_user_id(api, "ann@example.com")
    made = send(api, ann, "Deal won")
    notification_email.send_pending(task_context(api, None))
    assert emailed_at(api, made) is None
    past_max_age = utcnow() + notification_email.MAX_AGE + timedelta(minutes=1)
    notification_email.send_pending(task_context(api, smtp.url, clock=lambda: past_max_age))
    assert smtp.messages == []
    notification_email.send_pending(task_context(api, smtp.url))
    assert [m["To"] for m in smtp.messages] == ["ann@example.com"]


def test_runs_at_the_same_time_email_each_notification_once(
    api: Api, smtp: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = new_user_id(api, "ann@example.com")
    titles = [f"note {i}" for i in range(20)]
    for title in titles:
        send(api, ann, title)
    if api.engine.dialect.name == "postgresql":
        # Both runs have selected the same notifications before either marks them (SQLite's
        # writers queue, so there the runs simply follow each other).
        both_selected = threading.Barrier(2)
        waited: set[int] = set()
        real_update = notification_email.update

        def update_once_both_selected(table: Any) -> Any:
            if threading.get_ident() not in waited:
                waited.add(threading.get_ident())
                both_selected.wait(30)
            return real_update(table)

        monkeypatch.setattr(notification_email, "update", update_once_both_selected)
    context = task_context(api, smtp.url)
    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(notification_email.send_pending, context) for _ in range(2)]:
            done.result(60)
    assert sorted(m["Subject"] for m in smtp.messages) == sorted(titles)
