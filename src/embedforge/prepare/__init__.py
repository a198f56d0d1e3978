"""Stage `prepare`: raw labelled text -> `data/prepared/` (see embedforge.core.prepared)."""

from embedforge.prepare.run import prepare

__all__ = ["prepare"]
