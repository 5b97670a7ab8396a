"""The app's message catalogs kept in step with its code: `extract` collects every message the
Python code and the templates translate, writes them to `locale/messages.pot` and merges them into
each language's `.po` (translations kept); `check` lists what a catalog lacks or gets wrong.

    python -m metacrm.app.catalogs extract [--prune]   # then translate the new msgstr entries
    python -m metacrm.app.catalogs check               # exit status 1 when anything is listed
"""

from __future__ import annotations

import argparse
import ast
import copy
import io
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract
from babel.messages.pofile import read_po, write_po
from jinja2 import Environment
from jinja2.ext import babel_extract, extract_from_ast

from metacrm.app.i18n import DEFAULT_LANGUAGE, LANGUAGES

APP = Path(__file__).resolve().parent
ROOT = APP.parent.parent
LOCALE = APP / "locale"
TEMPLATE_NAME = "messages.pot"
# What the code translates with: `Locale.gettext` (often bound to `_`), `ngettext`, `pgettext`,
# and in templates the `_` and `ngettext` every page gets. Babel's spec: which arguments are the
# message (and its plural, its context).
KEYWORDS: dict[str, Any] = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "pgettext": ((1, "c"), 2),
}
MESSAGE_ARGUMENTS = {"_": 1, "gettext": 1, "ngettext": 2, "pgettext": 2}
COMMENT_TAGS = ("Translators:",)
# The module that defines the translation functions passes messages through them by design.
MECHANISM = APP / "i18n.py"
# The Jinja options the app renders with (metacrm.app.web.templates): parsing must agree.
JINJA_OPTIONS = {"trim_blocks": "true", "lstrip_blocks": "true"}
PLACEHOLDER = re.compile(r"%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrs]")
# Dates Babel stamps on every write (left out, so extracting twice changes nothing) and a
# placeholder address we have none for.
DROPPED_HEADERS = (b'"POT-Creation-Date:', b'"PO-Revision-Date:', b'"Report-Msgid-Bugs-To:')
HEADER = """The metacrm app's messages{language}.
Written by `python -m metacrm.app.catalogs extract`: translate the msgstr entries only."""


def po_path(language: str, locale_dir: Path = LOCALE) -> Path:
    return locale_dir / LANGUAGES[language][0] / "LC_MESSAGES" / "messages.po"


def _relative(path: Path) -> str:
    try:
        return path.relative_to(ROOT).as_posix()
    except ValueError:
        return path.as_posix()


def sources(app: Path = APP) -> list[Path]:
    """Every file whose messages the catalogs hold: the app's Python and its templates."""
    return sorted(app.rglob("*.py")) + sorted((app / "templates").rglob("*.html"))


def collect(app: Path = APP) -> Catalog:
    """The catalog template: each message the sources translate, with where it is used."""
    template = Catalog(
        project="metacrm",
        version="app",
        header_comment=_header_comment(""),
        last_translator="metacrm",
        language_team="metacrm",
        fuzzy=False,
    )
    for path in sources(app):
        method: Any = babel_extract if path.suffix == ".html" else "python"
        options = JINJA_OPTIONS if path.suffix == ".html" else {}
        with path.open("rb") as source:
            for lineno, message, comments, context in extract(
                method,
                source,
                keywords=KEYWORDS,
                comment_tags=COMMENT_TAGS,
                options=options,
                strip_comment_tags=True,
            ):
                template.add(
                    message,
                    None,
                    [(_relative(path), lineno)],
                    auto_comments=comments,
                    context=context,
                )
    return template


def dynamic_calls(app: Path = APP) -> list[str]:
    """Places that translate something other than a literal message: extraction can't see such
    a message, so no catalog holds it and it would always show in English."""
    found = []
    for path in sources(app):
        if path.resolve() == MECHANISM:
            continue
        text = path.read_text("utf-8")
        calls = _template_calls(text) if path.suffix == ".html" else _python_calls(text)
        for line, name in sorted(calls):
            found.append(f"{_relative(path)}:{line}: {name}() needs a literal message")
    return found


