"""The app's message catalogs: every message the code and templates translate is in English and
简体中文, translated, unfuzzy, with its placeholders; the files parse and compile; and the
checks that say so find what a broken catalog gets wrong."""

# Chinese text uses full-width punctuation: that is what is tested.
# ruff: noqa: RUF001

from __future__ import annotations

import gettext
import io
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo

from metacrm.app.catalogs import (
    LOCALE,
    TEMPLATE_NAME,
    collect,
    dynamic_calls,
    load,
    merged,
    placeholders,
    po_path,
    problems,
)
from metacrm.app.fields import system_label
from metacrm.app.i18n import LANGUAGES, Locale, time_zone
from metacrm.app.messages import expression_error_text, placed_error_text, problem_heading
from metacrm.app.pages.records import unavailable_reason
from metacrm.metadata.model import EntityDef
from metacrm.metadata.types import SYSTEM_FIELDS
from metacrm.platform.errors import FieldError, NotFound, Position, RuleError

ZH = Locale("zh-CN", time_zone(None))
EN = Locale("en", time_zone(None))


def catalog_of(language: str) -> Catalog:
    found = load(po_path(language), language)
    assert found is not None, f"no catalog for {language}"
    return found


@pytest.fixture(scope="module")
def extracted() -> Catalog:
    return collect()


def keys(catalog: Catalog) -> set[tuple[object, str | None]]:
    return {(m.id, m.context) for m in catalog if m.id}


def test_extraction_finds_the_messages_of_python_code_and_templates(extracted: Catalog) -> None:
    found = keys(extracted)
    assert ("This field is required.", None) in found  # messages.py
    assert ("Skip to content", None) in found  # base.html
    assert (("%(num)d record", "%(num)d records"), None) in found  # ngettext in a template
    assert ("Created", "history") in found and ("Created", None) in found  # pgettext
    assert len(found) > 150


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_every_message_the_code_translates_is_in_the_catalog(
    extracted: Catalog, language: str
) -> None:
    catalog = catalog_of(language)
    assert keys(extracted) - keys(catalog) == set()
    assert keys(catalog) - keys(extracted) == set(), "entries the code no longer uses"
    assert not catalog.obsolete


def test_the_committed_template_is_what_extraction_finds(extracted: Catalog) -> None:
    saved = load(LOCALE / TEMPLATE_NAME)
    assert saved is not None
    assert keys(saved) == keys(extracted)


def test_no_code_translates_a_message_extraction_cannot_see() -> None:
    assert dynamic_calls() == []


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_no_translation_is_empty_or_fuzzy(language: str) -> None:
    catalog = catalog_of(language)
    for message in catalog:
        if not message.id:
            continue
        assert not message.fuzzy, message.id
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(s.strip() for s in strings), message.id
        assert len(strings) == (catalog.num_plurals if message.pluralizable else 1), message.id


def test_chinese_is_translated_not_copied() -> None:
    """Chinese entries hold Chinese: an English copy (what extraction writes for English) left
    in the Chinese catalog would pass every other check."""
    copied = [
        m.id
        for m in catalog_of("zh-CN")
        if m.id
        and not isinstance(m.id, tuple)
        and m.string == m.id
        and any(c.isalpha() for c in m.id)
        and m.id not in ("ID",)
    ]
    assert copied == []


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_each_translation_keeps_the_placeholders_of_its_message(language: str) -> None:
    catalog = catalog_of(language)
    for message in catalog:
        if not message.id:
            continue
        if message.pluralizable:
            # One form for every number in Chinese: it says the plural's placeholders.
            forms = list(zip(message.string, message.id, strict=False))
            if catalog.num_plurals == 1:
                forms = [(message.string[0], message.id[1])]
        else:
            forms = [(message.string, message.id)]
        for text, source in forms:
            assert sorted(placeholders(text)) == sorted(placeholders(source)), (source, text)
    assert list(catalog.check()) == []


def test_the_catalogs_parse_say_their_plural_forms_and_compile() -> None:
    zh, en = catalog_of("zh-CN"), catalog_of("en")
    assert zh.plural_forms == "nplurals=1; plural=0;"
    assert en.plural_forms == "nplurals=2; plural=(n != 1);"
    for catalog in (zh, en):
        compiled = io.BytesIO()
        write_mo(compiled, catalog)
        compiled.seek(0)
        translations = gettext.GNUTranslations(compiled)
        assert translations.gettext("Save") in ("保存", "Save")


