"""Automations: behaviour that happens by itself, as metadata. Triggered ones run inside record
writes (one write hook); scheduled ones run from a periodic job over the records their condition
selects."""

from metacrm.runtime.automations.design import (
    automation_designer,
    broken_automations,
    field_reader,
)
from metacrm.runtime.automations.scheduled import ScheduledRun, run_scheduled
from metacrm.runtime.automations.triggered import AutomationHook, AutomationLoop

__all__ = [
    "AutomationHook",
    "AutomationLoop",
    "ScheduledRun",
    "automation_designer",
    "broken_automations",
    "field_reader",
    "run_scheduled",
]
