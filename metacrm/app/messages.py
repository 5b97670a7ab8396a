"""Field errors in the user's language.

The record service reports each problem with a code and an English message (the API's
contract). The app says the same in the user's language: validation rules carry their own
message per locale; the platform's codes are translated here, with the stage or bound they name
taken from the metadata. An error the app doesn't know is shown as the service said it.
"""

from __future__ import annotations

import re

from metacrm.app.i18n import Locale
from metacrm.metadata.model import EntityDef
from metacrm.platform.errors import FieldError

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


def _stage_label(entity: EntityDef, name: str, locale: Locale, *, by_key: bool = False) -> str:
    """A stage named by its English label (or key) in the user's language."""
    for field in entity.fields:
        for option in field.doc.get("options", ()):
            label = option.get("label") or {}
            english = label.get("en") if isinstance(label, dict) else label
            if (by_key and option.get("value") == name) or (not by_key and english == name):
                return locale.label(label, name)
    return name
