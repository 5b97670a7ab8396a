"""The REST API: records, metadata, OpenAPI — thin shells over the record service and designer."""
