"""The app's languages: message catalogs, choosing a language, and formatting for it.

UI strings are English in the code and templates, translated through gettext catalogs
(`locale/<lang>/LC_MESSAGES/messages.po`). The catalogs are compiled when the process first needs
them (Babel reads the .po and writes the binary catalog in memory), so a plain `pip install`
serves them with no build step. Metadata labels carry their own locales (`{"en": …, "zh-CN": …}`).
Dates, times and numbers are formatted by Babel for the locale, times in the user's time zone.
"""

from __future__ import annotations

import gettext
import io
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date, format_datetime
from babel.lists import format_list
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

# The app's languages, by the tag metadata labels use; each with its catalog's folder and the
# Babel locale that formats for it.
LANGUAGES = {"en": ("en", "en"), "zh-CN": ("zh_CN", "zh_Hans_CN")}
LANGUAGE_NAMES = {"en": "English", "zh-CN": "简体中文"}
DEFAULT_LANGUAGE = "en"
DEFAULT_TIME_ZONE = "UTC"


@cache
def translations(language: str) -> gettext.NullTranslations:
    folder, _ = LANGUAGES[language]
    source = resources.files("metacrm.app") / "locale" / folder / "LC_MESSAGES" / "messages.po"
    if not source.is_file():
        return gettext.NullTranslations()
    with source.open("rb") as po:
        catalog = read_po(po, locale=folder)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def negotiate(preferred: str | None, accept_language: str | None) -> str:
    """The user's own choice, else the first language of Accept-Language we have, else
    English."""
    if preferred in LANGUAGES:
        return preferred
    for tag in _accepted(accept_language or ""):
        lowered = tag.lower()
        if lowered.startswith("zh") and not lowered.startswith(("zh-tw", "zh-hk", "zh-hant")):
            return "zh-CN"
        if lowered.startswith("en"):
            return "en"
    return DEFAULT_LANGUAGE


def _accepted(header: str) -> list[str]:
    """Accept-Language's tags, most wanted first (q=0 left out)."""
    weighted = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            weighted.append((-quality, position, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


def time_zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TIME_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIME_ZONE)


@dataclass(frozen=True)
class Locale:
    """One request's language and time zone: what templates translate and format with."""

    language: str
    zone: ZoneInfo

    @property
    def babel(self) -> str:
        return LANGUAGES[self.language][1]

    def gettext(self, message: str, /, **values: Any) -> str:
        text = translations(self.language).gettext(message)
        return text % values if values else text

    def ngettext(self, singular: str, plural: str, n: int, /, **values: Any) -> str:
        text = translations(self.language).ngettext(singular, plural, n)
        return text % {"num": n, **values}

    def pgettext(self, context: str, message: str, /, **values: Any) -> str:
        """A message whose English word means different things in different places (“Created”
        as a column, as a history entry): `context` tells the translations apart."""
        text = translations(self.language).pgettext(context, message)
        return text % values if values else text

    def label(self, label: Any, fallback: str = "") -> str:
        """A metadata label in this language (then English, then any)."""
        if isinstance(label, str):
            return label
        if isinstance(label, dict) and label:
            found = label.get(self.language) or label.get(DEFAULT_LANGUAGE)
            return str(found if found else next(iter(label.values())))
        return fallback

    def list_text(self, items: list[str]) -> str:
        """Several things as a list in a sentence (“A, B, and C”, “A、B和C”)."""
        return format_list(items, locale=self.babel) if items else ""

    def datetime_text(self, value: datetime | None, form: str = "medium") -> str:
        if value is None:
            return ""
        return format_datetime(value, _FORMS[form], tzinfo=self.zone, locale=self.babel)

    def date_text(self, value: date | None, form: str = "medium") -> str:
        if value is None:
            return ""
        return format_date(value, _FORMS[form], locale=self.babel)

    def number(self, value: int | float | Decimal | None, scale: int | None = None) -> str:
        if value is None:
            return ""
        if scale is None:
            return format_decimal(value, locale=self.babel)
        pattern = "#,##0" + ("." + "0" * scale if scale else "")
        return format_decimal(value, pattern, locale=self.babel)

    def local_input(self, value: datetime | None) -> str:
        """A datetime as a datetime-local input shows it, in the user's zone."""
        if value is None:
            return ""
        return value.astimezone(self.zone).strftime("%Y-%m-%dT%H:%M")


_FORMS = {"short": "short", "medium": "medium", "long": "long"}
