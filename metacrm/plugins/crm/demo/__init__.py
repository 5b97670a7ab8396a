"""The CRM templates' demo data (`metacrm demo`): a year in the life of a company selling in
three regions of China and serving its customers — leads, customers and their contacts,
opportunities, activities and tickets, made by thirty staff in the template's roles.

plan.py makes the year (pure, from a seed); loader.py replays it through the record service.
"""

from __future__ import annotations

from metacrm.plugins.crm.demo.loader import PASSWORD, load

__all__ = ["PASSWORD", "load"]
