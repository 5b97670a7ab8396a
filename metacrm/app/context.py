"""How an app request runs: the session cookie becomes a user, a state-changing request proves
it came from our own page (CSRF), the work runs in one transaction as that user, and the page
is rendered from what the work returned.

Page handlers never see the cookie or the token: they get a `Page` (the request context with
the record service, the session, the user's locale) and return a `View` (a template and its
values) or a redirect.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import Environment
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from metacrm.app.i18n import Locale, negotiate, time_zone
from metacrm.app.messages import problem_heading
from metacrm.platform.errors import Forbidden, MetacrmError
from metacrm.platform.sessions import BrowserSession, find_session, touch_session
from metacrm.runtime.context import RequestContext
from metacrm.runtime.records import RecordService
from metacrm.runtime.services import Services

SESSION_COOKIE = "mc_session"
LANGUAGE_COOKIE = "mc_lang"
CSRF_FIELD = "_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Every page says where its content may come from: only this host; no inline script or style,
# no framing, forms post only here.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class SignInNeeded(Exception):
    """No live session: the browser goes to the sign-in page (and comes back after)."""


@dataclass(frozen=True)
class Page:
    """What a page handler works with: the request context (as the signed-in user), their
    session and locale, the submitted form (for a POST) and the query string."""

    ctx: RequestContext
    session: BrowserSession
    locale: Locale
    path: str
    query: Mapping[str, str]
    form: FormData | None = None
    wants_fragment: bool = False

    @property
    def conn(self) -> Connection:
        return self.ctx.conn

    def records(self) -> RecordService:
        return RecordService(self.ctx)


@dataclass
class View:
    """A page (or, for a script's request, a fragment) to render, with its HTTP status."""

    template: str
    values: dict[str, Any] = field(default_factory=dict)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Redirect:
    location: str
    status: int = 303


@dataclass
class Data:
    """A JSON answer to the page's own script (live checks, drag and drop)."""

    value: Any
    status: int = 200


Outcome = View | Redirect | Data | Response


class AppRuntime:
    """The app's door to the services."""

    def __init__(self, services: Services, templates: Environment) -> None:
        self.services = services
        self.templates = templates

    async def page(
        self,
        request: Request,
        fn: Callable[[Page], Outcome],
        *,
        write: bool = False,
    ) -> Response:
        form = None
        if request.method not in SAFE_METHODS:
            check_same_origin(request)
            form = await request.form(max_files=0, max_fields=5000)
        token = request.cookies.get(SESSION_COOKIE, "")
        fragment = request.headers.get("x-requested-with") == "metacrm"
        try:
            return await run_in_threadpool(self._run, request, token, form, fn, write, fragment)
        except SignInNeeded:
            if fragment:
                return JSONResponse({"signed_out": True}, status_code=401)
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/app/login?next={quote(target)}", status_code=303)

    def _run(
        self,
        request: Request,
        token: str,
        form: FormData | None,
        fn: Callable[[Page], Outcome],
        write: bool,
        fragment: bool,
    ) -> Response:
        services = self.services
        transaction: AbstractContextManager[Connection] = (
            services.writing() if write else services.reading()
        )
        now = services.clock()
        page: Page | None = None
        try:
            with transaction as conn:
                session = find_session(conn, token, now, idle=services.settings.session_idle)
                if session is None:
                    raise SignInNeeded
                locale = request_locale(request, session.locale, session.time_zone)
                page = Page(
                    RequestContext(
                        conn,
                        services.catalog(conn, session.meta_stamp),
                        session.user,
                        services,
                        now=now,
                    ),
                    session,
                    locale,
                    request.url.path,
                    request.query_params,
                    form,
                    fragment,
                )
                if form is not None:
                    sent = str(form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or "")
                    if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
                        raise Forbidden(
                            locale.gettext(
                                "This form has expired or did not come from this app. "
                                "Open the page again and retry."
                            )
                        )
                outcome = fn(page)
                shell = shell_values(page.locale, page)
        except MetacrmError as error:
            # The transaction rolled back: nothing the work did stays.
            locale = page.locale if page else request_locale(request, None, None)
            return self.error(error, locale, page, fragment)
        if page.session.stale:
            with services.writing() as conn:
                touch_session(conn, page.session.id, now)
        return self.respond(outcome, page, shell)

    def error(
        self, error: MetacrmError, locale: Locale, page: Page | None, fragment: bool
    ) -> Response:
        """A refusal as the user sees it: a page in the app's shell (or, for the page's own
        script, the problem as JSON)."""
        heading = problem_heading(error.status, locale)
        if fragment:
            body = {**error.problem(), "message": heading}
            return JSONResponse(body, status_code=error.status, headers=_no_store())
        view = View("error.html", {"error": error, "heading": heading}, status=error.status)
        return self.render(view, locale, shell_values(locale, page, with_nav=False))

    def respond(self, outcome: Outcome, page: Page, shell: dict[str, Any]) -> Response:
        if isinstance(outcome, Response):
            return outcome
        if isinstance(outcome, Redirect):
            return RedirectResponse(outcome.location, status_code=outcome.status)
        if isinstance(outcome, Data):
            return JSONResponse(outcome.value, status_code=outcome.status, headers=_no_store())
        return self.render(outcome, page.locale, shell)

    def render(self, view: View, locale: Locale, shell: dict[str, Any] | None = None) -> Response:
        values = {**(shell or shell_values(locale, None)), **view.values}
        html = self.templates.get_template(view.template).render(values)
        headers = {**SECURITY_HEADERS, **view.headers}
        return HTMLResponse(html, status_code=view.status, headers=headers)


def shell_values(locale: Locale, page: Page | None, *, with_nav: bool = True) -> dict[str, Any]:
    """What every template may use: translation, formatting, the user, the CSRF token and the
    entities the user may open (computed while the page's transaction is open)."""
    return {
        "nav": nav_items(page) if page is not None and with_nav else [],
        "_": locale.gettext,
        "ngettext": locale.ngettext,
        "locale": locale,
        "user": page.session.user if page else None,
        "csrf": page.session.csrf_token if page else "",
        "csrf_field": CSRF_FIELD,
        "current_path": page.path if page else "",
        "fragment": page.wants_fragment if page else False,
    }


def nav_items(page: Page) -> list[dict[str, Any]]:
    """Every entity the user may read, in the order they were created (a package's order)."""
    permissions = page.records().permissions
    current = page.path.split("/")[2] if page.path.count("/") >= 2 else ""
    items = [
        {
            "name": entity.name,
            "label": page.locale.label(entity.plural_label, entity.name),
            "current": entity.name == current,
        }
        for entity in page.ctx.catalog.entities.values()
        if permissions.may(entity, "read")
    ]
    order = {e.name: (e.storage_id or 1 << 30, e.name) for e in page.ctx.catalog.entities.values()}
    return sorted(items, key=lambda item: order[item["name"]])


def request_locale(request: Request, preferred: str | None, zone: str | None) -> Locale:
    chosen = preferred or request.cookies.get(LANGUAGE_COOKIE)
    language = negotiate(chosen, request.headers.get("accept-language"))
    return Locale(language, time_zone(zone))


def check_same_origin(request: Request) -> None:
    """A state-changing request must come from one of our own pages: browsers say where a
    request comes from (Sec-Fetch-Site, Origin); a cross-site one is refused before anything
    runs. The CSRF token is the second check, for browsers that send neither header."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden("a form from another site may not change anything here")
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        parts = urlsplit(origin)
        host = request.headers.get("host", "")
        if parts.netloc != host:
            raise Forbidden("a form from another site may not change anything here")
    elif origin == "null":
        raise Forbidden("a form from another site may not change anything here")


def local_target(target: str | None, default: str = "/app") -> str:
    """Where to go after a form: only a path of this app (never another host)."""
    if not target or not target.startswith("/app") or target.startswith("//"):
        return default
    if "\\" in target or any(ord(c) < 32 for c in target):
        return default
    return target


def _no_store() -> dict[str, str]:
    return {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
