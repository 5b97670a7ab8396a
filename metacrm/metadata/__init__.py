"""What admins design: schemas of metadata documents, typed views, validation, the versioned
store, packages, and the migration planner."""
