"""db/: the status database — SQLAlchemy 2.0 models (Job, Item, JobCount), the engine factory, Alembic
migrations shipped inside the package, and the few queries the scheduler, the workers and the web UI share.

Knows nothing of torch, Celery or storage. Every item transition is one compare-and-set UPDATE.
"""

from db.engine import (
    DEFAULT_RETRY_SECONDS,
    INTERACTIVE_RETRY_SECONDS,
    Database,
    DatabaseNotMigrated,
    is_embedded_default,
)
from db.models import Base, Item, ItemState, Job, JobCount, JobState

__all__ = [
    "DEFAULT_RETRY_SECONDS",
    "INTERACTIVE_RETRY_SECONDS",
    "Base",
    "Database",
    "DatabaseNotMigrated",
    "Item",
    "ItemState",
    "Job",
    "JobCount",
    "JobState",
    "is_embedded_default",
]
