"""Finding the plugins installed in this Python environment (the `metacrm.plugins` entry
points), by name."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

from metacrm.plugins.model import Plugin

GROUP = "metacrm.plugins"
log = logging.getLogger("metacrm.plugins")


def available() -> dict[str, Plugin]:
    """Every plugin the environment offers; one that fails to load is logged and left out (a
    broken third-party distribution must not stop the platform)."""
    found: dict[str, Plugin] = {}
    for point in entry_points(group=GROUP):
        try:
            plugin = point.load()
        except Exception:
            log.exception("plugin entry point %s could not be loaded", point.value)
            continue
        if not isinstance(plugin, Plugin):
            log.error("entry point %s is not a metacrm Plugin", point.value)
            continue
        if plugin.name in found:
            log.error("two plugins are named %r; %s is left out", plugin.name, point.value)
            continue
        found[plugin.name] = plugin
    return found
