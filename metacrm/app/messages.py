"""Field errors in the user's language.

The record service reports each problem with a code and an English message (the API's
contract). The app says the same in the user's language: validation rules carry their own
message per locale; the platform's codes are translated here, with the stage or bound they name
taken from the metadata. An error the app doesn't know is shown as the service said it.
"""

from __future__ import annotations

import re

from babel.lists import format_list

from metacrm.app.fields import field_label
from metacrm.app.i18n import Locale
from metacrm.metadata.model import EntityDef
from metacrm.platform.errors import FieldError, MetacrmError, RuleError

_STAGE_MESSAGES = {
    "gate": re.compile(r"^entering (?P<stage>.+?) needs (?P<what>.+)$"),
    "required_for_stage": re.compile(r"^is required to enter (?P<stage>.+)$"),
    "lost_reason": re.compile(r"^give a reason to enter (?P<stage>.+)$"),
}
_TRANSITION = re.compile(r"^can't move from '(?P<old>[^']*)' to '(?P<new>[^']*)'")


def error_text(error: FieldError, entity: EntityDef, locale: Locale) -> str:
    _ = locale.gettext
    for rule in entity.doc.get("validation_rules", ()):
        if rule.get("name") == error.code:
            return locale.label(rule.get("message"), error.message)
    field = entity.field(error.field) if error.field else None
    code = error.code
    if code == "required":
        return _("This field is required.")
    if code == "choice":
        return _("Choose one of the options.")
    if code == "type":
        if field is not None and field.type in ("integer", "decimal"):
            return _("Enter a number.")
        return _("This value is not valid.")
    if code == "format":
        kind = field.type if field is not None else ""
        return {
            "email": _("Enter an email address."),
            "phone": _("Enter a phone number (digits, spaces, + - ( ) . /)."),
            "url": _("Enter a web address starting with http:// or https://."),
            "date": _("Enter a date."),
            "datetime": _("Enter a date and time."),
            "lookup": _("Choose a record."),
            "user": _("Choose a user."),
        }.get(kind, _("This value is not valid."))
    if code == "min" and field is not None:
        return _("Must be at least %(min)s.", min=field.minimum)
    if code == "max" and field is not None:
        return _("Must be at most %(max)s.", max=field.maximum)
    if code == "scale" and field is not None:
        return _("Use at most %(n)s decimal places.", n=field.scale)
    if code == "range":
        return _("This number is too large.")
    if code in ("max_length", "maxLength") and field is not None:
        return _("Use at most %(n)s characters.", n=field.max_length)
    if code == "lookup_none":
        return _(
            "Nothing matches “%(text)s”. Type another name or pick a suggestion.",
            text=error.message,
        )
    if code == "lookup_many":
        return _(
            "Several records match “%(text)s”. Type the full name or pick a suggestion.",
            text=error.message,
        )
    if code == "unique":
        return _("Another record already has this value.")
    if code == "read_only":
        return _("This field can't be changed now.")
    if code == "hidden":
        return _("This field doesn't apply to this record.")
    if code == "locked":
        return _("This record is locked while it awaits approval.")
    if code in ("stale", "precondition-failed"):
        return _("Someone else changed this record; look again and retry.")
    if code == "transition":
        found = _TRANSITION.match(error.message)
        if found:
            return _(
                "It can't move from %(old)s to %(new)s.",
                old=_stage_label(entity, found["old"], locale, by_key=True),
                new=_stage_label(entity, found["new"], locale, by_key=True),
            )
    pattern = _STAGE_MESSAGES.get(code)
    found = pattern.match(error.message) if pattern else None
    if found:
        stage = _stage_label(entity, found["stage"], locale)
        if code == "gate":
            return _("To enter %(stage)s: %(what)s", stage=stage, what=found["what"])
        if code == "required_for_stage":
            return _("Required to enter %(stage)s.", stage=stage)
        return _("Give a reason to enter %(stage)s.", stage=stage)
    return error.message


def placed_error_text(error: FieldError, entity: EntityDef, locale: Locale) -> str:
    """A field error shown away from its field (a list at the top of a page, a kanban card):
    the field's label first. Gate and transition messages name their stage already."""
    text = error_text(error, entity, locale)
    field = entity.field(error.field) if error.field else None
    if field is None or error.code in ("gate", "transition"):
        return text
    return locale.gettext("%(field)s: %(message)s", field=field_label(field, locale), message=text)


def problem_heading(status: int, locale: Locale) -> str:
    """What a refusal with this HTTP status means, as the error page's heading (and the short
    reason a page's script shows)."""
    _ = locale.gettext
    headings = {
        400: _("That request was not understood"),
        401: _("Sign in to continue"),
        403: _("Not allowed"),
        404: _("Not found"),
        409: _("That clashes with what is already there"),
        412: _("Someone else changed this record; look again and retry."),
        413: _("That is too much to send at once"),
        422: _("That can't be saved"),
        423: _("This record is locked while it awaits approval."),
        429: _("Too many attempts. Try again in a few minutes."),
        503: _("Not available right now. Try again later."),
    }
    return headings.get(status, _("Something went wrong"))


def expression_error_text(problem: MetacrmError, locale: Locale) -> str:
    """A filter's error under the filter box: the rule language's message (its own words), and
    where it is and what might have been meant in the user's language."""
    if not isinstance(problem, RuleError):
        return problem.detail
    _ = locale.gettext
    text = problem.message
    if problem.position is not None:
        text = _(
            "%(message)s (line %(line)s, column %(column)s)",
            message=text,
            line=problem.position.line,
            column=problem.position.column,
        )
    if problem.suggestions:
        names = format_list(problem.suggestions, style="or", locale=locale.babel)
        text = _("%(message)s Did you mean %(names)s?", message=text, names=names)
    return text


def _stage_label(entity: EntityDef, name: str, locale: Locale, *, by_key: bool = False) -> str:
    """A stage named by its English label (or key) in the user's language."""
    for field in entity.fields:
        for option in field.doc.get("options", ()):
            label = option.get("label") or {}
            english = label.get("en") if isinstance(label, dict) else label
            if (by_key and option.get("value") == name) or (not by_key and english == name):
                return locale.label(label, name)
    return name