def test_the_app_translates_messages_plurals_and_contexts() -> None:
    assert ZH.gettext("Save") == "保存"
    assert ZH.gettext("Good to see you, %(name)s", name="王芳") == "王芳，您好"
    assert ZH.ngettext("%(num)d record", "%(num)d records", 1) == "共 1 条记录"
    assert ZH.ngettext("%(num)d record", "%(num)d records", 12) == "共 12 条记录"
    assert EN.ngettext("%(num)d record", "%(num)d records", 1) == "1 record"
    assert EN.ngettext("%(num)d record", "%(num)d records", 12) == "12 records"
    # The same English word, two meanings: a column ("Created" at) and a history entry.
    assert ZH.gettext("Created") == "创建时间"
    assert ZH.pgettext("history", "Created") == "创建"
    assert EN.pgettext("history", "Created") == "Created"


def test_every_system_field_has_a_label_in_both_languages() -> None:
    for name in SYSTEM_FIELDS:
        english, chinese = system_label(name, EN), system_label(name, ZH)
        assert english != name, name
        assert chinese != english or name == "id", name


def test_refusals_and_filter_errors_are_worded_in_the_users_language() -> None:
    assert problem_heading(404, ZH) == "未找到"
    assert problem_heading(418, ZH) == "出错了"
    problem = RuleError("unknown field 'amout'", Position(1, 5), ["amount", "account"])
    assert expression_error_text(problem, ZH) == (
        "unknown field 'amout'（第 1 行，第 5 列）；您是不是要输入 amount或account？"
    )
    assert expression_error_text(problem, EN) == (
        "unknown field 'amout' (line 1, column 5) Did you mean amount or account?"
    )
    assert expression_error_text(NotFound("no entity named 'x'"), ZH) == "no entity named 'x'"


def test_an_error_shown_away_from_its_field_names_the_field() -> None:
    deal = EntityDef.from_doc(
        {
            "name": "deal",
            "fields": [
                {
                    "name": "close_date",
                    "type": "date",
                    "label": {"en": "Close", "zh-CN": "成交日期"},
                },
                {"name": "stage", "type": "picklist", "options": [{"value": "won"}]},
            ],
        }
    )
    required = FieldError("close_date", "required", "is required")
    assert placed_error_text(required, deal, ZH) == "成交日期：此项为必填项。"
    assert placed_error_text(required, deal, EN) == "Close: This field is required."
    gate = FieldError("stage", "gate", "entering won needs amount > 0")
    assert placed_error_text(gate, deal, ZH) == "进入“won”需满足：amount > 0"
    assert placed_error_text(FieldError("", "locked", "locked"), deal, ZH) == (
        "该记录正在审批中，已被锁定。"
    )


def test_why_an_action_is_unavailable_is_said_in_the_users_language() -> None:
    """The runtime words its own reasons in English only: the app says them by their code; a
    reason the metadata gives in the user's language is shown as it is."""
    permission = {
        "reason": {"en": "needs the right to update this deal"},
        "reason_code": "permission",
    }
    assert unavailable_reason(permission, ZH) == "您没有对该记录执行此操作的权限。"
    assert unavailable_reason(permission, EN) == "needs the right to update this deal"
    designed = {
        "reason": {"en": "Only open deals", "zh-CN": "仅限进行中的商机"},
        "reason_code": "condition",
    }
    assert unavailable_reason(designed, ZH) == "仅限进行中的商机"
    odd = {"reason": {"en": "only when stage == 'x'"}, "reason_code": "condition"}
    assert unavailable_reason(odd, ZH) == "该记录当前无法执行此操作。"
    assert unavailable_reason({"available": True}, ZH) == ""


# ---- the checks find what a broken catalog gets wrong ------------------------------------------


def small_template() -> Catalog:
    template = Catalog(fuzzy=False)
    template.add("Save", locations=[("a.py", 1)])
    template.add("Hello %(name)s", locations=[("a.py", 2)])
    template.add(("%(num)d record", "%(num)d records"), locations=[("a.py", 3)])
    template.add("Created", context="history", locations=[("a.py", 4)])
    return template


