"""Stage pipelines at run time: gates, transitions, stage history and entry actions on every
record write (moves), the pipeline designer that keeps the entity in step (design), the timeline
of one record (timeline)."""

from metacrm.runtime.pipelines.moves import after_write, before_write

__all__ = ["after_write", "before_write"]
