"""db/: the status database — SQLAlchemy 2.0 models (Job, Item, JobCount), the engine factory, Alembic
migrations shipped inside the package, and the few queries the scheduler, the workers and the web UI share.

Knows nothing of torch, Celery or storage. Every item transition is one compare-and-set UPDATE.
"""

import importlib
from typing import Any

# Exported lazily (PEP 562): `import db.cli`, done by every `wgfpgan` invocation to build the parser,
# must not pay for SQLAlchemy.
_EXPORTS = {
    "DEFAULT_RETRY_SECONDS": "db.engine",
    "INTERACTIVE_RETRY_SECONDS": "db.engine",
    "Database": "db.engine",
    "DatabaseNotMigrated": "db.engine",
    "is_embedded_default": "db.engine",
    "Base": "db.models",
    "Item": "db.models",
    "ItemState": "db.models",
    "Job": "db.models",
    "JobCount": "db.models",
    "JobState": "db.models",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'db' has no attribute {name!r}")
