"""Who works at the demo company: the org tree (headquarters, three sales regions with two teams
each, a service centre) and thirty people in the template's roles, with the reporting line the
"subordinates" scopes and the discount approval follow — reps → their team's manager → the
region's director → the sales VP; service agents → the service manager. Pure: the plan and
the loader read it."""

from __future__ import annotations

import random
from dataclasses import dataclass

from metacrm.plugins.crm.demo import names, words

DOMAIN = "demo.example.com"
REGIONS = tuple(words.REGIONS)
REPS_PER_TEAM = (3, 2)
AGENTS = 4


@dataclass(frozen=True)
class Unit:
    name: str
    label: str
    parent: str | None
    head: str | None  # a staff key


@dataclass(frozen=True)
class Member:
    key: str  # the part of the email before the @; how the plan names who acts
    name: str
    role: str
    unit: str
    manager: str | None
    region: str | None  # the sales region, for sales staff

    @property
    def email(self) -> str:
        return f"{self.key}@{DOMAIN}"


@dataclass(frozen=True)
class Staff:
    units: tuple[Unit, ...]
    members: tuple[Member, ...]

    def by_role(self, role: str, region: str | None = None) -> list[Member]:
        return [
            m for m in self.members if m.role == role and (region is None or m.region == region)
        ]

    def member(self, key: str) -> Member:
        return next(m for m in self.members if m.key == key)

    def team_of(self, manager: str) -> list[Member]:
        return [m for m in self.members if m.manager == manager and m.role == "sales_rep"]


def staff(rng: random.Random) -> Staff:
    units = [Unit("hq", "总部 Headquarters", None, "vp")]
    members = [Member("vp", _name(rng), "sales_director", "hq", None, None)]
    for region in REGIONS:
        zh, en = words.REGIONS[region]
        director = f"director.{region}"
        units.append(Unit(region, f"{zh} {en}", "hq", director))
        members.append(Member(director, _name(rng), "sales_director", region, "vp", region))
        rep_number = 0
        for team, reps in enumerate(REPS_PER_TEAM, start=1):
            unit, manager = f"{region}_{team}", f"manager.{region}{team}"
            units.append(
                Unit(unit, f"{zh[:2]}{'一二'[team - 1]}部 {en} team {team}", region, manager)
            )
            members.append(Member(manager, _name(rng), "sales_manager", unit, director, region))
            for _ in range(reps):
                rep_number += 1
                key = f"rep.{region}{rep_number}"
                members.append(Member(key, _name(rng), "sales_rep", unit, manager, region))
    units.append(Unit("service", "客户服务中心 Customer service", "hq", "service.manager"))
    members.append(Member("service.manager", _name(rng), "service_manager", "service", None, None))
    for number in range(1, AGENTS + 1):
        members.append(
            Member(
                f"agent{number}", _name(rng), "service_agent", "service", "service.manager", None
            )
        )
    return Staff(tuple(units), tuple(members))


def _name(rng: random.Random) -> str:
    return names.person(rng, names.EN if rng.random() < 0.2 else names.ZH).name
