"""The demo year as a plan: every create, update and approval decision the staff made, in time
order, each as the person who made it. Pure — a seed, a scale and `now` in, steps out — so the
same seed makes the same year, and the loader only replays it through the record service.

Records follow their pipelines as people would move them: leads are assigned, followed up and
converted or dropped; opportunities move stage by stage (an amount and a close date before the
proposal, a reason when lost), some asking for a discount that goes to approval; tickets are
assigned, answered, resolved and closed. A story that would go on after `now` stops there, so
recent records are still open. Later records refer to earlier ones by plan key (`Ref`), and to
users by staff key (`UserOf`); the loader turns both into ids.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from metacrm.plugins.crm.demo import names, words
from metacrm.plugins.crm.demo.calendar import TICK, Calendar
from metacrm.plugins.crm.demo.names import EN, ZH, Company, Person, weighted
from metacrm.plugins.crm.demo.staff import REGIONS, Member, Staff, staff

# The sizes at scale 1.0 (contacts follow the customers: one to four each).
SIZES = {"lead": 2000, "customer": 800, "opportunity": 1000, "activity": 5000, "ticket": 600}

LEAD_SOURCES = (
    ("web", 24), ("phone_in", 14), ("phone_out", 9), ("referral", 12), ("advertising", 10),
    ("campaign", 10), ("exhibition", 15), ("other", 6),
)  # fmt: skip
# Leads from these sources arrive in a pool a sales manager hands out; reps enter the others.
POOL_SOURCES = frozenset({"web", "advertising", "campaign", "exhibition"})
LEVELS = (("A", 20), ("B", 35), ("C", 45))
CATEGORIES = (
    ("retail", 35), ("vip", 8), ("distributor", 20), ("supplier", 8), ("partner", 22),
    ("competitor", 7),
)  # fmt: skip
CREDIT = (("excellent", 25), ("good", 45), ("fair", 22), ("poor", 8))
DEAL_ROLES = (
    ("decision_maker", 20), ("insider", 12), ("influencer", 30), ("opponent", 5), ("user", 33),
)  # fmt: skip
ACTIVITY_TYPES = (
    ("call", 38), ("message", 18), ("visit", 14), ("meeting", 10), ("email", 16), ("other", 4),
)  # fmt: skip
LOST_REASONS = (
    ("price", 30), ("competitor", 25), ("budget", 15), ("timing", 12), ("product", 8),
    ("relationship", 5), ("other", 5),
)  # fmt: skip
# The chance an open opportunity moves on from each stage (else it is lost, or stalls there).
ADVANCE = {"initial_contact": 0.8, "intent_confirmed": 0.85, "proposal": 0.8, "negotiation": 0.7}
NEXT_STAGE = {
    "initial_contact": "intent_confirmed",
    "intent_confirmed": "proposal",
    "proposal": "negotiation",
    "negotiation": "won",
}
TICKET_TYPES = (("incident", 30), ("question", 35), ("request", 25), ("complaint", 10))
TICKET_SOURCES = (("phone", 35), ("email", 25), ("web", 20), ("wechat", 20))
PRIORITIES = (("P1", 5), ("P2", 20), ("P3", 50), ("P4", 25))
# Hours to the first answer and then to the fix, by priority.
RESPONSE_HOURS = {"P1": (0.1, 1), "P2": (0.5, 4), "P3": (1, 12), "P4": (4, 48)}
FIX_HOURS = {"P1": (2, 12), "P2": (4, 48), "P3": (24, 120), "P4": (48, 240)}
SCORES = ((5, 45), (4, 35), (3, 12), (2, 5), (1, 3))
# Tries at placing a record in time before a loop gives up (only a year with no room left).
GIVE_UP = 10_000


@dataclass(frozen=True)
class Ref:
    """A record made earlier in the plan."""

    key: str


@dataclass(frozen=True)
class UserOf:
    """A demo user, by staff key."""

    key: str


@dataclass(frozen=True)
class Create:
    at: datetime
    actor: str
    entity: str
    key: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Update:
    at: datetime
    actor: str
    entity: str
    key: str
    data: Mapping[str, Any]


@dataclass(frozen=True)
class Decide:
    """The actor answers their task in the pending approval of an opportunity."""

    at: datetime
    actor: str
    key: str
    answer: str
    comment: str
    entity: str = "opportunity"


Step = Create | Update | Decide


@dataclass(frozen=True)
class Demo:
    staff: Staff
    steps: tuple[Step, ...]


def sizes(scale: float) -> dict[str, int]:
    return {entity: max(1, round(size * scale)) for entity, size in SIZES.items()}


def plan(seed: int, scale: float, now: datetime) -> Demo:
    rng = random.Random(seed)
    people = staff(rng)
    year = Year(rng, Calendar(rng, now), people, sizes(scale))
    year.leads()
    year.customers()
    year.opportunities()
    year.lifecycles()
    year.tickets()
    year.activities()
    ordered = sorted(year.steps, key=lambda pair: (pair[1].at, pair[0]))
    return Demo(people, tuple(step for _, step in ordered))


# ---- what the plan remembers about records while making later ones -------------------------


@dataclass
class CustomerStory:
    key: str
    at: datetime
    owner: str
    firm: Company
    level: str
    contacts: list[tuple[str, datetime]] = field(default_factory=list)
    # (moment, lifecycle stage the customer earned then)
    milestones: list[tuple[datetime, str]] = field(default_factory=list)

    @property
    def lang(self) -> str:
        return self.firm.lang

    def contact_before(self, rng: random.Random, moment: datetime) -> str | None:
        known = [key for key, at in self.contacts if at < moment]
        return rng.choice(known) if known else None

    @property
    def first_win(self) -> datetime | None:
        wins = [at for at, stage in self.milestones if stage == "customer"]
        return min(wins) if wins else None


@dataclass(frozen=True)
class Window:
    """A stretch of time during which its owner follows a record up (activities land here)."""

    owner: str
    start: datetime
    end: datetime
    lang: str
    about: Mapping[str, Ref]
    customer: CustomerStory | None = None


class Year:
    def __init__(
        self, rng: random.Random, calendar: Calendar, people: Staff, wanted: dict[str, int]
    ) -> None:
        self.rng, self.cal, self.staff, self.wanted = rng, calendar, people, wanted
        self.steps: list[tuple[int, Step]] = []
        self.counts: dict[str, int] = {}
        self.customer_stories: list[CustomerStory] = []
        self.windows: dict[str, list[Window]] = {"lead": [], "opportunity": [], "customer": []}
        self.activities_made = 0

    # ---- steps ---------------------------------------------------------------------------

    def happen(self, step: Step) -> bool:
        """Add the step if it happened by now; False (and nothing added) if it lies ahead."""
        if step.at > self.cal.now:
            return False
        self.steps.append((len(self.steps), step))
        return True

    def create(self, at: datetime, actor: str, entity: str, data: Mapping[str, Any]) -> str:
        """A record made at `at` (which the caller keeps by now)."""
        number = self.counts.get(entity, 0) + 1
        self.counts[entity] = number
        key = f"{entity}:{number}"
        self.steps.append((len(self.steps), Create(at, actor, entity, key, data)))
        return key

    def _lang(self, usual: str, other: float = 0.1) -> str:
        if self.rng.random() < other:
            return EN if usual == ZH else ZH
        return usual

    def _person(self, lang: str) -> Person:
        return names.person(self.rng, self._lang(lang))

    # ---- leads ---------------------------------------------------------------------------

    def leads(self) -> None:
        for _ in range(self.wanted["lead"]):
            self._lead()

    def _lead(self) -> None:
        rng, cal = self.rng, self.cal
        region = rng.choice(REGIONS)
        lang = EN if rng.random() < 0.2 else ZH
        firm = names.company(rng, region, lang)
        who = self._person(lang)
        source = weighted(rng, LEAD_SOURCES)
        data: dict[str, Any] = {
            "company": firm.name,
            "contact_name": who.name,
            "title": names.title(rng, who.lang),
            "source": source,
            "industry": firm.industry,
            "region": region,
        }
        if rng.random() < 0.8:
            data["mobile"] = names.mobile(rng)
        if rng.random() < 0.3 or "mobile" not in data:
            data["phone"] = names.landline(rng, firm.city)
        if rng.random() < 0.6:
            data["email"] = names.work_email(who, firm)
        if rng.random() < 0.4:
            data["address"] = names.address(rng, firm.city, lang)
        if rng.random() < 0.4:
            data["notes"] = names.text(rng.choice(words.LEAD_NOTES), lang)
        at = cal.during_year()
        if source in POOL_SOURCES:
            manager = rng.choice(self.staff.by_role("sales_manager", region))
            key = self.create(at, manager.key, "lead", data)
            if rng.random() < 0.06:
                return  # still waiting in the pool
            rep = rng.choice(self.staff.team_of(manager.key))
            at = cal.after(at, 0.5, 72)
            assign = {"owner": UserOf(rep.key), "status": "pending"}
            if not self.happen(Update(at, manager.key, "lead", key, assign)):
                return
        else:
            rep = rng.choice(self.staff.by_role("sales_rep", region))
            key = self.create(at, rep.key, "lead", {**data, "status": "pending"})
        self._follow_lead(key, rep, firm, who, data, at)

    def _follow_lead(
        self,
        key: str,
        rep: Member,
        firm: Company,
        who: Person,
        data: Mapping[str, Any],
        at: datetime,
    ) -> None:
        rng, cal = self.rng, self.cal
        lang = firm.lang
        chance = rng.random()
        if chance < 0.10:
            self.happen(
                Update(cal.days_after(at, 1, 10), rep.key, "lead", key, {"status": "invalid"})
            )
            return
        if chance > 0.78:
            return  # not followed up yet
        # The first follow-up; the lead is being followed up from then on.
        first = cal.after(at, 1, 120)
        if not self._activity(
            first, rep.key, lang, {"lead": Ref(key)}, kinds=("call", "message", "visit")
        ):
            return
        started = first + TICK
        self.happen(Update(started, rep.key, "lead", key, {"status": "following_up"}))
        outcome = rng.random()
        ended = cal.days_after(started, 3, 45)
        if outcome < 0.20 and self.counts.get("customer", 0) < self.wanted["customer"]:
            self._convert(key, rep, firm, who, data, ended)
            ended = min(ended, cal.now)
        elif outcome < 0.32:
            self.happen(Update(ended, rep.key, "lead", key, {"status": "invalid"}))
        elif outcome < 0.37:
            self.happen(Update(ended, rep.key, "lead", key, {"status": "voided"}))
        else:
            ended = cal.now
        about = {"lead": Ref(key)}
        self.windows["lead"].append(Window(rep.key, started, min(ended, cal.now), lang, about))

    def _convert(
        self,
        lead: str,
        rep: Member,
        firm: Company,
        who: Person,
        data: Mapping[str, Any],
        at: datetime,
    ) -> None:
        """The lead becomes a customer with its contact person; the lead is converted."""
        if at + 2 * TICK > self.cal.now:
            return
        story = self._customer(at, rep, firm, source=data["source"])
        contact = {
            "name": who.name,
            "title": data.get("title"),
            "mobile": data.get("mobile"),
            "phone": data.get("phone"),
            "email": data.get("email"),
        }
        self._contact(story, at + TICK, {k: v for k, v in contact.items() if v is not None})
        self.happen(Update(at + 2 * TICK, rep.key, "lead", lead, {"status": "converted"}))
        self._more_contacts(story, at + 2 * TICK, self.rng.choice((0, 0, 1, 2)))

    # ---- customers and contacts ------------------------------------------------------------

    def customers(self) -> None:
        rng = self.rng
        while self.counts.get("customer", 0) < self.wanted["customer"]:
            region = rng.choice(REGIONS)
            rep = rng.choice(self.staff.by_role("sales_rep", region))
            firm = names.company(rng, region, EN if rng.random() < 0.25 else ZH)
            source = weighted(rng, LEAD_SOURCES)
            story = self._customer(self.cal.during_year(0, 355), rep, firm, source=source)
            count = weighted(rng, ((1, 25), (2, 30), (3, 25), (4, 20)))
            self._more_contacts(story, story.at, count)

    def _customer(self, at: datetime, rep: Member, firm: Company, *, source: str) -> CustomerStory:
        rng = self.rng
        level = weighted(rng, LEVELS)
        data: dict[str, Any] = {
            "name": firm.name,
            "short_name": firm.short_name,
            "level": level,
            "category": weighted(rng, CATEGORIES),
            "source": source,
            "industry": firm.industry,
            "region": firm.city.region,
            "address": names.address(rng, firm.city, firm.lang),
            "phone": names.landline(rng, firm.city),
            "credit_level": weighted(rng, CREDIT),
        }
        if rng.random() < 0.6:
            data["website"] = f"https://www.{firm.domain}"
        key = self.create(at, rep.key, "customer", data)
        story = CustomerStory(key, at, rep.key, firm, level)
        self.customer_stories.append(story)
        self.windows["customer"].append(
            Window(rep.key, at, self.cal.now, firm.lang, {"customer": Ref(key)}, story)
        )
        return story

    def _more_contacts(self, story: CustomerStory, at: datetime, count: int) -> None:
        for _ in range(count):
            at = self.cal.after(at, 0.05, 24 * 20 if story.contacts else 2)
            if at > self.cal.now:
                return
            self._contact(story, at, {})

    def _contact(self, story: CustomerStory, at: datetime, known: Mapping[str, Any]) -> None:
        rng = self.rng
        who = self._person(story.lang)
        primary = not story.contacts
        data: dict[str, Any] = {
            "customer": Ref(story.key),
            "name": who.name,
            "title": names.title(rng, who.lang),
            "department": names.department(rng, who.lang),
            "role_in_deal": "decision_maker"
            if primary and rng.random() < 0.5
            else weighted(rng, DEAL_ROLES),
            "is_primary": primary,
        }
        if rng.random() < 0.9:
            data["mobile"] = names.mobile(rng)
        if rng.random() < 0.4:
            data["phone"] = names.landline(rng, story.firm.city)
        if rng.random() < 0.7:
            data["email"] = names.work_email(who, story.firm)
        if rng.random() < 0.25:
            data["birthday"] = date(
                rng.randrange(1965, 1998), rng.randrange(1, 13), rng.randrange(1, 29)
            ).isoformat()
        key = self.create(at, story.owner, "contact", {**data, **known})
        story.contacts.append((key, at))

    # ---- opportunities ------------------------------------------------------------------------

    def opportunities(self) -> None:
        weights = [{"A": 4, "B": 2, "C": 1}[s.level] for s in self.customer_stories]
        made = tries = 0
        while made < self.wanted["opportunity"] and tries < GIVE_UP:
            tries += 1
            story = self.rng.choices(self.customer_stories, weights=weights)[0]
            at = self.cal.within(story.at + TICK * 60, self.cal.now)
            if at is not None:
                self._opportunity(story, at)
                made += 1

    def _opportunity(self, story: CustomerStory, at: datetime) -> None:
        rng, cal = self.rng, self.cal
        lang = story.lang
        name, typical = names.deal(rng, story.firm.short_name, lang)
        amount = names.amount(rng, typical, story.level)
        data: dict[str, Any] = {"name": name, "customer": Ref(story.key)}
        contact = story.contact_before(rng, at)
        if contact:
            data["contact"] = Ref(contact)
        if rng.random() < 0.5:
            data["amount"] = str(amount)
        key = self.create(at, story.owner, "opportunity", data)
        about = {"opportunity": Ref(key), "customer": Ref(story.key)}
        end = self._opportunity_moves(story, key, at, amount)
        self.windows["opportunity"].append(
            Window(story.owner, at, min(end, cal.now), lang, about, story)
        )

    def _opportunity_moves(
        self, story: CustomerStory, key: str, at: datetime, amount: int
    ) -> datetime:
        """Move the opportunity stage by stage; returns when its story ended (or now)."""
        rng, cal = self.rng, self.cal
        owner = story.owner
        stage = "initial_contact"
        while stage in NEXT_STAGE:
            at = cal.days_after(at, 2, 28)
            if rng.random() >= ADVANCE[stage]:
                if rng.random() < 0.65:
                    reason = weighted(rng, LOST_REASONS)
                    lost: dict[str, Any] = {"stage": "lost", "lost_reason": reason}
                    if reason == "competitor" or rng.random() < 0.3:
                        lost["competitor"] = rng.choice(words.COMPETITORS)
                    self.happen(Update(at, owner, "opportunity", key, lost))
                return at  # lost, or stalled in its stage
            stage = NEXT_STAGE[stage]
            move: dict[str, Any] = {"stage": stage}
            if stage == "proposal":
                # The gate: a proposal needs an amount and an expected close date.
                close = cal.days_after(at, 20, 75).date()
                move.update(amount=str(amount), close_date=close.isoformat())
            if stage == "won":
                move["close_date"] = at.date().isoformat()
            if not self.happen(Update(at, owner, "opportunity", key, move)):
                return at
            if stage == "intent_confirmed":
                story.milestones.append((at, "intent"))
            if stage == "won":
                story.milestones.append((at, "customer"))
            if stage == "negotiation" and rng.random() < 0.35:
                at = self._discount(story, key, at)
        return at

    def _discount(self, story: CustomerStory, key: str, at: datetime) -> datetime:
        """The rep offers a discount; above 20% it goes to the manager (above 40% then to the
        director) — an approval the template starts by itself — and a refused one is cut to
        15%. Returns when the matter was settled."""
        rng, cal = self.rng, self.cal
        rep = self.staff.member(story.owner)
        depth = weighted(rng, (("low", 70), ("mid", 22), ("high", 8)))
        percent = {
            "low": rng.choice((5, 8, 10, 12, 15, 18)),
            "mid": rng.choice((22, 25, 28, 30, 35)),
            "high": rng.choice((42, 45, 50)),
        }[depth]
        at = cal.days_after(at, 1, 5)
        if not self.happen(Update(at, rep.key, "opportunity", key, {"discount_percent": percent})):
            return at
        if percent <= 20:
            return at
        deciders = [rep.manager] if percent <= 40 else [rep.manager, self._director(rep)]
        for decider in deciders:
            assert decider is not None
            # Most answer within a day or so; some let it wait (recent ones are still pending).
            at = cal.after(at, 2, 30) if rng.random() < 0.7 else cal.days_after(at, 1, 10)
            answer = "approved" if rng.random() < 0.8 else "rejected"
            comment = names.text(words.DECISION_COMMENTS[answer], story.lang)
            if not self.happen(Decide(at, decider, key, answer, comment)):
                return at
            if answer == "rejected":
                at = cal.after(at, 4, 72)
                self.happen(Update(at, rep.key, "opportunity", key, {"discount_percent": 15}))
                return at
        return at

    def _director(self, rep: Member) -> str:
        return f"director.{rep.region}"

    # ---- customers' lifecycle --------------------------------------------------------------

    def lifecycles(self) -> None:
        """prospect → intent (a deal confirmed) → customer (a deal won) → VIP (key accounts
        winning again); a few customers churn."""
        rng, cal = self.rng, self.cal
        for story in self.customer_stories:
            stage, at, wins = "prospect", story.at, 0
            for moment, earned in sorted(story.milestones):
                wins += earned == "customer"
                target = earned
                if earned == "customer" and stage in ("customer", "vip"):
                    promote = wins >= 2 and (story.level == "A" or rng.random() < 0.3)
                    target = "vip" if promote and stage == "customer" else stage
                if target == stage or (target == "intent" and stage != "prospect"):
                    continue
                at = max(cal.after(moment, 1, 48), at + TICK)
                if not self.happen(
                    Update(at, story.owner, "customer", story.key, {"lifecycle": target})
                ):
                    break
                stage = target
            if stage in ("customer", "vip") and rng.random() < 0.08:
                at = cal.days_after(at, 60, 200)
                self.happen(
                    Update(at, story.owner, "customer", story.key, {"lifecycle": "churned"})
                )

    # ---- service tickets ---------------------------------------------------------------------

    def tickets(self) -> None:
        rng, cal = self.rng, self.cal
        served = [s for s in self.customer_stories if s.first_win is not None]
        made = tries = 0
        while made < self.wanted["ticket"] and tries < GIVE_UP:
            tries += 1
            story = rng.choice(served or self.customer_stories)
            since = story.first_win or story.at
            at = cal.within(since + TICK * 60, cal.now)
            if at is None:
                served = [s for s in served if s is not story]
                continue
            self._ticket(story, at)
            made += 1

    def _ticket(self, story: CustomerStory, at: datetime) -> None:
        rng, cal = self.rng, self.cal
        lang = story.lang
        kind = weighted(rng, TICKET_TYPES)
        priority = weighted(rng, PRIORITIES)
        subject = names.text(rng.choice(words.TICKET_SUBJECTS[kind]), lang)
        data: dict[str, Any] = {
            "subject": subject,
            "description": subject + names.text(words.PLEASE_HELP, lang),
            "customer": Ref(story.key),
            "type": kind,
            "source": weighted(rng, TICKET_SOURCES),
            "priority": priority,
        }
        contact = story.contact_before(rng, at)
        if contact:
            data["contact"] = Ref(contact)
        desk = "service.manager"
        key = self.create(at, desk, "ticket", data)
        agent = rng.choice(self.staff.by_role("service_agent")).key
        at = cal.after(at, 0.05, 1)
        if not self.happen(
            Update(at, desk, "ticket", key, {"owner": UserOf(agent), "status": "assigned"})
        ):
            return
        answered = False
        for round_ in range(2):
            at = cal.after(at, *RESPONSE_HOURS[priority])
            working: dict[str, Any] = {"status": "in_progress"}
            if not answered:
                working["first_response_at"] = at.isoformat()
            if not self.happen(Update(at, agent, "ticket", key, working)):
                return
            answered = True
            at = cal.after(at, *FIX_HOURS[priority])
            resolved = {
                "status": "resolved",
                "resolution": names.text(rng.choice(words.RESOLUTIONS), lang),
                "resolved_at": at.isoformat(),
            }
            if not self.happen(Update(at, agent, "ticket", key, resolved)):
                return
            if rng.random() < 0.12:
                return  # resolved, waiting for the customer's confirmation
            at = cal.days_after(at, 0.5, 5)
            score = weighted(rng, SCORES)
            closed: dict[str, Any] = {"status": "closed", "satisfaction": score}
            if rng.random() < 0.6:
                closed["satisfaction_comment"] = names.text(words.SATISFACTION[score], lang)
            if not self.happen(Update(at, agent, "ticket", key, closed)):
                return
            if round_ == 0 and rng.random() < 0.3:
                callback = cal.after(at, 2, 72)
                about: dict[str, Ref] = {"customer": Ref(story.key)}
                if contact:
                    about["contact"] = Ref(contact)
                self._activity(
                    callback,
                    agent,
                    lang,
                    about,
                    kinds=("call",),
                    subject=("服务回访", "Service follow-up call"),
                )
            if round_ == 1 or rng.random() >= 0.06:
                return
            at = cal.days_after(at, 1, 7)
            if not self.happen(Update(at, agent, "ticket", key, {"status": "reopened"})):
                return

    # ---- activities ------------------------------------------------------------------------

    def _activity(
        self,
        at: datetime,
        actor: str,
        lang: str,
        about: Mapping[str, Ref],
        *,
        kinds: tuple[str, ...] | None = None,
        subject: tuple[str, str] | None = None,
    ) -> bool:
        """A follow-up activity at `at`, if that moment has come."""
        rng = self.rng
        if at > self.cal.now:
            return False
        kind = rng.choice(kinds) if kinds else weighted(rng, ACTIVITY_TYPES)
        data: dict[str, Any] = {
            "type": kind,
            "subject": names.text(subject or rng.choice(words.ACTIVITY_SUBJECTS[kind]), lang),
            "time": at.isoformat(),
            **about,
        }
        if rng.random() < 0.7:
            data["content"] = names.text(rng.choice(words.ACTIVITY_NOTES), lang)
        if rng.random() < 0.35:
            data["next_contact_at"] = self.cal.days_after(at, 1, 14).isoformat()
        self.create(at, actor, "activity", data)
        self.activities_made += 1
        return True

    def activities(self) -> None:
        """The rest of the year's follow-ups, spread over the records being worked on: half on
        opportunities, a third on customers, the rest on leads."""
        rng = self.rng
        shares: tuple[tuple[Callable[[], bool], int], ...] = (
            (lambda: self._window_activity("opportunity"), 50),
            (lambda: self._window_activity("customer"), 30),
            (lambda: self._window_activity("lead"), 20),
        )
        misses = 0
        while self.activities_made < self.wanted["activity"] and misses < GIVE_UP:
            if not weighted(rng, shares)():
                misses += 1

    def _window_activity(self, kind: str) -> bool:
        windows = self.windows[kind]
        if not windows:
            return False
        window = self.rng.choice(windows)
        at = self.cal.within(window.start, window.end)
        if at is None:
            return False
        about = dict(window.about)
        story = window.customer
        if kind == "customer" and story is not None and self.rng.random() < 0.7:
            contact = story.contact_before(self.rng, at)
            if contact:
                about["contact"] = Ref(contact)
        return self._activity(at, window.owner, window.lang, about)
