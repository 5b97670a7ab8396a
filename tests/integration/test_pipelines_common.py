"""What the pipeline tests share: a deal entity with a sales pipeline, a task entity its stages
create, and readers of the stage history, record history and event tables. (No tests here.)"""

from __future__ import annotations

import copy
from typing import Any

from conftest import Api
from sqlalchemy import select

from metacrm.platform.db import reading
from metacrm.platform.systables import events, record_history, stage_history

V1 = "/api/v1"
PIPELINES = f"{V1}/meta/pipelines"
DEALS = f"{V1}/records/deal"

TASK = {
    "name": "task",
    "label": {"en": "Task"},
    "fields": [
        {"name": "subject", "type": "text", "required": True, "max_length": 100},
        {"name": "due", "type": "date"},
        {"name": "deal", "type": "lookup", "target": "deal"},
    ],
}

DEAL = {
    "name": "deal",
    "label": {"en": "Deal"},
    "title_field": "name",
    "fields": [
        {"name": "name", "type": "text", "required": True, "max_length": 200},
        {"name": "amount", "type": "decimal", "precision": 14, "scale": 2},
        {"name": "close_date", "type": "date"},
        {
            "name": "stage",
            "type": "picklist",
            "default": "qualify",
            "options": [{"value": "qualify", "color": "#aaa"}, {"value": "closed"}],
        },
        {
            "name": "lost_reason",
            "type": "picklist",
            "options": [{"value": "price"}, {"value": "timing"}],
        },
        {"name": "probability", "type": "integer", "min": 0, "max": 100},
        {"name": "next_step", "type": "text"},
    ],
}


def stage(key: str, category: str = "open", probability: int = 10, **extra: Any) -> dict[str, Any]:
    return {
        "key": key,
        "label": {"en": key.capitalize()},
        "category": category,
        "probability": probability,
        **extra,
    }


SALES = {
    "name": "sales",
    "label": {"en": "Sales"},
    "entity": "deal",
    "field": "stage",
    "lost_reason_field": "lost_reason",
    "probability_field": "probability",
    "stages": [
        stage("qualify", probability=10, target_days=7),
        stage("develop", probability=30, required_fields=["next_step"]),
        stage(
            "proposal",
            probability=60,
            forecast_category="best_case",
            entry_condition="amount > 0 and close_date is not null",
        ),
        stage("won", "won", 100),
        stage("lost", "lost", 0),
    ],
}


def sales(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SALES)
    doc.update(changes)
    return doc


def setup(api: Api, pipeline: dict[str, Any] | None = None) -> None:
    """The deal and task entities and (unless None is asked for by passing {}) a pipeline."""
    api.make_entity(DEAL)
    api.make_entity(TASK)
    doc = SALES if pipeline is None else pipeline
    if doc:
        response = api.post(PIPELINES, doc)
        assert response.status_code == 201, response.text


def new_deal(api: Api, token: str | None = None, **values: Any) -> dict[str, Any]:
    response = api.post(DEALS, {"name": "Acme", **values}, headers=auth(token))
    assert response.status_code == 201, response.text
    return response.json()


def move(api: Api, deal_id: str, token: str | None = None, **values: Any) -> Any:
    return api.patch(f"{DEALS}/{deal_id}", values, headers=auth(token))


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def errors(response: Any) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.text
    return [(e["field"], e["code"]) for e in response.json()["errors"]]


def messages(response: Any) -> list[str]:
    return [e["message"] for e in response.json()["errors"]]


def user_id(api: Api, token: str) -> str:
    return api.get(f"{V1}/me", headers=auth(token)).json()["id"]


def visits(api: Api, record_id: str) -> list[dict[str, Any]]:
    with reading(api.engine) as conn:
        rows = conn.execute(
            select(stage_history)
            .where(stage_history.c.record_id == record_id)
            .order_by(stage_history.c.id)
        )
        return [dict(r._mapping) for r in rows]


def audit(api: Api, record_id: str) -> list[dict[str, Any]]:
    with reading(api.engine) as conn:
        rows = conn.execute(
            select(record_history)
            .where(record_history.c.record_id == record_id)
            .order_by(record_history.c.id)
        )
        return [dict(r._mapping) for r in rows]


def stage_events(api: Api) -> list[dict[str, Any]]:
    with reading(api.engine) as conn:
        rows = conn.execute(
            select(events).where(events.c.type == "stage.changed").order_by(events.c.id)
        )
        return [dict(r._mapping) for r in rows]