def _python_calls(text: str) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if name not in MESSAGE_ARGUMENTS:
            continue
        wanted = node.args[: MESSAGE_ARGUMENTS[name]]
        literal = all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in wanted)
        if len(wanted) < MESSAGE_ARGUMENTS[name] or not literal:
            yield node.lineno, name


def _template_calls(text: str) -> Iterator[tuple[int, str]]:
    env = Environment(trim_blocks=True, lstrip_blocks=True)
    for line, name, strings in extract_from_ast(env.parse(text), tuple(KEYWORDS)):
        given = strings if isinstance(strings, tuple) else (strings,)
        wanted = given[: MESSAGE_ARGUMENTS[name]]
        if len(wanted) < MESSAGE_ARGUMENTS[name] or any(s is None for s in wanted):
            yield line, name


def _header_comment(language: str) -> str:
    text = HEADER.format(language=f" in {language}" if language else "")
    return "\n".join(f"# {line}" for line in text.splitlines())


def new_catalog(language: str) -> Catalog:
    folder = LANGUAGES[language][0]
    return Catalog(
        locale=folder,
        project="metacrm",
        version="app",
        header_comment=_header_comment(language),
        last_translator="metacrm",
        language_team="metacrm",
        fuzzy=False,
    )


def merged(
    existing: Catalog | None, template: Catalog, language: str, *, prune: bool = False
) -> Catalog:
    """The language's catalog updated to the template: translations kept, new messages empty
    (in the source language, English, the message itself), a reworded message marked fuzzy with
    its old translation, a message the code no longer uses kept as obsolete unless `prune`."""
    catalog = existing if existing is not None else new_catalog(language)
    # Babel adopts the template's message objects for new entries: each language gets its own.
    catalog.update(copy.deepcopy(template), update_creation_date=False)
    if prune:
        catalog.obsolete.clear()
    if language == DEFAULT_LANGUAGE:
        for message in catalog:
            if message.id and (message.fuzzy or not _complete(message, catalog)):
                message.string = message.id
                message.flags.discard("fuzzy")
    return catalog


def po_bytes(catalog: Catalog) -> bytes:
    """The catalog as a .po (or .pot) file, without Babel's time stamps and line numbers, so the
    files change only when the messages do."""
    out = io.BytesIO()
    write_po(out, catalog, width=100, include_lineno=False, sort_output=False)
    lines = out.getvalue().splitlines(keepends=True)
    return b"".join(line for line in lines if not line.startswith(DROPPED_HEADERS))


def load(path: Path, language: str | None = None) -> Catalog | None:
    if not path.is_file():
        return None
    with path.open("rb") as source:
        folder = LANGUAGES[language][0] if language else None
        return read_po(source, locale=folder, abort_invalid=True)


def _complete(message: Message, catalog: Catalog) -> bool:
    if isinstance(message.id, tuple | list):
        strings = message.string if isinstance(message.string, tuple | list) else ()
        return len(strings) == catalog.num_plurals and all(strings)
    return bool(message.string)


def placeholders(text: str) -> list[str]:
    """The %(name)x placeholders of a message, sorted (the order may change in a translation)."""
    return sorted(m.group(0) for m in PLACEHOLDER.finditer(text))


def _placeholder_problem(message: Message, plurals: int) -> str | None:
    """How a translation's placeholders differ from its message's, if they do. A plural
    message's first form is said for one (when the language has more than one form): it has the
    singular's placeholders; every other form, and a language's only form, the plural's."""
    if isinstance(message.id, tuple | list):
        singular, plural = message.id[0], message.id[-1]
        strings = list(message.string) if isinstance(message.string, tuple | list) else []
        wanted = [singular if i == 0 and plurals > 1 else plural for i in range(len(strings))]
    else:
        strings, wanted = [str(message.string)], [message.id]
    for text, source in zip(strings, wanted, strict=True):
        have, need = sorted(set(placeholders(text))), sorted(set(placeholders(source)))
        if have != need:
            return f"placeholders {have} instead of {need}"
    return None


