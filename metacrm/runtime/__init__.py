"""What interprets metadata: dynamic tables, the record service, the rule language and the API."""
