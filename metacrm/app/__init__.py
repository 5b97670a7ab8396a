"""The end users' app at /app: server-rendered pages generated from metadata — home, lists,
kanban boards, record pages and forms — over the same record service, rules and permissions as
the API. Nothing below this package imports it."""