def test_a_complete_catalog_has_no_problems() -> None:
    template = small_template()
    zh = merged(None, template, "zh-CN")
    zh["Save"].string = "保存"
    zh["Hello %(name)s"].string = "%(name)s，您好"
    zh["%(num)d record"].string = ("%(num)d 条记录",)
    zh.get("Created", context="history").string = "创建"
    en = merged(None, template, "en")
    assert problems(template, {"zh-CN": zh, "en": en}, saved_template=template) == []


def test_problems_lists_missing_untranslated_fuzzy_obsolete_and_wrong_entries() -> None:
    template = small_template()
    zh = merged(None, template, "zh-CN")
    zh["Save"].string = "保存"
    zh["Save"].flags.add("fuzzy")
    zh["Hello %(name)s"].string = "%(user)s，您好"
    zh.add("Gone", "走了")
    zh.obsolete["Old"] = zh["Gone"]
    del zh[("%(num)d record", "%(num)d records")[0]]
    found = problems(template, {"zh-CN": zh, "en": None}, dynamic=["x.py:3: _() needs a literal"])
    assert "x.py:3: _() needs a literal" in found
    assert f"{TEMPLATE_NAME} is out of date: run extract" in found
    assert "en: no catalog: run extract" in found
    assert "zh-CN: missing “%(num)d record”: run extract" in found
    assert "zh-CN: fuzzy “Save”: check the translation" in found
    assert "zh-CN: untranslated “Created”" in found
    assert "zh-CN: “Gone” is no longer used" in found
    assert "zh-CN: obsolete “Gone”: run extract --prune" in found
    assert any(p.startswith("zh-CN: “Hello %(name)s” has placeholders") for p in found)


def test_a_plural_with_the_wrong_number_of_forms_is_found() -> None:
    template = small_template()
    zh = merged(None, template, "zh-CN")
    for message in zh:
        if message.id:
            message.string = ("一", "二") if message.pluralizable else "译"
    found = problems(template, {"zh-CN": zh}, saved_template=template)
    assert "zh-CN: untranslated “%(num)d record”" in found


def test_merging_keeps_translations_marks_rewordings_fuzzy_and_fills_english() -> None:
    template = small_template()
    zh = merged(None, template, "zh-CN")
    zh["Save"].string = "保存"
    zh["Hello %(name)s"].string = "%(name)s，您好"
    reworded = Catalog(fuzzy=False)
    reworded.add("Save", locations=[("a.py", 1)])
    reworded.add("Hello there, %(name)s", locations=[("a.py", 2)])
    again = merged(zh, reworded, "zh-CN")
    assert again["Save"].string == "保存" and not again["Save"].fuzzy
    assert again["Hello there, %(name)s"].fuzzy
    assert again["Hello there, %(name)s"].string == "%(name)s，您好"
    assert "%(num)d record" in again.obsolete
    assert not merged(zh, reworded, "zh-CN", prune=True).obsolete
    english = merged(None, template, "en")
    assert english["Save"].string == "Save"
    assert english["%(num)d record"].string == ("%(num)d record", "%(num)d records")


def test_calls_extraction_cannot_see_are_found_in_code_and_templates(tmp_path: Path) -> None:
    (tmp_path / "page.py").write_text(
        "def f(locale, word):\n"
        "    locale.gettext('fine')\n"
        "    locale.gettext(word)\n"
        "    locale.ngettext('one', word, 2)\n"
        "    _ = locale.gettext\n"
        "    _(f'{word}')\n",
        "utf-8",
    )
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "x.html").write_text(
        "{{ _('fine', n=1) }}\n{{ _(status|capitalize) }}\n{{ ngettext('a', 'b', n) }}\n",
        "utf-8",
    )
    found = dynamic_calls(tmp_path)
    assert [f.rsplit("/", 1)[-1] for f in found] == [
        "page.py:3: gettext() needs a literal message",
        "page.py:4: ngettext() needs a literal message",
        "page.py:6: _() needs a literal message",
        "x.html:2: _() needs a literal message",
    ]
