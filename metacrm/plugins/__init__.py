"""Plugins: Python distributions that bring a metadata package (entities, fields, pipelines,
approval processes, roles, actions, views …) and, optionally, Python hooks for what the rule
language can't express. The shipped CRM templates are one of them (`crm`)."""
