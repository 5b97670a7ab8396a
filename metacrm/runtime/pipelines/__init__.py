"""Stage pipelines at run time: gates, transitions, stage history and entry actions on every
record write (moves, through the `StageMoves` write hook), the pipeline designer that keeps the
entity in step (design), the timeline of one record (timeline)."""

from metacrm.runtime.pipelines.moves import StageMoves

__all__ = ["StageMoves"]
