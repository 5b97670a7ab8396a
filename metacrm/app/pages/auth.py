"""Signing in and out of the app, and the user's own preferences.

The sign-in form is the one form without a session: its CSRF token is an HMAC, under the
installation's secret, of a random value in a short-lived cookie, so only a page this app served
to this browser can post it. Passwords are checked by the platform's one sign-in door (argon2,
rate limits per account and per address).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import cache
from typing import Any
from zoneinfo import available_timezones

from babel.dates import get_timezone_location
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from metacrm.app.context import (
    CSRF_FIELD,
    LANGUAGE_COOKIE,
    SESSION_COOKIE,
    AppRuntime,
    Page,
    Redirect,
    View,
    check_same_origin,
    local_target,
    request_locale,
)
from metacrm.app.i18n import LANGUAGE_NAMES, LANGUAGES
from metacrm.platform.db import writing
from metacrm.platform.errors import FieldError, Forbidden, TooManyRequests, Unauthorized
from metacrm.platform.sessions import (
    close_all_sessions,
    close_session,
    open_session,
    set_preferences,
)
from metacrm.platform.signin import sign_in

PRE_COOKIE = "mc_pre"
YEAR = 365 * 24 * 3600


def app_runtime(request: Request) -> AppRuntime:
    runtime: AppRuntime = request.app.state.app_runtime
    return runtime


def _signin_token(secret: str, nonce: str) -> str:
    return hmac.new(secret.encode(), f"signin:{nonce}".encode(), hashlib.sha256).hexdigest()


async def sign_in_page(request: Request) -> Response:
    runtime = app_runtime(request)
    language = request.query_params.get("lang")
    locale = request_locale(request, language if language in LANGUAGES else None, None)
    return _form(runtime, request, locale, {}, status=200, set_language=language)


def _form(
    runtime: AppRuntime,
    request: Request,
    locale: Any,
    values: dict[str, Any],
    *,
    status: int,
    set_language: str | None = None,
) -> Response:
    nonce = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)
    view = View(
        "login.html",
        {
            "title": locale.gettext("Sign in"),
            "signin_csrf": _signin_token(runtime.services.secret, nonce),
            "next": local_target(request.query_params.get("next") or values.get("next")),
            "languages": LANGUAGE_NAMES,
            **values,
        },
        status=status,
    )
    response = runtime.render(view, locale)
    response.set_cookie(
        PRE_COOKIE,
        nonce,
        max_age=3600,
        httponly=True,
        samesite="lax",
        secure=runtime.services.settings.secure_cookies,
        path="/app",
    )
    if set_language in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, set_language, max_age=YEAR, samesite="lax", path="/")
    return response


async def sign_in_submit(request: Request) -> Response:
    runtime = app_runtime(request)
    check_same_origin(request)
    form = await request.form(max_files=0, max_fields=20)
    locale = request_locale(request, None, None)
    nonce = request.cookies.get(PRE_COOKIE, "")
    expected = _signin_token(runtime.services.secret, nonce) if nonce else ""
    sent = str(form.get(CSRF_FIELD) or "")
    email = str(form.get("email") or "").strip()
    password = str(form.get("password") or "")
    target = local_target(str(form.get("next") or ""))
    if not nonce or not hmac.compare_digest(sent.encode(), expected.encode()):
        # A sign-in page too old (or not ours): nothing is checked; the form comes back, fresh.
        message = locale.gettext("This sign-in form has expired. Sign in again.")
        values = {"email": email, "error": message, "next": target}
        return _form(runtime, request, locale, values, status=403)
    address = request.client.host if request.client else None
    services = runtime.services
    try:
        user = await run_in_threadpool(
            sign_in,
            services.engine,
            services.limiter,
            services.signin_policy,
            email=email,
            password=password,
            address=address,
        )
    except (Unauthorized, TooManyRequests) as refused:
        message = (
            locale.gettext("Too many attempts. Try again in a few minutes.")
            if isinstance(refused, TooManyRequests)
            else locale.gettext("The email or password is not right.")
        )
        values = {"email": email, "error": message, "next": target}
        return _form(runtime, request, locale, values, status=refused.status)

    def start() -> str:
        with writing(services.engine) as conn:
            return open_session(
                conn,
                user,
                services.clock(),
                lifetime=services.settings.session_lifetime,
                user_agent=request.headers.get("user-agent", ""),
                address=address or "",
            )

    token = await run_in_threadpool(start)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=services.settings.session_lifetime,
        httponly=True,
        samesite="lax",
        secure=services.settings.secure_cookies,
        path="/app",
    )
    response.delete_cookie(PRE_COOKIE, path="/app")
    return response


async def sign_out(request: Request) -> Response:
    def end(page: Page) -> Redirect:
        close_session(page.conn, page.session.id)
        return Redirect("/app/login")

    response = await app_runtime(request).page(request, end, write=True)
    response.delete_cookie(SESSION_COOKIE, path="/app")
    return response


async def sign_out_everywhere(request: Request) -> Response:
    def end(page: Page) -> Redirect:
        close_all_sessions(page.conn, page.session.user.id)
        return Redirect("/app/login")

    response = await app_runtime(request).page(request, end, write=True)
    response.delete_cookie(SESSION_COOKIE, path="/app")
    return response


async def switch_language(request: Request) -> Response:
    chosen: dict[str, str] = {}

    def switch(page: Page) -> Redirect:
        assert page.form is not None
        language = str(page.form.get("language") or "")
        if language not in LANGUAGES:
            raise Forbidden(page.locale.gettext("That language is not available."))
        set_preferences(page.conn, page.session.user.id, locale=language)
        chosen["language"] = language
        return Redirect(local_target(str(page.form.get("next") or "")))

    response = await app_runtime(request).page(request, switch, write=True)
    if chosen:
        response.set_cookie(
            LANGUAGE_COOKIE, chosen["language"], max_age=YEAR, samesite="lax", path="/"
        )
    return response


@cache
def _zones(language: str) -> list[tuple[str, str]]:
    """Every time zone a person might live in, by id, each named where it is in the language
    (CLDR's names through Babel: “Asia/Shanghai · China (Shanghai) Time”)."""
    babel_locale = LANGUAGES[language][1]
    zones = sorted(z for z in available_timezones() if "/" in z and not z.startswith("Etc/"))
    return [(z, f"{z} · {get_timezone_location(z, locale=babel_locale)}") for z in zones]


async def preferences(request: Request) -> Response:
    def show(page: Page) -> View:
        return _preferences_view(page, {})

    return await app_runtime(request).page(request, show)


async def save_preferences(request: Request) -> Response:
    def save(page: Page) -> View | Redirect:
        assert page.form is not None
        language = str(page.form.get("language") or "")
        zone = str(page.form.get("time_zone") or "")
        errors = []
        if language not in LANGUAGES:
            errors.append(
                FieldError("language", "choice", page.locale.gettext("Choose a language"))
            )
        if zone not in available_timezones():
            errors.append(
                FieldError("time_zone", "choice", page.locale.gettext("Choose a time zone"))
            )
        if errors:
            return _preferences_view(page, {e.field: e.message for e in errors}, status=422)
        set_preferences(page.conn, page.session.user.id, locale=language, time_zone=zone)
        return Redirect("/app/me?saved=1")

    return await app_runtime(request).page(request, save, write=True)


def _preferences_view(page: Page, errors: dict[str, str], status: int = 200) -> View:
    return View(
        "preferences.html",
        {
            "title": page.locale.gettext("Preferences"),
            "languages": LANGUAGE_NAMES,
            "zones": _zones(page.locale.language),
            "current_language": page.session.locale or page.locale.language,
            "current_zone": page.session.time_zone or page.locale.zone.key,
            "errors": errors,
            "saved": page.query.get("saved") == "1",
        },
        status=status,
    )