def _key(message: Message) -> tuple[Any, str | None]:
    return message.id, message.context


def _keys(catalog: Catalog) -> set[tuple[Any, str | None]]:
    return {_key(m) for m in catalog if m.id}


def _show(message: Message) -> str:
    text = message.id[0] if isinstance(message.id, tuple | list) else message.id
    return f"“{text}”"


def problems(
    template: Catalog,
    catalogs: Mapping[str, Catalog | None],
    *,
    saved_template: Catalog | None = None,
    dynamic: Sequence[str] = (),
) -> list[str]:
    """What keeps the catalogs from being complete: messages the code translates that a catalog
    lacks, untranslated and fuzzy entries, obsolete ones, placeholders a translation changed,
    a wrong number of plural forms, a stale messages.pot, and calls extraction can't see."""
    found = list(dynamic)
    wanted = _keys(template)
    if saved_template is None or _keys(saved_template) != wanted:
        found.append(f"{TEMPLATE_NAME} is out of date: run extract")
    for language, catalog in catalogs.items():
        if catalog is None:
            found.append(f"{language}: no catalog: run extract")
            continue
        expected = Catalog(locale=LANGUAGES[language][0]).num_plurals
        if catalog.num_plurals != expected:
            found.append(f"{language}: Plural-Forms says {catalog.num_plurals}, not {expected}")
        held = _keys(catalog)
        for message in template:
            if message.id and _key(message) not in held:
                found.append(f"{language}: missing {_show(message)}: run extract")
        for message in catalog:
            if not message.id:
                continue
            if _key(message) not in wanted:
                found.append(f"{language}: {_show(message)} is no longer used")
            elif message.fuzzy:
                found.append(f"{language}: fuzzy {_show(message)}: check the translation")
            elif not _complete(message, catalog):
                found.append(f"{language}: untranslated {_show(message)}")
            else:
                wrong = _placeholder_problem(message, catalog.num_plurals)
                if wrong:
                    found.append(f"{language}: {_show(message)} has {wrong}")
        for message in catalog.obsolete.values():
            found.append(f"{language}: obsolete {_show(message)}: run extract --prune")
        for message, errors in catalog.check():
            for error in errors:
                found.append(f"{language}: {_show(message)}: {error}")
    return found


def run_extract(locale_dir: Path = LOCALE, *, prune: bool = False) -> list[str]:
    """Write messages.pot and update every language's .po; a line per file saying what moved."""
    template = collect()
    locale_dir.mkdir(parents=True, exist_ok=True)
    (locale_dir / TEMPLATE_NAME).write_bytes(po_bytes(template))
    report = [f"{TEMPLATE_NAME}: {sum(1 for m in template if m.id)} messages"]
    for language in LANGUAGES:
        path = po_path(language, locale_dir)
        before = load(path, language)
        known = _keys(before) if before is not None else set()
        catalog = merged(before, template, language, prune=prune)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(po_bytes(catalog))
        new = sum(1 for m in catalog if m.id and _key(m) not in known)
        todo = sum(1 for m in catalog if m.id and (m.fuzzy or not _complete(m, catalog)))
        report.append(
            f"{_relative(path)}: {new} new, {todo} to translate, {len(catalog.obsolete)} obsolete"
        )
    return report


def run_check(locale_dir: Path = LOCALE) -> list[str]:
    return problems(
        collect(),
        {language: load(po_path(language, locale_dir), language) for language in LANGUAGES},
        saved_template=load(locale_dir / TEMPLATE_NAME),
        dynamic=dynamic_calls(),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m metacrm.app.catalogs", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    extract_command = commands.add_parser("extract", help="update messages.pot and the .po files")
    extract_command.add_argument(
        "--prune", action="store_true", help="drop obsolete entries instead of keeping them"
    )
    commands.add_parser("check", help="list missing, fuzzy, obsolete and wrong entries")
    args = parser.parse_args(argv)
    if args.command == "extract":
        print("\n".join(run_extract(prune=args.prune)))
        return 0
    found = run_check()
    print("\n".join(found) if found else "The catalogs are complete.")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
