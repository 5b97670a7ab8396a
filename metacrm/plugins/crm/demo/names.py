"""Makers of plausible demo values — people, companies, phone numbers, emails, addresses, deals
— from the word lists, each drawn from the caller's seeded random generator (the same seed makes
the same values)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from metacrm.plugins.crm.demo import words

T = TypeVar("T")

ZH, EN = "zh", "en"
MOBILE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155",
    "158", "159", "166", "177", "180", "181", "186", "187", "188", "189", "199",
)  # fmt: skip


def weighted(rng: random.Random, choices: Sequence[tuple[T, int]]) -> T:
    """One of the values, each as likely as its weight."""
    values = [value for value, _ in choices]
    return rng.choices(values, weights=[weight for _, weight in choices])[0]


@dataclass(frozen=True)
class Person:
    name: str
    email_name: str  # the part of an email address before the @
    lang: str


@dataclass(frozen=True)
class City:
    region: str
    zh: str
    en: str
    area_code: str
    municipality: bool
    districts: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Company:
    name: str
    short_name: str
    domain: str
    industry: str
    city: City
    lang: str


def person(rng: random.Random, lang: str) -> Person:
    if lang == EN:
        first, last = rng.choice(words.FIRST_NAMES), rng.choice(words.LAST_NAMES)
        return Person(f"{first} {last}", f"{first}.{last}".lower(), EN)
    surname, surname_pinyin = rng.choice(words.SURNAMES)
    given = rng.sample(words.GIVEN, 1 if rng.random() < 0.4 else 2)
    given_pinyin = "".join(p for _, p in given)
    return Person(surname + "".join(c for c, _ in given), f"{given_pinyin}.{surname_pinyin}", ZH)


def city(rng: random.Random, region: str) -> City:
    zh, en, code, municipality, districts = rng.choice(words.CITIES[region])
    return City(region, zh, en, code, municipality, districts)


def company(rng: random.Random, region: str, lang: str) -> Company:
    industry = rng.choice(list(words.INDUSTRIES))
    zh_words, en_words = words.INDUSTRIES[industry]
    place = city(rng, region)
    if lang == EN:
        brand = rng.choice(words.EN_BRANDS)
        kind = rng.choice(en_words)
        name = f"{brand} {kind} {weighted(rng, words.EN_SUFFIXES)}"
        return Company(name, brand, f"{brand.lower()}.com", industry, place, EN)
    brand, pinyin = rng.choice(words.BRANDS)
    kind = rng.choice(zh_words)
    name = f"{place.zh}{brand}{kind}{weighted(rng, words.CN_SUFFIXES)}"
    domain = f"{pinyin}.com.cn" if rng.random() < 0.5 else f"{place.en.lower()}-{pinyin}.com"
    return Company(name, f"{brand}{kind[:2]}", domain, industry, place, ZH)


def mobile(rng: random.Random) -> str:
    return rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"


def landline(rng: random.Random, place: City) -> str:
    digits = 8 if len(place.area_code) == 3 else rng.choice((7, 8))
    first = rng.randrange(2, 9)
    return f"{place.area_code}-{first}{rng.randrange(10 ** (digits - 1)):0{digits - 1}d}"


def work_email(who: Person, firm: Company) -> str:
    return f"{who.email_name}@{firm.domain}"


def private_email(rng: random.Random, who: Person) -> str:
    domain = rng.choice(words.FREE_MAIL)
    if domain == "qq.com":
        return f"{rng.randrange(10**7, 10**10)}@qq.com"
    return f"{who.email_name.replace('.', '')}{rng.randrange(1, 99)}@{domain}"


def address(rng: random.Random, place: City, lang: str) -> str:
    district_zh, district_en = rng.choice(place.districts)
    road_zh, road_en = rng.choice(words.ROADS)
    number = rng.randrange(1, 1200)
    if lang == EN:
        return f"{number} {road_en}, {district_en}, {place.en}"
    city_part = f"{place.zh}市"
    building = f"{rng.choice('ABCD')}座{rng.randrange(2, 30)}{rng.randrange(1, 20):02d}室"
    suite = building if rng.random() < 0.6 else ""
    return f"{city_part}{district_zh}{road_zh}{number}号{suite}"


def title(rng: random.Random, lang: str) -> str:
    zh, en = rng.choice(words.TITLES)
    return en if lang == EN else zh


def department(rng: random.Random, lang: str) -> str:
    zh, en = rng.choice(words.DEPARTMENTS)
    return en if lang == EN else zh


def text(pair: tuple[str, str], lang: str) -> str:
    """The Chinese or the English of a pair of words."""
    return pair[1] if lang == EN else pair[0]


def deal(rng: random.Random, firm_short: str, lang: str) -> tuple[str, int]:
    """An opportunity's name and a typical amount for what it sells."""
    product_zh, product_en, typical = rng.choice(words.PRODUCTS)
    kind_zh, kind_en = rng.choice(words.DEAL_KINDS)
    if lang == EN:
        return f"{firm_short}: {product_en} {kind_en}", typical
    return f"{firm_short}{product_zh}{kind_zh}", typical


def amount(rng: random.Random, typical: int, level: str) -> int:
    """A deal size around the product's typical one, bigger for key accounts, in round
    hundreds of yuan."""
    factor = {"A": 2.0, "B": 1.0, "C": 0.6}[level] * rng.lognormvariate(0, 0.55)
    return max(5_000, round(typical * factor / 100) * 100)
