"""Everything the runtime runs besides interpreting metadata, registered at start-up: background
tasks (the platform's part), event consumers, write hooks, the Python steps of record actions
and the Python validators entities' validation rules name.
`runtime/startup.py` fills one for the built-in behaviour; tests build their own to configure
what runs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from metacrm.platform.registry import Registry
from metacrm.runtime.context import ActionHook, EventConsumer, Validator, WriteHook

# The names metadata may give a hook — an action's hook step (see action.schema.json) or a
# validation rule's validator (entity.schema.json): `convert_lead`, or namespaced by the plugin
# that registers it, `crm.convert_lead`.
ACTION_HOOK_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
MAX_ACTION_HOOK_NAME = 100


@dataclass
class RuntimeRegistry(Registry):
    write_hooks: list[WriteHook] = field(default_factory=list)
    event_consumers: list[EventConsumer] = field(default_factory=list)
    actions: dict[str, ActionHook] = field(default_factory=dict)
    validators: dict[str, Validator] = field(default_factory=dict)

    def write_hook(self, hook: WriteHook) -> None:
        """Call `hook` around every record write, after the hooks registered before it."""
        self.write_hooks.append(hook)

    def consume_events(self, consumer: EventConsumer) -> None:
        """Call `consumer(ctx, event)` for every event, inside the publishing transaction."""
        self.event_consumers.append(consumer)

    def action_hook(self, name: str, fn: ActionHook) -> None:
        """Make `fn` the hook step `name` of record actions (`{"type": "hook", "name": name}`)."""
        _check_name("an action hook", name, self.actions)
        self.actions[name] = fn

    def validator(self, name: str, fn: Validator) -> None:
        """Make `fn` the validator `name` of entities' validation rules (`{"name": …, "hook":
        name}`), called by the record service on every write the rule applies to."""
        _check_name("a validator", name, self.validators)
        self.validators[name] = fn


def _check_name(what: str, name: str, registered: Mapping[str, object]) -> None:
    if not ACTION_HOOK_NAME.match(name) or len(name) > MAX_ACTION_HOOK_NAME:
        raise ValueError(f"{name!r} can't name {what} (use lower_case.words)")
    if name in registered:
        raise ValueError(f"{what} named {name!r} is already registered")
