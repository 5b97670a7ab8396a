"""The CRM templates: leads with their status, customers, contacts, opportunities with a sales
process and a discount approval, activities and service tickets, with the roles that work them —
a metadata package in `package/`, installed by `metacrm init` like any plugin's."""

from __future__ import annotations

from importlib import resources
from typing import Any

from metacrm.plugins.model import DemoLoaded, DemoRun, Plugin, package_from_files


def _package() -> dict[str, Any]:
    return package_from_files(resources.files(__package__) / "package")


def _demo(run: DemoRun) -> DemoLoaded:
    # Imported when asked for: every process discovers the plugin, few load its demo.
    from metacrm.plugins.crm.demo import load

    return load(run)


plugin = Plugin(
    name="crm",
    version="1.0.0",
    label={"en": "CRM templates", "zh-CN": "CRM 模板"},
    description={
        "en": "Leads, customers, contacts, opportunities, activities and tickets",
        "zh-CN": "线索、客户、联系人、商机、跟进记录和服务工单",
    },
    package=_package,
    demo=_demo,
)
