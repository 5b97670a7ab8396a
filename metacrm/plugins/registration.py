"""The start-up registry of a process with its plugins' hooks: the built-in behaviour, then each
plugin's named actions and jobs. Whoever starts a process (the CLI, the app factory, a worker)
builds its registry here, so every process runs the same hooks."""

from __future__ import annotations

from metacrm.plugins.discovery import available
from metacrm.runtime.registry import RuntimeRegistry
from metacrm.runtime.startup import build_registry


def registry_with_plugins() -> RuntimeRegistry:
    registry = build_registry()
    for plugin in available().values():
        if plugin.register is not None:
            plugin.register(registry)
    return registry
